"""Activities (recurring clubs and workshops at a site), their sessions and attendance,
and group events counted without identities."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .admin import Site
from .auth import User
from .common import PublicIdMixin, TitledEnum, check_in, utcnow


class ActivityKind(TitledEnum):
    """What an activity is about."""

    ARTS = "arts"
    DRAMA = "drama"
    MUSIC = "music"
    SPORT = "sport"
    LIFE_SKILLS = "life_skills"
    VOCATIONAL = "vocational_training"
    PSYCHOSOCIAL = "psychosocial_support"
    AWARENESS = "awareness_session"
    COMMUNITY = "community_event"
    OTHER = "other"

    __titles__ = {
        "arts": _l("Arts"),
        "drama": _l("Drama"),
        "music": _l("Music"),
        "sport": _l("Sport"),
        "life_skills": _l("Life skills"),
        "vocational_training": _l("Vocational training"),
        "psychosocial_support": _l("Psychosocial support"),
        "awareness_session": _l("Awareness session"),
        "community_event": _l("Community event"),
        "other": _l("Other"),
    }


class CompletionRule(TitledEnum):
    """How completion is judged: a share of held sessions, or hours attended."""

    PERCENT = "percent"
    HOURS = "hours"

    __titles__ = {
        "percent": _l("Share of held sessions attended (%)"),
        "hours": _l("Hours attended"),
    }


class AttendanceStatus(TitledEnum):
    """One youth at one session."""

    PRESENT = "present"
    ABSENT = "absent"
    EXCUSED = "excused"

    __titles__ = {"present": _l("Present"), "absent": _l("Absent"), "excused": _l("Excused")}


class GroupAgeBand(TitledEnum):
    """The age bands a group event's participants are counted in (no identities).
    Titles made only of digits are the same in every language, so not translated."""

    UNDER_10 = "under_10"
    AGE_10_14 = "10-14"
    AGE_15_17 = "15-17"
    AGE_18_24 = "18-24"
    AGE_25_29 = "25-29"
    AGE_30_PLUS = "30_plus"

    __titles__ = {
        "under_10": _l("Under 10"),
        "10-14": "10-14",
        "15-17": "15-17",
        "18-24": "18-24",
        "25-29": "25-29",
        "30_plus": _l("30 and over"),
    }


# Monday first, as calendars are read in Tunisia.
WEEKDAY_LABELS = [_l("Mon"), _l("Tue"), _l("Wed"), _l("Thu"), _l("Fri"), _l("Sat"), _l("Sun")]


activity_facilitator = sa.Table(
    "activity_facilitator",
    db.metadata,
    sa.Column("activity_id", sa.ForeignKey("activity.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.ForeignKey("user_account.id", ondelete="CASCADE"),
              primary_key=True),
)


class Activity(PublicIdMixin, db.Model):
    """A recurring programme of a CSO at one of its sites (a club, a workshop series)."""

    __tablename__ = "activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("site.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(30))
    planned_start: Mapped[dt.date]
    planned_end: Mapped[dt.date | None]
    planned_sessions: Mapped[int | None]
    default_duration_minutes: Mapped[int] = mapped_column(default=90)
    # Meeting days, Monday = 0, as "0,2" (Monday and Wednesday): what "today" lists.
    weekdays: Mapped[str] = mapped_column(sa.String(20), default="")
    completion_rule: Mapped[str] = mapped_column(sa.String(10), default=CompletionRule.PERCENT)
    completion_threshold: Mapped[int] = mapped_column(default=75)
    present_by_default: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship()
    facilitators: Mapped[list[User]] = relationship(secondary=activity_facilitator,
                                                    order_by="User.display_name")
    sessions: Mapped[list[ActivitySession]] = relationship(
        back_populates="activity", order_by="ActivitySession.date.desc()",
        cascade="all, delete-orphan")

    __table_args__ = (
        sa.CheckConstraint(check_in("kind", ActivityKind), name="kind"),
        sa.CheckConstraint(check_in("completion_rule", CompletionRule), name="completion_rule"),
        sa.CheckConstraint("default_duration_minutes BETWEEN 1 AND 720", name="duration"),
        sa.CheckConstraint("planned_end IS NULL OR planned_end >= planned_start", name="dates"),
    )

    @property
    def weekday_numbers(self) -> list[int]:
        """Meeting days as integers, Monday = 0."""
        return [int(d) for d in self.weekdays.split(",") if d.strip().isdigit()]


class ActivitySession(PublicIdMixin, db.Model):
    """One meeting of an activity. Its UUID may come from the phone, so a retried
    submission is recognised; `content_hash` tells a retry from a conflicting edit."""

    __tablename__ = "activity_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    activity_id: Mapped[int] = mapped_column(sa.ForeignKey("activity.id", ondelete="CASCADE"))
    date: Mapped[dt.date]
    start_time: Mapped[dt.time | None]
    duration_minutes: Mapped[int]
    topic: Mapped[str | None] = mapped_column(sa.String(200))
    facilitator_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    notes: Mapped[str | None] = mapped_column(sa.String(1000))
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    activity: Mapped[Activity] = relationship(back_populates="sessions")
    facilitator: Mapped[User | None] = relationship(foreign_keys=[facilitator_id])
    attendance: Mapped[list[Attendance]] = relationship(
        back_populates="session", cascade="all, delete-orphan")

    __table_args__ = (
        sa.Index("ix_activity_session_activity_date", "activity_id", "date"),
        sa.CheckConstraint("duration_minutes BETWEEN 1 AND 720", name="duration"),
    )


class Attendance(db.Model):
    """Whether one youth was present, absent or excused at one session."""

    __tablename__ = "attendance"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("activity_session.id", ondelete="CASCADE"), primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(
        sa.ForeignKey("beneficiary.id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"))
    status: Mapped[str] = mapped_column(sa.String(10))

    session: Mapped[ActivitySession] = relationship(back_populates="attendance")

    __table_args__ = (
        # A youth's participation summary reads their rows without touching other youth's.
        sa.Index("ix_attendance_beneficiary_session", "beneficiary_id", "session_id", "status"),
        # The year's figures read every row by CSO and youth from this index alone.
        sa.Index("ix_attendance_figures", "organization_id", "beneficiary_id", "status",
                 "session_id"),
        sa.CheckConstraint(check_in("status", AttendanceStatus), name="status"),
    )


class GroupEvent(PublicIdMixin, db.Model):
    """A public or group event (a show, an awareness session): counts only, no identities."""

    __tablename__ = "group_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(sa.ForeignKey("site.id"))
    title: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(30))
    date: Mapped[dt.date]
    duration_minutes: Mapped[int]
    place: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    site: Mapped[Site | None] = relationship()
    counts: Mapped[list[GroupEventCount]] = relationship(
        back_populates="event", cascade="all, delete-orphan")

    __table_args__ = (
        sa.CheckConstraint(check_in("kind", ActivityKind), name="kind"),
        sa.CheckConstraint("duration_minutes BETWEEN 1 AND 720", name="duration"),
    )

    @property
    def total(self) -> int:
        """All participants counted."""
        return sum(c.count for c in self.counts)


class GroupEventCount(db.Model):
    """Participants of a group event of one sex and age band."""

    __tablename__ = "group_event_count"

    event_id: Mapped[int] = mapped_column(sa.ForeignKey("group_event.id", ondelete="CASCADE"),
                                          primary_key=True)
    sex: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    age_band: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    count: Mapped[int]

    event: Mapped[GroupEvent] = relationship(back_populates="counts")

    __table_args__ = (sa.CheckConstraint("count >= 0", name="count"),)

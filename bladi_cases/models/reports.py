"""Upward reporting: indicators (computed or manual), targets, quarterly reports and their
review, with the figures frozen when a report is approved."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .admin import Organization
from .auth import User
from .common import PublicIdMixin, TitledEnum, in_language, utcnow


class ReportStatus(TitledEnum):
    """Where a quarterly report stands."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    APPROVED = "approved"

    __titles__ = {
        "draft": _l("Draft"),
        "submitted": _l("Submitted"),
        "returned": _l("Returned"),
        "approved": _l("Approved"),
    }


class IndicatorUnit(TitledEnum):
    """What an indicator counts (the words after its figures in exports)."""

    YOUTH = "youth"
    SESSIONS = "sessions"
    HOURS = "hours"
    REFERRALS = "referrals"
    POINTS = "points"
    PEOPLE = "people"

    __titles__ = {
        "youth": _l("young people"),
        "sessions": _l("sessions"),
        "hours": _l("hours"),
        "referrals": _l("referrals"),
        "points": _l("score points"),
        "people": _l("people"),
    }


class ReportStepAction(TitledEnum):
    """One step of a report's review (its timeline)."""

    GENERATED = "generated"
    SUBMITTED = "submitted"
    COMMENTED = "commented"
    RETURNED = "returned"
    APPROVED = "approved"

    __titles__ = {
        "generated": _l("Generated from the data"),
        "submitted": _l("Submitted"),
        "commented": _l("Commented"),
        "returned": _l("Returned"),
        "approved": _l("Approved"),
    }


class Indicator(db.Model):
    """An indicator of the program: computed by a rule over the records, or manual."""

    __tablename__ = "indicator"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[dict] = mapped_column(sa.JSON)         # {"ar": ..., "fr": ..., "en": ...}
    definition: Mapped[dict] = mapped_column(sa.JSON)
    unit: Mapped[str] = mapped_column(sa.String(20))
    kind: Mapped[str] = mapped_column(sa.String(10))    # output | outcome
    rule: Mapped[str | None] = mapped_column(sa.String(40))  # None: entered by hand
    age_bands: Mapped[list] = mapped_column(sa.JSON, default=list)  # [[10, 14], ...]
    position: Mapped[int] = mapped_column(default=0)

    def text(self, field: str, lang: str) -> str:
        """A translated field (name or definition) in a UI language."""
        return in_language(getattr(self, field), lang, self.code)


class Target(db.Model):
    """A target for one indicator and one CSO: a quarter, a fiscal year (quarter None) or the
    life of the award (fiscal_year None); `baseline` is the value before the program."""

    __tablename__ = "indicator_target"

    id: Mapped[int] = mapped_column(primary_key=True)
    indicator_id: Mapped[int] = mapped_column(sa.ForeignKey("indicator.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    fiscal_year: Mapped[int | None]
    quarter: Mapped[int | None]
    value: Mapped[float]
    baseline: Mapped[float | None]

    indicator: Mapped[Indicator] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("indicator_id", "organization_id", "fiscal_year", "quarter",
                            name="uq_indicator_target_period"),
        sa.CheckConstraint("value >= 0", name="value"),
        sa.CheckConstraint("quarter IS NULL OR quarter BETWEEN 1 AND 4", name="quarter"),
    )


class ManualValue(db.Model):
    """A value entered by hand for a manual indicator, with the evidence behind it."""

    __tablename__ = "indicator_manual_value"

    id: Mapped[int] = mapped_column(primary_key=True)
    indicator_id: Mapped[int] = mapped_column(sa.ForeignKey("indicator.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    fiscal_year: Mapped[int]
    quarter: Mapped[int]
    value: Mapped[float]
    evidence: Mapped[str] = mapped_column(sa.String(500))
    entered_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    __table_args__ = (
        sa.UniqueConstraint("indicator_id", "organization_id", "fiscal_year", "quarter",
                            name="uq_indicator_manual_value_period"),
        sa.CheckConstraint("value >= 0", name="value"),
    )


class QuarterlyReport(PublicIdMixin, db.Model):
    """A CSO's report for a quarter: figures computed from the data, narrative, review.
    Once approved, `figures` never change again (later edits show as a difference)."""

    __tablename__ = "quarterly_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    fiscal_year: Mapped[int]
    quarter: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(10), default=ReportStatus.DRAFT)
    figures: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # indicator code -> value
    achievements: Mapped[str] = mapped_column(sa.Text, default="")
    challenges: Mapped[str] = mapped_column(sa.Text, default="")
    lessons: Mapped[str] = mapped_column(sa.Text, default="")
    success_story: Mapped[str] = mapped_column(sa.Text, default="")
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship()
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    steps: Mapped[list[ReportStep]] = relationship(back_populates="report",
                                                   order_by="ReportStep.id",
                                                   cascade="all, delete-orphan")

    __table_args__ = (
        sa.UniqueConstraint("organization_id", "fiscal_year", "quarter",
                            name="uq_quarterly_report_period"),
        sa.CheckConstraint("quarter BETWEEN 1 AND 4", name="quarter"),
    )


class ReportStep(db.Model):
    """One step of a report's review: generated, submitted, commented, returned, approved."""

    __tablename__ = "report_step"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("quarterly_report.id",
                                                         ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(sa.String(20))
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    report: Mapped[QuarterlyReport] = relationship(back_populates="steps")
    by: Mapped[User | None] = relationship()


class FiguresSnapshot(db.Model):
    """A fiscal year's true aggregate figures (counts per CSO, quarter and profile group;
    never a youth), computed in one go and kept for the dashboards: recomputing them over
    millions of rows on every page view is too slow, and every worker process can share
    them. Refreshed when older than the dashboard's cache setting, or by
    `flask reports refresh` on a schedule."""

    __tablename__ = "figures_snapshot"

    id: Mapped[int] = mapped_column(primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(index=True)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict] = mapped_column(sa.JSON)

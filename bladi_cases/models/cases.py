"""Case management: a case file per youth (status history, needs, plan, notes, referrals,
outcomes, follow-ups) and transfers between CSOs. Free text written about the youth (notes
and their history, goals, a referral's outcome, a transfer's consent note) is encrypted like
the identities, and erased with them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .auth import User
from .beneficiaries import Beneficiary
from .common import PublicIdMixin, TitledEnum, check_in, encrypted_column, utcnow


class CaseStatus(TitledEnum):
    """Where a case stands."""

    OPEN = "open"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    CLOSED = "closed"

    __titles__ = {
        "open": _l("Open"),
        "active": _l("Active"),
        "on_hold": _l("On hold"),
        "closed": _l("Closed"),
    }


class ClosureReason(TitledEnum):
    """Why a case was closed."""

    GOALS_MET = "goals_met"
    MOVED = "moved"
    LOST_CONTACT = "lost_contact"
    TRANSFERRED = "transferred"
    DECLINED = "declined"
    OTHER = "other"

    __titles__ = {
        "goals_met": _l("Goals met"),
        "moved": _l("Moved away"),
        "lost_contact": _l("Lost contact"),
        "transferred": _l("Transferred"),
        "declined": _l("Declined"),
        "other": _l("Other"),
    }


class Need(TitledEnum):
    """Needs assessed for a youth."""

    EDUCATION = "education"
    VOCATIONAL = "vocational_training"
    EMPLOYMENT = "employment"
    PSYCHOSOCIAL = "psychosocial_support"
    HEALTH = "health"
    LEGAL = "legal_aid"
    FAMILY = "family"
    HOUSING = "housing"
    DOCUMENTS = "documents"
    OTHER = "other"

    __titles__ = {
        "education": _l("Education"),
        "vocational_training": _l("Access to vocational training"),
        "employment": _l("Employment"),
        "psychosocial_support": _l("Psychosocial support"),
        "health": _l("Health"),
        "legal_aid": _l("Legal aid"),
        "family": _l("Family"),
        "housing": _l("Housing"),
        "documents": _l("Documents"),
        "other": _l("Other"),
    }


class GoalStatus(TitledEnum):
    """Progress of a case-plan goal."""

    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    ACHIEVED = "achieved"
    DROPPED = "dropped"

    __titles__ = {
        "planned": _l("Planned"),
        "in_progress": _l("In progress"),
        "achieved": _l("Achieved"),
        "dropped": _l("Dropped"),
    }


class NoteKind(TitledEnum):
    """How the contact behind a note happened."""

    CENTRE_VISIT = "centre_visit"
    HOME_VISIT = "home_visit"
    PHONE_CALL = "phone_call"
    MEETING = "meeting"
    FAMILY_CONTACT = "family_contact"
    OTHER = "other"

    __titles__ = {
        "centre_visit": _l("Visit at the centre"),
        "home_visit": _l("Home visit"),
        "phone_call": _l("Phone call"),
        "meeting": _l("Meeting"),
        "family_contact": _l("Family contact"),
        "other": _l("Other"),
    }


class ReferralStatus(TitledEnum):
    """Where a referral stands."""

    PROPOSED = "proposed"
    MADE = "made"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    DECLINED = "declined"
    NO_SHOW = "no_show"

    __titles__ = {
        "proposed": _l("Proposed"),
        "made": _l("Made"),
        "accepted": _l("Accepted"),
        "completed": _l("Completed: service received"),
        "declined": _l("Declined"),
        "no_show": _l("Did not go"),
    }


class OutcomeKind(TitledEnum):
    """Results that feed the donor's indicators."""

    JOB = "job"
    TRAINING_COMPLETED = "training_completed"
    RETURNED_TO_SCHOOL = "returned_to_school"
    OWN_BUSINESS = "own_business"
    OTHER = "other"

    __titles__ = {
        "job": _l("Job placement"),
        "training_completed": _l("Vocational training completed"),
        "returned_to_school": _l("Returned to school"),
        "own_business": _l("Started own business"),
        "other": _l("Other"),
    }


class TransferStatus(TitledEnum):
    """A transfer request and its answer."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"

    __titles__ = {
        "pending": _l("Waiting for an answer"),
        "accepted": _l("Accepted"),
        "rejected": _l("Rejected"),
    }


class RiskLevel(TitledEnum):
    """The risk level a case worker assesses for a youth."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    __titles__ = {"low": _l("Low"), "medium": _l("Medium"), "high": _l("High")}


class ServiceType(TitledEnum):
    """What a service provider of the directory offers (and what a referral asks for)."""

    VOCATIONAL = "vocational_training"
    EMPLOYMENT = "employment"
    HEALTH = "health"
    LEGAL = "legal_aid"
    EDUCATION = "education"
    PSYCHOSOCIAL = "psychosocial"
    OTHER = "other"

    __titles__ = {
        "vocational_training": _l("Vocational training centre"),
        "employment": _l("Employment office"),
        "health": _l("Health centre"),
        "legal_aid": _l("Legal aid"),
        "education": _l("School or education"),
        "psychosocial": _l("Psychosocial support"),
        "other": _l("Other"),
    }


case_worker = sa.Table(
    "case_worker", db.metadata,
    sa.Column("case_id", sa.ForeignKey("case_file.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True),
    # A worker's own case files (home page follow-ups, the field app's cases).
    sa.Index("ix_case_worker_user_id", "user_id"),
)


class Case(PublicIdMixin, db.Model):
    """The case file of one youth in the CSO that serves them."""

    __tablename__ = "case_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    beneficiary_id: Mapped[int] = mapped_column(sa.ForeignKey("beneficiary.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(10), default=CaseStatus.OPEN)
    opened_on: Mapped[dt.date]
    opened_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    closure_reason: Mapped[str | None] = mapped_column(sa.String(20))
    risk_level: Mapped[str | None] = mapped_column(sa.String(10))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    beneficiary: Mapped[Beneficiary] = relationship()
    workers: Mapped[list[User]] = relationship(secondary=case_worker,
                                               order_by="User.display_name")
    history: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id.desc()", cascade="all, delete-orphan")
    needs: Mapped[list[CaseNeed]] = relationship(cascade="all, delete-orphan")
    goals: Mapped[list[CaseGoal]] = relationship(order_by="CaseGoal.id",
                                                 cascade="all, delete-orphan")
    referrals: Mapped[list[Referral]] = relationship(order_by="Referral.id.desc()",
                                                     cascade="all, delete-orphan")
    outcomes: Mapped[list[Outcome]] = relationship(order_by="Outcome.on_date.desc()",
                                                   cascade="all, delete-orphan")

    __table_args__ = (
        sa.CheckConstraint(check_in("status", CaseStatus), name="status"),
        sa.CheckConstraint("status != 'closed' OR closure_reason IS NOT NULL",
                           name="closure_reason"),
        sa.CheckConstraint(f"risk_level IS NULL OR {check_in('risk_level', RiskLevel)}",
                           name="risk_level"),
    )


class CaseEvent(db.Model):
    """One line of a case's history: status changes, transfers (kept forever)."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case_file.id", ondelete="CASCADE"),
                                         index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"))
    kind: Mapped[str] = mapped_column(sa.String(20))  # status, transfer
    from_value: Mapped[str | None] = mapped_column(sa.String(40))
    to_value: Mapped[str | None] = mapped_column(sa.String(40))
    reason: Mapped[str | None] = mapped_column(sa.String(40))
    on_date: Mapped[dt.date]
    by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    case: Mapped[Case] = relationship(back_populates="history")
    by: Mapped[User | None] = relationship()


class CaseNeed(db.Model):
    """A need assessed for the youth, with its priority (1 high .. 3 low)."""

    __tablename__ = "case_need"

    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case_file.id", ondelete="CASCADE"),
                                         primary_key=True)
    need: Mapped[str] = mapped_column(sa.String(30), primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"))
    priority: Mapped[int] = mapped_column(default=2)

    __table_args__ = (sa.CheckConstraint("priority BETWEEN 1 AND 3", name="priority"),)


class CaseGoal(PublicIdMixin, db.Model):
    """A goal of the case plan; its target date is a follow-up until it is achieved."""

    __tablename__ = "case_goal"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case_file.id", ondelete="CASCADE"),
                                         index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    description_enc: Mapped[bytes | None] = encrypted_column()  # None once erased
    target_date: Mapped[dt.date | None]
    responsible_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(sa.String(12), default=GoalStatus.PLANNED)

    case: Mapped[Case] = relationship(back_populates="goals")
    responsible: Mapped[User | None] = relationship()

    __table_args__ = (sa.CheckConstraint(check_in("status", GoalStatus), name="status"),)


class CaseNote(PublicIdMixin, db.Model):
    """A dated note; the text is encrypted. Confidential ones: author and manager only."""

    __tablename__ = "case_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case_file.id", ondelete="CASCADE"),
                                         index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    note_date: Mapped[dt.date]
    kind: Mapped[str] = mapped_column(sa.String(20))
    text_enc: Mapped[bytes | None] = encrypted_column()
    confidential: Mapped[bool] = mapped_column(default=False)
    due_date: Mapped[dt.date | None]
    done_on: Mapped[dt.date | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    case: Mapped[Case] = relationship()
    author: Mapped[User | None] = relationship()
    versions: Mapped[list[CaseNoteVersion]] = relationship(
        order_by="CaseNoteVersion.id.desc()", cascade="all, delete-orphan")

    __table_args__ = (sa.CheckConstraint(check_in("kind", NoteKind), name="kind"),)


class CaseNoteVersion(db.Model):
    """The text a note had before an edit (encrypted too)."""

    __tablename__ = "case_note_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(sa.ForeignKey("case_note.id", ondelete="CASCADE"),
                                         index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"))
    text_enc: Mapped[bytes | None] = encrypted_column()
    edited_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    edited_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ServiceProvider(PublicIdMixin, db.Model):
    """A service the CSO refers youth to (its own directory, per governorate)."""

    __tablename__ = "service_provider"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    service_type: Mapped[str] = mapped_column(sa.String(30))
    governorate_code: Mapped[str] = mapped_column(sa.ForeignKey("governorate.iso_code"))
    phone: Mapped[str | None] = mapped_column(sa.String(30))
    address: Mapped[str | None] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (sa.CheckConstraint(check_in("service_type", ServiceType),
                                         name="service_type"),)


class Referral(PublicIdMixin, db.Model):
    """A referral of the youth to a service, and what came of it."""

    __tablename__ = "referral"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case_file.id", ondelete="CASCADE"),
                                         index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    service_type: Mapped[str] = mapped_column(sa.String(30))
    provider_id: Mapped[int | None] = mapped_column(sa.ForeignKey("service_provider.id"))
    status: Mapped[str] = mapped_column(sa.String(12), default=ReferralStatus.PROPOSED)
    proposed_on: Mapped[dt.date]
    made_on: Mapped[dt.date | None]
    closed_on: Mapped[dt.date | None]
    outcome_enc: Mapped[bytes | None] = encrypted_column()  # what came of it, free text
    due_date: Mapped[dt.date | None]

    case: Mapped[Case] = relationship(back_populates="referrals")
    provider: Mapped[ServiceProvider | None] = relationship()

    __table_args__ = (
        sa.CheckConstraint(check_in("status", ReferralStatus), name="status"),
        sa.CheckConstraint("made_on IS NULL OR made_on >= proposed_on", name="made_on"),
        sa.CheckConstraint("closed_on IS NULL OR made_on IS NULL OR closed_on >= made_on",
                           name="closed_on"),
    )


class Outcome(PublicIdMixin, db.Model):
    """A result for the youth (a job, training completed...), with 3- and 6-month checks."""

    __tablename__ = "outcome"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case_file.id", ondelete="CASCADE"),
                                         index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(30))
    on_date: Mapped[dt.date]
    sector: Mapped[str | None] = mapped_column(sa.String(100))
    formal: Mapped[bool | None]
    full_time: Mapped[bool | None]
    check_3m: Mapped[bool | None]  # still employed (or in school...) after 3 months
    check_6m: Mapped[bool | None]

    case: Mapped[Case] = relationship(back_populates="outcomes")

    __table_args__ = (sa.CheckConstraint(check_in("kind", OutcomeKind), name="kind"),)

    def check_due(self, months: int) -> dt.date:
        """When the 3- or 6-month check falls due."""
        return self.due_after(self.on_date, months)

    @staticmethod
    def due_after(on_date: dt.date, months: int) -> dt.date:
        """When the 3- or 6-month check of an outcome recorded on `on_date` falls due (for
        lists that read the date alone, not the outcome)."""
        return on_date + dt.timedelta(days=30 * months)


class CaseTransfer(PublicIdMixin, db.Model):
    """A request to move a youth and their case to another funded CSO."""

    __tablename__ = "case_transfer"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case_file.id", ondelete="CASCADE"),
                                         index=True)
    from_organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"))
    to_organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"),
                                                    index=True)
    consent_note_enc: Mapped[bytes | None] = encrypted_column()  # None once erased
    status: Mapped[str] = mapped_column(sa.String(10), default=TransferStatus.PENDING)
    requested_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    requested_on: Mapped[dt.date]
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    decided_on: Mapped[dt.date | None]

    case: Mapped[Case] = relationship()

    __table_args__ = (sa.CheckConstraint(check_in("status", TransferStatus), name="status"),)

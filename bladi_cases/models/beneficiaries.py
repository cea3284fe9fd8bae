"""Beneficiaries (the young people a CSO serves), their consents and enrolments.

Identifying fields are stored encrypted (`*_enc`, see privacy/crypto.py) and searched
through blind indexes; what aggregates need (sex, birth year and month, governorate,
setting) stays plain. By design there is no column for an offence, a court decision,
placement grounds, religion or political opinion (Organic Law 2004-63, art. 13).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.ext.hybrid import hybrid_method, hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .admin import Governorate, Organization, Site, SiteKind
from .common import PublicIdMixin, TitledEnum, check_in, encrypted_column, utcnow


class Sex(TitledEnum):
    """Sex as recorded for disaggregation."""

    FEMALE = "female"
    MALE = "male"

    __titles__ = {"female": _l("Female"), "male": _l("Male")}


class SchoolStatus(TitledEnum):
    """What the young person does now."""

    IN_SCHOOL = "in_school"
    DROPPED_OUT = "dropped_out"
    VOCATIONAL = "vocational_training"
    WORKING = "working"
    NONE = "none"

    __titles__ = {
        "in_school": _l("In school"),
        "dropped_out": _l("Dropped out of school"),
        "vocational_training": _l("Vocational training"),
        "working": _l("Working"),
        "none": _l("None of these"),
    }


class ExitReason(TitledEnum):
    """Why an enrolment ended."""

    COMPLETED = "completed"
    MOVED = "moved"
    DROPPED_OUT = "dropped_out"
    TRANSFERRED = "transferred"
    OTHER = "other"

    __titles__ = {
        "completed": _l("Completed"),
        "moved": _l("Moved away"),
        "dropped_out": _l("Dropped out"),
        "transferred": _l("Transferred"),
        "other": _l("Other"),
    }


class ConsentGiver(TitledEnum):
    """Who consented: the young person (adult), a guardian, or an authority (custody)."""

    SELF = "self"
    GUARDIAN = "guardian"
    AUTHORITY = "authority"

    __titles__ = {
        "self": _l("The young person (18 or older)"),
        "guardian": _l("A parent or guardian"),
        "authority": _l("The centre or authority with custody"),
    }


class ConsentMethod(TitledEnum):
    """How consent was given."""

    SIGNED_FORM = "signed_form"
    WITNESSED_VERBAL = "witnessed_verbal"

    __titles__ = {
        "signed_form": _l("Signed form"),
        "witnessed_verbal": _l("Verbal, with a witness"),
    }


class ConsentScope(TitledEnum):
    """What a consent covers; each use of data checks its scope."""

    PARTICIPATION = "participation"
    SURVEYS = "surveys"
    PHOTOS = "photos"
    SHARING = "sharing"

    __titles__ = {
        "participation": _l("Taking part in activities"),
        "surveys": _l("Answering surveys"),
        "photos": _l("Photos"),
        "sharing": _l("Sharing de-identified data"),
    }


class BeneficiaryStatus(TitledEnum):
    """Where a young person stands, from their enrolments (see Beneficiary.status)."""

    ACTIVE = "active"
    EXITED = "exited"
    NOT_ENROLLED = "not_enrolled"

    __titles__ = {"active": _l("Active"), "exited": _l("Exited"),
                  "not_enrolled": _l("Not enrolled")}


class Beneficiary(PublicIdMixin, db.Model):
    """A young person served by one CSO. Identifying fields are encrypted at rest."""

    __tablename__ = "beneficiary"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"))
    sequence: Mapped[int]
    code: Mapped[str] = mapped_column(sa.String(30), unique=True)

    # Identifying, encrypted (privacy.crypto).
    first_name_ar_enc: Mapped[bytes | None] = encrypted_column()
    last_name_ar_enc: Mapped[bytes | None] = encrypted_column()
    first_name_latin_enc: Mapped[bytes | None] = encrypted_column()
    last_name_latin_enc: Mapped[bytes | None] = encrypted_column()
    birth_date_enc: Mapped[bytes | None] = encrypted_column()
    phone_enc: Mapped[bytes | None] = encrypted_column()
    guardian_name_enc: Mapped[bytes | None] = encrypted_column()
    guardian_phone_enc: Mapped[bytes | None] = encrypted_column()
    address_enc: Mapped[bytes | None] = encrypted_column()

    # Blind indexes of the full name in each script, for duplicate checks.
    name_key_ar: Mapped[str | None] = mapped_column(sa.String(32))
    name_key_latin: Mapped[str | None] = mapped_column(sa.String(32))

    # Plain: what aggregates and age bands need.
    sex: Mapped[str] = mapped_column(sa.String(10))
    birth_year: Mapped[int]
    birth_month: Mapped[int]
    governorate_code: Mapped[str] = mapped_column(sa.ForeignKey("governorate.iso_code"))
    delegation: Mapped[str | None] = mapped_column(sa.String(80))
    school_status: Mapped[str | None] = mapped_column(sa.String(30))
    setting_kind: Mapped[str] = mapped_column(sa.String(30))
    disability: Mapped[bool | None]
    first_contact_date: Mapped[date]

    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    organization: Mapped[Organization] = relationship()
    governorate: Mapped[Governorate] = relationship()
    consents: Mapped[list[Consent]] = relationship(
        back_populates="beneficiary", order_by="Consent.given_on.desc(), Consent.id.desc()",
        cascade="all, delete-orphan")
    enrolments: Mapped[list[Enrolment]] = relationship(
        back_populates="beneficiary", order_by="Enrolment.start_date.desc(), Enrolment.id.desc()",
        cascade="all, delete-orphan")

    __table_args__ = (
        sa.UniqueConstraint("organization_id", "sequence", name="uq_beneficiary_org_sequence"),
        sa.Index("ix_beneficiary_org_name_ar_year", "organization_id", "name_key_ar",
                 "birth_year"),
        sa.Index("ix_beneficiary_org_name_latin_year", "organization_id", "name_key_latin",
                 "birth_year"),
        sa.Index("ix_beneficiary_org_birth", "organization_id", "birth_year", "birth_month"),
        # The youth list: the CSO's newest first, a page of 25 read off the index in order
        # (erased_at: a count of the youth not erased through it reads no record).
        sa.Index("ix_beneficiary_org_id", "organization_id", "id", "erased_at"),
        # The year's figures count youth by profile (CSO, setting, sex, birth, governorate):
        # SQLite reads the youth in that order off this index instead of sorting them
        # (services/reports/indicators.py, PROFILE_INDEX).
        sa.Index("ix_beneficiary_profile", "organization_id", "setting_kind", "sex",
                 "birth_year", "birth_month", "governorate_code"),
        sa.CheckConstraint(check_in("sex", Sex), name="sex"),
        sa.CheckConstraint("birth_month BETWEEN 1 AND 12", name="birth_month"),
        sa.CheckConstraint(check_in("setting_kind", SiteKind), name="setting_kind"),
    )

    @property
    def current_consent(self) -> Consent | None:
        """The newest consent (withdrawn or not)."""
        return self.consents[0] if self.consents else None

    # Each rule below is written twice side by side: on a loaded youth (Python) and as SQL
    # for a statement (the youth list reads the status and consent of 25 youth as columns);
    # tests/test_beneficiaries.py checks both give the same on every case.

    @hybrid_property
    def consent_withdrawn(self) -> bool:
        """True when the newest consent was withdrawn: collection has stopped."""
        consent = self.current_consent
        return consent is not None and consent.withdrawn_on is not None

    @consent_withdrawn.inplace.expression
    @classmethod
    def _consent_withdrawn_expression(cls) -> sa.ColumnElement[bool]:
        return sa.func.coalesce(cls.newest_consent(Consent.withdrawn_on.is_not(None)), False)

    @classmethod
    def newest_consent(cls, column) -> sa.ScalarSelect:
        """`column` (of Consent) of the youth's newest consent, as SQL in a statement of
        youth: the consent `current_consent` is (the relationship's order)."""
        return (sa.select(column).where(Consent.beneficiary_id == cls.id)
                .order_by(Consent.given_on.desc(), Consent.id.desc()).limit(1)
                .correlate(cls).scalar_subquery())

    def allows(self, scope: str) -> bool:
        """True when a valid (not withdrawn) consent covers `scope`."""
        consent = self.current_consent
        return consent is not None and self.consent_allows(
            consent.withdrawn_on, consent.scopes, scope, self.erased_at)

    @staticmethod
    def consent_allows(withdrawn_on, scopes, scope: str, erased_at=None) -> bool:
        """`allows`, from the newest consent's columns (read as a row's, or None when the
        youth has no consent)."""
        return withdrawn_on is None and scope in (scopes or []) and erased_at is None

    @hybrid_method
    def status(self, today: date) -> BeneficiaryStatus:
        """Active (an open enrolment), exited (only ended ones) or not enrolled."""
        if not self.enrolments:
            return BeneficiaryStatus.NOT_ENROLLED
        if any(e.end_date is None or e.end_date >= today for e in self.enrolments):
            return BeneficiaryStatus.ACTIVE
        return BeneficiaryStatus.EXITED

    @status.inplace.expression
    @classmethod
    def _status_expression(cls, today) -> sa.ColumnElement[str]:
        open_enrolment = sa.exists().where(
            Enrolment.beneficiary_id == cls.id,
            sa.or_(Enrolment.end_date.is_(None), Enrolment.end_date >= today))
        any_enrolment = sa.exists().where(Enrolment.beneficiary_id == cls.id)
        return sa.case((open_enrolment, BeneficiaryStatus.ACTIVE.value),
                       (any_enrolment, BeneficiaryStatus.EXITED.value),
                       else_=BeneficiaryStatus.NOT_ENROLLED.value)


class BeneficiaryNameIndex(db.Model):
    """Blind indexes of name prefixes: search by name without decrypting every row."""

    __tablename__ = "beneficiary_name_index"

    beneficiary_id: Mapped[int] = mapped_column(
        sa.ForeignKey("beneficiary.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"))

    # Covering index: a prefix lookup reads beneficiary ids in order, without the table.
    __table_args__ = (sa.Index("ix_beneficiary_name_index_org_digest", "organization_id",
                               "digest", "beneficiary_id"),)


class BeneficiaryCount(db.Model):
    """How many youth of a CSO are not erased, kept by the database itself.

    Triggers on `beneficiary` (migration 0016) change `live` on every insert, delete,
    erasure and transfer, in the writer's own transaction: no code path (registration,
    import, transfer, erasure, a script) has to remember it, and a rollback takes its
    change back with it. The home page reads one row instead of counting one index entry
    per youth (100,000 a view at 100,000 youth). A CSO without a row has none.

    Never written by the application: `tests/test_beneficiary_count.py` checks it against
    a real count after each kind of write, on both databases, and that the migrated
    database has its triggers (a table rebuilt by a later migration on SQLite loses them)."""

    __tablename__ = "beneficiary_count"

    organization_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organization.id"), primary_key=True)
    live: Mapped[int]


class Consent(PublicIdMixin, db.Model):
    """A recorded consent and, if it happened, its withdrawal."""

    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(
        sa.ForeignKey("beneficiary.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    given_by: Mapped[str] = mapped_column(sa.String(20))
    giver_name_enc: Mapped[bytes | None] = encrypted_column()
    relationship_to_youth: Mapped[str | None] = mapped_column(sa.String(60))
    authority: Mapped[str | None] = mapped_column(sa.String(200))
    given_on: Mapped[date]
    method: Mapped[str] = mapped_column(sa.String(20))
    scopes: Mapped[list] = mapped_column(sa.JSON, default=list)
    withdrawn_on: Mapped[date | None]
    recorded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    beneficiary: Mapped[Beneficiary] = relationship(back_populates="consents")

    __table_args__ = (
        sa.CheckConstraint(check_in("given_by", ConsentGiver), name="given_by"),
        sa.CheckConstraint(check_in("method", ConsentMethod), name="method"),
    )


class Enrolment(PublicIdMixin, db.Model):
    """A period during which a young person takes part at a site of their CSO."""

    __tablename__ = "enrolment"

    id: Mapped[int] = mapped_column(primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(
        sa.ForeignKey("beneficiary.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("site.id"), index=True)
    # The activity (club, workshop) the youth joins; None for an enrolment at the site only.
    activity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("activity.id"), index=True)
    start_date: Mapped[date]
    end_date: Mapped[date | None]
    exit_reason: Mapped[str | None] = mapped_column(sa.String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    beneficiary: Mapped[Beneficiary] = relationship(back_populates="enrolments")
    site: Mapped[Site] = relationship()
    activity: Mapped[Activity | None] = relationship()  # noqa: F821 (models/activities.py)

    __table_args__ = (
        sa.CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates"),
        sa.CheckConstraint(
            "(end_date IS NULL AND exit_reason IS NULL) OR "
            f"(end_date IS NOT NULL AND {check_in('exit_reason', ExitReason)})",
            name="exit_reason"),
    )

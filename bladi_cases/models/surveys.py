"""Surveys: versioned definitions (from XLSForm), responses linked to a youth and a wave
(or anonymous), and the drafts a worker leaves half-filled on a phone."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .common import (
    PublicIdMixin,
    TitledEnum,
    check_in,
    encrypted_column,
    in_language,
    utcnow,
)


class Wave(TitledEnum):
    """When in a youth's path a survey is filled."""

    BASELINE = "baseline"
    MIDLINE = "midline"
    ENDLINE = "endline"
    FOLLOW_UP = "follow_up"

    __titles__ = {
        "baseline": _l("Baseline"),
        "midline": _l("Midline"),
        "endline": _l("Endline"),
        "follow_up": _l("Follow-up"),
    }


# At most one response per youth per survey for these waves.
SINGLE_WAVES = (Wave.BASELINE, Wave.ENDLINE)


class Survey(PublicIdMixin, db.Model):
    """A questionnaire; program-wide (organization_id NULL) or one CSO's own."""

    __tablename__ = "survey"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(60), index=True)  # the XLSForm form_id
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organization.id"),
                                                        index=True)
    title: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[SurveyVersion]] = relationship(
        back_populates="survey", order_by="SurveyVersion.number.desc()",
        cascade="all, delete-orphan")

    @property
    def current(self) -> SurveyVersion | None:
        """The newest published version: what new responses are filled with."""
        return next((v for v in self.versions if v.published_at is not None), None)

    @hybrid_property
    def current_number(self) -> int | None:
        """The number of the current version, None when none is published. In a statement
        of surveys, a subquery: the versions (their definitions) are not read."""
        current = self.current
        return current.number if current is not None else None

    @current_number.inplace.expression
    @classmethod
    def _current_number_expression(cls):
        return (sa.select(sa.func.max(SurveyVersion.number))
                .where(SurveyVersion.survey_id == cls.id,
                       SurveyVersion.published_at.is_not(None))
                .correlate(cls).scalar_subquery())

    def title_in(self, lang: str) -> str:
        """The title in a UI language, falling back to another."""
        return in_language(self.title, lang, self.code)


class SurveyVersion(PublicIdMixin, db.Model):
    """One version of a survey's definition. Once published it never changes: editing
    means importing a new version, and each response keeps the version it was filled with."""

    __tablename__ = "survey_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(sa.ForeignKey("survey.id", ondelete="CASCADE"),
                                           index=True)
    number: Mapped[int]
    definition: Mapped[dict] = mapped_column(sa.JSON)
    published_at: Mapped[dt.datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    survey: Mapped[Survey] = relationship(back_populates="versions")

    __table_args__ = (sa.UniqueConstraint("survey_id", "number", name="uq_survey_version_number"),)


class SurveyResponse(PublicIdMixin, db.Model):
    """A submitted questionnaire: cleaned answers and computed scale scores.

    Its UUID comes from the form (or the phone): the same UUID with the same answers is the
    same response; with other answers it is a conflict."""

    __tablename__ = "survey_response"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("survey_version.id"), index=True)
    survey_id: Mapped[int] = mapped_column(sa.ForeignKey("survey.id"), index=True)
    beneficiary_id: Mapped[int | None] = mapped_column(sa.ForeignKey("beneficiary.id"),
                                                       index=True)
    wave: Mapped[str | None] = mapped_column(sa.String(12))
    # Answers to `text` questions can name the youth: they are kept apart, encrypted (a JSON
    # object of name -> text); the other answers stay plain for reports.
    answers: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    text_answers_enc: Mapped[bytes | None] = encrypted_column()
    scores: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    submitted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    submitted_on: Mapped[dt.date]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    version: Mapped[SurveyVersion] = relationship()
    survey: Mapped[Survey] = relationship()

    __table_args__ = (
        sa.CheckConstraint(f"wave IS NULL OR {check_in('wave', Wave)}", name="wave"),
        sa.CheckConstraint("(beneficiary_id IS NULL) = (wave IS NULL)", name="wave_with_youth"),
    )


class SurveyDraft(db.Model):
    """Answers a worker has entered so far: kept when the page is left, until submitted."""

    __tablename__ = "survey_draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"))
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("survey_version.id",
                                                          ondelete="CASCADE"))
    beneficiary_id: Mapped[int | None] = mapped_column(sa.ForeignKey("beneficiary.id",
                                                                     ondelete="CASCADE"))
    wave: Mapped[str | None] = mapped_column(sa.String(12))
    response_uuid: Mapped[str] = mapped_column(sa.String(36))
    # All of it encrypted (a JSON object): typed input not yet checked against its question.
    answers_enc: Mapped[bytes | None] = encrypted_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

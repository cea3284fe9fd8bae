"""Data-quality flags per CSO for the reviewers' dashboard (counts only, never who)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa

from ..extensions import db
from ..models import (
    ActivitySession,
    Attendance,
    Beneficiary,
    CaseGoal,
    CaseNote,
    Consent,
    Organization,
    QuarterlyReport,
    Referral,
    SurveyResponse,
)
from .indicators import Period

ENDLINE_AFTER_DAYS = 180  # a baseline this old with no endline is flagged


@dataclass
class QualityRow:
    """One CSO's data-quality counts (true counts: the template hides 1..k-1)."""

    org: Organization
    sessions_without_attendance: int
    youth_without_consent: int
    baselines_without_endline: int
    overdue_follow_ups: int
    late_report: bool


def _count(query) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))


def quality_flags(orgs: list[Organization], period: Period,
                  today: date | None = None) -> list[QualityRow]:
    """The flags of each CSO for a period."""
    today = today or date.today()
    previous = Period.containing(period.start - timedelta(days=1))
    rows = []
    for org in orgs:
        no_attendance = sa.select(ActivitySession.id).where(
            ActivitySession.organization_id == org.id,
            ActivitySession.date.between(period.start, period.end),
            ~sa.exists().where(Attendance.session_id == ActivitySession.id))
        no_consent = sa.select(Beneficiary.id).where(
            Beneficiary.organization_id == org.id, Beneficiary.erased_at.is_(None),
            ~sa.exists().where(Consent.beneficiary_id == Beneficiary.id))
        endlines = sa.select(SurveyResponse.beneficiary_id).where(
            SurveyResponse.wave == "endline")
        old_baselines = sa.select(SurveyResponse.id).where(
            SurveyResponse.organization_id == org.id, SurveyResponse.wave == "baseline",
            SurveyResponse.submitted_on < today - timedelta(days=ENDLINE_AFTER_DAYS),
            SurveyResponse.beneficiary_id.not_in(endlines))
        overdue = (_count(sa.select(CaseNote.id).where(
            CaseNote.organization_id == org.id, CaseNote.due_date < today,
            CaseNote.done_on.is_(None)))
            + _count(sa.select(CaseGoal.id).where(
                CaseGoal.organization_id == org.id, CaseGoal.target_date < today,
                CaseGoal.status.in_(("planned", "in_progress"))))
            + _count(sa.select(Referral.id).where(
                Referral.organization_id == org.id, Referral.due_date < today,
                Referral.status.in_(("proposed", "made", "accepted")))))
        sent = db.session.scalar(sa.select(sa.func.count()).select_from(QuarterlyReport).where(
            QuarterlyReport.organization_id == org.id,
            QuarterlyReport.fiscal_year == previous.fiscal_year,
            QuarterlyReport.quarter == previous.quarter,
            QuarterlyReport.status.in_(("submitted", "approved"))))
        late = not sent and today > previous.end + timedelta(days=30)
        rows.append(QualityRow(org, _count(no_attendance), _count(no_consent),
                               _count(old_baselines), overdue, late))
    return rows

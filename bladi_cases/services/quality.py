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


def _by_org(query) -> dict[int, int]:
    return {org_id: count for org_id, count in db.session.execute(query)}


def quality_flags(orgs: list[Organization], period: Period,
                  today: date | None = None) -> list[QualityRow]:
    """The flags of each CSO for a period (one grouped query per flag, not one per CSO)."""
    today = today or date.today()
    ids = [o.id for o in orgs]
    previous = Period.containing(period.start - timedelta(days=1))
    no_attendance = _by_org(sa.select(ActivitySession.organization_id, sa.func.count()).where(
        ActivitySession.organization_id.in_(ids),
        ActivitySession.date.between(period.start, period.end),
        ~sa.exists().where(Attendance.session_id == ActivitySession.id))
        .group_by(ActivitySession.organization_id))
    with_consent = sa.select(Consent.beneficiary_id)
    no_consent = _by_org(sa.select(Beneficiary.organization_id, sa.func.count()).where(
        Beneficiary.organization_id.in_(ids), Beneficiary.erased_at.is_(None),
        Beneficiary.id.not_in(with_consent)).group_by(Beneficiary.organization_id))
    endlines = sa.select(SurveyResponse.beneficiary_id).where(SurveyResponse.wave == "endline")
    old_baselines = _by_org(sa.select(SurveyResponse.organization_id, sa.func.count()).where(
        SurveyResponse.organization_id.in_(ids), SurveyResponse.wave == "baseline",
        SurveyResponse.submitted_on < today - timedelta(days=ENDLINE_AFTER_DAYS),
        SurveyResponse.beneficiary_id.not_in(endlines)).group_by(SurveyResponse.organization_id))
    overdue: dict[int, int] = {}
    for query in (
            sa.select(CaseNote.organization_id, sa.func.count()).where(
                CaseNote.organization_id.in_(ids), CaseNote.due_date < today,
                CaseNote.done_on.is_(None)).group_by(CaseNote.organization_id),
            sa.select(CaseGoal.organization_id, sa.func.count()).where(
                CaseGoal.organization_id.in_(ids), CaseGoal.target_date < today,
                CaseGoal.status.in_(("planned", "in_progress"))).group_by(
                CaseGoal.organization_id),
            sa.select(Referral.organization_id, sa.func.count()).where(
                Referral.organization_id.in_(ids), Referral.due_date < today,
                Referral.status.in_(("proposed", "made", "accepted"))).group_by(
                Referral.organization_id)):
        for org_id, count in _by_org(query).items():
            overdue[org_id] = overdue.get(org_id, 0) + count
    sent = {org_id for (org_id,) in db.session.execute(sa.select(
        QuarterlyReport.organization_id).where(
        QuarterlyReport.organization_id.in_(ids),
        QuarterlyReport.fiscal_year == previous.fiscal_year,
        QuarterlyReport.quarter == previous.quarter,
        QuarterlyReport.status.in_(("submitted", "approved"))))}
    overdue_report = today > previous.end + timedelta(days=30)
    return [QualityRow(o, no_attendance.get(o.id, 0), no_consent.get(o.id, 0),
                       old_baselines.get(o.id, 0), overdue.get(o.id, 0),
                       overdue_report and o.id not in sent) for o in orgs]

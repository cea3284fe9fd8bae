"""Data-quality flags per CSO for the reviewers' dashboard (counts only, never who)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
import sqlalchemy.orm

from ...extensions import db
from ...models import (
    Activity,
    ActivitySession,
    Attendance,
    Beneficiary,
    CaseGoal,
    CaseNote,
    Consent,
    Enrolment,
    Organization,
    QuarterlyReport,
    Referral,
    SurveyResponse,
)
from ...policy import note_with_its_case
from .indicators import Period

ENDLINE_GRACE_DAYS = 14  # after an activity ends, its endline is due within this
ENDLINE_AFTER_DAYS = 180  # a baseline this old with no endline is flagged in any case


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


def _baselines_without_endline(ids: list[int], today: date):
    """Baselines with no endline of the same survey although the endline is due: an
    activity the youth was in when the baseline was taken ended more than the grace period
    ago, or the baseline is simply very old."""
    endline = sa.orm.aliased(SurveyResponse)
    ended = sa.select(Enrolment.id).join(Activity, Activity.id == Enrolment.activity_id).where(
        Enrolment.beneficiary_id == SurveyResponse.beneficiary_id,
        Enrolment.start_date <= SurveyResponse.submitted_on,
        sa.func.coalesce(Enrolment.end_date, Activity.planned_end)
        < today - timedelta(days=ENDLINE_GRACE_DAYS)).exists()
    # A youth since transferred to another CSO is no longer this one's to survey.
    still_here = sa.exists().where(Beneficiary.id == SurveyResponse.beneficiary_id,
                                   Beneficiary.organization_id == SurveyResponse.organization_id)
    return sa.select(SurveyResponse.organization_id, sa.func.count()).where(
        SurveyResponse.organization_id.in_(ids), SurveyResponse.wave == "baseline", still_here,
        ~sa.exists().where(endline.beneficiary_id == SurveyResponse.beneficiary_id,
                           endline.survey_id == SurveyResponse.survey_id,
                           endline.wave == "endline"),
        sa.or_(SurveyResponse.submitted_on < today - timedelta(days=ENDLINE_AFTER_DAYS),
               ended)).group_by(SurveyResponse.organization_id)


def standing_counts(ids: list[int], today: date) -> dict[str, dict[int, int]]:
    """The flags that do not depend on the period, per CSO id: youth without consent,
    baselines without their due endline, overdue follow-ups (notes, goals, referrals)."""
    no_consent = _by_org(sa.select(Beneficiary.organization_id, sa.func.count()).where(
        Beneficiary.organization_id.in_(ids), Beneficiary.erased_at.is_(None),
        Beneficiary.id.not_in(sa.select(Consent.beneficiary_id))).group_by(
        Beneficiary.organization_id))
    overdue: dict[int, int] = {}
    for query in (
            sa.select(CaseNote.organization_id, sa.func.count()).where(
                CaseNote.organization_id.in_(ids), CaseNote.due_date < today,
                CaseNote.done_on.is_(None), note_with_its_case()).group_by(
                CaseNote.organization_id),  # a note left behind by a transfer: no one's
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
    return {"youth_without_consent": no_consent,
            "baselines_without_endline": _by_org(_baselines_without_endline(ids, today)),
            "overdue_follow_ups": overdue}


def period_counts(ids: list[int], period: Period, today: date) -> tuple[dict[int, int], set]:
    """The flags of one period, per CSO id: sessions without any attendance, and the CSOs
    late with the previous quarter's report (more than 30 days after it ended)."""
    previous = Period.containing(period.start - timedelta(days=1))
    no_attendance = _by_org(sa.select(ActivitySession.organization_id, sa.func.count()).where(
        ActivitySession.organization_id.in_(ids),
        ActivitySession.date.between(period.start, period.end),
        ~sa.exists().where(Attendance.session_id == ActivitySession.id))
        .group_by(ActivitySession.organization_id))
    if today <= previous.end + timedelta(days=30):
        return no_attendance, set()
    sent = {org_id for (org_id,) in db.session.execute(sa.select(
        QuarterlyReport.organization_id).where(
        QuarterlyReport.organization_id.in_(ids),
        QuarterlyReport.fiscal_year == previous.fiscal_year,
        QuarterlyReport.quarter == previous.quarter,
        QuarterlyReport.status.in_(("submitted", "approved"))))}
    return no_attendance, set(ids) - sent


def year_quality(orgs: list[Organization], fiscal_year: int,
                 today: date | None = None) -> dict:
    """Every CSO's flags for each quarter of a fiscal year, JSON-ready (by CSO code), for
    the dashboards' snapshot: the standing flags are read once, not per quarter."""
    today = today or date.today()
    ids = [o.id for o in orgs]
    standing = standing_counts(ids, today)
    quarters = [period_counts(ids, Period(fiscal_year, q), today) for q in range(1, 5)]
    return {o.code: {
        "sessions_without_attendance": [q[0].get(o.id, 0) for q in quarters],
        "late_report": [o.id in q[1] for q in quarters],
        **{name: counts.get(o.id, 0) for name, counts in standing.items()}} for o in orgs}


def flags_from(payload: dict, orgs: list[Organization], quarter: int) -> list[QualityRow]:
    """The QualityRows of a quarter from year_quality's output."""
    rows = []
    for org in orgs:
        found = payload.get(org.code)
        if found is None:
            continue
        rows.append(QualityRow(org, found["sessions_without_attendance"][quarter - 1],
                               found["youth_without_consent"],
                               found["baselines_without_endline"],
                               found["overdue_follow_ups"], found["late_report"][quarter - 1]))
    return rows

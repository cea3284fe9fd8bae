"""The indicator engine (first part, toward the reporting issue): reporting periods in the
US fiscal year, and indicators computed from the records — never typed-in figures — with
their disaggregation by sex, age band, governorate, setting and CSO.

What exists so far is the computation; targets, the quarterly report workflow, dashboards and
the donor's exports are still to build (see the reporting issue). Tables that leave the CSO
must go through privacy.suppress().
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
import sqlalchemy.orm
from flask import g, has_request_context

from ..extensions import db
from ..models import (
    ActivitySession,
    Attendance,
    Beneficiary,
    Enrolment,
    Organization,
    Outcome,
    Referral,
    SurveyResponse,
)
from ..privacy.deidentify import age_band

DIMENSIONS = ("sex", "age_band", "governorate", "setting", "cso")


@dataclass(frozen=True)
class Period:
    """A reporting period: a quarter of a US fiscal year (October-December is Q1), or the
    whole fiscal year when quarter is None."""

    fiscal_year: int
    quarter: int | None = None

    @classmethod
    def containing(cls, day: date) -> Period:
        """The fiscal quarter a day falls in."""
        fiscal_year = day.year + 1 if day.month >= 10 else day.year
        quarter = ((day.month - 10) % 12) // 3 + 1
        return cls(fiscal_year, quarter)

    @property
    def start(self) -> date:
        """First day of the period."""
        first = date(self.fiscal_year - 1, 10, 1)
        if self.quarter is None:
            return first
        month = 10 + 3 * (self.quarter - 1)
        return date(first.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)

    @property
    def end(self) -> date:
        """Last day of the period."""
        if self.quarter is None or self.quarter == 4:
            return date(self.fiscal_year, 9, 30)
        return Period(self.fiscal_year, self.quarter + 1).start - timedelta(days=1)

    def __str__(self) -> str:
        return f"FY{self.fiscal_year}" + (f" Q{self.quarter}" if self.quarter else "")


@dataclass(frozen=True)
class IndicatorRule:
    """How one indicator is computed; youth-based ones can be disaggregated by youth."""

    code: str
    kind: str        # output | outcome
    unit: str        # youth | sessions | hours | referrals | outcomes
    by_youth: bool


RULES = {
    "youth_reached": IndicatorRule("youth_reached", "output", "youth", True),
    "youth_10_sessions": IndicatorRule("youth_10_sessions", "output", "youth", True),
    "sessions_held": IndicatorRule("sessions_held", "output", "sessions", False),
    "participation_hours": IndicatorRule("participation_hours", "output", "hours", False),
    "youth_baseline_endline": IndicatorRule("youth_baseline_endline", "outcome", "youth", True),
    "referrals_completed": IndicatorRule("referrals_completed", "output", "referrals", False),
    "youth_placed": IndicatorRule("youth_placed", "outcome", "youth", True),
}


def _youth_ids(code: str, period: Period, org_ids: list[int]) -> sa.Select:
    """The distinct youth counted by a youth-based indicator in a period."""
    start, end = period.start, min(period.end, date.today())  # nobody is reached ahead
    if start > end:  # a period still to come
        return sa.select(Beneficiary.id).where(sa.false())
    if code == "youth_reached":
        return sa.select(Enrolment.beneficiary_id).where(
            Enrolment.organization_id.in_(org_ids), Enrolment.start_date <= end,
            sa.or_(Enrolment.end_date.is_(None), Enrolment.end_date >= start)).distinct()
    if code == "youth_10_sessions":
        return sa.select(Attendance.beneficiary_id).join(
            ActivitySession, ActivitySession.id == Attendance.session_id).where(
            Attendance.organization_id.in_(org_ids), Attendance.status == "present",
            ActivitySession.date.between(start, end)).group_by(
            Attendance.beneficiary_id).having(sa.func.count() >= 10)
    if code == "youth_baseline_endline":
        endline = sa.select(SurveyResponse.beneficiary_id).where(
            SurveyResponse.organization_id.in_(org_ids), SurveyResponse.wave == "endline",
            SurveyResponse.submitted_on.between(start, end))
        return sa.select(SurveyResponse.beneficiary_id).where(
            SurveyResponse.wave == "baseline",
            SurveyResponse.beneficiary_id.in_(endline)).distinct()
    if code == "youth_placed":
        from ..models import Case

        return sa.select(Case.beneficiary_id).join(Outcome, Outcome.case_id == Case.id).where(
            Outcome.organization_id.in_(org_ids),
            Outcome.kind.in_(("job", "training_completed", "returned_to_school",
                              "own_business")),
            Outcome.on_date.between(start, end)).distinct()
    raise KeyError(code)


def _total(code: str, period: Period, org_ids: list[int]) -> float:
    start, end = period.start, period.end
    if code == "sessions_held":
        return db.session.scalar(sa.select(sa.func.count()).select_from(ActivitySession).where(
            ActivitySession.organization_id.in_(org_ids),
            ActivitySession.date.between(start, end)))
    if code == "participation_hours":
        minutes = db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(
            ActivitySession.duration_minutes), 0)).select_from(Attendance).join(
            ActivitySession, ActivitySession.id == Attendance.session_id).where(
            Attendance.organization_id.in_(org_ids), Attendance.status == "present",
            ActivitySession.date.between(start, end)))
        return round(minutes / 60, 1)
    if code == "referrals_completed":
        return db.session.scalar(sa.select(sa.func.count()).select_from(Referral).where(
            Referral.organization_id.in_(org_ids), Referral.status == "completed",
            Referral.closed_on.between(start, end)))
    raise KeyError(code)


@dataclass
class IndicatorValue:
    """An indicator's true value for a period, and (for youth) its disaggregation."""

    code: str
    period: Period
    total: float
    by: dict[str, dict[str, int]]  # dimension -> category -> count (true counts)


def compute(code: str, period: Period, orgs: list[Organization]) -> IndicatorValue:
    """Compute one indicator for some CSOs over a period, from the records."""
    rule = RULES[code]
    org_ids = [o.id for o in orgs]
    if not rule.by_youth:
        return IndicatorValue(code, period, _total(code, period, org_ids), {})
    ids = _youth_ids(code, period, org_ids)
    youth = db.session.execute(sa.select(
        Beneficiary.sex, Beneficiary.birth_year, Beneficiary.birth_month,
        Beneficiary.governorate_code, Beneficiary.setting_kind, Beneficiary.organization_id)
        .where(Beneficiary.id.in_(ids))).all()
    codes = {o.id: o.code for o in orgs}
    by: dict[str, dict[str, int]] = {d: {} for d in DIMENSIONS}
    for sex, year, month, governorate, setting, org_id in youth:
        for dimension, category in (("sex", sex),
                                    ("age_band", age_band(year, month, period.end)),
                                    ("governorate", governorate), ("setting", setting),
                                    ("cso", codes.get(org_id, "?"))):
            by[dimension][category] = by[dimension].get(category, 0) + 1
    return IndicatorValue(code, period, len(youth), by)


def totals_by_org(code: str, period: Period, org_ids: list[int]) -> dict[int, float]:
    """An indicator's total for each CSO in one query (dashboards: no youth rows loaded)."""
    start, end = period.start, min(period.end, date.today())  # nobody is reached ahead
    if start > end:  # a period still to come
        return dict.fromkeys(org_ids, 0.0)
    rule = RULES[code]
    if code == "youth_reached":  # straight from the enrolments: no join needed
        query = sa.select(Enrolment.organization_id,
                          sa.func.count(sa.distinct(Enrolment.beneficiary_id))).where(
            Enrolment.organization_id.in_(org_ids), Enrolment.start_date <= end,
            sa.or_(Enrolment.end_date.is_(None), Enrolment.end_date >= start)).group_by(
            Enrolment.organization_id)
    elif code == "youth_baseline_endline":
        baseline = sa.orm.aliased(SurveyResponse)
        query = sa.select(SurveyResponse.organization_id,
                          sa.func.count(sa.distinct(SurveyResponse.beneficiary_id))).where(
            SurveyResponse.organization_id.in_(org_ids), SurveyResponse.wave == "endline",
            SurveyResponse.submitted_on.between(start, end),
            sa.exists().where(baseline.beneficiary_id == SurveyResponse.beneficiary_id,
                              baseline.wave == "baseline")).group_by(
            SurveyResponse.organization_id)
    elif rule.by_youth:
        query = sa.select(Beneficiary.organization_id, sa.func.count()).where(
            Beneficiary.id.in_(_youth_ids(code, period, org_ids))).group_by(
            Beneficiary.organization_id)
    elif code == "sessions_held":
        query = sa.select(ActivitySession.organization_id, sa.func.count()).where(
            ActivitySession.organization_id.in_(org_ids),
            ActivitySession.date.between(start, end)).group_by(ActivitySession.organization_id)
    elif code in ("participation_hours", "youth_10_sessions"):
        return _attendance_totals(start, end, tuple(org_ids))[code]
    elif code == "referrals_completed":
        query = sa.select(Referral.organization_id, sa.func.count()).where(
            Referral.organization_id.in_(org_ids), Referral.status == "completed",
            Referral.closed_on.between(start, end)).group_by(Referral.organization_id)
    else:
        raise KeyError(code)
    found = {org_id: float(value or 0) for org_id, value in db.session.execute(query)}
    return {org_id: found.get(org_id, 0.0) for org_id in org_ids}


def _attendance_totals(start: date, end: date, org_ids: tuple[int, ...]) -> dict:
    """Hours of presence and youth with 10+ sessions, per CSO, from ONE pass over the
    attendance of the period (the two indicators read the same millions of rows). The
    result is kept for the rest of the request."""
    cache = g.setdefault("_attendance_totals", {}) if has_request_context() else {}
    key = (start, end, org_ids)
    if key not in cache:
        hours = dict.fromkeys(org_ids, 0.0)
        regulars = dict.fromkeys(org_ids, 0.0)
        for org_id, count, minutes in db.session.execute(sa.select(
                Attendance.organization_id, sa.func.count(),
                sa.func.sum(ActivitySession.duration_minutes)).join(
                ActivitySession, ActivitySession.id == Attendance.session_id).where(
                Attendance.organization_id.in_(org_ids), Attendance.status == "present",
                ActivitySession.date.between(start, end)).group_by(
                Attendance.organization_id, Attendance.beneficiary_id)):
            hours[org_id] += (minutes or 0) / 60
            regulars[org_id] += count >= 10
        cache[key] = {"participation_hours": {k: round(v, 1) for k, v in hours.items()},
                      "youth_10_sessions": regulars}
    return cache[key]

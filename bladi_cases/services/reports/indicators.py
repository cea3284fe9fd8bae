"""The indicator engine: reporting periods in the US fiscal year, and indicators computed
from the records — never typed-in figures — with their disaggregation by sex, age band,
governorate, setting and CSO. Tables that leave the CSO go through the anonymiser
(services.reports.release)."""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
import sqlalchemy.orm
from flask import g, has_request_context

from ...extensions import db
from ...models import (
    ActivitySession,
    Attendance,
    Beneficiary,
    Case,
    Enrolment,
    Outcome,
    Referral,
    Survey,
    SurveyResponse,
    SurveyVersion,
)


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
class Span:
    """Any run of days (the life of the award so far): youth counted once across it."""

    start: date
    end: date


@dataclass(frozen=True)
class IndicatorRule:
    """How one indicator is computed; youth-based ones can be disaggregated by youth."""

    code: str
    kind: str        # output | outcome
    unit: str        # youth | sessions | hours | referrals | points
    by_youth: bool   # counts distinct youth: disaggregated by the youth's profile
    mean: bool = False  # an average over youth, not a count (never summed across CSOs)
    # The microdata measures (services/reports/exports.MEASURES) from which a row tells
    # whether this indicator counts that youth: the microdata withholds them wherever this
    # indicator's published figures are hidden. Every rule over youth must say (an empty
    # tuple: none), so a new indicator cannot be forgotten by the microdata's protection.
    shown_by: tuple[str, ...] | None = None

    def __post_init__(self):
        if (self.by_youth or self.mean) and self.shown_by is None:
            raise ValueError(f"indicator rule {self.code}: say which microdata measures "
                             "show whom it counts (shown_by)")


SCORES = ("baseline_score", "endline_score")
OUTCOME = ("outcome",)
RULES = {
    "youth_reached": IndicatorRule("youth_reached", "output", "youth", True, shown_by=()),
    "youth_10_sessions": IndicatorRule("youth_10_sessions", "output", "youth", True,
                                       shown_by=("sessions_attended",)),
    "sessions_held": IndicatorRule("sessions_held", "output", "sessions", False),
    "participation_hours": IndicatorRule("participation_hours", "output", "hours", False),
    "youth_baseline_endline": IndicatorRule("youth_baseline_endline", "outcome", "youth", True,
                                            shown_by=SCORES),
    "referrals_completed": IndicatorRule("referrals_completed", "output", "referrals", False),
    "youth_placed": IndicatorRule("youth_placed", "outcome", "youth", True, shown_by=OUTCOME),
    "youth_improved": IndicatorRule("youth_improved", "outcome", "youth", True,
                                    shown_by=SCORES),
    "score_change": IndicatorRule("score_change", "outcome", "points", False, mean=True,
                                  shown_by=SCORES),
    "youth_employed_3m": IndicatorRule("youth_employed_3m", "outcome", "youth", True,
                                       shown_by=OUTCOME),
    "youth_employed_6m": IndicatorRule("youth_employed_6m", "outcome", "youth", True,
                                       shown_by=OUTCOME),
}
PLACED_KINDS = ("job", "training_completed", "returned_to_school", "own_business")
EMPLOYED_KINDS = ("job", "own_business")
SCORE_RULES = ("youth_improved", "score_change")
# The youth's profile, the unit of every disaggregation (and nothing more).
PROFILE = (Beneficiary.organization_id, Beneficiary.setting_kind, Beneficiary.sex,
           Beneficiary.birth_year, Beneficiary.birth_month, Beneficiary.governorate_code)


def months_before(day: date, months: int) -> date:
    """The same day some months earlier (the month's last day when it is shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def youth_ids(code: str, period: Period | Span, org_ids: list[int]) -> sa.Select:
    """The distinct youth counted by a youth-based indicator in a period (also the rows of
    the donor's microdata: the youth reached in the year)."""
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
        return sa.select(Case.beneficiary_id).join(Outcome, Outcome.case_id == Case.id).where(
            Outcome.organization_id.in_(org_ids),
            Outcome.kind.in_(PLACED_KINDS), Outcome.on_date.between(start, end)).distinct()
    if code in ("youth_employed_3m", "youth_employed_6m"):
        # Counted in the period its check falls in: 3 (or 6) months after the placement.
        months = 3 if code == "youth_employed_3m" else 6
        check = Outcome.check_3m if months == 3 else Outcome.check_6m
        return sa.select(Case.beneficiary_id).join(Outcome, Outcome.case_id == Case.id).where(
            Outcome.organization_id.in_(org_ids), Outcome.kind.in_(EMPLOYED_KINDS),
            check.is_(True), Outcome.on_date.between(months_before(start, months),
                                                     months_before(end, months))).distinct()
    raise KeyError(code)


def score_rows(period: Period, org_ids: list[int]) -> list[tuple]:
    """Youth whose endline falls in the period and who have a baseline of the same survey:
    (profile..., endline day, endline minus baseline on the survey's first scale, or None).
    Read once per fiscal year and request, then filtered: quarters and year share it."""
    year = Period(period.fiscal_year)
    cache = g.setdefault("score_rows", {}) if has_request_context() else {}
    key = (year.fiscal_year, tuple(org_ids))
    if key not in cache:
        baseline = sa.orm.aliased(SurveyResponse)
        seen, rows = set(), []
        for survey_id, scale in first_scales():
            # The database reads the one score out of the JSON: no document is decoded here.
            # The CSO is the one that took the endline (a transfer moves no past answer).
            for row in db.session.execute(sa.select(
                    SurveyResponse.organization_id, *PROFILE[1:],
                    SurveyResponse.beneficiary_id, SurveyResponse.submitted_on,
                    SurveyResponse.scores[scale].as_float(),
                    baseline.scores[scale].as_float()).join(
                    Beneficiary, Beneficiary.id == SurveyResponse.beneficiary_id).join(
                    baseline, sa.and_(baseline.beneficiary_id == SurveyResponse.beneficiary_id,
                                      baseline.survey_id == survey_id,
                                      baseline.wave == "baseline")).where(
                    SurveyResponse.survey_id == survey_id,
                    SurveyResponse.organization_id.in_(org_ids),
                    SurveyResponse.wave == "endline",
                    SurveyResponse.submitted_on.between(year.start, year.end)).order_by(
                    SurveyResponse.id)):
                youth_id, day, end_score, base_score = row[6:]
                if youth_id in seen:  # two surveys with both waves: the youth counts once
                    continue
                seen.add(youth_id)
                change = None if end_score is None or base_score is None else \
                    float(end_score) - float(base_score)
                rows.append((*row[:6], day, change))
        cache[key] = rows
    end = min(period.end, date.today())
    return [row for row in cache[key] if period.start <= row[6] <= end]


def first_scales() -> list[tuple[int, str]]:
    """(survey id, name of its first scale) for every survey that has one: the score the
    outcome indicators follow (the latest version's definition names it)."""
    found = []
    for survey in db.session.scalars(sa.select(Survey).order_by(Survey.id)):
        version = db.session.scalars(sa.select(SurveyVersion).where(
            SurveyVersion.survey_id == survey.id).order_by(
            SurveyVersion.number.desc()).limit(1)).first()
        scales = (version.definition or {}).get("scales", []) if version else []
        if scales:
            found.append((survey.id, scales[0]["name"]))
    return found


def youth_profiles(code: str, period: Period | Span, org_ids: list[int]) -> Counter:
    """How many youth a youth-based indicator counts, per profile (CSO, setting, sex, birth
    year and month, governorate): grouped in the database, so no youth row is loaded."""
    if code == "youth_improved":
        return Counter(row[:6] for row in score_rows(period, org_ids)
                       if row[7] is not None and row[7] > 0)
    if code == "youth_10_sessions" and isinstance(period, Period):
        return _regular_profiles(period, org_ids)
    ids = youth_ids(code, period, org_ids)
    return Counter({tuple(row[:6]): row[6] for row in db.session.execute(
        sa.select(*PROFILE, sa.func.count()).where(Beneficiary.id.in_(ids)).group_by(*PROFILE))})


def totals_by_org(code: str, period: Period, org_ids: list[int]) -> dict[int, float]:
    """An indicator's total for each CSO in one query (dashboards: no youth rows loaded)."""
    start, end = period.start, min(period.end, date.today())  # nobody is reached ahead
    if start > end:  # a period still to come
        return dict.fromkeys(org_ids, 0.0)
    rule = RULES[code]
    if code in SCORE_RULES:
        return _score_totals(code, period, org_ids)
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
    elif code in ("participation_hours", "youth_10_sessions"):
        # Per CSO where the youth attended (not their CSO today: a transfer moves no past).
        return _attendance_totals(period, tuple(org_ids))[code]
    elif rule.by_youth:
        query = sa.select(Beneficiary.organization_id, sa.func.count()).where(
            Beneficiary.id.in_(youth_ids(code, period, org_ids))).group_by(
            Beneficiary.organization_id)
    elif code == "sessions_held":
        query = sa.select(ActivitySession.organization_id, sa.func.count()).where(
            ActivitySession.organization_id.in_(org_ids),
            ActivitySession.date.between(start, end)).group_by(ActivitySession.organization_id)
    elif code in ("participation_hours", "youth_10_sessions"):
        return _attendance_totals(period, tuple(org_ids))[code]
    elif code == "referrals_completed":
        query = sa.select(Referral.organization_id, sa.func.count()).where(
            Referral.organization_id.in_(org_ids), Referral.status == "completed",
            Referral.closed_on.between(start, end)).group_by(Referral.organization_id)
    else:
        raise KeyError(code)
    found = {org_id: float(value or 0) for org_id, value in db.session.execute(query)}
    return {org_id: found.get(org_id, 0.0) for org_id in org_ids}


def _attendance_year(fiscal_year: int, org_ids: tuple[int, ...]) -> list[tuple]:
    """ONE pass over a fiscal year's attendance (millions of rows): for each CSO and youth
    present, the CSO, the youth's id and profile, then sessions present in each quarter and
    minutes present in each quarter (columns 8-11 and 12-15). Hours,
    youth with 10+ sessions (by quarter and year) and their disaggregation all come from it;
    it is kept for the rest of the request."""
    cache = g.setdefault("_attendance_year", {}) if has_request_context() else {}
    key = (fiscal_year, org_ids)
    if key not in cache:
        quarters = [Period(fiscal_year, q) for q in range(1, 5)]
        in_quarter = [ActivitySession.date.between(q.start, q.end) for q in quarters]
        year = Period(fiscal_year)
        # Grouped by the youth's primary key, so their profile columns may be selected.
        cache[key] = [tuple(row) for row in db.session.execute(sa.select(
            Attendance.organization_id, Beneficiary.id, *PROFILE,
            *[sa.func.sum(sa.case((test, 1), else_=0)) for test in in_quarter],
            *[sa.func.sum(sa.case((test, ActivitySession.duration_minutes), else_=0))
              for test in in_quarter]).select_from(Attendance).join(
            ActivitySession, ActivitySession.id == Attendance.session_id).join(
            Beneficiary, Beneficiary.id == Attendance.beneficiary_id).where(
            Attendance.organization_id.in_(org_ids), Attendance.status == "present",
            ActivitySession.date.between(year.start, year.end)).group_by(
            Attendance.organization_id, Beneficiary.id))]
    return cache[key]


def _quarters_of(period: Period) -> list[int]:
    return [period.quarter] if period.quarter else [1, 2, 3, 4]


def _attendance_totals(period: Period, org_ids: tuple[int, ...]) -> dict:
    """Hours of presence and youth with 10+ sessions, per CSO (where they attended)."""
    hours = dict.fromkeys(org_ids, 0.0)
    regulars = dict.fromkeys(org_ids, 0.0)
    chosen = [q - 1 for q in _quarters_of(period)]
    for row in _attendance_year(period.fiscal_year, org_ids):
        sessions, minutes = row[8:12], row[12:16]
        hours[row[0]] += sum(minutes[q] or 0 for q in chosen) / 60
        regulars[row[0]] += sum(sessions[q] or 0 for q in chosen) >= 10
    return {"participation_hours": {k: round(v, 1) for k, v in hours.items()},
            "youth_10_sessions": regulars}


def _regular_profiles(period: Period, org_ids: list[int]) -> Counter:
    """Profiles of the youth present at 10+ sessions in the period (all their CSOs)."""
    chosen = [q - 1 for q in _quarters_of(period)]
    sessions: Counter = Counter()
    profiles = {}
    for row in _attendance_year(period.fiscal_year, tuple(org_ids)):
        sessions[row[1]] += sum(row[8 + q] or 0 for q in chosen)
        profiles[row[1]] = tuple(row[2:8])
    return Counter(profiles[youth] for youth, count in sessions.items() if count >= 10)


def _score_totals(code: str, period: Period, org_ids: list[int]) -> dict[int, float]:
    """Youth whose score improved, or the mean change, per CSO."""
    changes: dict[int, list[float]] = {org_id: [] for org_id in org_ids}
    for row in score_rows(period, org_ids):
        if row[7] is not None and row[0] in changes:
            changes[row[0]].append(row[7])
    if code == "youth_improved":
        return {org_id: float(sum(c > 0 for c in values)) for org_id, values in changes.items()}
    return {org_id: round(sum(values) / len(values), 2) if values else 0.0
            for org_id, values in changes.items()}

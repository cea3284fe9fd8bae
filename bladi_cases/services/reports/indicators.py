"""The indicator engine: reporting periods in the US fiscal year, and indicators computed
from the records — never typed-in figures — with their disaggregation by sex, age band,
governorate, setting and CSO. Tables that leave the CSO go through the anonymiser
(services.reports.release)."""

from __future__ import annotations

import calendar
import contextlib
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa
import sqlalchemy.orm
from flask import current_app, g, has_request_context

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


# SQLite: read the youth in PROFILE's order off this index (migration 0014), each youth's
# row of a table then found by id, rather than sort them all by profile (half the time).
PROFILE_INDEX = "INDEXED BY ix_beneficiary_profile"


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


def quarter_index(day: date) -> int:
    """0 to 3: the fiscal quarter a day falls in (Period.containing's, without building a
    Period: the figures ask it for every score row)."""
    return ((day.month - 10) % 12) // 3


def _quarters_of(period: Period) -> list[int]:
    return [period.quarter] if period.quarter else [1, 2, 3, 4]


def _attendance_totals(period: Period, org_ids: tuple[int, ...]) -> dict:
    """Hours of presence and youth with 10+ sessions, per CSO (where they attended)."""
    minutes_present = dict.fromkeys(org_ids, 0)
    regulars = dict.fromkeys(org_ids, 0.0)
    chosen = [q - 1 for q in _quarters_of(period)]
    for row in _attendance_year(period.fiscal_year, org_ids):
        sessions, minutes = row[8:12], row[12:16]
        # Whole minutes added up, then hours: the sum does not depend on the rows' order.
        minutes_present[row[0]] += sum(minutes[q] or 0 for q in chosen)
        regulars[row[0]] += sum(sessions[q] or 0 for q in chosen) >= 10
    return {"participation_hours": {k: round(v / 60, 1) for k, v in minutes_present.items()},
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


# --- A fiscal year's figures, a few grouped queries per table -----------------------------

@dataclass
class YearTables:
    """Every rule-based figure of a fiscal year (services.reports.release.year_figures):
    per rule, each CSO's value in each quarter (as `totals_by_org` gives it); per youth
    rule, the year's youth by profile (as `youth_profiles`) and the youth counted once
    since the award began (life of award); and the year's score rows."""

    quarters: dict[str, dict[int, list[float]]]
    profiles: dict[str, Counter]
    lifetime: dict[str, int]
    # The year's score changes per CSO and quarter: [sum, how many] (the mean's parts).
    scores: dict[int, list[list]] = field(default_factory=dict)
    # The results of year_tables' `extra` reads.
    extra: list = field(default_factory=list)


def year_tables(fiscal_year: int, org_ids: list[int], award: Span, workers: int = 0,
                extra: tuple = ()) -> YearTables:
    """The year's figures of every rule for these CSOs from one or two grouped queries per
    source table (attendance, enrolments, endlines, scores, outcomes, sessions, referrals),
    whatever the number of indicators and quarters: about 20 queries where asking each
    indicator for each quarter took 40 to 50, two of them over the whole attendance (eight
    without a request's cache, as on the command line).
    The results equal `totals_by_org` and `youth_profiles` for each rule, quarter and the
    award's span, and the score sums `score_rows` adds up (tests/test_reports_figures.py
    compares them on the demo data); unlike
    those it needs no request cache, so the command-line refresh (cron) is as quick.

    The reads are independent: with `workers`, they run on that many connections at once,
    all reading the same committed data (`read_concurrently`; only for a session with
    nothing uncommitted). `extra` reads (callables) run with them; their results are in
    `tables.extra`, in order."""
    today = date.today()
    quarters = [Period(fiscal_year, q) for q in range(1, 5)]
    # A quarter still to come counts nothing (totals_by_org's rule).
    open_quarters = [q.start <= today for q in quarters]
    tables = YearTables({}, {}, {})
    ids = list(org_ids)

    def zeros() -> dict[int, list[float]]:
        return {org_id: [0.0] * 4 for org_id in ids}

    year = Period(fiscal_year)
    improved = zeros()

    def counted(code, column, query) -> None:
        found = zeros()
        end = min(year.end, today)
        if year.start <= end:
            for org_id, *counts in db.session.execute(query.add_columns(
                    *[sa.func.sum(sa.case((column.between(q.start, q.end), 1), else_=0))
                      for q in quarters]).where(column.between(year.start, end)).group_by(
                    query.selected_columns[0])):
                found[org_id] = [float(c or 0) for c in counts]
        tables.quarters[code] = found

    def sessions_and_referrals() -> None:
        counted("sessions_held", ActivitySession.date, sa.select(
            ActivitySession.organization_id).where(ActivitySession.organization_id.in_(ids)))
        counted("referrals_completed", Referral.closed_on, sa.select(
            Referral.organization_id).where(Referral.organization_id.in_(ids),
                                            Referral.status == "completed"))

    # The reads by name, in the order they start: the longest first (100,000 youth: 0.2
    # to 0.4 s each), so that connections reading at once finish together.
    reads = {
        "scores": lambda: _score_tables(tables, year, ids, open_quarters, improved),
        "endlines": lambda: _endline_tables(tables, year, ids, award),
        "earlier_attendance": lambda: _earlier_attendance(year, ids, award),
        "attendance": lambda: _attendance_rows(year, ids, award),
        "enrolments": lambda: _enrolment_tables(tables, year, ids, award),
        **{("extra", number): read for number, read in enumerate(extra)},
        "outcomes": lambda: _outcome_tables(tables, year, ids, award, open_quarters),
        "sessions_and_referrals": sessions_and_referrals}
    results = dict(zip(reads, read_concurrently(list(reads.values()), workers) if workers
                       else [read() for read in reads.values()], strict=True))
    _attendance_tables(tables, ids, open_quarters, zeros(), results["attendance"],
                       results["earlier_attendance"])
    tables.extra = [results["extra", number] for number in range(len(extra))]
    return tables


# SQLite: the read that fixes a connection's view of the database (WAL keeps it until the
# transaction ends).
_FIRST_READ = "SELECT count(*) FROM (SELECT 1 FROM organization LIMIT 1)"
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


def read_concurrently(reads: list[Callable[[], object]], workers: int) -> list:
    """Run independent reads (callables reading through `db.session`) on `workers`
    connections of their own at once, in threads (the drivers let go of the GIL while the
    database works), and return their results in order. Every connection reads the same
    committed data: on PostgreSQL, one REPEATABLE READ transaction exports its snapshot and
    each connection's transaction imports it (as `pg_dump -j` does); on SQLite (WAL), each
    connection's read transaction keeps the database as it was when it began, and these all
    began with no commit in between (`PRAGMA data_version` unchanged around them), else
    they are begun again. What the caller's session has not committed is not seen: call
    it only on a session with nothing uncommitted (`release.refresh`)."""
    for _attempt in range(3):
        results = _read_at_once(reads, workers)
        if results is not None:
            return results
    return [read() for read in reads]  # written to all the time: this session alone


def _read_at_once(reads: list[Callable[[], object]], workers: int) -> list | None:
    """One try of `read_concurrently`: None when SQLite saw a commit while the
    connections began."""
    app = current_app._get_current_object()
    postgres = db.engine.dialect.name == "postgresql"
    pending = list(enumerate(reads))[::-1]
    results: list = [None] * len(reads)
    errors: list[BaseException] = []
    lock = threading.Lock()
    begun, agreed = threading.Barrier(workers + 1), threading.Barrier(workers + 1)
    same = [False]

    def work(snapshot: str | None) -> None:
        with app.app_context():
            try:
                if snapshot is not None:
                    connection = db.session.connection(
                        execution_options={"isolation_level": "REPEATABLE READ"})
                    connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    figures_settings(connection, alongside_others=True)
                else:
                    db.session.execute(sa.text(_FIRST_READ))
                begun.wait()
                agreed.wait()
                while same[0]:
                    with lock:
                        if not pending or errors:
                            break
                        index, read = pending.pop()
                    results[index] = read()
            except threading.BrokenBarrierError:
                pass
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)
                begun.abort()
                agreed.abort()
            finally:
                db.session.rollback()
                db.session.remove()

    with db.engine.connect() as leader:
        snapshot = None
        if postgres:
            leader = leader.execution_options(isolation_level="REPEATABLE READ")
            snapshot = leader.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            if not _SNAPSHOT_ID.fullmatch(snapshot):
                raise ValueError(snapshot)
        else:  # the probe reads outside any transaction (no BEGIN: the driver's own)
            raw = leader.connection.dbapi_connection
            before = raw.execute("PRAGMA data_version").fetchone()[0]
        threads = [threading.Thread(target=work, args=(snapshot,), daemon=True)
                   for _n in range(workers)]
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            begun.wait()
            same[0] = postgres or raw.execute("PRAGMA data_version").fetchone()[0] == before
            agreed.wait()
        for thread in threads:
            thread.join()
        if postgres:
            leader.rollback()
    if errors:
        raise errors[0]
    return results if same[0] else None


def figures_settings(connection, alongside_others: bool = False) -> None:
    """PostgreSQL settings of the figures' transaction, until it ends:
    - no JIT (PostgreSQL would compile some of these one-off aggregates to machine code,
      which costs more than it saves: 0.3 s for the data-quality counts alone on 100,000
      youth);
    - the year's endlines sorted in memory to keep each youth once (100,000 rows), not
      spilled to disk as with the default 4 MB;
    - groups hashed rather than sorted (`enable_sort` off; a sort that nothing else can
      replace, as a window's, still runs): after keeping each youth's score row once,
      PostgreSQL expects a few hundred rows where there are 100,000 and sorted them by
      profile, 0.15 s of the 0.4 s of that statement;
    - `alongside_others`, on each of the connections reading at once (`read_concurrently`):
      no parallel workers, as the connections already take one core each and each
      statement's workers only competed with them for the same cores.
    The four together took the figures on two connections from 1.2 to 1.0 s on 100,000
    youth."""
    connection.execute(sa.text("SET LOCAL jit = off"))
    connection.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    connection.execute(sa.text("SET LOCAL enable_sort = off"))
    if alongside_others:
        connection.execute(sa.text("SET LOCAL max_parallel_workers_per_gather = 0"))


def figures_settings_end(connection) -> None:
    """Undo `figures_settings` on a transaction that goes on after the figures (the
    caller's session: a request that computed them reads other things after)."""
    for name in ("jit", "work_mem", "enable_sort", "max_parallel_workers_per_gather"):
        connection.execute(sa.text(f"RESET {name}"))


def _capped(period: Period | Span) -> tuple[date, date] | None:
    """A period's first and last day up to today (nobody is reached ahead); None when it
    is still to come."""
    start, end = period.start, min(period.end, date.today())
    return None if start > end else (start, end)


def _in(period: Period | Span, test) -> sa.ColumnElement:
    """`test(first day, last day)` over the period up to today; false for one to come."""
    capped = _capped(period)
    return sa.false() if capped is None else test(*capped)


def _youth_tables(tables: YearTables, code: str, org, youth, where: list, test, year: Period,
                  award: Span, ids: list[int]) -> None:
    """A rule counting distinct youth from one table (enrolments, endlines): each CSO's
    youth in each quarter, the year's youth by profile and the award's youth, where
    `test(first day, last day)` tells whether a row counts in a period. Two aggregates of
    the award's rows, both small: by CSO (distinct youth per quarter), and by profile
    (each youth once, with whether they count this year); no youth row reaches Python."""
    span = _capped(award)
    if span is None:  # the award still to come: nothing counts
        tables.quarters[code] = {org_id: [0.0] * 4 for org_id in ids}
        tables.profiles[code], tables.lifetime[code] = Counter(), 0
        return
    where = [*where, test(*span)]
    quarters = [Period(year.fiscal_year, q) for q in range(1, 5)]
    found = {org_id: [0.0] * 4 for org_id in ids}
    for org_id, *counts in db.session.execute(sa.select(org, *[
            sa.func.count(sa.distinct(sa.case((_in(q, test), youth)))) for q in quarters]).where(
            *where).group_by(org)):
        found[org_id] = [float(c or 0) for c in counts]
    tables.quarters[code] = found
    each = sa.select(youth.label("youth"), sa.func.max(sa.case((_in(year, test), 1), else_=0))
                     .label("in_year")).where(*where).group_by(youth).subquery()
    profiles, lifetime = Counter(), 0
    # Per profile: the award's youth, and those of them counted this year.
    for *profile, in_year, count in db.session.execute(sa.select(
            *PROFILE, sa.func.sum(each.c.in_year), sa.func.count()).join(
            each, each.c.youth == Beneficiary.id).group_by(*PROFILE).with_hint(
            Beneficiary, PROFILE_INDEX, dialect_name="sqlite")):
        lifetime += count
        if in_year:
            profiles[tuple(profile)] += in_year
    tables.profiles[code], tables.lifetime[code] = profiles, lifetime


def _enrolment_tables(tables, year, ids, award) -> None:
    """youth_reached: enrolments overlapping each period."""
    _youth_tables(tables, "youth_reached", Enrolment.organization_id, Enrolment.beneficiary_id,
                  [Enrolment.organization_id.in_(ids)],
                  lambda start, end: sa.and_(Enrolment.start_date <= end, sa.or_(
                      Enrolment.end_date.is_(None), Enrolment.end_date >= start)),
                  year, award, ids)


def _endline_tables(tables, year, ids, award) -> None:
    """youth_baseline_endline: endlines in each period of youth with a baseline (each
    checked against the youth's baselines by index)."""
    baseline = sa.orm.aliased(SurveyResponse)
    _youth_tables(tables, "youth_baseline_endline", SurveyResponse.organization_id,
                  SurveyResponse.beneficiary_id,
                  [SurveyResponse.organization_id.in_(ids), SurveyResponse.wave == "endline",
                   sa.exists().where(baseline.beneficiary_id == SurveyResponse.beneficiary_id,
                                     baseline.wave == "baseline")],
                  lambda start, end: SurveyResponse.submitted_on.between(start, end),
                  year, award, ids)


def _attendance_sessions(year: Period, award: Span):
    """The year's sessions, with whether each is in each quarter (q0-q3), its minutes
    there (m0-m3), and whether it is in the award's span up to today (award). Which
    quarter is worked out once per session, not once per attendance row: the rows then only
    add up columns. SQLite must be told to keep this table (it would otherwise repeat the
    tests per row); PostgreSQL hashes it."""
    quarters = [Period(year.fiscal_year, q) for q in range(1, 5)]
    in_quarter = [ActivitySession.date.between(q.start, q.end) for q in quarters]
    span = _capped(award)
    return sa.select(
        ActivitySession.id,
        *[sa.case((test, 1), else_=0).label(f"q{n}") for n, test in enumerate(in_quarter)],
        *[sa.case((test, ActivitySession.duration_minutes), else_=0).label(f"m{n}")
          for n, test in enumerate(in_quarter)],
        (sa.literal(0) if span is None else sa.case(
            (ActivitySession.date <= span[1], 1), else_=0)).label("award")).where(
        ActivitySession.date.between(year.start, year.end)).cte(
        "figures_session").prefix_with("MATERIALIZED", dialect="sqlite")


def _attendance_rows(year: Period, ids: list[int], award: Span) -> list:
    """The year's attendance (millions of rows), each row read once, grouped by the CSO
    attended and the youth: the youth's id and profile, sessions and minutes present in
    each quarter (columns 8-11 and 12-15), sessions present up to today (16)."""
    sessions = _attendance_sessions(year, award)
    # Grouped first, then joined to the youth's profile: one look-up per youth, not per row.
    each = sa.select(
        Attendance.organization_id.label("org"), Attendance.beneficiary_id.label("youth"),
        *[sa.func.sum(sessions.c[f"q{n}"]) for n in range(4)],
        *[sa.func.sum(sessions.c[f"m{n}"]) for n in range(4)],
        sa.func.sum(sessions.c.award)).select_from(Attendance).join(
        sessions, sessions.c.id == Attendance.session_id).where(
        Attendance.organization_id.in_(ids), Attendance.status == "present").group_by(
        Attendance.organization_id, Attendance.beneficiary_id).subquery()
    return db.session.execute(sa.select(each.c.org, Beneficiary.id, *PROFILE,
                                        *list(each.c)[2:]).join(
        each, each.c.youth == Beneficiary.id)).all()


def _earlier_attendance(year: Period, ids: list[int], award: Span) -> Counter:
    """The award's earlier years: sessions present per youth, nothing else."""
    award_sessions: Counter = Counter()
    span = _capped(award)
    if span is not None and award.start < year.start:
        for youth, count in db.session.execute(sa.select(
                Attendance.beneficiary_id, sa.func.count()).join(
                ActivitySession, ActivitySession.id == Attendance.session_id).where(
                Attendance.organization_id.in_(ids), Attendance.status == "present",
                ActivitySession.date.between(
                    award.start, min(span[1], year.start - timedelta(days=1)))).group_by(
                Attendance.organization_id, Attendance.beneficiary_id)):
            award_sessions[youth] += count
    return award_sessions


def _attendance_tables(tables, ids, open_quarters, hours_minutes, rows, award_sessions
                       ) -> None:
    """Hours and youth at 10+ sessions, from the year's attendance grouped by the CSO
    attended and the youth (`_attendance_rows`) and the award's earlier years counted per
    youth (`_earlier_attendance`): the life-of-award regulars add both up."""
    regulars = {org_id: [0.0] * 4 for org_id in ids}
    year_sessions: Counter = Counter()
    profiles = {}
    for row in rows:
        org_id, youth = row[0], row[1]
        sessions, minutes = [s or 0 for s in row[8:12]], [m or 0 for m in row[12:16]]
        for q in range(4):
            if open_quarters[q]:
                hours_minutes[org_id][q] += minutes[q]
                regulars[org_id][q] += sessions[q] >= 10
        year_sessions[youth] += sum(sessions)
        award_sessions[youth] += row[16] or 0
        profiles[youth] = tuple(row[2:8])
    tables.quarters["participation_hours"] = {
        org_id: [round(m / 60, 1) for m in values] for org_id, values in hours_minutes.items()}
    tables.quarters["youth_10_sessions"] = regulars
    # The year's regulars over all their quarters, as `_regular_profiles` counts them.
    tables.profiles["youth_10_sessions"] = Counter(
        profiles[youth] for youth, count in year_sessions.items() if count >= 10)
    tables.lifetime["youth_10_sessions"] = sum(
        1 for count in award_sessions.values() if count >= 10)


def _outcome_tables(tables, year, ids, award, open_quarters) -> None:
    """Youth placed, and still employed 3 and 6 months later: one pass over the outcomes
    (few rows), each youth counted once per period and in their CSO of today."""
    quarters = [Period(year.fiscal_year, q) for q in range(1, 5)]
    span = _capped(award)
    rows = [] if span is None else db.session.execute(sa.select(
        Beneficiary.id, *PROFILE, Outcome.kind, Outcome.on_date, Outcome.check_3m,
        Outcome.check_6m).select_from(Outcome).join(Case, Case.id == Outcome.case_id).join(
        Beneficiary, Beneficiary.id == Case.beneficiary_id).where(
        Outcome.organization_id.in_(ids), Outcome.kind.in_(PLACED_KINDS),
        Outcome.on_date.between(months_before(span[0], 6), span[1]))).all()
    for code, kinds, months, check in (("youth_placed", PLACED_KINDS, 0, None),
                                       ("youth_employed_3m", EMPLOYED_KINDS, 3, 9),
                                       ("youth_employed_6m", EMPLOYED_KINDS, 6, 10)):
        def counted(period, kinds=kinds, months=months, check=check) -> dict[int, tuple]:
            """The youth (id: profile) counted in a period, as `youth_ids` selects them."""
            capped = _capped(period)
            if capped is None:
                return {}
            start, end = (months_before(day, months) for day in capped)
            return {row[0]: tuple(row[1:7]) for row in rows if row[7] in kinds
                    and start <= row[8] <= end and (check is None or row[check] is True)}

        totals = {org_id: [0.0] * 4 for org_id in ids}
        for q, period in enumerate(quarters):
            if open_quarters[q]:
                for profile in counted(period).values():
                    if profile[0] in totals:  # their CSO of today, among these
                        totals[profile[0]][q] += 1
        tables.quarters[code] = totals
        tables.profiles[code] = Counter(counted(year).values())
        tables.lifetime[code] = len(counted(award))


def _score_tables(tables, year, ids, open_quarters, totals) -> None:
    """Youth whose score improved, and the score changes' sums: the year's score rows
    (`score_rows`' youth, each once) grouped in the database by profile and quarter, so
    neither the 100,000s of responses nor their JSON reach Python."""
    tables.scores = {org_id: [[0.0, 0] for _q in range(4)] for org_id in ids}
    tables.quarters["youth_improved"] = totals
    profiles = tables.profiles["youth_improved"] = Counter()
    span, scales = _capped(year), first_scales()
    if span is None or not scales:
        return
    parts = []
    for rank, (survey_id, scale) in enumerate(scales):
        baseline = sa.orm.aliased(SurveyResponse)
        parts.append(sa.select(
            SurveyResponse.organization_id.label("org"), *PROFILE[1:],
            SurveyResponse.beneficiary_id.label("youth"),
            SurveyResponse.submitted_on.label("day"),
            (SurveyResponse.scores[scale].as_float() - baseline.scores[scale].as_float())
            .label("change"), sa.literal(rank).label("rank"),
            SurveyResponse.id.label("endline"), baseline.id.label("baseline")).join(
            Beneficiary, Beneficiary.id == SurveyResponse.beneficiary_id).join(
            baseline, sa.and_(baseline.beneficiary_id == SurveyResponse.beneficiary_id,
                              baseline.survey_id == survey_id,
                              baseline.wave == "baseline")).where(
            SurveyResponse.survey_id == survey_id, SurveyResponse.organization_id.in_(ids),
            SurveyResponse.wave == "endline", SurveyResponse.submitted_on.between(*span)))
    rows = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery()
    # Each youth once, from the row `score_rows` keeps: the first survey, then endline, then
    # baseline (there, in that order, the first one seen).
    # The profile is joined before (PostgreSQL cannot tell how many rows are left after,
    # and would look each youth up in a loop).
    columns = [rows.c.org, *[rows.c[column.key] for column in PROFILE[1:]]]
    first = sa.select(*columns, rows.c.day, rows.c.change, sa.func.row_number()
                      .over(partition_by=rows.c.youth,
                            order_by=(rows.c.rank, rows.c.endline, rows.c.baseline))
                      .label("nth")).subquery()
    columns = [first.c[column.key] for column in columns]
    quarter = sa.case(*[(first.c.day.between(q.start, q.end), n) for n, q in enumerate(
        Period(year.fiscal_year, n) for n in range(1, 5))], else_=0)
    # The changes are added up in hundredths (scores have two decimals): an exact sum,
    # whatever order the database adds them in.
    for *profile, q, improved, count, hundredths in db.session.execute(sa.select(
            *columns, quarter, sa.func.sum(sa.case((first.c.change > 0, 1), else_=0)),
            sa.func.count(first.c.change),
            sa.func.sum(sa.cast(sa.func.round(first.c.change * 100), sa.Integer))).where(
            first.c.nth == 1).group_by(*columns, quarter)):
        cell = tables.scores[profile[0]][q]
        cell[0] += hundredths or 0
        cell[1] += count
        if improved:
            profiles[tuple(profile)] += improved
            if open_quarters[q] and profile[0] in totals:
                totals[profile[0]][q] += improved
    for cells in tables.scores.values():
        for cell in cells:
            cell[0] /= 100

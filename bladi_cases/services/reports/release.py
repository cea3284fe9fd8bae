"""A fiscal year's figures as reviewers and the donor see them.

Everything that leaves a CSO for a fiscal year is one release (privacy.release): for every
indicator, the CSO-by-quarter table, and for youth-based ones the CSO-by-setting table and
the sex, age-band and governorate tables of the year. They share figures (a CSO's year, the
program's year), so they are suppressed together: a figure hidden in one is hidden in all,
on the dashboard, in the quarterly report seen by a reviewer, in the tracking table and in
the CSV. Quarters whose report is approved use the frozen figures.

The true figures are computed in one go (`year_figures`) and kept in a snapshot table for a
few minutes, shared by every worker; `flask reports refresh` rebuilds them on a schedule.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app, g
from flask_babel import lazy_gettext as _l

from ...extensions import db
from ...models import (
    FiguresSnapshot,
    Indicator,
    JobStage,
    ManualValue,
    Organization,
    QuarterlyReport,
    ReportStatus,
    SiteKind,
)
from ...models.common import utcnow
from ...privacy.deidentify import DEFAULT_BANDS, age_band
from ...privacy.release import Release
from ...privacy.suppression import TOTAL, WITHHELD
from ...transactions import after_render, in_read_request, in_request, write_transaction
from .. import jobs
from .indicators import (
    RULES,
    Period,
    Span,
    figures_settings,
    figures_settings_end,
    year_tables,
)
from .quality import year_quality
from .reports import funded_csos, indicators, targets_of

QUARTERS = ["Q1", "Q2", "Q3", "Q4"]
SETTINGS = [kind.value for kind in SiteKind]
YOUTH_DIMENSIONS = ("sex", "age_band", "governorate")
ALL = "*"


def _is_youth(indicator: Indicator) -> bool:
    return indicator.rule in RULES and RULES[indicator.rule].by_youth


def _is_mean(indicator: Indicator) -> bool:
    return indicator.rule in RULES and RULES[indicator.rule].mean


# --- The true figures --------------------------------------------------------------------

def year_figures(fiscal_year: int, frozen_bands: dict | None = None, workers: int = 0) -> dict:
    """Every true count the year's release is built from (JSON-ready): per indicator the
    value of each CSO in each quarter (frozen when that report is approved), and for youth
    indicators the year's youth per CSO and setting and per sex, age band and governorate;
    the score sums behind the mean change. Aggregates only: never a youth.

    `frozen_bands` are the age bands the year was released with (from its snapshot): once
    a year's figures were out, changing an indicator's bands would let anyone subtract two
    downloads, so the year keeps its bands; new bands apply to years not yet released.

    With `workers`, the tables are read on that many connections at once, which see only
    committed data: for a session with nothing uncommitted (see `refresh`)."""
    if db.session.get_bind().dialect.name == "postgresql":
        figures_settings(db.session)
    csos = funded_csos()
    codes = {o.id: o.code for o in csos}
    year = Period(fiscal_year)
    award = Span(Period(min(first_year(), fiscal_year)).start, year.end)
    # The approved quarters are read with the tables (on their connections, if several).
    tables = year_tables(fiscal_year, list(codes), award, workers, extra=(
        lambda: year_quality(csos, fiscal_year),
        lambda: _manual_quarters(fiscal_year, list(codes)),
        lambda: {(r.organization_id, r.quarter): r.figures for r in db.session.scalars(
            sa.select(QuarterlyReport).where(QuarterlyReport.fiscal_year == fiscal_year,
                                             QuarterlyReport.status == ReportStatus.APPROVED))}))
    quality, manual, frozen = tables.extra
    if db.session.get_bind().dialect.name == "postgresql":
        # The rest of the caller's transaction (a request's, when no snapshot was fresh)
        # plans as usual again.
        figures_settings_end(db.session)
    payload: dict = {"quarters": {}, "settings": {}, "dimensions": {}, "scores": {},
                     "lifetime": {}, "age_bands": {},
                     "approved": sorted(f"{codes[o]}:{q}" for o, q in frozen if o in codes)}
    for indicator in indicators():
        if _is_mean(indicator):
            continue
        live = tables.quarters[indicator.rule] if indicator.rule in RULES else \
            manual.get(indicator.id, {})
        quarters = {o.code: [0] * 4 for o in csos}
        for q in range(1, 5):
            for org in csos:
                value = frozen.get((org.id, q), {}).get(
                    indicator.code, live.get(org.id, [0.0] * 4)[q - 1])
                quarters[org.code][q - 1] = int(round(value or 0))
        payload["quarters"][indicator.code] = quarters
        if _is_youth(indicator):
            settings: dict[str, Counter] = {o.code: Counter() for o in csos}
            dimensions: dict[str, Counter] = {d: Counter() for d in YOUTH_DIMENSIONS}
            bands = [tuple(b) for b in (frozen_bands or {}).get(indicator.code)
                     or indicator.age_bands or ()] or list(DEFAULT_BANDS)
            payload["age_bands"][indicator.code] = [list(b) for b in bands]
            for (org_id, setting, sex, born, month, governorate), count in \
                    tables.profiles[indicator.rule].items():
                settings[codes[org_id]][setting] += count
                dimensions["sex"][sex] += count
                dimensions["age_band"][age_band(born, month, year.end, bands)] += count
                dimensions["governorate"][governorate] += count
            payload["settings"][indicator.code] = {k: dict(v) for k, v in settings.items()}
            if indicator.rule != "youth_improved":  # that one adds up over the years
                # Since the award began, each youth once (not the sum of the years).
                payload["lifetime"][indicator.code] = tables.lifetime[indicator.rule]
            payload["dimensions"][indicator.code] = {k: dict(v) for k, v in dimensions.items()}
    payload["scores"] = {o.code: tables.scores.get(o.id, [[0.0, 0] for _q in range(4)])
                         for o in csos}
    payload["quality"] = quality
    return payload


def _manual_quarters(fiscal_year: int, org_ids: list[int]) -> dict[int, dict[int, list]]:
    """The figures entered by hand (indicators without a rule): per indicator id and CSO,
    each quarter's sum, in one query (as `values_by_org` gives them one by one)."""
    found: dict[int, dict[int, list]] = {}
    for indicator_id, org_id, quarter, value in db.session.execute(sa.select(
            ManualValue.indicator_id, ManualValue.organization_id, ManualValue.quarter,
            sa.func.sum(ManualValue.value)).where(
            ManualValue.fiscal_year == fiscal_year, ManualValue.organization_id.in_(org_ids),
            ManualValue.quarter.between(1, 4)).group_by(
            ManualValue.indicator_id, ManualValue.organization_id, ManualValue.quarter)):
        found.setdefault(indicator_id, {}).setdefault(org_id, [0.0] * 4)[quarter - 1] = \
            float(value or 0)
    return found


def first_year() -> int:
    """The award's first fiscal year (life-of-award figures start there)."""
    return current_app.config["BLADI_AWARD_FIRST_FY"]


# Older than this, a snapshot is not shown at all: the figures are computed while waiting.
STALE_LIMIT = timedelta(days=1)


def snapshot(fiscal_year: int, max_age_seconds: int) -> tuple[dict, datetime | None]:
    """The year's figures and when they were computed. From the latest snapshot when there
    is one less than a day old; when it is older than `max_age_seconds`, it is still shown,
    and a background job computes a fresh one (nobody waits for it). Without a
    usable snapshot, computed now and stored (see `refresh`). With 0 (the tests): always
    computed, nothing stored."""
    latest = _latest(fiscal_year)
    if max_age_seconds <= 0:
        payload = year_figures(fiscal_year, _bands_of(latest))
        if latest is None:  # the year's first release: its age bands are kept from now on
            payload = refresh(fiscal_year, payload)
        return payload, None
    now = utcnow()
    if latest is not None and latest.computed_at >= now - STALE_LIMIT:
        if latest.computed_at < now - timedelta(seconds=max_age_seconds):
            _refresh_after_response(fiscal_year)
        return latest.payload, latest.computed_at
    return refresh(fiscal_year, year_figures(fiscal_year, _bands_of(latest))), now


def _latest(fiscal_year: int) -> FiguresSnapshot | None:
    return db.session.scalars(sa.select(FiguresSnapshot).where(
        FiguresSnapshot.fiscal_year == fiscal_year).order_by(
        FiguresSnapshot.computed_at.desc()).limit(1)).first()


def _bands_of(snapshot_row: FiguresSnapshot | None) -> dict | None:
    """The age bands a year was released with, if it was."""
    return (snapshot_row.payload or {}).get("age_bands") if snapshot_row is not None else None


def _refresh_after_response(fiscal_year: int) -> None:
    """Have the year's snapshot recomputed by a background job, asked for once this read
    request's page is built. One such job at a time across every node: a second one is not
    started while the first is queued or running (its `active_key`)."""
    if not in_request() or g.get("_figures_refresh"):
        return
    g._figures_refresh = True

    with contextlib.suppress(jobs.JobRefused):  # already asked by someone, somewhere
        jobs.start("figures.refresh", None, {"fiscal_year": fiscal_year},
                   active_key=f"figures:{fiscal_year}")


@jobs.job_kind("figures.refresh", _l("Refresh of the year's figures"), max_attempts=2)
def _refresh_job(job, progress) -> jobs.Outcome:
    """The background job of `_refresh_after_response`."""
    fiscal_year = job.params["fiscal_year"]
    progress(JobStage.COMPUTED, 0, 1)
    done = refresh_once(fiscal_year, newer_than=job.created_at)
    progress(JobStage.COMPUTED, 1, 1)
    return jobs.Outcome(data={"fiscal_year": fiscal_year, "refreshed": done})


def refresh_once(fiscal_year: int, newer_than: datetime | None = None) -> bool:
    """Refresh the year's snapshot unless another node is doing it now (a lock shared by
    every node: Redis, or PostgreSQL's advisory lock), or did it after `newer_than`.
    Returns whether this call refreshed it."""
    with jobs.only_one(f"figures-{fiscal_year}", REFRESH_LOCK_SECONDS) as mine:
        if not mine:
            return False
        latest = _latest(fiscal_year)
        db.session.commit()  # ends the read: the refresh writes in a transaction of its own
        if newer_than is not None and latest is not None and latest.computed_at >= newer_than:
            return False
        refresh(fiscal_year)
        return True


# How many connections the refresh reads the year's tables on at once (see
# indicators.read_concurrently).
FIGURES_CONNECTIONS = 2

# Longer than a refresh can take: held until then, should its holder die.
REFRESH_LOCK_SECONDS = 900


@jobs.every(300, "figures")
def refresh_current_year() -> bool:
    """The scheduler's refresh of the current fiscal year's figures (every 5 minutes), so
    reviewers' pages read a snapshot and never wait for the computation."""
    from datetime import date

    # Every node's scheduler asks: the first one within the period refreshes, the others
    # find the snapshot recent (or the lock held) and do nothing.
    recent = utcnow() - timedelta(seconds=240)
    return refresh_once(Period.containing(date.today()).fiscal_year, newer_than=recent)


def refresh(fiscal_year: int, payload: dict | None = None) -> dict:
    """Store a new snapshot of the year (older ones of the year are dropped), with what the
    audit hid at the configured k, so pages publish it without running the audit again.
    Returns what it stores.

    Everything is computed first, reading only; then the snapshot is written briefly, never
    holding the write lock while computing: in a read request once its page is built
    (`after_render`), in a write request with its changes, and elsewhere (the command
    line, after a response) at once in a write transaction of its own, committed."""
    if payload is None:
        # Outside a request (cron, the command line, the job after a response), with nothing
        # uncommitted in this session, the tables are read on FIGURES_CONNECTIONS
        # connections at once (they would not see what is uncommitted; the tests' session,
        # bound to one connection, reads alone).
        workers = FIGURES_CONNECTIONS if not in_request() and not db.session().in_transaction() \
            and isinstance(db.session.get_bind(), sa.Engine) else 0
        payload = year_figures(fiscal_year, _bands_of(_latest(fiscal_year)), workers)
    k = current_app.config["BLADI_SMALL_CELL_K"]
    payload = {**payload, "protection": {
        str(k): build(payload, fiscal_year, k).release.protection()}}
    if in_read_request():
        # A snapshot lost in a machine crash is recomputed: no need to wait for the disk.
        after_render(lambda: _store(fiscal_year, payload), waits_for_disk=False)
    elif in_request():
        _store(fiscal_year, payload)
    else:
        db.session.commit()  # ends the read transaction (and anything the caller left)
        with write_transaction():
            _store(fiscal_year, payload)
            db.session.commit()
    return payload


def _store(fiscal_year: int, payload: dict) -> None:
    # Deleted through the session, flushed before the new row: SQLite may give the new row
    # the old one's id, which the session must not still hold.
    for old in db.session.scalars(sa.select(FiguresSnapshot).where(
            FiguresSnapshot.fiscal_year == fiscal_year)):
        db.session.delete(old)
    db.session.flush()
    db.session.add(FiguresSnapshot(fiscal_year=fiscal_year, payload=payload))
    db.session.flush()


# --- The release -------------------------------------------------------------------------

@dataclass
class YearRelease:
    """The published figures of a fiscal year: what a reviewer or the donor may see."""

    fiscal_year: int
    k: int
    csos: list[str]
    release: Release
    payload: dict
    computed_at: datetime | None = None  # None: computed for this request

    def approved(self, cso: str, quarter: int) -> bool:
        """Whether the CSO's report of that quarter is approved (figures frozen)."""
        return f"{cso}:{quarter}" in self.payload["approved"]

    def quarter(self, indicator: Indicator, cso: str, quarter: int) -> str:
        """One quarter's published value, for a CSO or the program (cso ALL)."""
        if _is_mean(indicator):
            return self._mean(cso, [quarter])
        return self.release.shown(("q", indicator.code, cso, quarter))

    def year(self, indicator: Indicator, cso: str = ALL, setting: str = ALL) -> str:
        """The fiscal year's published value for a CSO or the program, for a setting or
        all ("—" when the indicator is not counted by setting)."""
        if _is_mean(indicator):
            return self._mean(cso, [1, 2, 3, 4]) if setting == ALL else "—"
        if setting != ALL and not _is_youth(indicator):
            return "—"
        return self.release.shown(("fy", indicator.code, cso, setting))

    def year_of(self, indicator: Indicator, csos: list[str], setting: str = ALL) -> str:
        """The year's value over some CSOs: a sum shown only when every part is."""
        if set(csos) == set(self.csos):
            return self.year(indicator, ALL, setting)
        if _is_mean(indicator) or (setting != ALL and not _is_youth(indicator)):
            return self.year(indicator, csos[0], setting) if len(csos) == 1 else "—"
        return self.release.sum_of(("fy", indicator.code, c, setting) for c in csos)

    def dimension(self, indicator: Indicator, dimension: str) -> list[tuple[str, str]]:
        """(category, published count) of a youth indicator's year by sex, age band,
        governorate, setting or CSO."""
        if dimension == "setting":
            return [(s, self.year(indicator, ALL, s)) for s in SETTINGS]
        if dimension == "cso":
            return [(c, self.year(indicator, c)) for c in self.csos]
        categories = sorted(self.payload["dimensions"][indicator.code][dimension])
        return [(c, self.release.shown((dimension, indicator.code, c))) for c in categories]

    def lifetime(self, indicator: Indicator, earlier: list[YearRelease]) -> str:
        """The program's life-of-award total up to this year. Youth are counted once
        across the years (distinct), hidden below k; figures that add up (sessions,
        hours...) are the sum of the years, shown only if every year's total is."""
        if _is_mean(indicator):
            return "—"
        if indicator.code in self.payload["lifetime"]:
            return self.release.shown(("life", indicator.code))
        years = [r for r in earlier if r.fiscal_year < self.fiscal_year] + [self]
        if any(r.release.hidden(("fy", indicator.code, ALL, ALL)) for r in years):
            return WITHHELD
        return str(sum(r.release.true(("fy", indicator.code, ALL, ALL)) for r in years))

    def _mean(self, cso: str, quarters: list[int]) -> str:
        """A mean change, shown only where the count of youth behind it is (the counts go
        through the release like any table: see `build`)."""
        rows = self.csos if cso == ALL else [cso]
        columns = [f"Q{q}" for q in quarters]
        key = (cso if cso != ALL else TOTAL, columns[0] if len(columns) == 1 else TOTAL)
        table = self.release.tables["score_n"]
        if table.hidden(*key):
            return WITHHELD
        total = count = 0.0
        for row in rows:
            for q in quarters:
                part_sum, part_count = self.payload["scores"][row][q - 1]
                total, count = total + part_sum, count + part_count
        return f"{total / count:+.1f}" if count else "—"


def link_youth_trend(quarters: dict[str, list[int]], year: dict[str, int]) -> set[str]:
    """The CSOs (and ALL, the program) whose year of youth equals the sum of their quarters:
    there the year is known from the quarters, so the row total of the CSO-by-quarter table
    and the year are one published figure."""
    linked = {c for c in quarters if sum(quarters[c]) == year[c]}
    if sum(map(sum, quarters.values())) == sum(year.values()):
        linked.add(ALL)
    return linked


def build(payload: dict, fiscal_year: int, k: int) -> YearRelease:
    """Build and publish the release of a year from its true figures."""
    csos = sorted(payload["quarters"][next(iter(payload["quarters"]))]) if payload[
        "quarters"] else []
    release = Release(k)
    for indicator in indicators():
        code = indicator.code
        if _is_mean(indicator):
            continue
        quarters = payload["quarters"][code]
        counts = {(c, f"Q{q + 1}"): quarters[c][q] for c in csos for q in range(4)}
        # Events and hours add up over the quarters: a row's total is the CSO's year.
        # Youth are counted once in the year, so a year is at most the sum of its quarters;
        # where it equals that sum (youth seen in a single quarter, say), anyone can tell,
        # and the year and the row total are the same published figure.
        linked = set(csos) | {ALL}
        if _is_youth(indicator):
            settings = payload["settings"][code]
            linked = link_youth_trend(quarters, {c: sum(settings[c].values()) for c in csos})

        def trend_id(key, code=code, linked=linked):
            row, column = key
            cso = ALL if row == TOTAL else row
            if column != TOTAL:
                return ("q", code, cso, int(column[1]))
            return ("fy", code, cso, ALL) if cso in linked else None

        release.add(f"trend:{code}", counts, csos, QUARTERS, trend_id)
        if not _is_youth(indicator):
            continue
        settings = payload["settings"][code]
        release.add(f"setting:{code}", {(c, s): settings[c].get(s, 0) for c in csos
                                        for s in SETTINGS}, csos, SETTINGS,
                    lambda key, code=code: ("fy", code, ALL if key[0] == TOTAL else key[0],
                                            ALL if key[1] == TOTAL else key[1]))
        for dimension, values in payload["dimensions"][code].items():
            categories = sorted(values)
            release.add(f"{dimension}:{code}", {(c, "n"): values[c] for c in categories},
                        categories, ["n"],
                        lambda key, code=code, dimension=dimension:
                        ("fy", code, ALL, ALL) if key[0] == TOTAL else (dimension, code, key[0]))
    # How many youth each mean change is over: protected like any table, so a mean is never
    # shown for fewer than k youth nor left to be worked out from the others.
    scores = payload["scores"]
    release.add("score_n", {(c, f"Q{q + 1}"): scores[c][q][1] for c in csos for q in range(4)},
                csos, QUARTERS, lambda key: None)
    release.keep_private("score_n")
    _add_lifetime(release, payload, fiscal_year)
    _relate(release, payload, csos)
    release.publish(payload.get("protection", {}).get(str(k)))
    return YearRelease(fiscal_year, k, csos, release, payload)


def _add_lifetime(release: Release, payload: dict, fiscal_year: int) -> None:
    """Life-of-award youth (each once since the award began) go through the release: at
    least the year's youth, and the same figure in the award's first year."""
    for code, value in payload["lifetime"].items():
        release.add(f"life:{code}", {("life", "n"): value}, ["life"], ["n"],
                    lambda key, code=code: ("life", code) if key == ("life", "n") else None)
        year = ("fy", code, ALL, ALL)
        release.relate({year: 1, ("life", code): -1})
        if fiscal_year <= first_year():
            release.relate({("life", code): 1, year: -1})


# Youth counted by one indicator are among those of another, in every cell.
INCLUDED_IN = {"youth_improved": "youth_baseline_endline",
               "youth_baseline_endline": "youth_reached",
               "youth_10_sessions": "youth_reached"}


def _relate(release: Release, payload: dict, csos: list[str]) -> None:
    """What a reader knows beyond the tables' sums: a youth counts once in a year, so a
    year is at least each quarter and at most their sum; and some indicators count youth
    that another one counts too (docs/PRIVACY.md)."""
    youth = [i.code for i in indicators() if _is_youth(i)]
    for code in youth:
        for cso in csos + [ALL]:
            year = ("fy", code, cso, ALL)
            quarters = [("q", code, cso, q) for q in range(1, 5)]
            release.relate({year: 1, **{q: -1 for q in quarters}})
            for quarter in quarters:
                release.relate({quarter: 1, year: -1})
    for small, big in INCLUDED_IN.items():
        if small not in youth or big not in youth:
            continue
        figures = [("fy", small, c, s) for c in csos + [ALL] for s in SETTINGS + [ALL]]
        figures += [("q", small, c, q) for c in csos + [ALL] for q in range(1, 5)]
        figures += [(d, small, category) for d in YOUTH_DIMENSIONS
                    for category in payload["dimensions"][small][d]
                    if category in payload["dimensions"][big][d]]
        for figure in figures:
            twin = (figure[0], big, *figure[2:])
            if release.known(figure) and release.known(twin):
                release.relate({figure: 1, twin: -1})


def year_release(fiscal_year: int, k: int, max_age_seconds: int = 0) -> YearRelease:
    """The published figures of a fiscal year (from a recent snapshot when allowed)."""
    payload, computed_at = snapshot(fiscal_year, max_age_seconds)
    release = build(payload, fiscal_year, k)
    release.computed_at = computed_at
    return release


# --- Reading a release -------------------------------------------------------------------

def number(shown: str) -> int | float | None:
    """A published figure as a number; None when it is withheld ("…", "—")."""
    for kind in (int, float):
        try:
            return kind(shown)
        except ValueError:
            continue
    return None


def progress_rows(release: YearRelease, csos: list[Organization], setting: str = ALL
                  ) -> list[tuple[Indicator, str, float, str]]:
    """(indicator, the year's published value over `csos`, their annual target, percent
    of target) for the reviewers' dashboard: the percent comes from the published value
    only, so it is hidden with it."""
    targets = targets_of(release.fiscal_year)
    codes = [o.code for o in csos]
    rows = []
    for indicator in indicators():
        shown = release.year_of(indicator, codes, setting) if codes else "—"
        target = sum(t.value for o in csos
                     if (t := targets.get((indicator.id, o.id, release.fiscal_year))))
        value = number(shown)
        percent = "—" if not target or setting != ALL else (
            WITHHELD if value is None else f"{round(100 * value / target)}%")
        rows.append((indicator, shown, target, percent))
    return rows


def report_figures(report: QuarterlyReport, release: YearRelease) -> dict[str, str]:
    """A quarterly report's figures for a reviewer or the donor: exactly the year's release
    for that CSO's quarter (the figures the report was submitted with may differ from
    today's, and the difference of the two would be a count nobody protected)."""
    shown = {}
    for indicator in indicators():
        if report.figures.get(indicator.code) is None:
            continue
        shown[indicator.code] = release.quarter(indicator, report.organization.code,
                                                report.quarter)
    return shown

"""The year's figures computed in one pass per table (`year_figures`, issue 18) equal the
figures the per-indicator functions give, which the CSO's own reports and progress pages
show (`values_by_org`, `youth_profiles`): every indicator, CSO and quarter, every profile,
the life of the award, on the demo data (with a transfer, a session to come and figures
entered by hand)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.demo import (
    seed_demo_activities,
    seed_demo_beneficiaries,
    seed_demo_cases,
    seed_demo_responses,
)
from bladi_cases.extensions import db
from bladi_cases.models import (
    ActivitySession,
    Attendance,
    Beneficiary,
    Indicator,
    ManualValue,
    Outcome,
    QuarterlyReport,
    ReportStatus,
    SurveyResponse,
    User,
)
from bladi_cases.privacy.deidentify import DEFAULT_BANDS, age_band
from bladi_cases.seed import seed_demo
from bladi_cases.services.reports.indicators import (
    Period,
    Span,
    months_before,
    score_rows,
    youth_profiles,
)
from bladi_cases.services.reports.quality import year_quality
from bladi_cases.services.reports.release import (
    YOUTH_DIMENSIONS,
    _is_mean,
    _is_youth,
    first_year,
    year_figures,
)
from bladi_cases.services.reports.reports import funded_csos, indicators, values_by_org

from .conftest import statements_of

YEAR = Period.containing(date.today()).fiscal_year


def _per_indicator(fiscal_year: int) -> dict:
    """The year's payload as it was assembled before issue 18: indicator by indicator and
    quarter by quarter, from the functions the CSO's pages use."""
    csos = funded_csos()
    codes = {o.id: o.code for o in csos}
    frozen = {(r.organization_id, r.quarter): r.figures for r in db.session.scalars(
        sa.select(QuarterlyReport).where(QuarterlyReport.fiscal_year == fiscal_year,
                                         QuarterlyReport.status == ReportStatus.APPROVED))}
    year = Period(fiscal_year)
    payload: dict = {"quarters": {}, "settings": {}, "dimensions": {}, "scores": {},
                     "lifetime": {}, "age_bands": {},
                     "approved": sorted(f"{codes[o]}:{q}" for o, q in frozen if o in codes)}
    award = Span(Period(min(first_year(), fiscal_year)).start, year.end)
    for indicator in indicators():
        if _is_mean(indicator):
            continue
        quarters = {o.code: [0] * 4 for o in csos}
        for q in range(1, 5):
            live = values_by_org(indicator, Period(fiscal_year, q), csos)
            for org in csos:
                value = frozen.get((org.id, q), {}).get(indicator.code, live[org.id])
                quarters[org.code][q - 1] = int(round(value or 0))
        payload["quarters"][indicator.code] = quarters
        if _is_youth(indicator):
            settings: dict[str, Counter] = {o.code: Counter() for o in csos}
            dimensions: dict[str, Counter] = {d: Counter() for d in YOUTH_DIMENSIONS}
            bands = [tuple(b) for b in indicator.age_bands or ()] or list(DEFAULT_BANDS)
            payload["age_bands"][indicator.code] = [list(b) for b in bands]
            for (org_id, setting, sex, born, month, governorate), count in youth_profiles(
                    indicator.rule, year, list(codes)).items():
                settings[codes[org_id]][setting] += count
                dimensions["sex"][sex] += count
                dimensions["age_band"][age_band(born, month, year.end, bands)] += count
                dimensions["governorate"][governorate] += count
            payload["settings"][indicator.code] = {k: dict(v) for k, v in settings.items()}
            if indicator.rule != "youth_improved":
                payload["lifetime"][indicator.code] = sum(youth_profiles(
                    indicator.rule, award, list(codes)).values())
            payload["dimensions"][indicator.code] = {k: dict(v) for k, v in dimensions.items()}
    scores = {o.code: [[0.0, 0] for _q in range(4)] for o in csos}
    for row in score_rows(year, list(codes)):
        if row[7] is not None:
            cell = scores[codes[row[0]]][Period.containing(row[6]).quarter - 1]
            cell[0] += row[7]
            cell[1] += 1
    payload["scores"] = scores
    payload["quality"] = year_quality(csos, fiscal_year)
    return payload


@pytest.fixture
def demo():
    """The demo data of `make run` (330 youth), plus what the demo lacks: a youth moved to
    another CSO after attending, a session later this year, figures entered by hand."""
    _seed_demo()


def _seed_demo() -> None:
    seed_demo()
    seed_demo_beneficiaries(330, 1)
    seed_demo_activities(1)
    seed_demo_cases(1)
    seed_demo_responses(1)
    db.session.flush()
    moved = db.session.scalars(sa.select(Beneficiary).where(Beneficiary.id.in_(
        sa.select(Attendance.beneficiary_id))).order_by(Beneficiary.id)).first()
    target = next(o.id for o in funded_csos() if o.id != moved.organization_id)
    moved.sequence = (db.session.scalar(sa.select(sa.func.max(Beneficiary.sequence)).where(
        Beneficiary.organization_id == target)) or 0) + 1
    moved.organization_id = target
    later = db.session.scalars(sa.select(ActivitySession).order_by(
        ActivitySession.date.desc())).first()
    if later is not None and later.date <= date.today():
        later.date = min(Period(YEAR).end, date.today() + timedelta(days=3))
    # Placements checked 3 and 6 months on, the checks falling last year and this year.
    for number, outcome in enumerate(db.session.scalars(sa.select(Outcome).order_by(
            Outcome.id).limit(8))):
        outcome.kind = "job" if number % 3 else "own_business"
        outcome.on_date = months_before(date.today() - timedelta(days=40 * number + 5),
                                        3 if number % 2 else 6)
        outcome.check_3m, outcome.check_6m = True, number % 4 != 1
    manual = db.session.scalars(sa.select(Indicator).where(Indicator.rule.is_(None))).first()
    if manual is not None:
        cso = next(o for o in funded_csos() if o.code == "BA")
        for quarter, value in ((1, 4), (2, 2.6)):
            db.session.add(ManualValue(indicator_id=manual.id, organization_id=cso.id,
                                       fiscal_year=YEAR, quarter=quarter, value=value,
                                       evidence="training list"))
    db.session.flush()


def test_the_years_figures_equal_the_figures_per_indicator(demo):
    """Last year, this year (a quarter under way, quarters to come) and next year."""
    for fiscal_year in (YEAR - 1, YEAR, YEAR + 1):
        expected = _per_indicator(fiscal_year)
        found = year_figures(fiscal_year)
        assert found.keys() == expected.keys()
        for part in expected:
            assert found[part] == expected[part], (fiscal_year, part)
    # The demo exercises every indicator (a comparison of zeros would prove nothing).
    both = [year_figures(y) for y in (YEAR - 1, YEAR)]
    for indicator in indicators():
        if not _is_mean(indicator):
            assert any(sum(map(sum, p["quarters"][indicator.code].values())) for p in both), \
                indicator.code


def test_sqlite_reads_the_youth_by_profile_off_their_index(demo):
    """The youth tables' profile counts name ix_beneficiary_profile to SQLite (a hint
    SQLAlchemy's SQLite compiler leaves out unless models/common.py adds it), and SQLite
    reads it instead of sorting the youth; PostgreSQL gets no hint."""
    _figures, statements = statements_of(lambda: year_figures(YEAR))
    hinted = [s for s in statements if "INDEXED BY ix_beneficiary_profile" in s]
    if db.engine.dialect.name != "sqlite":
        assert not hinted
        return
    assert len(hinted) == 2  # the enrolments' and the endlines'
    for statement in hinted:
        plan = " ".join(row[-1] for row in db.session.execute(sa.text(
            "EXPLAIN QUERY PLAN " + statement.replace("?", "NULL"))))
        assert "SCAN beneficiary USING COVERING INDEX ix_beneficiary_profile" in plan, plan
        # (the per-youth subquery, materialised before, may sort: the youth may not)
        assert "TEMP B-TREE" not in plan.split("ix_beneficiary_profile", 1)[1], plan


def test_the_cso_pages_agree_with_the_years_figures(demo):
    """A CSO's own quarter (values_by_org) is the quarter the reviewers' release starts
    from, for every indicator with a rule."""
    payload = year_figures(YEAR - 1)
    csos = funded_csos()
    for indicator in indicators():
        if _is_mean(indicator) or indicator.rule is None:
            continue
        for q in range(1, 5):
            live = values_by_org(indicator, Period(YEAR - 1, q), csos)
            assert {o.code: int(round(live[o.id])) for o in csos} == {
                o.code: payload["quarters"][indicator.code][o.code][q - 1] for o in csos}


def test_the_score_figures_keep_each_youth_once(demo):
    """The score changes, grouped in the database, count a youth with two endlines and two
    baselines once, from the row `score_rows` keeps (the first endline, then baseline), and
    add up decimal changes as `score_rows` does."""
    endlines = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.wave == "endline", SurveyResponse.submitted_on.between(
            Period(YEAR).start, date.today())).order_by(SurveyResponse.id)).all()
    assert endlines, "the demo has this year's endlines"
    for response in endlines[:3]:
        for wave, change in (("endline", 7.35), ("baseline", -2.1)):
            scores = {name: None if value is None else value + change
                      for name, value in response.scores.items()}
            db.session.add(SurveyResponse(
                organization_id=response.organization_id, version_id=response.version_id,
                survey_id=response.survey_id, beneficiary_id=response.beneficiary_id,
                wave=wave, answers=response.answers, scores=scores,
                content_hash=response.content_hash, submitted_on=response.submitted_on))
    for response in endlines[3:6]:  # decimals: the sums must not depend on their order
        response.scores = {name: None if value is None else value + 0.1
                           for name, value in response.scores.items()}
    db.session.flush()
    expected, found = _per_indicator(YEAR), year_figures(YEAR)
    # The same youth and sums; the database's sum is exact (20.3 where adding up the floats
    # one by one gives 20.300000000000004): the published means, to 0.1, are the same.
    for code, cells in expected["scores"].items():
        assert [n for _s, n in found["scores"][code]] == [n for _s, n in cells], code
        assert [s for s, _n in found["scores"][code]] == pytest.approx(
            [s for s, _n in cells], abs=1e-9), code
    assert found["dimensions"] == expected["dimensions"]
    assert found["quarters"] == expected["quarters"]


def test_the_figures_read_on_several_connections_are_the_same(file_app, monkeypatch):
    """The refresh outside a request (cron, the command line, the job) reads the tables on
    several connections at once (`read_concurrently`), each seeing the committed data: the
    payload is the one read on the session alone, for last, this and next year. On a
    database file of its own, where commits are real (the suite's rolled-back transaction
    is not seen by other connections)."""
    from flask_migrate import upgrade

    from bladi_cases.seed import seed_reference
    from bladi_cases.services.reports import indicators as engine
    from bladi_cases.services.reports.release import FIGURES_CONNECTIONS, refresh

    with file_app.app_context():
        upgrade()
        seed_reference()
        _seed_demo()
        cso = next(o for o in funded_csos() if o.code == "BA")
        db.session.add(QuarterlyReport(  # an approved quarter keeps its frozen figures
            organization_id=cso.id, fiscal_year=YEAR - 1, quarter=1, status="approved",
            author_id=db.session.scalars(sa.select(User).where(
                User.email == "manager@demo.bladi.tn")).one().id,
            figures={"youth_reached": 999}))
        db.session.commit()
        for fiscal_year in (YEAR - 1, YEAR, YEAR + 1):
            alone = year_figures(fiscal_year)
            db.session.commit()
            assert year_figures(fiscal_year, workers=FIGURES_CONNECTIONS) == alone, fiscal_year
            db.session.commit()
            if fiscal_year == YEAR - 1:
                assert alone["approved"] == [f"{cso.code}:1"]
                assert alone["quarters"]["youth_reached"][cso.code][0] == 999
        assert sum(map(sum, alone["quarters"]["youth_reached"].values())) == 0  # next year
        calls = []

        def counted(reads, workers):
            calls.append(workers)
            return read_concurrently(reads, workers)

        read_concurrently = engine.read_concurrently
        monkeypatch.setattr(engine, "read_concurrently", counted)
        stored = refresh(YEAR)
        assert calls == [FIGURES_CONNECTIONS]
        expected = year_figures(YEAR)
        assert sum(map(sum, expected["quarters"]["youth_reached"].values())) > 0
        assert {k: v for k, v in stored.items() if k != "protection"} == expected
        db.session.rollback()

        # On SQLite, a commit landing while the connections begin (here, right after the
        # first one's first read) means they may not see the same data: they begin again.
        begun, commits = [], []

        def commit_elsewhere(_conn, _cursor, statement, *_args) -> None:
            if statement == engine._FIRST_READ:
                begun.append(statement)
                if not commits:
                    with contextlib.closing(sqlite3.connect(db.engine.url.database)) as other:
                        other.execute("UPDATE user_account SET display_name = display_name "
                                      "|| '.' WHERE id = (SELECT min(id) FROM user_account)")
                        other.commit()
                    commits.append(True)

        sa.event.listen(db.engine, "after_cursor_execute", commit_elsewhere)
        try:
            assert year_figures(YEAR, workers=FIGURES_CONNECTIONS) == expected
        finally:
            sa.event.remove(db.engine, "after_cursor_execute", commit_elsewhere)
        assert commits and len(begun) == 2 * FIGURES_CONNECTIONS, "begun once more"


def test_the_figures_settings_end_with_the_figures(demo):
    """PostgreSQL: what the figures' statements need (no sort, no JIT...) does not stay on
    the caller's transaction, which a request goes on reading in."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner settings")
    year_figures(YEAR)
    assert db.session.execute(sa.text("SHOW enable_sort")).scalar() == "on"
    assert db.session.execute(sa.text("SHOW jit")).scalar() == db.session.execute(
        sa.text("SELECT reset_val FROM pg_settings WHERE name = 'jit'")).scalar()

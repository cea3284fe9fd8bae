"""The fiscal year's release: every table a reviewer or the donor sees, suppressed together
(a figure hidden in one table is hidden in all), the new outcome indicators, the life-of-award
column, the setting filter and the figures snapshot."""

from __future__ import annotations

import io
import re
import uuid
from datetime import date, timedelta

import openpyxl
import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import (
    FiguresSnapshot,
    Indicator,
    Organization,
    Role,
    Survey,
    SurveyResponse,
)
from bladi_cases.privacy.release import Release
from bladi_cases.privacy.suppression import TOTAL
from bladi_cases.sample_survey import FORM_ID
from bladi_cases.services import ValidationError
from bladi_cases.services.cases import cases
from bladi_cases.services.reports import reports as service
from bladi_cases.services.reports.exports import disaggregation_rows, tracking_rows
from bladi_cases.services.reports.indicators import Period, months_before
from bladi_cases.services.reports.release import ALL, year_figures, year_release

from .conftest import get_file, login

PERIOD = Period.containing(date.today())
YEAR = PERIOD.fiscal_year
K = 5


def _indicator(code: str) -> Indicator:
    return db.session.scalars(sa.select(Indicator).where(Indicator.code == code)).one()


# --- The Release on its own --------------------------------------------------------------

def test_a_figure_hidden_in_one_table_is_hidden_in_every_table():
    release = Release(k=5)
    # Table A hides nothing on its own; table B hides "b" and, to protect it, its total.
    release.add("a", {("x", "n"): 20, ("y", "n"): 30}, ["x", "y"], ["n"],
                lambda key: "total" if key[0] == TOTAL else None)
    release.add("b", {("b", "n"): 3, ("c", "n"): 47}, ["b", "c"], ["n"],
                lambda key: "total" if key[0] == TOTAL else None)
    tables = release.publish()
    assert tables["b"].hidden("b", "n") and tables["b"].hidden("c", "n")
    assert release.shown("total") == "50"  # two hidden parts cannot be told apart


def test_two_tables_that_disagree_on_a_figure_are_refused():
    release = Release(k=5)
    release.add("a", {("x", "n"): 20}, ["x"], ["n"], lambda key: "t" if key[0] == TOTAL else None)
    with pytest.raises(ValueError):
        release.add("b", {("x", "n"): 21}, ["x"], ["n"],
                    lambda key: "t" if key[0] == TOTAL else None)


def test_a_hidden_total_is_hidden_in_the_other_tables_too():
    release = Release(k=5)
    # CSO by quarter: the only CSO has 3 youth in the year -> its total is hidden.
    release.add("trend", {("A", "Q1"): 3, ("B", "Q1"): 40}, ["A", "B"], ["Q1"],
                lambda key: ("fy", key[0]) if key[1] == TOTAL else None)
    # The same CSO totals as cells of a second table, whose own rule would show them.
    release.add("setting", {("A", "s"): 3, ("B", "s"): 40}, ["A", "B"], ["s"],
                lambda key: ("fy", key[0]) if key[1] == TOTAL else None)
    release.publish()
    assert release.shown(("fy", "A")) == "…"
    assert release.hidden(("fy", "B")), "B is hidden too, or A = total - B"
    for name in ("trend", "setting"):
        assert release.tables[name].hidden("B", TOTAL)
    assert release.sum_of([("fy", "A"), ("fy", "B")]) == "…"


# --- The year's release from the records -------------------------------------------------

@pytest.fixture
def people(make_user):
    return {"manager": make_user(Role.CSO_MANAGER, "BA"), "reviewer": make_user(Role.REVIEWER),
            "donor": make_user(Role.DONOR), "worker": make_user(Role.FIELD_WORKER, "BA"),
            "acec": make_user(Role.FIELD_WORKER, "ACEC")}


@pytest.fixture
def sites(make_site):
    return {"BA": make_site("BA"), "ACEC": make_site("ACEC", name="École", kind="school")}


@pytest.fixture
def program(sites, make_beneficiary):
    """BA: 11 girls and 1 boy in a youth centre; ACEC: 6 girls at school."""
    ba, acec = sites["BA"], sites["ACEC"]
    youth = [make_beneficiary("BA", first_name_ar=f"ريم{i}", site=ba) for i in range(11)]
    youth.append(make_beneficiary("BA", first_name_ar="سامي", sex="male", site=ba))
    youth += [make_beneficiary("ACEC", first_name_ar=f"هند{i}", site=acec) for i in range(6)]
    return youth


def _numbers(values) -> list[int]:
    found = []
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append(value)
        elif isinstance(value, str) and value.strip().isdigit():
            found.append(int(value))
    return found


def test_the_disaggregation_never_leaves_one_hidden_category(people, program):
    rows = disaggregation_rows(YEAR, "en", K)
    tables: dict[tuple, list] = {}
    for name, dimension, category, value in rows[1:]:
        tables.setdefault((name, dimension), []).append((category, value))
    sex = dict(tables[("Youth reached", "Sex")])
    assert sex["Male"] == "…"
    assert sex["Female"] == "…", "else female = the year's total - nothing hidden"
    release = year_release(YEAR, K)
    reached = _indicator("youth_reached")
    year_total = release.year(reached)
    for (_name, dimension), values in tables.items():
        hidden = [c for c, v in values if v in ("…", "…")]
        assert len(hidden) != 1 or year_total in ("…", "…"), (dimension, values)
    assert not [n for n in _numbers(v for r in rows[1:] for v in r[3:]) if 0 < n < K]


def test_one_figure_is_shown_the_same_everywhere(client, people, program):
    release = year_release(YEAR, K)
    reached = _indicator("youth_reached")
    shown = {code: release.year(reached, code) for code in release.csos}
    assert shown["BA"] == "12" and shown["ACEC"] == "6"
    login(client, people["reviewer"])
    html = client.get(f"/reports/?fy={YEAR}&cso=BA").get_data(as_text=True)
    assert "<td>12</td>" in html
    rows = disaggregation_rows(YEAR, "en", K)
    assert ["Youth reached", "CSO", "BA", 12] in rows
    tracking = tracking_rows(YEAR, "en", K)
    assert next(r for r in tracking if r[0] == "Youth reached")[11] == 18


def test_reviewer_never_receives_a_count_between_1_and_k_anywhere(
        client, people, program, sites, make_activity, make_case):
    make_activity(sites["BA"], program[0], people["worker"])
    make_case(program[0], people["worker"])
    report = service.generate_report(people["manager"], _org("BA"), PERIOD)
    service.save_narrative(people["manager"], report, {"achievements": "ورشات"})
    service.submit_report(people["manager"], report)
    db.session.commit()
    login(client, people["reviewer"])
    pages = [f"/reports/?fy={YEAR}&indicator={i.code}" for i in service.indicators()]
    pages += [f"/reports/?fy={YEAR}&setting={s}&indicator=youth_reached"
              for s in ("school", "youth_centre", "rehabilitation_centre")]
    pages += [f"/reports/?fy={YEAR}&governorate=TN-11", f"/reports/quarterly/{report.uuid}"]
    for page in pages:
        html = client.get(page).get_data(as_text=True)
        cells = re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", html)
        assert not [n for n in _numbers(cells) if 0 < n < K], page
    book = openpyxl.load_workbook(io.BytesIO(get_file(
        client, f"/reports/exports/tracking-{YEAR}.xlsx").data))
    for sheet in book.worksheets:
        header = [c.value for c in sheet[1]]
        figures = [i for i, h in enumerate(header) if str(h).startswith(("Q", "Fiscal", "Life of",
                                                                          "Value"))]
        for row in sheet.iter_rows(min_row=2, values_only=True):
            assert not [n for n in _numbers(row[i] for i in figures) if 0 < n < K], row
    text = get_file(client, f"/reports/exports/tracking-{YEAR}.csv").data.decode("utf-8-sig")
    assert "…" in text


def _org(code: str) -> Organization:
    return db.session.scalars(sa.select(Organization).where(Organization.code == code)).one()


def test_the_setting_filter_counts_youth_by_setting(client, people, program):
    login(client, people["reviewer"])
    html = client.get(f"/reports/?fy={YEAR}&setting=youth_centre").get_data(as_text=True)
    assert "<td>12</td>" in html  # BA's youth centre
    html = client.get(f"/reports/?fy={YEAR}&setting=school&cso=ACEC").get_data(as_text=True)
    assert "<td>6</td>" in html
    sessions = client.get(f"/reports/?fy={YEAR}&setting=school").get_data(as_text=True)
    assert "—" in sessions, "sessions are not counted by setting"


def test_a_report_seen_by_a_reviewer_hides_what_the_release_hides(client, people, program):
    report = service.generate_report(people["manager"], _org("BA"), PERIOD)
    db.session.commit()
    release = year_release(YEAR, K)
    placed = _indicator("youth_reached")
    assert release.quarter(placed, "BA", PERIOD.quarter) == "12"
    login(client, people["reviewer"])
    html = client.get(f"/reports/quarterly/{report.uuid}").get_data(as_text=True)
    assert "<td>12</td>" in html
    # With only the boy left in BA this quarter, BA's count falls below k: hidden.
    report.figures = {**report.figures, "youth_reached": 1.0}
    db.session.commit()
    html = client.get(f"/reports/quarterly/{report.uuid}").get_data(as_text=True)
    assert "<td>1</td>" not in html


# --- New indicators ----------------------------------------------------------------------

def _respond(youth, wave: str, score: float, day: date) -> None:
    survey = db.session.scalars(sa.select(Survey).where(
        Survey.code == FORM_ID, Survey.organization_id.is_(None))).one()
    db.session.add(SurveyResponse(
        uuid=uuid.uuid4(), organization_id=youth.organization_id, version_id=survey.current.id,
        survey_id=survey.id, beneficiary_id=youth.id, wave=wave, answers={},
        scores={"wellbeing": score}, content_hash=uuid.uuid4().hex, submitted_on=day))
    db.session.flush()


def test_score_improvement_and_mean_change(people, program):
    today = date.today()
    changes = [(10, 14), (12, 11), (8, 8), (9, 15), (20, 22), (7, 10)]  # +4 -1 0 +6 +2 +3
    for youth, (before, after) in zip(program[:6], changes, strict=True):
        _respond(youth, "baseline", before, today - timedelta(days=60))
        _respond(youth, "endline", after, today)
    _respond(program[6], "baseline", 10, today)  # no endline: in neither figure
    db.session.commit()
    ba = _org("BA")
    assert service.value_of(_indicator("youth_improved"), ba, PERIOD) == 4
    assert service.value_of(_indicator("score_change"), ba, PERIOD) == pytest.approx(
        14 / 6, abs=0.01)
    release = year_release(YEAR, K)
    assert release.payload["dimensions"]["youth_improved"]["sex"] == {"female": 4}
    assert release.year(_indicator("score_change"), "BA") == "+2.3"
    assert release.year(_indicator("score_change"), "ACEC") == "—"
    rows = tracking_rows(YEAR, "en", K)
    improved = next(r for r in rows if r[0] == "Youth whose score improved")
    assert improved[11] == "…"  # 4 youth: a count below k stays hidden
    assert "hidden" in improved[-1]


def test_a_mean_over_fewer_than_k_youth_is_hidden(people, program):
    for youth, (before, after) in zip(program[:3], [(1, 2), (3, 9), (4, 4)], strict=True):
        _respond(youth, "baseline", before, date.today() - timedelta(days=30))
        _respond(youth, "endline", after, date.today())
    db.session.commit()
    release = year_release(YEAR, K)
    assert release.year(_indicator("score_change"), "BA") == "…"
    assert release.year(_indicator("score_change")) == "…"


def test_still_employed_at_three_and_six_months(people, program):
    worker = people["worker"]
    day = months_before(date.today(), 3)
    youth = program[0]
    youth.first_contact_date = day - timedelta(days=200)
    case = cases.open_case(worker, youth, {"workers": [worker], "needs": {"employment": 1},
                                           "risk_level": "low"})
    outcome = cases.add_outcome(worker, case, {"kind": "job", "on_date": day})
    cases.record_check(worker, outcome, 3, True)
    db.session.commit()
    ba = _org("BA")
    check_period = Period.containing(date.today())
    assert service.value_of(_indicator("youth_employed_3m"), ba, check_period) == 1
    assert service.value_of(_indicator("youth_employed_6m"), ba, check_period) == 0
    cases.record_check(worker, outcome, 3, False)
    db.session.commit()
    assert service.value_of(_indicator("youth_employed_3m"), ba, check_period) == 0


def test_months_before_keeps_the_end_of_short_months():
    assert months_before(date(2027, 5, 31), 3) == date(2027, 2, 28)
    assert months_before(date(2027, 1, 15), 6) == date(2026, 7, 15)


# --- Life of award, snapshot -------------------------------------------------------------

def test_life_of_award_counts_each_youth_once(app, people, program):
    app.config["BLADI_AWARD_FIRST_FY"] = YEAR - 1
    try:
        rows = tracking_rows(YEAR, "en", K)
    finally:
        app.config["BLADI_AWARD_FIRST_FY"] = 2025
    header = rows[0]
    reached = next(r for r in rows if r[0] == "Youth reached")
    assert reached[header.index("Life of award to date")] == 18
    sessions = next(r for r in rows if r[0] == "Sessions held")
    assert sessions[header.index("Life of award to date")] == 0


def test_the_snapshot_is_reused_then_refreshed(app, people, program, sites, make_beneficiary):
    app.config["BLADI_DASHBOARD_CACHE_SECONDS"] = 300
    try:
        first = year_release(YEAR, K, 300)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(FiguresSnapshot)) == 1
        for i in range(5):
            make_beneficiary("BA", first_name_ar=f"جديد{i}", site=sites["BA"])
        again = year_release(YEAR, K, 300)
        reached = _indicator("youth_reached")
        assert again.year(reached, "BA") == first.year(reached, "BA") == "12", "from snapshot"
        result = app.test_cli_runner().invoke(args=["reports", "refresh", "--fy", str(YEAR)])
        assert result.exit_code == 0, result.output
        assert year_release(YEAR, K, 300).year(reached, "BA") == "17"
    finally:
        app.config["BLADI_DASHBOARD_CACHE_SECONDS"] = 0
    assert year_figures(YEAR)["quarters"]["youth_reached"]["BA"][PERIOD.quarter - 1] == 17
    assert year_release(YEAR, K).year(reached, ALL) == "23"


# --- Age bands per indicator ---------------------------------------------------------------

def test_age_bands_are_set_per_indicator_and_used(client, people, program):
    reached = _indicator("youth_reached")
    login(client, people["reviewer"])
    response = client.post("/reports/targets", data={
        "action": "bands", "indicator": "youth_reached", "age_bands": "10-17, 18-29"})
    assert response.status_code == 302
    assert reached.age_bands == [[10, 17], [18, 29]]
    bands = {category for name, dimension, category, _v in disaggregation_rows(YEAR, "en", K)[1:]
             if name == "Youth reached" and dimension == "Age band"}
    assert bands <= {"10-17", "18-29", "other"} and bands & {"10-17", "18-29"}
    placed = {category for name, dimension, category, _v in disaggregation_rows(YEAR, "en", K)[1:]
              if name == "Youth placed" and dimension == "Age band"}
    assert not placed & {"10-17", "18-29"}, "other indicators keep their own bands"
    assert "10-17, 18-29" in client.get("/reports/targets").get_data(as_text=True)


@pytest.mark.parametrize("text", ["10-14, 12-20", "abc", "20-10", "", "10-14, 15", "5-120"])
def test_bad_age_bands_are_refused_and_nothing_changes(client, people, text):
    reached = _indicator("youth_reached")
    before = list(reached.age_bands)
    with pytest.raises(ValidationError):
        service.set_age_bands(people["reviewer"], reached, text)
    db.session.rollback()
    assert _indicator("youth_reached").age_bands == before
    login(client, people["reviewer"])
    client.set_cookie("lang", "fr", domain="bladi.test")
    client.post("/reports/targets", data={"action": "bands", "indicator": "youth_reached",
                                          "age_bands": text})
    page = client.get("/reports/targets").get_data(as_text=True)
    assert "tranches" in page or "chevaucher" in page or "séparées" in page
    assert _indicator("youth_reached").age_bands == before


def test_only_reviewers_set_age_bands(client, people):
    login(client, people["manager"])
    assert client.post("/reports/targets", data={
        "action": "bands", "indicator": "youth_reached", "age_bands": "10-29"}).status_code == 403


def test_a_stale_snapshot_is_shown_then_refreshed_by_a_job(app, client,
                                                                            people, program):
    from bladi_cases.models.common import utcnow

    payload = year_figures(YEAR)
    payload["quarters"]["youth_reached"]["BA"][PERIOD.quarter - 1] = 77  # an old figure
    db.session.add(FiguresSnapshot(fiscal_year=YEAR, payload=payload,
                                   computed_at=utcnow() - timedelta(minutes=10)))
    db.session.commit()
    app.config["BLADI_DASHBOARD_CACHE_SECONDS"] = 300
    try:
        login(client, people["reviewer"])
        response = client.get(f"/reports/?fy={YEAR}&indicator=youth_reached")
        assert "<td>77</td>" in response.get_data(as_text=True), "shown without waiting"
        # A background job recomputes the figures (run at once after the request here).
        db.session.expunge_all()  # the job replaced the row (SQLite may reuse its id)
        latest = db.session.scalars(sa.select(FiguresSnapshot).order_by(
            FiguresSnapshot.computed_at.desc())).first()
        assert latest.computed_at > utcnow() - timedelta(minutes=1)
        assert latest.payload["quarters"]["youth_reached"]["BA"][PERIOD.quarter - 1] == 12
        html = client.get(f"/reports/?fy={YEAR}&indicator=youth_reached").get_data(as_text=True)
        assert "<td>77</td>" not in html and "<td>12</td>" in html
    finally:
        app.config["BLADI_DASHBOARD_CACHE_SECONDS"] = 0

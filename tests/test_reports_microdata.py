"""The donor's microdata: one row per youth reached in the fiscal year, with the sessions,
scores and outcome of that year only, in a file where every profile (all the descriptive
columns, as written) is shared by at least k rows and no measure takes a single value within
a profile. Checked on the functions the export route calls, through the route as the donor,
and on the demo data."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from bladi_cases.extensions import db
from bladi_cases.models import Enrolment, Role, Survey, SurveyResponse
from bladi_cases.privacy.deidentify import k_anonymise, pseudonym, uniform_values, wider_bands
from bladi_cases.services.activities import activities
from bladi_cases.services.beneficiaries.registry import end_enrolment
from bladi_cases.services.cases import cases as case_service
from bladi_cases.services.reports import exports
from bladi_cases.services.reports.exports import (
    GENERALISATION,
    MEASURES,
    MICRODATA_FIELDS,
    QUASI_IDENTIFIERS,
    microdata,
    microdata_table,
)
from bladi_cases.services.reports.indicators import Period, first_scales
from bladi_cases.services.reports.release import SETTINGS, year_release

from .conftest import get_file, login

ROOT = Path(__file__).resolve().parent.parent
K = 5
TODAY = date.today()
YEAR = Period.containing(TODAY).fiscal_year
THIS, LAST = Period(YEAR), Period(YEAR - 1)


@pytest.fixture(autouse=True)
def _years_of_today():
    """THIS and LAST follow YEAR, which conftest's `_dates_of_today` moves on when a run
    crosses the turn of a fiscal year (1 October)."""
    global THIS, LAST
    THIS, LAST = Period(YEAR), Period(YEAR - 1)
KEY = b"k" * 32  # the export key, fixed so that a test can tell whose row is whose


def _classes(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows grouped by every descriptive column exactly as written ("*" included)."""
    classes: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        classes[tuple(row[c] for c in QUASI_IDENTIFIERS)].append(row)
    return classes


def _assert_protected(rows: list[dict], k: int) -> None:
    """What the attacker gets: no profile of fewer than k rows, no measure with a single
    value (blanks aside) within a profile."""
    for profile, members in _classes(rows).items():
        assert len(members) >= k, (profile, len(members))
        for measure in MEASURES:
            shown = {m[measure] for m in members} - {None, ""}
            assert len(shown) != 1, (profile, measure, shown)


def _as_dicts(rows) -> list[dict]:
    rows = list(rows)
    assert rows[0] == MICRODATA_FIELDS
    return [dict(zip(MICRODATA_FIELDS, row, strict=True)) for row in rows[1:]]


# --- The algorithm alone ------------------------------------------------------------------

# Steps like the microdata's: a widening that leaves some values as they are, then "*".
STEPS = [lambda p: ({"a": "ab", "b": "ab"}.get(p[0], p[0]), p[1], p[2]),
         lambda p: ("*", p[1], p[2]), lambda p: ("*", "*", p[2]), lambda p: ("*", "*", "*")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("xy"),
                          st.sampled_from("mf")), max_size=60), st.integers(1, 7))
def test_k_anonymise_leaves_no_rare_profile_in_the_file_as_written(profiles, k):
    written, taken = k_anonymise(profiles, k, STEPS)
    kept = [w for w in written if w is not None]
    assert all(kept.count(w) >= k for w in kept)
    for original, out, steps in zip(profiles, written, taken, strict=True):
        if out is None:  # left out only once every step was taken
            assert steps == len(STEPS) + 1
            continue
        for step in STEPS[:steps]:  # the steps taken, in their order
            original = step(original)
        assert out == original
    # A profile shared by k rows keeps its detail: local recoding, not the whole column.
    assert all(t == 0 for p, t in zip(profiles, taken, strict=True) if profiles.count(p) >= k)
    # Only what no step could save is left out: fewer than k rows, all alike at the end.
    assert taken.count(len(STEPS) + 1) < k


def test_rows_that_move_make_profiles_that_are_checked_in_turn():
    profiles = [("a", "x", "m"), ("c", "y", "m"), ("d", "x", "f"), ("c", "x", "f")] + \
        [("b", "y", "f")] * 3
    written, taken = k_anonymise(profiles, 3, STEPS)
    # Two steps make ("*", "x", "f") of two rows: too few, so they move on, and so do the
    # others, until all four meet as ("*", "*", "*"); the common profile keeps its detail.
    assert written == [("*", "*", "*")] * 4 + [("b", "y", "f")] * 3
    assert taken == [4, 4, 4, 4, 0, 0, 0]
    assert k_anonymise(profiles, 8, STEPS)[0] == [None] * 7


def test_uniform_values_and_wider_bands():
    rows = [("p", (0, None, "job")), ("p", (0, 11.0, "job")), ("p", (1, None, "")),
            ("q", (2, 3.0, "job")), ("q", (2, 4.0, "training_completed")), ("r", (5, None, None))]
    assert uniform_values(rows) == {"p": frozenset({1, 2}), "q": frozenset({0}),
                                    "r": frozenset({0})}
    assert wider_bands() == {"10-14": "10-17", "15-17": "10-17", "18-24": "18-29",
                             "25-29": "18-29"}
    # The CSO is generalised before its governorate: never a "*" governorate by its CSO.
    columns = [step.column for step in GENERALISATION]
    assert columns.index("cso") < columns.index("governorate")


# --- Generated data with rare combinations --------------------------------------------------

def _consent(age: int, kind: str) -> dict:
    if age >= 18:
        return {"consent_given_by": "self"}
    if kind == "rehabilitation_centre":
        return {"consent_given_by": "authority", "consent_authority": "إدارة المركز",
                "guardian_name": "الإدارة", "guardian_relationship": "مركز"}
    return {"consent_given_by": "guardian", "guardian_name": "منجي الطرابلسي",
            "guardian_relationship": "أب"}


@pytest.fixture
def cohort(make_user, make_site, make_beneficiary):
    """Forty youth of two CSOs, three sites in two governorates, common and rare profiles;
    some left before this fiscal year, some arrived in it. Each has sessions, scores and
    outcomes dated last year and this year. Returns what each youth reached this year must
    show (youth id -> sessions, baseline, endline, outcome of this year), and the youth
    reached last year."""
    rng = random.Random(14)
    staff = {code: make_user(Role.FIELD_WORKER, code) for code in ("BA", "ACEC")}
    sites = [make_site("BA", "Maison des jeunes A")] * 6 + \
        [make_site("BA", "Lycée B", kind="school")] * 3 + \
        [make_site("ACEC", "Centre C", kind="rehabilitation_centre", governorate="TN-11")] * 2
    club = activities.create_activity(staff["BA"], sites[0].organizations[0], {
        "name": "نادي المسرح", "kind": "drama", "site": sites[0],
        "planned_start": LAST.start + timedelta(days=5), "planned_end": None,
        "planned_sessions": 20, "default_duration_minutes": 90, "completion_rule": "percent",
        "completion_threshold": 75, "present_by_default": True, "weekdays": [0],
        "facilitators": [staff["BA"]]})
    survey_id, scale = first_scales()[0]
    survey = db.session.get(Survey, survey_id)
    expected, last_year, members = {}, set(), []
    for index in range(40):
        site = rng.choice(sites)
        age = rng.choice((14, 16, 16, 20, 20, 20, 23, 26))
        arrived = LAST.start + timedelta(days=3) if index % 8 else THIS.start
        youth = make_beneficiary(
            site.organizations[0].code, first_name_ar=f"شاب{index}", site=site,
            sex=rng.choice(("female", "female", "male")), setting_kind=site.kind,
            governorate_code=site.governorate_code, first_contact_date=arrived,
            consent_date=arrived, birth_date=TODAY - timedelta(days=365 * age + 100),
            **_consent(age, site.kind))
        if arrived < THIS.start:
            last_year.add(youth.id)
        left = arrived < THIS.start and index % 5 == 0  # left: not reached this year
        if left:
            enrolment = db.session.scalars(sa.select(Enrolment).where(
                Enrolment.beneficiary_id == youth.id)).one()
            end_enrolment(None, enrolment, LAST.end - timedelta(days=5), "completed")
        elif site is sites[0] and arrived < THIS.start:
            activities.enrol_in_activity(staff["BA"], youth, club, arrived)
            members.append(youth)
        # Measures last year (never to show this year) and this year.
        scores = {}
        for period, day, low in ((LAST, LAST.start + timedelta(days=20), 1),
                                 (THIS, THIS.start, 11)):
            if period is LAST and arrived >= THIS.start:
                continue
            for wave in ("baseline", "endline"):
                if rng.random() < 0.6:
                    value = float(rng.randint(low, low + 4))
                    scores[(period, wave)] = value
                    db.session.add(SurveyResponse(
                        uuid=uuid.uuid4(), organization_id=youth.organization_id,
                        version_id=survey.current.id, survey_id=survey_id,
                        beneficiary_id=youth.id, wave=wave, answers={},
                        scores={scale: value}, content_hash="test", submitted_on=day))
        outcome = None
        if rng.random() < 0.7:
            worker = staff[site.organizations[0].code]
            case = case_service.open_case(worker, youth, {
                "workers": [worker], "needs": {"employment": 1}, "risk_level": "low",
                "opened_on": arrived})
            if arrived < THIS.start:
                case_service.add_outcome(worker, case, {"kind": "other", "on_date":
                                                        LAST.end - timedelta(days=30)})
            for kind in rng.sample(("job", "training_completed", "returned_to_school"),
                                   rng.randint(0, 2)):
                case_service.add_outcome(worker, case, {"kind": kind, "on_date": THIS.start})
                outcome = kind  # the latest of the year: the last recorded that day
        if not left:
            expected[youth.id] = [0, scores.get((THIS, "baseline")),
                                  scores.get((THIS, "endline")), outcome]
    # Two sessions last year, one this year (on its first day: never ahead of today).
    for day in (LAST.start + timedelta(days=10), LAST.start + timedelta(days=40), THIS.start):
        marks = {m.id: rng.choice(("present", "present", "absent")) for m in members}
        activities.record_session(staff["BA"], club, {"date": day, "duration_minutes": 60},
                                  marks)
        if day >= THIS.start:
            for youth_id, mark in marks.items():
                expected[youth_id][0] += mark == "present"
    db.session.commit()
    return {"this": expected, "last": last_year}


def _every_column_and_measure(monkeypatch) -> None:
    """The file with every column and measure the release would let through if it hid
    nothing: for the tests of which rows and values the file holds, and of k-anonymity and
    l-diversity, apart from the rule that follows the tables (tested on its own below)."""
    real = exports.publishable

    def everything(release):
        return replace(real(release), columns=frozenset(QUASI_IDENTIFIERS),
                       measures=frozenset(MEASURES))
    monkeypatch.setattr(exports, "publishable", everything)


def test_rows_are_the_youth_reached_with_their_measures_of_the_year(cohort, monkeypatch):
    monkeypatch.setattr(exports.secrets, "token_bytes", lambda n: KEY)
    _every_column_and_measure(monkeypatch)
    expected = cohort["this"]
    table = microdata_table(YEAR, K)
    assert table.reached == len(expected), "the youth reached, none of those who left"
    assert len(table.rows) + table.suppressed == len(expected)
    assert sum(table.generalised.values()) == len(expected)
    assert any(table.generalised[step] for step in range(1, len(GENERALISATION) + 1)), \
        "the cohort has rare profiles"
    whose = {pseudonym(youth_id, KEY): youth_id for youth_id in expected}
    rows = _as_dicts(microdata(YEAR, K))
    assert len(rows) == len(table.rows)
    _assert_protected(rows, K)
    shown = 0
    for row in rows:
        truth = expected[whose[row["pseudonym"]]]  # KeyError: a youth not reached this year
        for measure, value in zip(MEASURES, truth, strict=True):
            assert row[measure] in (None, value), (measure, row[measure], value)
            shown += row[measure] is not None and measure != "sessions_attended"
    assert shown, "scores and outcomes of the year are shown where the profile allows"
    # Last year's file: those who left since are in it, those who came since are not, and
    # none of this year's scores (11 and up) or outcomes (all but "other") shows.
    assert microdata_table(YEAR - 1, K).reached == len(cohort["last"])
    whose = {pseudonym(youth_id, KEY): youth_id for youth_id in cohort["last"]}
    for row in _as_dicts(microdata(YEAR - 1, K)):
        assert whose[row["pseudonym"]] in cohort["last"]
        assert all(row[s] is None or row[s] < 11 for s in ("baseline_score", "endline_score"))
        assert row["outcome"] in (None, "other")


def test_the_donor_downloads_a_protected_file(client, make_user, cohort, monkeypatch):
    _every_column_and_measure(monkeypatch)
    login(client, make_user(Role.DONOR))
    response = get_file(client, f"/reports/exports/microdata-{YEAR}.csv")
    assert response.status_code == 200
    text = b"".join(response.response).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and list(rows[0]) == MICRODATA_FIELDS
    _assert_protected(rows, K)
    table = microdata_table(YEAR, K)
    assert sorted(len(m) for m in _classes(rows).values()) == sorted(
        len(m) for m in _classes(_as_dicts([MICRODATA_FIELDS, *table.lines()])).values())
    assert "شاب" not in text


def test_a_profile_too_rare_for_any_step_is_left_out(client, make_user, make_site,
                                                     make_beneficiary, monkeypatch):
    site = make_site("BA")
    for i in range(7):
        make_beneficiary("BA", first_name_ar=f"زينب{i}", site=site,
                         birth_date=TODAY - timedelta(days=365 * 20 + 100))
    make_beneficiary("BA", first_name_ar="فريد", sex="male", governorate_code="TN-83",
                     birth_date=TODAY - timedelta(days=365 * 26 + 100), site=site)
    # As the tables hide the man's sex, age band and governorate (one youth each), the file
    # carries none of these columns: he is among eight rows that read alike.
    table = microdata_table(YEAR, K)
    assert (table.reached, len(table.rows), table.suppressed) == (8, 8, 0)
    assert {row[0] for row in table.rows} == {("BA", "*", "*", "*", "youth_centre")}
    assert table.allowed.columns == {"cso", "setting"}
    # With every column, his profile is too rare for any step: he is left out.
    _every_column_and_measure(monkeypatch)
    table = microdata_table(YEAR, K)
    assert (table.reached, len(table.rows), table.suppressed) == (8, 7, 1)
    band = table.rows[0][0][2]
    assert {row[0] for row in table.rows} == {("BA", "female", band, "TN-61", "youth_centre")}
    # With k above the whole year, nothing is published rather than something unsafe.
    assert list(microdata(YEAR, 9)) == [MICRODATA_FIELDS]
    login(client, make_user(Role.DONOR))
    text = b"".join(get_file(client, f"/reports/exports/microdata-{YEAR}.csv").response).decode(
        "utf-8-sig")
    assert "TN-83" not in text and "male" not in text.replace("female", "")


def _hidden(release, figure) -> bool:
    try:
        return release.release.hidden(figure)
    except KeyError:  # a category without youth: a zero, not in the tables
        return False


def test_the_file_carries_no_column_or_measure_whose_figures_the_tables_hide(
        client, make_user, cohort, make_site, make_beneficiary):
    """Through the route, as the donor: a column whose table of youth reached hides a figure
    reads "*" on every row, and a measure whose indicator hides one is blank on every row;
    what the file does carry counts no more youth than the tables show."""
    # The only youth of her governorate: that table hides her figure (and another).
    make_beneficiary("BA", first_name_ar="سلمى", governorate_code="TN-83",
                     site=make_site("BA", "Maison des jeunes D"), first_contact_date=THIS.start,
                     birth_date=TODAY - timedelta(days=365 * 20 + 100))
    login(client, make_user(Role.DONOR))
    rows = _as_dicts([MICRODATA_FIELDS, *[line for line in csv.reader(io.StringIO(
        b"".join(get_file(client, f"/reports/exports/microdata-{YEAR}.csv").response)
        .decode("utf-8-sig")))][1:]])
    assert rows
    release = year_release(YEAR, K)
    dims = release.payload["dimensions"]["youth_reached"]
    figures = {"sex": [("sex", "youth_reached", c) for c in dims["sex"]],
               "age_band": [("age_band", "youth_reached", c) for c in dims["age_band"]],
               "governorate": [("governorate", "youth_reached", c)
                               for c in dims["governorate"]],
               "setting": [("fy", "youth_reached", "*", s) for s in SETTINGS],
               "cso": [("fy", "youth_reached", c, s) for c in release.csos
                       for s in ["*", *SETTINGS]]}
    dropped = set()
    for column, named in figures.items():
        values = {row[column] for row in rows}
        if any(_hidden(release, f) for f in named):
            assert values == {"*"}, (column, values)
            dropped.add(column)
            continue
        for value in values - {"*"}:
            figure = next(f for f in named if value in (f[-1], f[2]) and (
                column != "cso" or f[3] == "*"))
            assert sum(row[column] == value for row in rows) <= int(release.release.shown(
                figure)), (column, value)
    assert "governorate" in dropped and dropped != set(figures), \
        "the cohort hides some columns, not all"
    blanked = set()
    for measure, codes in (("sessions_attended", ["youth_10_sessions"]),
                           ("outcome", ["youth_placed", "youth_employed_3m",
                                        "youth_employed_6m"]),
                           ("baseline_score", ["youth_baseline_endline", "youth_improved"])):
        hides = any(_hidden(release, ("fy", code, "*", "*")) or any(
            _hidden(release, f[:1] + (code,) + f[2:]) for column, named in figures.items()
            if column not in dropped for f in named) for code in codes)
        if hides:
            assert {row[measure] for row in rows} <= {None, ""}, measure
            blanked.add(measure)
    assert blanked, "the cohort hides some outcome figures"


@pytest.mark.parametrize("lang,word", [("en", "Withheld values"), ("fr", None), ("ar", None)])
def test_the_dictionary_says_what_was_generalised_and_withheld(client, make_user, lang, word):
    login(client, make_user(Role.DONOR))
    client.set_cookie("lang", lang, domain="bladi.test")
    text = client.get("/reports/exports/microdata-dictionary.csv").data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in rows[1:len(MICRODATA_FIELDS) + 1]] == MICRODATA_FIELDS
    notes = " ".join(r[1] for r in rows[len(MICRODATA_FIELDS) + 1:])
    assert str(K) in notes
    assert "age_band: 10-17, 18-29" in notes and "cso: *" in notes and "sex: *" in notes
    if word:
        assert word in text
    else:
        assert "Withheld values" not in text, "translated"


# --- The demo data, as `make run` seeds it ------------------------------------------------

DOWNLOAD = """
import csv, io, json, sys, time
from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import User
from bladi_cases.services.auth import sessions
from bladi_cases.services.reports.exports import microdata_table
app = create_app()
k = app.config["BLADI_SMALL_CELL_K"]
with app.app_context():
    user = db.session.scalars(db.select(User).where(User.role == "donor")).first()
    donor, token = user.get_id(), sessions.start(user, "test")
    db.session.commit()
client = app.test_client()
with client.session_transaction() as session:
    session["_user_id"], session["_fresh"] = donor, True
    session[sessions.TOKEN_KEY] = token
out = {}
for year in map(int, sys.argv[1:]):
    asked = client.get(f"/reports/exports/microdata-{year}.csv")
    assert asked.status_code == 302, asked.status_code  # to the page of the job making it
    job = asked.headers["Location"]
    for _ in range(600):  # the job runs in a thread of this process: wait for it
        if client.get(job + ".json").get_json()["status"] == "done":
            break
        time.sleep(0.1)
    response = client.get(job + "/download")
    assert response.status_code == 200, response.status_code
    text = response.get_data().decode("utf-8-sig")
    with app.app_context():
        reached = microdata_table(year, k).reached
    out[year] = {"rows": list(csv.DictReader(io.StringIO(text))), "reached": reached, "k": k}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def demo_downloads(tmp_path_factory, database_url):
    """The donor's microdata of this year and last year, downloaded over HTTP from a fresh
    demo database seeded as `make run` does (on the database engine under test)."""
    instance = tmp_path_factory.mktemp("microdata-demo")
    url, scratch = f"sqlite:///{instance / 'bladi.db'}", None
    if database_url.startswith("postgresql"):
        scratch = f"bladi_microdata_demo_{os.getpid()}"
        admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{scratch}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
        url = sa.make_url(database_url).set(database=scratch).render_as_string(
            hide_password=False)
    env = {**os.environ, "BLADI_ENV": "development", "BLADI_INSTANCE_PATH": str(instance),
           "DATABASE_URL": url}
    env.pop("TEST_DATABASE_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    try:
        for command in ([*flask, "db", "upgrade"],
                        [*flask, "seed", "demo", "--beneficiaries", "330", "--if-empty"]):
            subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        done = subprocess.run([sys.executable, "-c", DOWNLOAD, str(YEAR - 1), str(YEAR)],
                              cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        # By years back from the YEAR of now: the test reads them after conftest may have
        # moved YEAR on (a run crossing 1 October), and the files are of this moment's years.
        yield {YEAR - int(year): found for year, found in json.loads(done.stdout).items()}
    finally:
        if scratch:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
            admin.dispose()


# By years back, not by year: a year in this list would be fixed at import.
@pytest.mark.parametrize("years_back", [1, 0])
def test_the_demo_microdata_has_no_rare_profile_and_no_single_outcome(demo_downloads,
                                                                       years_back):
    found = demo_downloads[years_back]
    rows, k = found["rows"], found["k"]
    assert rows, "the demo reaches youth in both years"
    _assert_protected(rows, k)
    # Everything the file holds is accounted for: the youth reached, less those left out.
    assert len(rows) <= found["reached"]

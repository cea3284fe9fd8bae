"""Every input is bounded before it is read: report years and filters, spreadsheet uploads
(the real malicious files, built in tests/bombs.py), CSV uploads, the number of errors a
page lists, JSON on the API, search terms, and uploads kept for a confirmation. Each gets
a 4xx with a message in the user's language, never a 500 or a long computation."""

from __future__ import annotations

import functools
import io
import json
import time
import tracemalloc
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, Job, JobStatus, Role, Survey
from bladi_cases.models.common import utcnow
from bladi_cases.services import MAX_MESSAGES, ValidationError, inputs
from bladi_cases.services.beneficiaries import imports as importer
from bladi_cases.services.reports.indicators import Period
from bladi_cases.services.reports.reports import reporting_years
from bladi_cases.services.surveys import surveys as survey_service
from bladi_cases.services.surveys.xlsform import XLSFormError, parse_xlsform

from . import bombs
from .conftest import follow_job, get_file, login, text_of

YEAR = Period.containing(date.today()).fiscal_year
MB = 1024 * 1024


def _as(client, user, lang: str = "en"):
    user.preferred_language = lang
    db.session.commit()
    login(client, user)
    return user


# --- Years and filters on the report and export routes ------------------------------------

def test_award_years_run_from_the_first_fiscal_year_to_the_next(app):
    years = reporting_years(date(2026, 11, 30))
    assert years.start == app.config["BLADI_AWARD_FIRST_FY"] and years.stop - 1 == 2028
    assert YEAR in reporting_years() and YEAR + 1 in reporting_years()


@pytest.mark.parametrize("path", [
    "/reports/exports/tracking-9000.csv", "/reports/exports/tracking-9000.xlsx",
    "/reports/exports/microdata-0.csv", "/reports/exports/microdata-10000.csv",
    "/reports/exports/tracking-2024.csv",  # before the award
    f"/reports/exports/microdata-{YEAR + 2}.csv",
    "/reports/exports/tracking-99999999999999999999.csv",
    "/reports/exports?fy=9000", "/reports/exports?fy=abc", "/reports/quarterly?fy=-1",
])
def test_a_year_outside_the_award_is_404_with_a_message_for_the_donor(client, make_user, path):
    _as(client, make_user(Role.DONOR))
    started = time.perf_counter()
    response = client.get(path)
    assert response.status_code == 404
    years = reporting_years()
    assert f"choose a fiscal year from {years.start} to {years.stop - 1}" in text_of(response)
    assert time.perf_counter() - started < 10, "refused before any computation"


@pytest.mark.parametrize("lang,expected", [
    ("ar", "لا توجد أرقام لـ «9000»"), ("fr", "pas de chiffres pour « 9000 »"),
    ("en", "There are no figures for “9000”"),
])
def test_the_year_message_is_in_the_users_language(client, make_user, lang, expected):
    _as(client, make_user(Role.DONOR), lang)
    response = get_file(client, "/reports/exports/tracking-9000.csv")
    assert response.status_code == 404 and expected in text_of(response)


@pytest.mark.parametrize("query", ["fy=9000", "fy=2024", "fy=2025.5", "q=5", "q=0", "q=x",
                                   f"fy={YEAR}&q=12345678901234567890"])
def test_every_report_page_checks_the_period(client, make_user, query):
    reviewer = _as(client, make_user(Role.REVIEWER))
    for path in ("/reports/", "/reports/targets", "/reports/quarterly", "/reports/exports"):
        assert client.get(f"{path}?{query}").status_code == 404, (path, query)
    login(client, make_user(Role.CSO_MANAGER, "BA"))
    assert client.get(f"/reports/?{query}").status_code == 404
    assert client.post(f"/reports/quarterly/generate?{query}").status_code == 404
    assert client.post(f"/reports/manual?{query}", data={"indicator": "staff_trained",
                                                         "value": "1"}).status_code == 404
    assert reviewer  # the reviewer's pages were checked first


def test_the_years_of_the_award_still_answer(client, make_user):
    _as(client, make_user(Role.DONOR))
    first = reporting_years().start
    assert client.get(f"/reports/exports?fy={first}").status_code == 200
    assert get_file(client, f"/reports/exports/tracking-{YEAR}.csv").status_code == 200
    assert get_file(client, f"/reports/exports/tracking-{YEAR}.xlsx").status_code == 200
    assert get_file(client, f"/reports/exports/microdata-{YEAR + 1}.csv").status_code == 200


@pytest.mark.parametrize("query,shown", [
    ("cso=NOPE", "“NOPE” is not one of the choices of the filter CSO"),
    ("governorate=TN-99", "filter Governorate"), ("setting=castle", "filter Setting"),
    ("indicator=nope", "filter Indicator"), ("cso=" + "x" * 500, "x" * 40 + "”"),
])
def test_unknown_dashboard_filters_are_400(client, make_user, query, shown):
    _as(client, make_user(Role.REVIEWER))
    response = client.get(f"/reports/?fy={YEAR}&{query}")
    assert response.status_code == 400 and shown in text_of(response)


def test_known_dashboard_filters_answer(client, make_user, org):
    _as(client, make_user(Role.REVIEWER))
    governorate = org("BA").governorate_code
    for query in ("cso=BA", f"governorate={governorate}", "setting=school",
                  "indicator=youth_reached", "cso=&governorate=&setting="):
        assert client.get(f"/reports/?fy={YEAR}&{query}").status_code == 200, query


def test_command_line_exports_refuse_a_year_outside_the_award(app, tmp_path):
    runner = app.test_cli_runner()
    for args in (["export", "indicators", "--fy", "9000", "--out", str(tmp_path / "t.xlsx")],
                 ["export", "microdata", "--fy", "0", "--out", str(tmp_path / "m.csv")],
                 ["reports", "refresh", "--fy", "2024"]):
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and "choose a fiscal year from" in result.output, args
    assert not (tmp_path / "t.xlsx").exists()


# --- Spreadsheet bombs --------------------------------------------------------------------

@functools.cache
def _bomb(name: str) -> bytes:
    return {
        "corner": bombs.corner_bomb, "corner, no dimension": lambda: bombs.corner_bomb(None),
        "corner, lying dimension": lambda: bombs.corner_bomb("A1:B2"),
        "row number": bombs.row_number_bomb, "hidden references": bombs.hidden_reference_bomb,
        "shared string": bombs.shared_string_bomb,
        "text": bombs.text_heavy_workbook, "ratio": bombs.ratio_bomb,
        "wide": lambda: bombs.wide_workbook("XFD"),
    }[name]()


BOMBS = {  # bomb -> what the refusal says
    "corner": "reaches row 1,048,576", "corner, no dimension": "reaches row 1,048,576",
    "corner, lying dimension": "reaches row 1,048,576",
    "row number": "reaches row 99,999,999,999",
    "hidden references": "reaches row 1,048,576", "shared string": "more than 50 MB",
    "text": "more than 16 MB of text", "ratio": "is compressed", "wide": "reaches column XFD",
}


def _bounded(call) -> tuple[object, float, float]:
    """(what `call` raised, seconds, peak MB traced): a bound, not a benchmark (the
    unbounded code took 90-122 s and over 3 GB on these files)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
        raised = None
    except Exception as exc:  # the refusal is checked by the caller
        raised = exc
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / MB
    tracemalloc.stop()
    return raised, seconds, peak


@pytest.mark.parametrize("name", list(BOMBS))
def test_the_survey_import_refuses_each_bomb_quickly_and_in_little_memory(name):
    data = _bomb(name)
    raised, seconds, peak = _bounded(lambda: parse_xlsform(data))
    assert isinstance(raised, XLSFormError) and BOMBS[name] in raised.messages[0], raised
    assert seconds < 30 and peak < 64, (seconds, peak)


@pytest.mark.parametrize("name", list(BOMBS))
def test_the_beneficiary_import_refuses_each_bomb_quickly_and_in_little_memory(org, name):
    data, youth_org = _bomb(name), org("BA")
    raised, seconds, peak = _bounded(lambda: importer.check_file(youth_org, "b.xlsx", data))
    assert isinstance(raised, importer.ImportRefused), raised
    assert BOMBS[name] in raised.messages[0] and raised.status == 422
    assert seconds < 30 and peak < 64, (seconds, peak)


def _upload(client, path, data, name="bomb.xlsx"):
    return client.post(path, data={"upload": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("lang,expected", [
    ("ar", "تصل الورقة «survey» إلى السطر 1,048,576"),
    ("fr", "La feuille « survey » va jusqu&#39;à la ligne 1,048,576"),
    ("en", "The sheet “survey” reaches row 1,048,576, beyond row 10,001"),
])
def test_the_import_pages_answer_422_with_the_message(client, make_user, lang, expected):
    _as(client, make_user(Role.CSO_MANAGER, "BA"), lang)
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary))
    # The youth import is a background job: its page says why it failed.
    response = follow_job(client, _upload(client, "/beneficiaries/import", _bomb("corner")))
    assert 'data-status="failed"' in response.get_data(as_text=True)
    assert expected in text_of(response)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary)) == before
    surveys = db.session.scalar(sa.select(sa.func.count()).select_from(Survey))
    response = follow_job(client, _upload(client, "/surveys/import", _bomb("shared string")))
    assert 'data-status="failed"' in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Survey)) == surveys
    wide = follow_job(client, _upload(client, "/surveys/import", _bomb("wide")))
    assert 'data-status="failed"' in wide.get_data(as_text=True) and "XFD" in text_of(wide)


def test_a_file_over_5_mb_is_413(client, make_user):
    _as(client, make_user(Role.CSO_MANAGER, "BA"))
    response = _upload(client, "/beneficiaries/import", b"PK" + b"0" * (5 * MB), "big.xlsx")
    assert response.status_code == 413 and "larger than 5 MB" in text_of(response)
    survey = _upload(client, "/surveys/import", b"PK" + b"0" * (5 * MB))
    assert survey.status_code == 422 and "larger than 5 MB" in text_of(survey)


def test_merged_cells_and_formulas_are_still_found_in_read_only_mode(org):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Sex", "Date of birth", "Governorate", "Setting"])
    sheet.append(["female", "2008-01-01", "=A1", "school"])
    sheet.merge_cells("A3:B3")
    buffer = io.BytesIO()
    book.save(buffer)
    with pytest.raises(importer.ImportRefused) as refused:
        importer.check_file(org("BA"), "f.xlsx", buffer.getvalue())
    assert any("A3:B3" in m for m in refused.value.messages)
    assert any("column C" in m and "formulas" in m for m in refused.value.messages)


# --- CSV ----------------------------------------------------------------------------------

HEADER = "Sex,Date of birth,Governorate,Setting\r\n"


@pytest.mark.parametrize("body,expected", [
    (HEADER + "female," + ",".join(["x"] * 70) + "\r\n", "Row 2 has 71 cells"),
    (HEADER + 'female,"' + "x" * 200_000 + '"\r\n', "Row 2 cannot be read as CSV"),
    (HEADER + "female,2008-01-01,TN-61,school\r\n" * (importer.MAX_ROWS + 1),
     "more than 10000 rows"),
    (HEADER + "\r\n" * 2_000_000, "no rows under its header"),
])
def test_csv_uploads_are_bounded(org, body, expected):
    raised, seconds, _peak = _bounded(lambda: importer.check_file(org("BA"), "y.csv",
                                                                  body.encode()))
    assert isinstance(raised, importer.ImportRefused), raised
    assert any(expected in m for m in raised.messages), raised.messages
    assert seconds < 30


# --- The number of error messages a page lists -------------------------------------------

def test_a_page_lists_the_first_50_problems_then_how_many_more(client, make_user):
    _as(client, make_user(Role.CSO_MANAGER, "BA"))
    rows = "".join(f"female,not a date {n},TN-61,school\r\n" for n in range(importer.MAX_ROWS))
    response = follow_job(client, _upload(client, "/beneficiaries/import",
                                          (HEADER + rows).encode(), "bad.csv"))
    page = text_of(response)
    assert 'data-status="failed"' in response.get_data(as_text=True)
    assert page.count("Not a date") == MAX_MESSAGES
    assert f"…and {importer.MAX_ROWS - MAX_MESSAGES} more." in page
    assert len(response.data) < 100_000, "not a page of megabytes"


def test_a_survey_with_thousands_of_bad_rows_lists_50_problems():
    from .test_surveys_xlsform import _xlsx

    rows = [["type", "name", "label"]] + [["bogus_type", f"q{n}", "Q"] for n in range(3000)]
    data = _xlsx({"survey": rows, "settings": [["form_id"], ["many"]]})
    with pytest.raises(ValidationError) as refused:
        survey_service.import_version(None, data, None)
    messages = refused.value.errors["upload"]
    assert len(messages) == MAX_MESSAGES + 1 and messages[-1].endswith("more.")


# --- JSON on the API ----------------------------------------------------------------------

@pytest.mark.parametrize("body,status,message", [
    (b"[" * 100_000 + b"]" * 100_000, 400, "nested more than 16 levels"),
    (json.dumps({"records": [{"data": {"answers": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}}]}
                ).encode(), 400, "nested more than 16 levels"),
    (b'{"records": ["' + b"x" * (2 * MB) + b'"]}', 413, "at most 2 MB"),
    (b'{"records": [1e999999, 123' + b"4" * 5000 + b"]}", 400, "not valid JSON"),
])
def test_sync_bounds_json_depth_and_size(field, body, status, message):
    response = field["client"].post("/api/v1/sync", data=body,
                                    content_type="application/json")
    assert response.status_code == status
    error = response.get_json()
    assert set(error) == {"error", "message"} and message in error["message"]


def test_json_depth_is_measured_without_recursion():
    deep = []
    for _ in range(100_000):
        deep = [deep]
    assert inputs.json_depth(deep) == 100_001 and inputs.json_depth(3) == 0


# --- Search terms -------------------------------------------------------------------------

def test_a_40_digit_code_finds_nothing_and_a_long_search_is_400(client, make_user,
                                                               make_beneficiary):
    youth = make_beneficiary("BA")
    _as(client, make_user(Role.FIELD_WORKER, "BA"))
    for query in ("1" * 40, "BA-" + "9" * 40, "99999999999"):
        response = client.get("/beneficiaries/", query_string={"q": query})
        assert response.status_code == 200 and youth.code not in text_of(response), query
    found = client.get("/beneficiaries/", query_string={"q": youth.code})
    assert youth.code in text_of(found)
    long = client.get("/beneficiaries/", query_string={"q": "أ" * 101})
    assert long.status_code == 400 and "at most 100 characters" in text_of(long)


# --- Uploads kept for a confirmation ------------------------------------------------------

def test_an_upload_waiting_too_long_is_deleted_by_the_sweep(app, client, make_user,
                                                             make_beneficiary):
    """An import waiting for a decision keeps its (encrypted) file two hours; the sweep
    (`flask jobs sweep`, every minute from the scheduler) then deletes it, and the page
    says to upload again, in the language of the person who uploaded it."""
    manager = make_user(Role.CSO_MANAGER, "BA", preferred_language="fr")
    _as(client, manager, "fr")
    youth = make_beneficiary("BA", first_name_ar="مريم", last_name_ar="الجزيري",
                             first_name_latin=None, last_name_latin=None,
                             birth_date=date(2004, 1, 1))
    row = "مريم,الجزيري,female,2004-03-25,TN-61,youth_centre,self,signed_form,participation"
    sheet = ("First name (Arabic),Last name (Arabic),Sex,Date of birth,Governorate,Setting,"
             "Consent given by,Consent method,Consent covers\r\n" + row + "\r\n")
    page = follow_job(client, _upload(client, "/beneficiaries/import",
                                      sheet.encode("utf-8-sig"), "again.csv"))
    assert youth.code in text_of(page)
    job = db.session.scalars(sa.select(Job).where(Job.user_id == manager.id)).one()
    assert job.status == JobStatus.WAITING and job.input_enc is not None
    assert app.test_cli_runner().invoke(args=["jobs", "sweep"]).exit_code == 0
    db.session.refresh(job)
    assert job.status == JobStatus.WAITING, "not yet two hours"
    job.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["jobs", "sweep"])
    assert result.exit_code == 0 and "expired: 1" in result.output, result.output
    db.session.refresh(job)
    assert job.status == JobStatus.FAILED and job.input_enc is None
    assert job.active_key is None, "the same file can be uploaded again"
    shown = text_of(client.get(f"/jobs/{job.uuid}"))
    assert "Envoyez à nouveau le fichier" in shown, shown[-600:]


@pytest.mark.parametrize("month", ["9999-12", "1-1", "9" * 30 + "-1", "2026-13", "x"])
def test_an_activity_calendar_month_out_of_range_shows_this_month(client, make_user, make_site,
                                                                 make_beneficiary,
                                                                 make_activity, month):
    worker = _as(client, make_user(Role.FIELD_WORKER, "BA"))
    site = make_site("BA")
    activity, _session, _event = make_activity(site, make_beneficiary("BA", site=site), worker)
    response = client.get(f"/activities/{activity.uuid}", query_string={"month": month})
    assert response.status_code == 200

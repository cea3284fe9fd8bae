"""Reporting: targets, the quarterly report workflow and its frozen figures, dashboards and
exports that never hand a reviewer or the donor a count between 1 and k-1."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import openpyxl
import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Indicator, QuarterlyReport, Role
from bladi_cases.services import ValidationError
from bladi_cases.services.files import neutralise
from bladi_cases.services.reports import reports as service
from bladi_cases.services.reports.exports import QUASI_IDENTIFIERS, microdata
from bladi_cases.services.reports.indicators import Period

from .conftest import get_file, login, text_of

PERIOD = Period.containing(date.today())
K = 5


def _indicator(code: str) -> Indicator:
    return db.session.scalars(sa.select(Indicator).where(Indicator.code == code)).one()


@pytest.fixture
def people(make_user):
    return {"manager": make_user(Role.CSO_MANAGER, "BA"),
            "reviewer": make_user(Role.REVIEWER), "donor": make_user(Role.DONOR),
            "worker": make_user(Role.FIELD_WORKER, "BA")}


@pytest.fixture
def three_youth(make_site, make_beneficiary):
    site = make_site("BA")
    return [make_beneficiary("BA", first_name_ar=f"شاب{i}", site=site) for i in range(3)]


def test_the_indicator_set_is_seeded():
    codes = [i.code for i in service.indicators()]
    assert codes[:3] == ["youth_reached", "youth_10_sessions", "sessions_held"]
    assert _indicator("staff_trained").rule is None


def test_targets_and_their_bad_input(client, people, org):
    login(client, people["reviewer"])
    response = client.post(f"/reports/targets?fy={PERIOD.fiscal_year}", data={
        "indicator": "youth_reached", "cso": "BA", "value": "120", "scope": "year"})
    assert response.status_code == 302
    target = service.target_for(_indicator("youth_reached"), org("BA"), PERIOD.fiscal_year)
    assert target.value == 120
    client.post("/reports/targets", data={"indicator": "youth_reached", "cso": "BA",
                                          "value": "-3", "scope": "award"})
    assert service.target_for(_indicator("youth_reached"), org("BA"), None) is None
    with pytest.raises(ValidationError):
        service.set_target(people["reviewer"], _indicator("youth_reached"), org("BA"),
                           PERIOD.fiscal_year, None, "many")


def _approved_report(people, org, period=None):
    # PERIOD read when called (not as a default, fixed at import): conftest moves it on.
    report = service.generate_report(people["manager"], org("BA"), period or PERIOD)
    service.save_narrative(people["manager"], report, {"achievements": "ورشات"})
    service.submit_report(people["manager"], report)
    service.review_report(people["reviewer"], report, "approve", "")
    db.session.commit()
    return report


def test_report_workflow_return_resubmit_approve(client, people, org, three_youth):
    login(client, people["manager"])
    assert client.post(f"/reports/quarterly/generate?fy={PERIOD.fiscal_year}"
                       f"&q={PERIOD.quarter}").status_code == 302
    report = db.session.scalars(sa.select(QuarterlyReport)).one()
    assert report.figures["youth_reached"] == 3
    client.post(f"/reports/quarterly/{report.uuid}", data={"action": "submit"})
    db.session.refresh(report)
    assert report.status == "draft", "achievements are required"
    client.post(f"/reports/quarterly/{report.uuid}", data={
        "action": "submit", "achievements": "انطلاق نادي المسرح"})
    db.session.refresh(report)
    assert report.status == "submitted"
    login(client, people["reviewer"])
    client.post(f"/reports/quarterly/{report.uuid}", data={"action": "return", "comment": ""})
    db.session.refresh(report)
    assert report.status == "submitted", "returning needs a comment"
    client.post(f"/reports/quarterly/{report.uuid}", data={"action": "return",
                                                           "comment": "أضيفوا التحديات"})
    login(client, people["manager"])
    client.post(f"/reports/quarterly/{report.uuid}", data={
        "action": "submit", "achievements": "انطلاق نادي المسرح", "challenges": "التنقل"})
    login(client, people["reviewer"])
    client.post(f"/reports/quarterly/{report.uuid}", data={"action": "approve"})
    db.session.refresh(report)
    assert report.status == "approved"
    assert [s.action for s in report.steps] == ["generated", "submitted", "returned",
                                                "submitted", "approved"]


def test_no_one_approves_their_own_report(people, org):
    report = service.generate_report(people["manager"], org("BA"), PERIOD)
    service.save_narrative(people["manager"], report, {"achievements": "x"})
    service.submit_report(people["manager"], report)
    with pytest.raises(ValidationError):
        service.review_report(people["manager"], report, "approve", "")


def test_approved_figures_are_frozen_and_differences_shown(client, people, org, three_youth,
                                                          make_beneficiary, make_site):
    report = _approved_report(people, org)
    assert report.figures["youth_reached"] == 3
    make_beneficiary("BA", first_name_ar="جديد", site=make_site("BA", name="موقع آخر"))
    db.session.refresh(report)
    assert report.figures["youth_reached"] == 3
    assert service.differences(report)["youth_reached"] == (3, 4)
    with pytest.raises(ValidationError):
        service.generate_report(people["manager"], org("BA"), PERIOD)
    login(client, people["reviewer"])
    assert "≠" in text_of(client.get(f"/reports/quarterly/{report.uuid}"))
    # A target of an approved (closed) period is refused.
    q4 = Period(PERIOD.fiscal_year, 4)
    if q4 != PERIOD:
        _approved_report(people, org, q4)
    with pytest.raises(ValidationError):
        service.set_target(people["reviewer"], _indicator("youth_reached"), org("BA"),
                           PERIOD.fiscal_year, None, 10)


def _numbers_in_tables(html: str) -> list[int]:
    cells = re.findall(r"<td>([^<]*)</td>", html)
    return [int(c) for c in cells if c.strip().isdigit()]


def test_reviewer_dashboard_never_shows_a_count_between_1_and_k(client, people, three_youth):
    login(client, people["reviewer"])
    for code in ("youth_reached", "sessions_held"):
        html = client.get(f"/reports/?fy={PERIOD.fiscal_year}&indicator={code}").get_data(
            as_text=True)
        assert "<td>…</td>" in html
        assert not [n for n in _numbers_in_tables(html) if 0 < n < K]


def test_report_figures_are_hidden_below_k_outside_the_cso(client, people, org, three_youth):
    report = _approved_report(people, org)
    login(client, people["donor"])
    html = client.get(f"/reports/quarterly/{report.uuid}").get_data(as_text=True)
    assert "…" in html and not [n for n in _numbers_in_tables(html) if 0 < n < K]
    login(client, people["manager"])
    assert "<td>3</td>" in client.get(f"/reports/quarterly/{report.uuid}").get_data(
        as_text=True), "the CSO itself sees exact figures"


def test_donor_sees_approved_reports_and_exports_only(client, people, org):
    draft = service.generate_report(people["manager"], org("BA"), PERIOD)
    db.session.commit()
    login(client, people["donor"])
    assert str(draft.uuid) not in client.get("/reports/quarterly").get_data(as_text=True)
    assert client.get(f"/reports/quarterly/{draft.uuid}").status_code == 404
    assert client.get("/reports/targets").status_code == 403
    assert client.get("/reports/exports").status_code == 200


def test_tracking_table_xlsx_and_csv(client, people, three_youth):
    _indicator("staff_trained").name = {"en": "=HYPERLINK(\"http://x\")"}
    db.session.commit()
    login(client, people["donor"])
    client.set_cookie("lang", "en", domain="bladi.test")
    year = PERIOD.fiscal_year
    response = get_file(client, f"/reports/exports/tracking-{year}.xlsx")
    book = openpyxl.load_workbook(io.BytesIO(response.data))
    assert f"FY{year}" in book.sheetnames and len(book.sheetnames) >= 2
    sheet = book[f"FY{year}"]
    header = [c.value for c in sheet[1]]
    assert any("not approved" in str(h) for h in header)
    values = [c.value for row in sheet.iter_rows(min_row=2) for c in row]
    quarter_columns = [i for i, h in enumerate(header) if str(h).startswith("Q")]
    for row in sheet.iter_rows(min_row=2, values_only=True):
        for i in quarter_columns:
            assert not (isinstance(row[i], int | float) and 0 < row[i] < K), row
    assert any(str(v).startswith("'=HYPERLINK") for v in values), "formula neutralised"
    text = get_file(client, f"/reports/exports/tracking-{year}.csv").data.decode("utf-8-sig")
    assert "…" in text and "'=HYPERLINK" in text


def test_microdata_is_k_anonymous_and_identity_free(client, people, make_beneficiary,
                                                    make_site):
    site = make_site("BA")
    for i in range(7):
        make_beneficiary("BA", first_name_ar=f"زينب{i}", birth_date=date(2007, 3, 3), site=site)
    make_beneficiary("BA", first_name_ar="فريد", sex="male", birth_date=date(1999, 1, 1),
                     governorate_code="TN-83", site=site)
    login(client, people["donor"])
    year = PERIOD.fiscal_year
    body = b"".join(get_file(client, f"/reports/exports/microdata-{year}.csv").response)
    text = body.decode("utf-8-sig")
    assert "زينب" not in text and "فريد" not in text and "+216" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[q] for q in QUASI_IDENTIFIERS), []).append(row)
    assert all(len(members) >= K for members in groups.values())
    assert not [r for r in rows if r["governorate"] == "TN-83"], "a unique profile is removed"
    again = list(csv.DictReader(io.StringIO(b"".join(get_file(
        client, f"/reports/exports/microdata-{year}.csv").response).decode("utf-8-sig"))))
    assert {r["pseudonym"] for r in rows}.isdisjoint({r["pseudonym"] for r in again})
    assert len(list(microdata(year, K))) == len(rows) + 1


def test_formula_neutralising():
    assert neutralise("=1+1") == "'=1+1" and neutralise("@SUM(A1)") == "'@SUM(A1)"
    assert neutralise("-3") == "'-3" and neutralise("ok") == "ok" and neutralise(3) == 3


def test_manual_indicator(client, people):
    login(client, people["manager"])
    client.post(f"/reports/manual?fy={PERIOD.fiscal_year}&q={PERIOD.quarter}",
                data={"indicator": "staff_trained", "value": "4", "evidence": ""})
    assert service.value_of(_indicator("staff_trained"), people["manager"].organization,
                            PERIOD) == 0
    client.post(f"/reports/manual?fy={PERIOD.fiscal_year}&q={PERIOD.quarter}",
                data={"indicator": "staff_trained", "value": "4",
                      "evidence": "قائمة الحضور في التكوين"})
    assert service.value_of(_indicator("staff_trained"), people["manager"].organization,
                            PERIOD) == 4
    with pytest.raises(ValidationError):
        service.enter_manual_value(people["manager"], _indicator("youth_reached"),
                                   people["manager"].organization, PERIOD, 3, "x")


def test_command_line_exports(app, tmp_path, three_youth):
    runner = app.test_cli_runner()
    out = tmp_path / "t.xlsx"
    result = runner.invoke(args=["export", "indicators", "--fy", str(PERIOD.fiscal_year),
                                 "--format", "xlsx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert openpyxl.load_workbook(out).sheetnames[0] == f"FY{PERIOD.fiscal_year}"
    micro = tmp_path / "m.csv"
    result = runner.invoke(args=["export", "microdata", "--fy", str(PERIOD.fiscal_year),
                                 "--out", str(micro)])
    assert result.exit_code == 0 and micro.read_bytes().startswith(b"\xef\xbb\xbf")


def test_a_youth_counts_once_in_the_year_however_many_quarters(people, three_youth):
    from bladi_cases.services.reports.exports import tracking_rows

    rows = tracking_rows(PERIOD.fiscal_year, "en", 2)
    reached = next(r for r in rows if r[0] == "Youth reached")
    quarter_values = [v for v in reached[7:11] if isinstance(v, int | float)]
    assert reached[11] == 3 and sum(quarter_values) == 3, "future quarters reach nobody"

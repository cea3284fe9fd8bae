"""Spreadsheet import: templates, encodings, row/column errors, all-or-nothing, duplicates."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date

import openpyxl
import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, Role
from bladi_cases.services.beneficiaries import imports as importer

from .conftest import follow_job, login, text_of

EN_HEADER = ["First name (Arabic)", "Last name (Arabic)", "Sex", "Date of birth", "Governorate",
             "Setting", "Phone", "Consent given by", "Consent method", "Consent covers"]
ROWS = [
    ["مريم", "الجزيري", "female", "2004-03-25", "TN-61", "youth_centre", "98 111 222", "self",
     "signed_form", "participation, surveys"],
    ["وسيم", "القاسمي", "Male", "25/03/2012", "Sfax", "Youth centre", "", "guardian",
     "signed_form", "participation"],
]
GUARDIAN = {"Guardian name": "سعاد القاسمي", "Relationship to the young person": "أم"}


def _rows():
    header = EN_HEADER + list(GUARDIAN)
    rows = [r + ["", ""] for r in ROWS]
    rows[1][-2:] = list(GUARDIAN.values())
    return header, rows


def _csv(header, rows, encoding="utf-8-sig", delimiter=",") -> bytes:
    lines = [delimiter.join(header)] + [delimiter.join(f'"{c}"' for c in r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def _xlsx(header, rows, tweak=None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    if tweak:
        tweak(sheet)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _count():
    return db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary))


@pytest.fixture
def manager(client, make_user):
    user = make_user(Role.CSO_MANAGER, "BA")
    login(client, user)
    return user


def _done(page) -> bool:
    """Whether a job's page says the job is done."""
    return 'data-status="done"' in page.get_data(as_text=True)


def _upload(client, name, data):
    return client.post("/beneficiaries/import", data={"upload": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("lang", ["ar", "fr", "en"])
def test_templates_have_headers_in_the_users_language(client, manager, lang):
    client.set_cookie("lang", lang, domain="bladi.test")
    manager.preferred_language = lang
    db.session.commit()
    csv_file = client.get("/beneficiaries/import/template.csv")
    assert csv_file.status_code == 200 and csv_file.data.startswith(b"\xef\xbb\xbf")
    header = csv_file.data.decode("utf-8-sig").splitlines()[0]
    assert header.split(",")[:1] == importer.header_labels(lang)[:1]
    xlsx = client.get("/beneficiaries/import/template.xlsx")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.data))
    assert [c.value for c in book["data"][1]] == importer.header_labels(lang)
    assert client.get("/beneficiaries/import/template.pdf").status_code == 404


@pytest.mark.parametrize("make_file", [
    lambda h, r: ("youth.csv", _csv(h, r)),
    lambda h, r: ("youth.csv", _csv(h, r, encoding="utf-8")),
    lambda h, r: ("youth.csv", _csv(h, r, encoding="cp1256", delimiter=";")),
    lambda h, r: ("youth.xlsx", _xlsx(h, r)),
])
def test_valid_files_import_every_row(client, manager, make_file):
    header, rows = _rows()
    before = _count()
    response = _upload(client, *make_file(header, rows))
    page = follow_job(client, response)
    assert _done(page), text_of(page)[-800:]
    assert _count() == before + 2


def test_headers_in_arabic_and_french_are_accepted(client, manager):
    header, rows = _rows()
    ar = importer.header_labels("ar")
    fr = importer.header_labels("fr")
    en = importer.header_labels("en")
    mixed = [ar[en.index(h)] if i % 2 else fr[en.index(h)] for i, h in enumerate(header)]
    response = _upload(client, "youth.xlsx", _xlsx(mixed, rows))
    assert _done(follow_job(client, response))


def test_an_exported_template_imports_once_filled(client, manager):
    template = client.get("/beneficiaries/import/template.xlsx").data
    book = openpyxl.load_workbook(io.BytesIO(template))
    headers = [c.value for c in book["data"][1]]
    en = importer.header_labels("en")
    values = dict(zip(_rows()[0], _rows()[1][0], strict=True))
    book["data"].append([values.get(en[headers.index(h)], "") for h in headers])
    buffer = io.BytesIO()
    book.save(buffer)
    page = follow_job(client, _upload(client, "filled.xlsx", buffer.getvalue()))
    assert _done(page), text_of(page)[-800:]


def _refused(client, name, data, *expected, status=422):
    """A refused file: at once for one too large (413), else the failed job's page."""
    before = _count()
    response = _upload(client, name, data)
    if status == 413:
        assert response.status_code == 413
    else:
        response = follow_job(client, response)
        assert 'data-status="failed"' in response.get_data(as_text=True)
    page = text_of(response)
    for text in expected:
        assert text in page, (text, page[-1500:])
    assert _count() == before, "nothing may be saved"
    return page


def test_row_errors_name_row_and_column_and_nothing_is_saved(client, manager):
    header, rows = _rows()
    rows = [list(r) for r in rows] + [list(rows[0])]
    rows[2][0] = "ليلى"
    rows[1][3] = "2030-01-01"       # row 3: birth date in the future
    rows[2][6] = "12345"             # row 4: not a Tunisian phone
    page = _refused(client, "bad.csv", _csv(header, rows))
    assert re.search(r"3\D+D\b", page) and re.search(r"4\D+G\b", page)


@pytest.mark.parametrize("make_file", [
    lambda h, r: ("youth.csv", _csv(h, r)),
    lambda h, r: ("youth.xlsx", _xlsx(h, r)),
])
def test_names_with_direction_controls_or_no_letter_refuse_the_file(client, manager,
                                                                    make_file):
    header, rows = _rows()
    rows = [list(r) for r in rows]
    rows[0][1] = "\u202eيريزجلا"        # row 2, column B: a right-to-left override
    rows[1][0] = "\u200b\u200b\u2060"  # row 3, column A: only zero-width characters
    page = _refused(client, *make_file(header, rows),
                    "أحرف غير مرئية تغيّر اتجاه النص",
                    "يجب أن يحتوي الاسم على حرف واحد على الأقل")
    assert re.search(r"2\D+B\b[^.]*أحرف غير مرئية", page), page[-1500:]
    assert re.search(r"3\D+A\b[^.]*يجب أن يحتوي الاسم", page), page[-1500:]


def test_formula_wrong_header_merged_cells_empty_zip(client, manager):
    header, rows = _rows()

    def formula(sheet):
        sheet["G2"] = "=1+1"

    def merged(sheet):
        sheet.merge_cells("A2:B2")

    assert "G" in _refused(client, "f.xlsx", _xlsx(header, rows, formula), "2")
    _refused(client, "h.xlsx", _xlsx(["Nom complet"] + header[1:], rows), "Nom complet")
    _refused(client, "m.xlsx", _xlsx(header, rows, merged), "A2:B2")
    _refused(client, "e.csv", b"")
    _refused(client, "h-only.csv", _csv(header, []))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hello.txt", "not a spreadsheet")
    _refused(client, "z.xlsx", archive.getvalue(), "XLSX")
    _refused(client, "doc.pdf", b"%PDF-1.4")


def test_size_and_row_limits(client, manager, monkeypatch):
    header, rows = _rows()
    monkeypatch.setattr(importer, "MAX_ROWS", 1)
    _refused(client, "many.csv", _csv(header, rows), "1")
    monkeypatch.setattr(importer, "MAX_BYTES", 100)
    _refused(client, "big.csv", _csv(header, rows), "5", status=413)


def test_ten_thousand_and_one_rows_are_refused():
    header, rows = _rows()
    data = _csv(header, [rows[0]] * (importer.MAX_ROWS + 1))
    with pytest.raises(importer.ImportRefused):
        importer.read_table("many.csv", data)


def test_duplicates_are_decided_row_by_row(client, manager, make_beneficiary):
    existing = make_beneficiary("BA", first_name_ar="مريم", last_name_ar="الجزيري",
                                first_name_latin=None, last_name_latin=None,
                                birth_date=date(2004, 1, 1))
    header, rows = _rows()
    before = _count()
    started = _upload(client, "dups.csv", _csv(header, rows))
    page = follow_job(client, started)
    assert page.status_code == 200 and existing.code in text_of(page)
    assert "/duplicates" in page.request.path
    assert _count() == before
    response = client.post(page.request.path, data={"row-2": "skip"})
    assert response.status_code == 302
    assert _done(client.get(response.headers["Location"]))
    assert _count() == before + 1
    again = client.post(page.request.path, data={"row-2": "new"})
    assert again.status_code == 302 and _count() == before + 1, "a decision is made once"


def test_an_import_waiting_for_decisions_can_be_cancelled_from_its_page(
        client, manager, make_beneficiary):
    """The duplicates page offers to import nothing: the job ends cancelled, nothing is
    written, and its page no longer asks for decisions."""
    make_beneficiary("BA", first_name_ar="مريم", last_name_ar="الجزيري",
                     first_name_latin=None, last_name_latin=None, birth_date=date(2004, 1, 1))
    header, rows = _rows()
    before = _count()
    page = follow_job(client, _upload(client, "dups.csv", _csv(header, rows)))
    assert "/duplicates" in page.request.path
    html = page.get_data(as_text=True)
    cancel = re.search(r'<form method="post" action="([^"]+/cancel)"', html).group(1)
    ended = client.post(cancel, follow_redirects=True)
    assert "/duplicates" not in ended.request.path
    assert 'data-status="cancelled"' in ended.get_data(as_text=True)
    assert "أُلغيت بطلب منك: لم يُحفظ أي شيء." in text_of(ended), "in the manager's Arabic"
    assert client.get(page.request.path).status_code == 302, "no decision to make any more"
    assert client.post(page.request.path, data={"row-2": "new"}).status_code == 302
    assert _count() == before


def test_field_worker_cannot_import(client, make_user):
    login(client, make_user(Role.FIELD_WORKER, "BA"))
    assert client.get("/beneficiaries/import").status_code == 403


def test_command_line_import(app, tmp_path, make_beneficiary):
    header, rows = _rows()
    path = tmp_path / "youth.csv"
    path.write_bytes(_csv(header, rows))
    runner = app.test_cli_runner()
    before = _count()
    result = runner.invoke(args=["beneficiaries", "import", str(path), "--org", "BA"])
    assert result.exit_code == 0, result.output
    assert _count() == before + 2
    duplicate = runner.invoke(args=["beneficiaries", "import", str(path), "--org", "BA"])
    assert duplicate.exit_code != 0 and "duplicates" in duplicate.output
    skipped = runner.invoke(args=["beneficiaries", "import", str(path), "--org", "BA",
                                  "--skip-duplicates"])
    assert skipped.exit_code == 0 and _count() == before + 2
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_csv(header, [rows[0][:3] + ["1900-01-01"] + rows[0][4:]]))
    refused = runner.invoke(args=["beneficiaries", "import", str(bad), "--org", "BA"])
    assert refused.exit_code != 0 and "Row 2" in refused.output
    assert runner.invoke(args=["beneficiaries", "import", str(path), "--org", "DOS"]
                         ).exit_code != 0

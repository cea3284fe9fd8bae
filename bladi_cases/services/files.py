"""Files that leave the app: every CSV and XLSX it produces is written here, and every
download is named here.

Formula injection: a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and,
in some programs, a tab or a carriage return) as a formula. Every *text* cell that starts
with one of them (after any apostrophes) gets one more apostrophe in front, in CSV and in
XLSX alike, as OWASP recommends: the cell then reads as text in Excel, LibreOffice and
Google Sheets, also after an XLSX is saved again as CSV. Real numbers, dates and booleans
are written as such: a negative number is data, not a formula, and a number cell cannot run
anything. In XLSX every text cell is written with the string type, never as a formula.
`restore` undoes `neutralise` exactly, for the files the app reads back (XLSForms).

Names: `download` sets Content-Disposition with an ASCII fallback and the RFC 5987
`filename*` form, after replacing what a name must not hold (quotes, slashes, control
characters), so a survey's form_id can neither rename nor break a download.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from urllib.parse import quote

from flask import Response
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEUTRALISED = re.compile(r"'*[=+\-@\t\r]")
CSV_MIMETYPE = "text/csv; charset=utf-8"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_CHUNK_ROWS = 1000  # a streamed CSV yields a chunk per this many rows
_SAFE_NUMBERS = (int, float, Decimal)  # bool is an int: written as TRUE/FALSE, also safe
_SAFE_TIMES = (date, datetime, time)


def neutralise(value):
    """A cell value that no spreadsheet will run as a formula: text starting with a formula
    character gets an apostrophe in front; numbers, dates, booleans and None are kept as
    they are; anything else (a lazy translation, an enum) becomes text first."""
    if value is None or isinstance(value, _SAFE_NUMBERS + _SAFE_TIMES):
        return value
    text = value if isinstance(value, str) else str(value)
    # Also when apostrophes come first, so that `restore` can undo exactly this.
    return "'" + text if _NEUTRALISED.match(text) else text


def restore(text: str) -> str:
    """The text `neutralise` was given (for a file of ours read back, e.g. an XLSForm)."""
    if text.startswith("'") and _NEUTRALISED.match(text, 1):
        return text[1:]
    return text


# --- CSV ---------------------------------------------------------------------------------

def csv_stream(rows: Iterable[Sequence]) -> Iterator[bytes]:
    """Rows as CSV, UTF-8 with a BOM (Excel then opens Arabic correctly), every cell
    neutralised; yielded a chunk per CSV_CHUNK_ROWS rows, so a long file streams."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    for index, row in enumerate(rows, start=1):
        writer.writerow(["" if v is None else neutralise(v) for v in row])
        if index % CSV_CHUNK_ROWS == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def csv_bytes(rows: Iterable[Sequence]) -> bytes:
    """Rows as one CSV file (see `csv_stream`)."""
    return b"".join(csv_stream(rows))


# --- XLSX --------------------------------------------------------------------------------

@dataclass
class Sheet:
    """One sheet of a workbook: its rows and how it looks."""

    title: str
    rows: Iterable[Sequence]
    rtl: bool = False  # right to left (Arabic)
    bold_header: bool = False
    widths: dict[str, float] = field(default_factory=dict)  # column letter -> width


_SHEET_TITLE_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def _sheet_title(title: str, taken: set[str]) -> str:
    """A title Excel accepts: at most 31 characters, none of []:*?/\\, unique."""
    base = _SHEET_TITLE_FORBIDDEN.sub("_", str(title)).strip("'") or "Sheet"
    candidate, number = base[:31], 1
    while candidate.lower() in taken:
        number += 1
        candidate = f"{base[:31 - len(str(number)) - 1]} {number}"
    taken.add(candidate.lower())
    return candidate


def _xlsx_cell(sheet, value, bold: bool) -> WriteOnlyCell:
    value = neutralise(value)
    if isinstance(value, str):
        # Control characters XML cannot hold would fail the whole file: drop them.
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # text, whatever it starts with: never a formula
    if bold:
        cell.font = Font(bold=True)
    return cell


def xlsx_bytes(sheets: Iterable[Sheet]) -> bytes:
    """A workbook of these sheets, every cell neutralised and text typed as text. Written
    in openpyxl's write-only mode: rows go to disk as they come, memory stays flat."""
    book = Workbook(write_only=True)
    taken: set[str] = set()
    for spec in sheets:
        sheet = book.create_sheet(_sheet_title(spec.title, taken))
        sheet.sheet_view.rightToLeft = spec.rtl
        for letter, width in spec.widths.items():
            sheet.column_dimensions[letter].width = width
        for index, row in enumerate(spec.rows):
            bold = spec.bold_header and index == 0
            sheet.append([_xlsx_cell(sheet, value, bold) for value in row])
    if not taken:
        book.create_sheet("Sheet")  # a workbook needs one sheet
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- Download names ----------------------------------------------------------------------

_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;]+')
_NOT_PLAIN_ASCII = re.compile(r"[^A-Za-z0-9._-]+")
NAME_MAX = 120


def safe_filename(name: str) -> str:
    """The name with nothing a file name or a header must not hold: quotes, slashes,
    control characters, runs of dots and the like become "_"; at most NAME_MAX characters,
    keeping the extension (letters and digits after the last dot)."""
    cleaned = _UNSAFE_IN_NAME.sub("_", unicodedata.normalize("NFC", str(name)))
    cleaned = re.sub(r"\.{2,}", "_", cleaned).strip(" ._") or "download"
    stem, dot, extension = cleaned.rpartition(".")
    if not dot or not re.fullmatch(r"[A-Za-z0-9]{1,10}", extension):
        stem, extension = cleaned, ""
    stem = stem[:NAME_MAX - len(extension) - 1].strip(" ._") or "download"
    return f"{stem}.{extension}" if extension else stem


def ascii_filename(name: str) -> str:
    """The ASCII fallback of a safe name: accents dropped, other letters (Arabic...) left
    out, e.g. "استبيان-responses.csv" -> "responses.csv", "عربي.xlsx" -> "download.xlsx"."""
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    plain = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    plain = _NOT_PLAIN_ASCII.sub("_", plain).strip("._-") or "download"
    extension = _NOT_PLAIN_ASCII.sub("", extension)
    return f"{plain}.{extension}" if extension else plain


def content_disposition(filename: str) -> dict[str, str]:
    """The parameters of an attachment's Content-Disposition: `filename` (ASCII) and, when
    the name is not plain ASCII, `filename*` (RFC 5987, UTF-8)."""
    name = safe_filename(filename)
    fallback = ascii_filename(name)
    params = {"filename": fallback}
    if fallback != name:
        params["filename*"] = "UTF-8''" + quote(name, safe="!#$&+-.^_`|~")
    return params


def download(body, filename: str, mimetype: str) -> Response:
    """A response that downloads `body` (bytes, or an iterable of bytes to stream) as a file
    named `filename`: the one place a Content-Disposition is written."""
    response = Response(body, mimetype=mimetype)
    response.headers.set("Content-Disposition", "attachment", **content_disposition(filename))
    return response


def is_download(response: Response) -> bool:
    """Whether a response is a file made by `download` (it names it), or the way to the
    page of the background job that makes one (a file asked for is counted when asked)."""
    return "Content-Disposition" in response.headers or (
        response.status_code == 302 and "/jobs/" in (response.location or ""))

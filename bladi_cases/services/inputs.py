"""Input from outside, bounded before it is read: uploaded spreadsheets (XLSX, CSV) and
JSON bodies. A small file must not make large work.

People's names (`name_problems`) are bounded here too, for every path that takes one: the
registration form, the spreadsheet import, the offline sync and staff accounts.

An XLSX is a ZIP of XML parts. Before any XML is parsed, `check_xlsx` looks at the ZIP's
directory (the size of every part once expanded, how much each is compressed), reads the
first bytes of each sheet for its declared range (`<dimension ref="A1:XFD1048576"/>`), and
then scans each sheet's cell references for the range actually used (a declared range can
lie or be missing). Columns count only as far as a cell holds a value: spreadsheet programs
format sheets out to column AMJ (1,024) or beyond with empty cells (`<c r="AMJ1" s="1"/>`),
and such a sheet is fine; the empty cells are bounded by a count of their own
(MAX_EMPTY_CELLS), so that millions of them still stop the scan at once. Only then is the
workbook opened, in openpyxl's read-only mode, and `sheet_rows` reads it with a hard stop
on rows and columns. Each refusal is an InputRefused whose messages say why in the user's
language; its `status` is the HTTP answer (413 too large, 422 not acceptable, 400
malformed).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.etree import ElementTree

from flask_babel import gettext as _
from openpyxl.utils import column_index_from_string, get_column_letter

MB = 1024 * 1024
MAX_UPLOAD_BYTES = 5 * MB  # a spreadsheet as uploaded
MAX_XLSX_EXPANDED = 50 * MB  # all its parts once decompressed
MAX_SHARED_STRINGS = 16 * MB  # the shared strings part: openpyxl holds it all in memory
MAX_OTHER_PART = 5 * MB  # styles, workbook, themes, images...
MAX_PARTS = 1000
MAX_RATIO = 100  # expanded / compressed size of a part, checked for parts over RATIO_FROM
RATIO_FROM = 1 * MB
EXCEL_MAX_COLUMNS = 16_384
MAX_EMPTY_CELLS = 100_000  # per sheet: formatting without values (a 1,024-wide header row)
MAX_JSON_BYTES = 2 * MB
MAX_JSON_DEPTH = 16  # the sync API's deepest record is 7 levels deep
_SCAN_CHUNK = 1 * MB


class InputRefused(Exception):  # noqa: N818 (carries the messages to show)
    """Input outside the bounds; `messages` say why in the user's language, `status` is
    the HTTP status to answer."""

    def __init__(self, messages: list[str], status: int = 422):
        super().__init__("; ".join(str(m) for m in messages))
        self.messages = [str(m) for m in messages]
        self.status = status


def _too_large() -> InputRefused:
    return InputRefused([_("The file is larger than 5 MB. Split it into smaller files.")], 413)


def not_xlsx() -> InputRefused:
    """The refusal of a file that is not an XLSX spreadsheet."""
    return InputRefused([_("The file is not a valid XLSX spreadsheet.")])


# --- XLSX: the ZIP first -----------------------------------------------------------------

@dataclass
class SheetSurvey:
    """What a sheet holds, from a scan of its XML: the rows and columns its cells reach,
    and its merged ranges."""

    title: str
    rows: int = 0
    columns: int = 0  # the last column holding a value (empty formatted cells do not count)
    empty_cells: int = 0
    merged: list[str] = field(default_factory=list)  # e.g. "A2:B2"


def check_xlsx(data: bytes, max_rows: int, max_columns: int) -> list[SheetSurvey]:
    """Refuse an XLSX whose parts are too large once expanded, too compressed, or whose
    sheets reach beyond row `max_rows` or column `max_columns`; reads no more than the
    ZIP's directory, the first bytes of each sheet and a scan of its tags. Returns what
    each sheet holds, in the workbook's order."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise _too_large()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        parts = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise not_xlsx() from None
    with archive:
        _check_sizes(parts)
        try:
            sheets, shared = _workbook_parts(archive)
            if shared is not None and archive.getinfo(shared).file_size > MAX_SHARED_STRINGS:
                raise InputRefused([_("The file holds more than %(mb)d MB of text. Split it "
                                      "into smaller files.", mb=MAX_SHARED_STRINGS // MB)])
            return [_check_sheet(archive, title, part, max_rows, max_columns)
                    for title, part in sheets]
        except (KeyError, zipfile.BadZipFile, ElementTree.ParseError, NotImplementedError,
                RuntimeError, EOFError, OSError, ValueError):
            raise not_xlsx() from None


def _check_sizes(parts: list[zipfile.ZipInfo]) -> None:
    """The ZIP's directory alone: declared sizes bound what decompressing can produce
    (zipfile stops at the declared size)."""
    not_ordinary = InputRefused([_(
        "Opened, this file would take more than %(mb)d MB: it is not an ordinary "
        "spreadsheet. Save it again from your spreadsheet program, with only the data.",
        mb=MAX_XLSX_EXPANDED // MB)])
    if len(parts) > MAX_PARTS or sum(p.file_size for p in parts) > MAX_XLSX_EXPANDED:
        raise not_ordinary
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > RATIO_FROM and ratio > MAX_RATIO:
            raise InputRefused([_(
                "The file is compressed %(ratio)d times, far more than a spreadsheet can be: "
                "it is refused. Save it again from your spreadsheet program.",
                ratio=int(ratio))])
        is_xml_of_cells = "worksheets/" in part.filename or "sharedStrings" in part.filename
        if not is_xml_of_cells and part.file_size > MAX_OTHER_PART:
            raise not_ordinary


_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DOC_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _relationships(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """Id -> (type, part name) of a part's relationships."""
    folder, name = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", name + ".rels")
    if rels not in archive.namelist():
        return {}
    found = {}
    for rel in ElementTree.fromstring(archive.read(rels)).iter(f"{_REL_NS}Relationship"):
        target = rel.get("Target", "")
        target = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
            posixpath.join(folder, target))
        found[rel.get("Id", "")] = (rel.get("Type", ""), target)
    return found


def _workbook_parts(archive: zipfile.ZipFile) -> tuple[list[tuple[str, str]], str | None]:
    """[(sheet title, part name)] of the workbook's worksheets, and its shared strings
    part (None if it has none)."""
    root = {kind.rsplit("/", 1)[-1]: target for kind, target in _package_relationships(archive)}
    workbook = root.get("officeDocument", "xl/workbook.xml")
    related = _relationships(archive, workbook)
    sheets = []
    for sheet in ElementTree.fromstring(archive.read(workbook)).iter():
        if sheet.tag.rsplit("}", 1)[-1] == "sheet" and sheet.get(_DOC_REL) in related:
            kind, target = related[sheet.get(_DOC_REL)]
            if kind.endswith("/worksheet"):
                sheets.append((sheet.get("name", "?"), target))
    shared = next((target for kind, target in related.values()
                   if kind.endswith("/sharedStrings")), None)
    return sheets, shared if shared in archive.namelist() else None


def _package_relationships(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    if "_rels/.rels" not in archive.namelist():
        return []
    return [(rel.get("Type", ""), rel.get("Target", "").lstrip("/"))
            for rel in ElementTree.fromstring(archive.read("_rels/.rels")).iter(
                f"{_REL_NS}Relationship")]


# Attribute values may hold ">" and use either quote: match them whole, so that no
# attribute can hide the cell reference that openpyxl will read.
_ATTRIBUTES = rb"((?:[^>\"']|\"[^\"]*\"|'[^']*')*)"
_DIMENSION = re.compile(rb"<(?:[\w.-]+:)?dimension\s" + _ATTRIBUTES + rb">")
_TAG = re.compile(rb"<(?:[\w.-]+:)?(row|c|mergeCell)(?=[\s/>])" + _ATTRIBUTES + rb">")
_REF = re.compile(rb"(?:^|\s)r\s*=\s*([\"'])([A-Z]*)(\d+)\1")
_RANGE = re.compile(rb"(?:^|\s)ref\s*=\s*([\"'])\$?([A-Z]{1,3})\$?(\d{1,15})"
                    rb"(?::\$?([A-Z]{1,3})\$?(\d{1,15}))?\1")
MERGED_KEPT = 50


@dataclass
class _Scan:
    """Counters of a sheet's scan, as openpyxl counts: a row or cell without a reference
    is one more than the last."""

    survey: SheetSurvey
    row: int = 0
    column: int = 0

    def read(self, text: bytes) -> None:
        survey = self.survey
        for tag, attributes in _TAG.findall(text):
            if tag == b"mergeCell":
                merged = _RANGE.search(attributes)
                if merged and merged.group(4) and len(survey.merged) < MERGED_KEPT:
                    survey.merged.append((b"%s%s:%s%s" % merged.group(2, 3, 4, 5)).decode())
                continue
            ref = _REF.search(attributes)
            letters, digits = ref.group(2, 3) if ref else (b"", b"")
            if tag == b"row":
                self.row = self._number(digits) if digits else self.row + 1
                self.column = 0
            else:
                self.column = (column_index_from_string(letters.decode())
                               if 0 < len(letters) <= 3 else self.column + 1)
                if digits:
                    self.row = self._number(digits)
                if attributes.rstrip().endswith(b"/"):  # <c r="AMJ1" s="1"/>: no value
                    survey.empty_cells += 1
                else:
                    survey.columns = max(survey.columns, self.column)
            survey.rows = max(survey.rows, self.row)

    @staticmethod
    def _number(digits: bytes) -> int:
        return int(digits) if len(digits) <= 15 else 10 ** 15


def _check_sheet(archive: zipfile.ZipFile, title: str, part: str, max_rows: int,
                 max_columns: int) -> SheetSurvey:
    """The declared range (first bytes), then the range the cells really reach."""
    with archive.open(part) as stream:
        head = stream.read(4096)
    declared = _DIMENSION.search(head)
    ref = _RANGE.search(declared.group(1)) if declared else None
    if ref:  # the last cell of the range: its end, or its only cell
        # Its columns are not checked: formatting alone stretches it (A1:AMJ6).
        digits = ref.group(5) if ref.group(4) else ref.group(3)
        _check_extent(title, int(digits), 0, max_rows, max_columns)
    scan = _Scan(SheetSurvey(title))
    with archive.open(part) as stream:
        pending = b""
        while chunk := stream.read(_SCAN_CHUNK):
            text = pending + chunk
            cut = max(text.rfind(b"<"), 0)  # a tag may go on in the next chunk
            if len(text) - cut > _SCAN_CHUNK:
                raise ValueError("a tag longer than a chunk")
            scan.read(text[:cut])
            pending = text[cut:]
            _check_extent(title, scan.survey.rows, scan.survey.columns, max_rows, max_columns,
                          scan.survey.empty_cells)
        scan.read(pending)
    _check_extent(title, scan.survey.rows, scan.survey.columns, max_rows, max_columns,
                  scan.survey.empty_cells)
    return scan.survey


def _check_extent(title: str, rows: int, columns: int, max_rows: int, max_columns: int,
                  empty_cells: int = 0):
    if rows > max_rows:
        raise InputRefused([_(
            "The sheet “%(sheet)s” reaches row %(row)s, beyond row %(max)s. Delete the "
            "rows below your data, or split the file.",
            sheet=title[:40], row=f"{rows:,}", max=f"{max_rows:,}")])
    if columns > max_columns:
        shown = get_column_letter(min(columns, EXCEL_MAX_COLUMNS))
        raise InputRefused([_(
            "The sheet “%(sheet)s” reaches column %(column)s; at most %(max)s columns are "
            "accepted. Delete the columns to the right of your data.",
            sheet=title[:40], column=shown, max=max_columns)])
    if empty_cells > MAX_EMPTY_CELLS:
        raise InputRefused([_(
            "The sheet “%(sheet)s” holds more than %(max)s empty formatted cells. Clear the "
            "formatting of the rows and columns outside your data.",
            sheet=title[:40], max=f"{MAX_EMPTY_CELLS:,}")])


def sheet_rows(sheet, max_rows: int, max_columns: int, values_only: bool = True
               ) -> Iterator[tuple]:
    """The rows of a read-only sheet (values, or cells), row 1 first, never more than
    `max_rows` rows of `max_columns` (the hard stop, whatever the file declares)."""
    # 0 would mean "as far as the sheet declares" to openpyxl: never ask for fewer than 1.
    yield from sheet.iter_rows(min_row=1, max_row=max(max_rows, 1), min_col=1,
                               max_col=max(max_columns, 1), values_only=values_only)


# --- CSV ---------------------------------------------------------------------------------

def csv_rows(text: str, dialect, max_rows: int, max_columns: int) -> list[list[str]]:
    """The non-empty rows of a CSV text: a header and at most `max_rows` rows under it, of
    at most `max_columns` cells (trailing empty cells do not count); InputRefused beyond,
    or when a row is not CSV. Reading stops at the first row too many."""
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(text), dialect)
    number = 0
    try:
        for number, row in enumerate(reader, start=1):  # noqa: B007 (used after the loop)
            while row and not row[-1].strip():
                row.pop()
            if not row:
                continue
            if len(row) > max_columns:
                raise InputRefused([_(
                    "Row %(row)d has %(n)d cells; at most %(max)d columns are accepted.",
                    row=number, n=len(row), max=max_columns)])
            rows.append(row)
            if len(rows) > max_rows + 1:
                raise too_many_rows(max_rows)
    except csv.Error:
        raise InputRefused([_("Row %(row)d cannot be read as CSV: check its quotes, and that "
                              "no cell is very long.", row=number + 1)]) from None
    return rows


def too_many_rows(max_rows: int) -> InputRefused:
    """The refusal of a file with more than `max_rows` rows under its header."""
    return InputRefused([_("The file has more than %(n)d rows. Split it into smaller files.",
                           n=max_rows)])


# --- JSON --------------------------------------------------------------------------------

def parse_json(body: bytes):
    """A JSON document of at most MAX_JSON_BYTES bytes and MAX_JSON_DEPTH levels."""
    if len(body) > MAX_JSON_BYTES:
        raise InputRefused([_("Send at most %(mb)d MB at a time.", mb=MAX_JSON_BYTES // MB)],
                           413)
    too_deep = InputRefused([_("The JSON is nested more than %(n)d levels deep.",
                               n=MAX_JSON_DEPTH)], 400)
    try:
        document = json.loads(body)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError):
        raise InputRefused([_("The body is not valid JSON.")], 400) from None
    if json_depth(document) > MAX_JSON_DEPTH:
        raise too_deep
    return document


def json_depth(document) -> int:
    """How deeply lists and objects nest in a parsed document (a scalar is 0)."""
    deepest, todo = 0, [(document, 1)]
    while todo:
        value, depth = todo.pop()
        children = value.values() if isinstance(value, dict) else (
            value if isinstance(value, list) else None)
        if children is None:
            continue
        deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in children)
    return deepest


# --- Names -------------------------------------------------------------------------------

# Invisible characters that change the direction of the text around them: embeddings and
# overrides (U+202A..U+202E), isolates (U+2066..U+2069), and the marks LRM, RLM and ALM
# (U+200E, U+200F, U+061C). An override makes a name read differently than it was typed
# ("Trojan Source"); a mark makes two names that look alike differ, so the duplicate check
# misses them. A typed name never needs them (pages show names with dir="auto").
BIDI_CONTROLS = frozenset([*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)),
                           "\u200e", "\u200f", "\u061c"])
# Letters of any script; modifier letters (Lm: tatweel, ʼ) alone do not make a name.
_LETTERS = ("Lu", "Ll", "Lt", "Lo")


def name_problems(name: str | None) -> list[str]:
    """Why a person's name (a youth's, a guardian's, a staff member's) is refused, in the
    user's language: direction controls, or no letter at all (only digits, punctuation or
    zero-width characters). [] for an acceptable or empty name (required is the caller's)."""
    if name is None or name == "":
        return []
    if not isinstance(name, str):  # JSON's true or 12 is no name
        return [_("A name must contain at least one letter.")]
    problems = []
    if any(char in BIDI_CONTROLS for char in name):
        problems.append(_("The name contains invisible characters that change the direction "
                          "of the text: type it again without them."))
    if not any(unicodedata.category(char) in _LETTERS for char in name):
        problems.append(_("A name must contain at least one letter."))
    return problems

"""Malicious spreadsheets, built at test time with zipfile (each is small on disk): the files
that, before the bounds of services/inputs.py, ran imports out of memory or time. Also used
by bench/bombs.py, which measures time and peak memory per file."""

from __future__ import annotations

import io
import random
import zipfile

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>')
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>')
_SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>'
               '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
_STRINGS_HEAD = ('<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.'
                 'openxmlformats.org/spreadsheetml/2006/main" count="{n}" uniqueCount="{n}">')
MB = 1024 * 1024


def workbook(sheet_body: str, strings=(), sheet_name: str = "survey",
             write_strings=None) -> bytes:
    """A minimal XLSX: one sheet (its <worksheet> content), shared strings, and the parts
    that tie them together. `write_strings(stream)` may stream a huge shared strings part."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK.format(name=sheet_name))
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", _SHEET_HEAD + sheet_body + "</worksheet>")
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as stream:
            if write_strings is not None:
                write_strings(stream)
            else:
                stream.write(_STRINGS_HEAD.format(n=len(strings)).encode())
                for text in strings:
                    stream.write(f"<si><t>{text}</t></si>".encode())
                stream.write(b"</sst>")
    return buffer.getvalue()


def _cell(ref: str, index: int) -> str:
    return f'<c r="{ref}" t="s"><v>{index}</v></c>'


def corner_bomb(dimension: str | None = "A1:XFD1048576") -> bytes:
    """One cell at A1 and one at XFD1048576 (the last cell of a sheet): ~1 KB. Read
    naively, every row and column between them is materialised. `dimension`: the declared
    range (as Excel and openpyxl write it), a lie ("A1:B2"), or None (no <dimension>)."""
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    return workbook(declared + '<sheetData><row r="1">' + _cell("A1", 0) + "</row>"
                    '<row r="1048576">' + _cell("XFD1048576", 1) + "</row></sheetData>",
                    strings=["type", "name"])


def row_number_bomb() -> bytes:
    """A row numbered 10^11, far past any sheet, and no <dimension>."""
    return workbook('<sheetData><row r="1">' + _cell("A1", 0) + '</row><row r="99999999999">'
                    '<c t="s"><v>1</v></c></row></sheetData>', strings=["type", "name"])


def hidden_reference_bomb() -> bytes:
    """The corner bomb with its references hidden from a naive scan: a ">" inside an
    attribute value before them, single quotes, a decoy `x:r`, and no <dimension>."""
    return workbook('<sheetData><row r="1">' + _cell("A1", 0) + "</row>"
                    '<row xmlns:x="urn:x" x:note=">" r = \'1048576\'>'
                    '<c x:r="A1" x:note="a>b" r=\'XFD1048576\' t="s"><v>1</v></c></row>'
                    "</sheetData>", strings=["type", "name"])


def shared_string_bomb(megabytes: int = 400) -> bytes:
    """One shared string of `megabytes` MB of "a" (a ~400 KB file for 400 MB)."""
    def write(stream):
        stream.write(_STRINGS_HEAD.format(n=1).encode() + b"<si><t>")
        chunk = b"a" * MB
        for _ in range(megabytes):
            stream.write(chunk)
        stream.write(b"</t></si></sst>")
    return workbook('<dimension ref="A1"/><sheetData><row r="1">' + _cell("A1", 0)
                    + "</row></sheetData>", write_strings=write)


def text_heavy_workbook(megabytes: int = 20) -> bytes:
    """Ordinary compression (about 6 times) but `megabytes` MB of distinct shared strings:
    within the total and the ratio, over the shared strings' own limit."""
    words = ["type", "name", "label", "hint", "choice", "select", "one", "text"]
    randomness = random.Random(1)
    block = "".join(f"<si><t>{' '.join(randomness.choices(words, k=4))} {n}</t></si>"
                    for n in range(MB // 40)).encode()  # 1 MB, repeated beyond zlib's window

    def write(stream):
        stream.write(_STRINGS_HEAD.format(n=megabytes * MB // 40).encode())
        for _ in range(megabytes):
            stream.write(block)
        stream.write(b"</sst>")
    return workbook('<dimension ref="A1"/><sheetData><row r="1">' + _cell("A1", 0)
                    + "</row></sheetData>", write_strings=write)


def ratio_bomb(megabytes: int = 40) -> bytes:
    """A sheet of `megabytes` MB of empty rows, compressed about 1,000 times: within the
    total, far over any real sheet's ratio."""
    rows = '<row r="1">' + _cell("A1", 0) + "</row>" + "<row/>" * (megabytes * MB // 6)
    return workbook('<sheetData>' + rows + "</sheetData>", strings=["type"])


def wide_workbook(column: str) -> bytes:
    """A header cell at A1 and one more at `column`1."""
    return workbook('<sheetData><row r="1">' + _cell("A1", 0) + _cell(f"{column}1", 1)
                    + "</row></sheetData>", strings=["type", "name"])

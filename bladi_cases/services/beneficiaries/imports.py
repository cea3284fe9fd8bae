"""Importing beneficiaries from a spreadsheet (CSV or XLSX): all rows or none.

Headers may be in Arabic, French or English (or the column keys); every row is validated
with the same rules as the registration form before anything is written, and errors are
reported as "row N, column C: message" in the user's language.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import openpyxl
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from ...extensions import db
from ...i18n import BABEL_LOCALES
from ...models import (
    ConsentGiver,
    ConsentMethod,
    ConsentScope,
    Governorate,
    Organization,
    SchoolStatus,
    Sex,
    Site,
    SiteKind,
    TitledEnum,
)
from ...models.common import refresh_statistics
from ...privacy import normalize_text
from .. import ValidationError, capped, inputs
from ..audit import Action, record
from .registry import cipher, create_validated, find_duplicates_many
from .validation import validate_registration

MAX_BYTES = inputs.MAX_UPLOAD_BYTES
MAX_ROWS = 10_000  # under the header
MAX_COLUMNS = 60  # the template has 23; a wider sheet is not one of ours
IMPORT_BATCH = 1000  # rows per flush: bounded memory, few round trips

# (key, header label). The key is also accepted as a header.
COLUMNS = [
    ("first_name_ar", _l("First name (Arabic)")),
    ("last_name_ar", _l("Last name (Arabic)")),
    ("first_name_latin", _l("First name (Latin letters)")),
    ("last_name_latin", _l("Last name (Latin letters)")),
    ("sex", _l("Sex")),
    ("birth_date", _l("Date of birth")),
    ("governorate_code", _l("Governorate")),
    ("delegation", _l("Delegation")),
    ("setting_kind", _l("Setting")),
    ("site", _l("Site")),
    ("phone", _l("Phone")),
    ("address", _l("Address")),
    ("school_status", _l("School status")),
    ("disability", _l("Disability")),
    ("first_contact_date", _l("Date of first contact")),
    ("consent_given_by", _l("Consent given by")),
    ("guardian_name", _l("Guardian name")),
    ("guardian_relationship", _l("Relationship to the young person")),
    ("guardian_phone", _l("Guardian phone")),
    ("consent_authority", _l("Authorising centre or authority")),
    ("consent_method", _l("Consent method")),
    ("consent_date", _l("Consent date")),
    ("consent_scopes", _l("Consent covers")),
]
REQUIRED_HEADERS = {"sex", "birth_date", "governorate_code", "setting_kind"}
YES = {"yes", "y", "oui", "o", "نعم", "1", "true"}
NO = {"no", "n", "non", "لا", "0", "false"}


class ImportRefused(Exception):  # noqa: N818 (carries the messages to show)
    """The file cannot be imported; `messages` say why, in the user's language (the first
    50, then how many more); `status` is the HTTP status the page answers."""

    def __init__(self, messages: list[str], status: int = 422):
        messages = [str(m) for m in capped(messages)]
        super().__init__("; ".join(messages))
        self.messages = messages
        self.status = status


@dataclass
class ParsedRow:
    """One spreadsheet row that passed the registration rules, ready to write."""

    number: int
    validated: tuple  # (identity, plain, consent) from validate_registration


def header_labels(lang: str) -> list[str]:
    """The template's headers in one language."""
    with force_locale(BABEL_LOCALES.get(lang, BABEL_LOCALES["en"])):
        return [str(label) for _, label in COLUMNS]


def _header_lookup() -> dict[str, str]:
    lookup = {}
    for lang in ("ar", "fr", "en"):
        for (key, _label), text in zip(COLUMNS, header_labels(lang), strict=True):
            lookup[normalize_text(text)] = key
    lookup.update({normalize_text(key): key for key, _ in COLUMNS})
    return lookup


def _choice_lookup(enum: type[TitledEnum]) -> dict[str, str]:
    lookup = {}
    for value, label in enum.choices():
        lookup[normalize_text(value)] = value
        for lang in BABEL_LOCALES.values():
            with force_locale(lang):
                lookup[normalize_text(str(label))] = value
    return lookup


# --- Reading the file --------------------------------------------------------------------

def _read_csv(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "cp1256"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportRefused([_("The file is not UTF-8 or Windows-1256 text.")])
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return inputs.csv_rows(text, dialect, MAX_ROWS, MAX_COLUMNS)


def _read_xlsx(data: bytes) -> list[list]:
    """The first sheet's rows: the ZIP is checked first (inputs.check_xlsx), then read
    read-only with a hard stop on rows and columns."""
    sheets = inputs.check_xlsx(data, MAX_ROWS + 1, MAX_COLUMNS)
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError,
            TypeError):
        raise ImportRefused([_("The file is not a valid XLSX spreadsheet.")]) from None
    try:
        if not workbook.worksheets or not sheets:
            raise ImportRefused([_("The file has no rows under its header.")])
        problems = [_("Cells %(range)s are merged: unmerge them and put one value in "
                      "each cell.", range=merged) for merged in sheets[0].merged]
        rows = []
        for row in inputs.sheet_rows(workbook.worksheets[0], sheets[0].rows, MAX_COLUMNS,
                                     values_only=False):
            for cell in row:
                if cell.data_type == "f":
                    problems.append(_("Row %(row)d, column %(column)s: formulas are not "
                                      "accepted; paste the values instead.", row=cell.row,
                                      column=cell.column_letter))
            rows.append([cell.value for cell in row])
    finally:
        workbook.close()
    if problems:
        raise ImportRefused(problems)
    return rows


def read_table(filename: str, data: bytes) -> list[list]:
    """The rows of a CSV or XLSX upload (header first); ImportRefused when unreadable."""
    if len(data) > MAX_BYTES:
        raise ImportRefused([_("The file is larger than 5 MB. Split it into smaller files.")],
                            413)
    if not data.strip():
        raise ImportRefused([_("The file is empty.")])
    name = (filename or "").lower()
    try:
        if name.endswith(".xlsx") or data[:2] == b"PK":
            rows = _read_xlsx(data)
        elif name.endswith(".csv") or name.endswith(".txt"):
            rows = _read_csv(data)
        else:
            raise ImportRefused([_("Upload a .csv or .xlsx file.")])
    except inputs.InputRefused as refused:
        raise ImportRefused(refused.messages, refused.status) from None
    rows = [r for r in rows if any(v not in (None, "") for v in r)]
    if len(rows) < 2:
        raise ImportRefused([_("The file has no rows under its header.")])
    if len(rows) - 1 > MAX_ROWS:
        raise ImportRefused([_("The file has more than %(n)d rows. Split it into smaller "
                               "files.", n=MAX_ROWS)])
    return rows


# --- Turning cells into values -----------------------------------------------------------

def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _as_date(value):
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _as_text(value)
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(text)


class RowReader:
    """Converts the cells of each row with lookups prepared once per import."""

    def __init__(self, org: Organization):
        self.org = org
        self.headers = _header_lookup()
        self.choices = {
            "sex": _choice_lookup(Sex),
            "setting_kind": _choice_lookup(SiteKind),
            "school_status": _choice_lookup(SchoolStatus),
            "consent_given_by": _choice_lookup(ConsentGiver),
            "consent_method": _choice_lookup(ConsentMethod),
        }
        self.scopes = _choice_lookup(ConsentScope)
        self.governorates = {}
        for gov in db.session.scalars(db.select(Governorate)):
            for text in (gov.iso_code, gov.name_ar, gov.name_fr, gov.name_en):
                self.governorates[normalize_text(text)] = gov.iso_code
        self.sites = {normalize_text(s.name): s for s in org.sites}
        self.labels = dict(COLUMNS)

    def map_headers(self, header: list) -> list[str | None]:
        """Column keys of a header row; ImportRefused for unknown or missing headers."""
        keys, problems = [], []
        for index, cell in enumerate(header, start=1):
            text = _as_text(cell)
            key = self.headers.get(normalize_text(text)) if text else None
            if text and key is None:
                problems.append(_("Column %(n)d: unknown header “%(header)s”.", n=index,
                                  header=text))
            if key is not None and key in keys:
                problems.append(_("Column %(n)d: header “%(header)s” appears twice.",
                                  n=index, header=text))
            keys.append(key)
        missing = [str(self.labels[k]) for k in sorted(REQUIRED_HEADERS - set(keys))]
        if missing:
            problems.append(_("Missing columns: %(names)s. Download the template.",
                              names=", ".join(missing)))
        if problems:
            raise ImportRefused(problems)
        return keys

    def row_values(self, keys: list[str | None], cells: list) -> tuple[dict, dict]:
        """(values, errors by key) of one row."""
        values, errors = {}, {}
        for key, cell in zip(keys, cells, strict=False):
            if key is None:
                continue
            try:
                values[key] = self._convert(key, cell)
            except ValueError:
                errors[key] = [self._bad_value_message(key)]
        return values, errors

    def _convert(self, key: str, cell):
        text = _as_text(cell)
        if key in ("birth_date", "first_contact_date", "consent_date"):
            return _as_date(cell)
        if not text:
            return None
        if key in self.choices:
            return self._lookup(self.choices[key], text)
        if key == "governorate_code":
            return self._lookup(self.governorates, text)
        if key == "site":
            return self._lookup(self.sites, text)
        if key == "disability":
            if normalize_text(text) in YES:
                return True
            if normalize_text(text) in NO:
                return False
            raise ValueError(text)
        if key == "consent_scopes":
            parts = [p for p in text.replace("،", ",").replace(";", ",").split(",") if p.strip()]
            return [self._lookup(self.scopes, p) for p in parts]
        return text

    @staticmethod
    def _lookup(table: dict, text: str):
        try:
            return table[normalize_text(text)]
        except KeyError:
            raise ValueError(text) from None

    def _bad_value_message(self, key: str) -> str:
        if key in ("birth_date", "first_contact_date", "consent_date"):
            return _("Not a date: write it as 2010-03-25 or 25/03/2010.")
        if key == "site":
            return _("Unknown site: choose one of your CSO's sites.")
        return _("Not one of the accepted values: see the template's help sheet.")


def _column_name(keys: list[str | None], key: str, labels: dict) -> str:
    """Spreadsheet letter and header, e.g. "F (Date of birth)"."""
    if key in keys:
        return f"{get_column_letter(keys.index(key) + 1)} ({labels[key]})"
    return str(labels.get(key, key or "—"))


@dataclass
class ImportCheck:
    """The outcome of validating a file: rows to import and duplicates to decide on."""

    rows: list[ParsedRow]
    duplicates: dict[int, list] = field(default_factory=dict)  # row number -> candidates


def check_file(org: Organization, filename: str, data: bytes,
               today: date | None = None) -> ImportCheck:
    """Validate every row; ImportRefused with "row N, column C: message" lines if any fail."""
    today = today or date.today()
    table = read_table(filename, data)
    reader = RowReader(org)
    keys = reader.map_headers(table[0])
    labels = {k: str(v) for k, v in reader.labels.items()}
    problems, rows = [], []
    for number, cells in enumerate(table[1:], start=2):
        values, errors = reader.row_values(keys, list(cells))
        if not errors:
            try:
                rows.append(ParsedRow(number, validate_registration(values, org, today)))
            except ValidationError as failure:
                errors = failure.errors
        for key, messages in errors.items():
            for message in messages:
                problems.append(_("Row %(row)d, column %(column)s: %(message)s", row=number,
                                  column=_column_name(keys, key, labels), message=message))
    if problems:
        raise ImportRefused(problems)
    return ImportCheck(rows, _duplicates(org, rows))


def _duplicates(org: Organization, rows: list[ParsedRow]) -> dict[int, list]:
    """Row number -> registered youth (or earlier rows of the file) it may duplicate."""
    identities = [row.validated[0] for row in rows]
    registered = find_duplicates_many(org, identities)
    duplicates, seen = {}, {}
    for row, identity, candidates in zip(rows, identities, registered, strict=True):
        file_key = (identity["birth_date"].year, normalize_text(" ".join(
            identity[n] or "" for n in ("first_name_ar", "last_name_ar", "first_name_latin",
                                        "last_name_latin"))))
        if file_key in seen:
            candidates = [*candidates, _("row %(n)d of this file", n=seen[file_key])]
        seen.setdefault(file_key, row.number)
        if candidates:
            duplicates[row.number] = candidates
    return duplicates


def import_rows(actor, org: Organization, check: ImportCheck, skip_rows: set[int]) -> list[str]:
    """Write the checked rows (minus `skip_rows`) in the current transaction; their codes."""
    chosen = [row.validated for row in check.rows if row.number not in skip_rows]
    codes = []
    for start in range(0, len(chosen), IMPORT_BATCH):
        created = create_validated(actor, org, chosen[start:start + IMPORT_BATCH])
        codes += [b.code for b in created]
    refresh_statistics(db.session, "beneficiary", "beneficiary_name_index")
    record(Action.BENEFICIARIES_IMPORTED, actor=actor, organization_id=org.id,
           detail={"count": len(codes), "codes": codes[:20] + (["..."] if len(codes) > 20
                                                                else [])})
    return codes


def site_options(org: Organization) -> list[Site]:
    """The CSO's active sites, for the template's help sheet."""
    return [s for s in org.sites if s.active]


# --- Keeping an upload while the user decides on duplicates --------------------------------

STASH_HOURS = 2


def _stash_dir():
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def clean_stashes(older_than_hours: float = STASH_HOURS) -> int:
    """Delete kept uploads older than this (never confirmed); how many were deleted. Runs
    whenever an upload is kept or taken, and from `flask imports clean`."""
    limit = time.time() - older_than_hours * 3600
    deleted = 0
    for path in _stash_dir().glob("*.bin"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                deleted += 1
        except FileNotFoundError:  # taken or cleaned by another process meanwhile
            continue
    return deleted


def stash_upload(actor, filename: str, data: bytes) -> str:
    """Keep an upload, encrypted, until the user confirms; returns a one-time token."""
    clean_stashes()
    token = secrets.token_urlsafe(18)
    envelope = json.dumps({"user": actor.id, "org": actor.organization_id,
                           "filename": filename, "at": datetime.now().timestamp(),
                           "data": data.hex()})
    (_stash_dir() / f"{token}.bin").write_bytes(cipher().encrypt(envelope))
    return token


def take_stash(actor, token: str) -> tuple[str, bytes] | None:
    """The (filename, bytes) stashed by this same user, once; None if unknown or expired."""
    clean_stashes()
    if not re.fullmatch(r"[A-Za-z0-9_-]{10,40}", token or ""):
        return None
    path = _stash_dir() / f"{token}.bin"
    try:
        sealed = path.read_bytes()
        path.unlink()
    except FileNotFoundError:
        return None
    envelope = json.loads(cipher().decrypt(sealed))
    fresh = datetime.now().timestamp() - envelope["at"] < STASH_HOURS * 3600
    if not fresh or envelope["user"] != actor.id or envelope["org"] != actor.organization_id:
        return None
    return envelope["filename"], bytes.fromhex(envelope["data"])

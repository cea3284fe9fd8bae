"""Importing beneficiaries from a spreadsheet (CSV or XLSX): all rows or none.

Headers may be in Arabic, French or English (or the column keys); every row is validated
with the same rules as the registration form before anything is written, and errors are
reported as "row N, column C: message" in the user's language.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import openpyxl
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
    JobStage,
    Organization,
    SchoolStatus,
    Sex,
    Site,
    SiteKind,
    TitledEnum,
    User,
)
from ...models.common import refresh_statistics
from ...privacy import normalize_text
from .. import ValidationError, capped, inputs, jobs
from ..audit import Action, record
from .registry import find_duplicates_many, insert_validated
from .validation import validate_registration

MAX_BYTES = inputs.MAX_UPLOAD_BYTES
MAX_ROWS = 10_000  # under the header
MAX_COLUMNS = 60  # the template has 23; a wider sheet is not one of ours
IMPORT_BATCH = 500  # rows per insert: bounded memory, few round trips, a progress step
PROGRESS_EVERY = 500  # rows between two progress reports while checking

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
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text.isascii():
        try:  # the template's own format, 20 times faster than strptime
            return date.fromisoformat(text)
        except ValueError:
            pass
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
        # Held for the whole import: the session keeps loaded rows only while something
        # refers to them, and validate_registration looks each row's governorate up by key
        # (one query per row once they are gone, none while they are held).
        self._governorate_rows = db.session.scalars(db.select(Governorate)).all()
        for gov in self._governorate_rows:
            for text in (gov.iso_code, gov.name_ar, gov.name_fr, gov.name_en):
                self.governorates[normalize_text(text)] = gov.iso_code
        self.sites = {normalize_text(s.name): s for s in org.sites}
        self.labels = dict(COLUMNS)
        self._normalised: dict[str, str] = {}

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
            if self._normal(text) in YES:
                return True
            if self._normal(text) in NO:
                return False
            raise ValueError(text)
        if key == "consent_scopes":
            parts = [p for p in text.replace("،", ",").replace(";", ",").split(",") if p.strip()]
            return [self._lookup(self.scopes, p) for p in parts]
        return text

    def _normal(self, text: str) -> str:
        """normalize_text, remembered: a column of choices holds few distinct values, and
        normalising them was most of the time spent reading cells."""
        normal = self._normalised.get(text)
        if normal is None:
            normal = self._normalised[text] = normalize_text(text)
        return normal

    def _lookup(self, table: dict, text: str):
        try:
            return table[self._normal(text)]
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


ProgressCallback = Callable[[str, int, int], None]  # (stage, rows done, rows in all)


def check_file(org: Organization, filename: str, data: bytes,
               today: date | None = None, *,
               progress: ProgressCallback | None = None) -> ImportCheck:
    """Validate every row; ImportRefused with "row N, column C: message" lines if any fail.

    `progress(JobStage.CHECKED, rows_done, rows_total)` is called every PROGRESS_EVERY rows and
    once the duplicate search is done (rows_done == rows_total)."""
    today = today or date.today()
    table = read_table(filename, data)
    reader = RowReader(org)
    keys = reader.map_headers(table[0])
    labels = {k: str(v) for k, v in reader.labels.items()}
    problems, rows = [], []
    total = len(table) - 1
    for number, cells in enumerate(table[1:], start=2):
        if progress is not None and number > 2 and (number - 2) % PROGRESS_EVERY == 0:
            progress(JobStage.CHECKED, number - 2, total)
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
    duplicates = _duplicates(org, rows)
    if progress is not None:
        progress(JobStage.CHECKED, total, total)
    return ImportCheck(rows, duplicates)


def _duplicates(org: Organization, rows: list[ParsedRow]) -> dict[int, list]:
    """Row number -> registered youth (or earlier rows of the file) it may duplicate: one
    query for the whole file."""
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


def import_rows(actor, org: Organization, check: ImportCheck, skip_rows: set[int], *,
                progress: ProgressCallback | None = None) -> list[str]:
    """Write the checked rows (minus `skip_rows`) in the current transaction; their codes.

    Bulk inserts of IMPORT_BATCH rows; nothing is committed here, so a failure leaves
    nothing written. `progress(JobStage.WRITTEN, rows_done, rows_total)` is called after each
    batch but the last, and once everything, the audit entry included, is written."""
    chosen = [row.validated for row in check.rows if row.number not in skip_rows]
    codes = []
    for start in range(0, len(chosen), IMPORT_BATCH):
        codes += [code for _id, code in insert_validated(
            actor, org, chosen[start:start + IMPORT_BATCH])]
        if progress is not None and len(codes) < len(chosen):
            progress(JobStage.WRITTEN, len(codes), len(chosen))
    refresh_statistics(db.session, "beneficiary", "beneficiary_name_index")
    record(Action.BENEFICIARIES_IMPORTED, actor=actor, organization_id=org.id,
           detail={"count": len(codes), "codes": codes[:20] + (["..."] if len(codes) > 20
                                                                else [])})
    if progress is not None:
        progress(JobStage.WRITTEN, len(codes), len(chosen))
    return codes


def site_options(org: Organization) -> list[Site]:
    """The CSO's active sites, for the template's help sheet."""
    return [s for s in org.sites if s.active]


# --- The import as a background job ------------------------------------------------------

def file_key(org: Organization, data: bytes) -> str:
    """What makes two uploads the same import: the CSO and the file's bytes."""
    return f"import:{org.id}:{hashlib.sha256(data).hexdigest()[:48]}"


def start_import(actor, filename: str, data: bytes):
    """Queue the import of an uploaded file (checked, then written, by a worker); refused
    (jobs.JobRefused) while the same file is being imported for the same CSO."""
    if len(data) > MAX_BYTES:  # said at once: a file this size is never kept
        read_table(filename, data)
    return jobs.start("beneficiaries.import", actor, data=data, data_name=filename,
                      active_key=file_key(actor.organization, data))


def decide_duplicates(job, decisions: dict[str, str]):
    """Go on with a waiting import: for each possible duplicate row, "new" imports it,
    anything else skips it."""
    return jobs.resume(job, {"decisions": {str(k): v for k, v in decisions.items()}})


def _shown(candidates: list) -> list:
    """A possible duplicate as the decision page shows it: a registered youth's code and
    link, or "row N of this file"."""
    return [{"code": c.code, "uuid": str(c.uuid)} if hasattr(c, "code") else str(c)
            for c in candidates]


@jobs.job_kind("beneficiaries.import", _l("Import of young people"),
               decide="beneficiaries.import_duplicates", back="beneficiaries.index",
               back_label=_l("Young people"), again="beneficiaries.import_upload",
               again_label=_l("Upload a corrected file"))
def run_import(job, progress) -> jobs.Outcome:
    """Check every row; stop for the person's decision on possible duplicates (unless made);
    then write the rows, all or nothing."""
    org = db.session.get(Organization, job.organization_id)
    actor = db.session.get(User, job.user_id)
    try:
        check = check_file(org, job.input_name or "", jobs.input_of(job), progress=progress)
    except ImportRefused as refused:
        raise jobs.JobFailed(refused.messages, refused.status) from refused
    decisions = job.params.get("decisions")
    if check.duplicates and decisions is None:
        return jobs.Outcome(waiting=True, data={
            "rows": len(check.rows),
            "duplicates": {str(n): _shown(c) for n, c in check.duplicates.items()}})
    skip = {n for n in check.duplicates if (decisions or {}).get(str(n)) != "new"}

    def write(outcome: jobs.Outcome) -> None:
        codes = import_rows(db.session.get(User, actor.id),
                            db.session.get(Organization, org.id), check, skip,
                            progress=progress)
        outcome.message = _("%(n)d young people imported.", n=len(codes))
        outcome.data = {"imported": len(codes), "skipped": len(skip)}

    return jobs.Outcome(write=write)

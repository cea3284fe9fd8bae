"""Import and export of survey definitions as XLSForm spreadsheets (ODK / KoboToolbox).

Forms are read through pyxform's own normalisation (its column and type aliases, language
columns written "label::Name (code)", "label:Name" or "label::العربية", "select one from X",
curly quotes), and converted by pyxform as ODK would. Only a subset of XLSForm is supported:
the question types text, integer, decimal, date, time, datetime, range, acknowledge
(also written "trigger"), "phone number" (text with pyxform's digits-only constraint and
hint), calculate, note, select_one LIST and select_multiple LIST, the metadata start, end, today,
username and deviceid, and groups (nested too); everything else a form uses is
refused with its sheet, row and column (xlsform_rules.py says which), never dropped; the
writer is xlsform_export.py.
A `select_one` whose choice names are all integers becomes a `likert` question, one whose
choice names are exactly {yes, no} a `yes_no` question. An optional extra sheet `scales` (not
standard XLSForm; ODK and KoboToolbox ignore it) defines scores computed from likert or
integer items.

The definition is a JSON-able dict with the keys title, form_id, version, groups, questions
and scales; see `parse_xlsform`. Texts are dicts keyed by language code: ar, fr, en, and
any other a form writes as "label::Name (code)" (a name without a code, other than the
known names of ar, fr and en, is keyed by the name lower-cased). Pages pick the user's
language, else the form's "default_language" (an optional key, the settings'
default_language as a code), else English, else the first (models.common.in_language, the
one place that picks).
Labels and hints may hold `${name}`, replaced by that answer when shown.

Optional keys, present only when a form uses them (older definitions have none; readers use
`.get`):
- group "parent": the name of the group it is nested in. A question's "group" is its
  innermost group; it is shown only when the relevant of that group and of every group
  around it hold. The fill page has a page per top-level group, nested groups as fieldsets.
- group "repeat": true for a `begin_repeat` (a household member, a sibling), with
  "repeat_count" (an expression, e.g. `${household_size}` or `3`) when its number of
  entries is set by the form; without it the worker adds and removes entries. Either way
  at most logic.MAX_ENTRIES (50). Its questions have "repeat": its name. Their answers are
  stored under the repeat's name as a list of dicts, one per entry, in order. Inside a
  repeat, `${q}` of a question of the same repeat is the current entry's (ODK semantics),
  `position(..)` its number from 1; outside it `${q}` is every entry's (`sum(${q})`), and
  `count(${repeat})` the number of entries. A group inside a repeat (its "parent" the
  repeat, or a group inside it) is read per entry: its relevant holds or not for each
  entry, the entry as context. Not supported yet, refused: a repeat inside a repeat,
  metadata and choice_filter inside a repeat, and a repeat's question as a scale item.
- definition "meta": [{"name", "type"}], type one of start, end, today, username, deviceid.
  No question is shown; the server stores the value with the response under that name:
  start/end as ISO date-times (UTC, seconds) when the draft began and when it was sent,
  today as YYYY-MM-DD, username the account's username, deviceid "web" or the field app's.
- question "calculation": an expression; its value is computed on the server from the other
  answers and stored as the answer (what a client sends for it is ignored). A `calculate`
  question is never shown on the fill page; another type with a calculation is shown
  read-only.
- question "read_only": true (a read-only question shows its default or calculation).
- question "trigger": "${name}" (a question outside repeats; the question is not in a repeat
  either), with "trigger_calculation" instead of "calculation" when it has one: as in ODK,
  the calculation runs (without one, the answer is cleared) only when that answer changes,
  otherwise the question keeps its value and is typed like any other (logic.fire_triggers).
- question "default": the answer a new draft starts with (a literal, as text).
- question "required_if": `required` written as an expression; the question is required
  when it is true ("required" is then false).
- question "required_message": texts by language, shown instead of "must be answered".
- question "parameters" (type range only): {"start", "end", "step"} numbers.
- question "choice_filter" (selects only): an expression read once per choice, with the
  choice as context: `county = ${county}` keeps the choices whose column `county` equals
  that answer. Only the choices it lets through are offered and accepted.
- choice "data" (only in the choices of a question with a choice_filter): {column: text},
  the choices sheet's own columns (those pyxform does not know), which the filter reads.
Answers: time "HH:MM" (or HH:MM:SS), datetime "YYYY-MM-DDTHH:MM" (or with :SS), range a
number from start to end on a step, acknowledge "OK".
The offline field app offers only surveys that use none of these (services/field/data.py).

Round trip: `parse_xlsform(export_xlsform(d)) == d` for every `d` returned by `parse_xlsform`,
except the questions' "row" values (the export writes its own layout) and the choice list names,
which the definition does not keep (the export names each list "<question>_list"). The export
goes through the app's one writer (services/files.py), which puts an apostrophe before a text
that a spreadsheet would run as a formula; reading undoes exactly that (`files.restore`).

Bounds: the workbook is checked as a ZIP first (services/inputs.py: sizes, compression, the
range each sheet uses) and every sheet is read with a hard stop at MAX_ROWS rows and
MAX_COLUMNS columns. An Excel 97-2003 (.xls) file, which pyxform also reads, is bounded by
the upload limit and the same stops.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from io import BytesIO
from pathlib import PurePath
from zipfile import BadZipFile

import xlrd
from flask_babel import force_locale
from flask_babel import gettext as _
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from pyxform import aliases, constants
from pyxform.builder import create_survey_element_from_dict
from pyxform.xls2json import RE_BEGIN_CONTROL, RE_END_CONTROL, workbook_to_json
from pyxform.xls2json_backends import DefinitionData, xls_value_to_unicode

from .. import inputs
from ..files import restore
from . import xlsform_rules as rules
from .xlsform_export import export_xlsform

__all__ = ["XLSFormError", "export_xlsform", "parse_xlsform"]

LANGS = rules.LANGS
PLAIN_TYPES = rules.PLAIN_TYPES
_REF = re.compile(r"\$\{([^}]*)\}")
_INT = re.compile(r"^-?\d+$")
_WHAT = re.compile(r"[“«]\s*([^”»]+?)\s*[”»][^“«]*$")  # the last quoted name of a message
_PYXFORM_ROW = re.compile(r"^\s*\[row\s*:\s*(\d+)\]\s*", re.S)
_YES_NO = {**aliases.yes_no, "1": True, "0": False}
# The texts pyxform gives what it adds (or_other, add_none_option), in our languages.
OTHER_LABEL = {"ar": "أخرى", "fr": "Autre", "en": "Other"}
SPECIFY_OTHER_LABEL = {"ar": "حدّد الخيار الآخر.", "fr": "Précisez autre.",
                       "en": "Specify other."}
NONE_LABEL = {"ar": "لا شيء", "fr": "Aucun", "en": "None"}
NONE_CONSTRAINT = "(.='none' or not(selected(., 'none')))"  # pyxform's, word for word
_FORM_ID_MAX = 60  # Survey.code
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # how an Excel 97-2003 (.xls) file starts
_HEADER = "@header "  # a normalised row's key for the header a value was written under
_MEDIA = "@media"  # a row's key for the (refused) media column it uses, if any
_DATA = "@data "  # a choices row's key for a column of its own (read by choice_filter)
_XML_NAME = re.compile(r"[A-Za-z_][\w.-]*")
# Sheets pyxform reads that the app does not (the scales sheet is ours; others are ignored).
_UNSUPPORTED_SHEETS = ("external_choices", "entities", "osm")
_PYXFORM_SHEETS = ("survey", "choices", "settings", *_UNSUPPORTED_SHEETS)
# The parts of pyxform's question dicts the parser reads (a check behind the rules).
_BIND_READ = {"relevant", "constraint", "jr:constraintMsg", "required", "readonly",
              "calculate", "jr:requiredMsg", "jr:noAppErrorString"}
# The elements pyxform adds for a table-list group: its label as a note, its header row.
_TABLE_LIST = re.compile(r"generated_table_list_label_\d+|reserved_name_for_field_list_labels_\d+")
# The keys of a question that hold an expression over the answers.
_EXPRESSIONS = ("relevant", "constraint", "calculation", "required_if", "choice_filter",
                "trigger", "trigger_calculation")
_SLOTS_NOT_READ = rules.SHEETS["survey"][1] - {
    "type", "name", "label", "hint", "bind", "control", "choices", "itemset", "list_name",
    "parameters", "children", "default", "choice_filter", "trigger",
}  # fmt: skip
MAX_ROWS = 5_000  # of any sheet (a long form with its choice lists has ~1,500)
MAX_COLUMNS = 200


class XLSFormError(Exception):
    """A spreadsheet that cannot be imported; `messages` lists every problem found."""

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("; ".join(self.messages))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 1 as 1.0; choice names must read "1"
    return restore(str(value)).replace("\xa0", " ").strip()


def _header(value) -> str:
    """A header of our own scales sheet (case and spaces around "::" do not matter)."""
    text = _cell(value)
    if "::" in text:
        base, lang = text.split("::", 1)
        return f"{base.strip().lower()}::{lang.strip()}"
    return text.lower()


@dataclass
class _Sheet:
    """A sheet as read: its headers as written (whitespace collapsed, as pyxform does) and
    its non-empty rows as (1-based spreadsheet row number, {header: text})."""

    headers: list[str]
    rows: list[tuple[int, dict[str, str]]]


def _read_sheet(sheet, used_rows: int) -> _Sheet:
    """Read no further than the rows the sheet's cells use and MAX_COLUMNS columns."""
    return _sheet_of(inputs.sheet_rows(sheet, min(used_rows, MAX_ROWS), MAX_COLUMNS))


def _sheet_of(values) -> _Sheet:
    """A sheet from its rows of cell values, the header row first."""
    values = iter(values)
    headers = [" ".join(_cell(h).split()) for h in next(values, None) or ()]
    rows = []
    for number, cells in enumerate(values, start=2):
        row = {k: _cell(v) for k, v in zip(headers, cells, strict=False) if k}
        if any(row.values()):
            rows.append((number, {k: v for k, v in row.items() if v}))
    return _Sheet([h for h in headers if h], rows)


def _normalise(name: str, sheet: _Sheet | None, errors: list[str], strip: bool = True):
    """Rows of a pyxform sheet with pyxform's de-aliased headers, flattened to the keys the
    parser reads ("label::ar", "relevant", "form_id"...). A refused column that a row uses
    is reported once, at the first such row."""
    if sheet is None:
        return []
    double_colon = any("::" in h for h in sheet.headers)
    columns = {h: rules.Column(name, h, double_colon) for h in sheet.headers}
    reported: set[str] = set()
    rows = []
    for number, raw in sheet.rows:
        row: dict[str, str] = {}
        for header, value in raw.items():
            column = columns[header]
            if column.refusal and column.key.split("::")[0] == "media":
                row[_MEDIA] = column.key  # its only label may be media: refused as such
            if column.refusal and header not in reported:
                reported.add(header)
                errors.append(rules.refusal_message(column, name, number))
            elif column.flat and column.flat not in row:
                row[column.flat] = rules.clean(value, name, strip)
                row[_HEADER + column.flat] = header  # for messages: the column as written
            elif name == "choices" and not column.known and _XML_NAME.fullmatch(header):
                row[_DATA + header] = rules.clean(value, name, strip)  # for choice_filter
        rows.append((number, row))
    return rows


def _in_each_language(text) -> dict[str, str]:
    """A lazy string of ours as per-language texts, for a definition (ar, fr and en)."""
    texts = {}
    for code in LANGS:
        with force_locale(code):
            texts[code] = str(text)
    return texts


def _texts(row: dict[str, str], base: str, default: str | None = None) -> dict[str, str]:
    """Per-language texts of `base` (label, hint...), keyed by language code (any language:
    "label::Kiswahili (sw)" is "sw", a name without a code its lower-cased name). A column
    without a language belongs to the settings' default_language, else it fills whichever
    of ar, fr and en is missing. Ours come first, then the others as written."""
    found: dict[str, str] = {}
    for key, value in row.items():
        if value and key.startswith(base + "::"):
            found.setdefault(key[len(base) + 2 :], value)
    if row.get(base):
        for code in (default,) if default else LANGS:
            found.setdefault(code, row[base])
    return {**{code: found[code] for code in LANGS if code in found},
            **{code: text for code, text in found.items() if code not in LANGS}}


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _read_xls(data: bytes) -> dict[str, _Sheet]:
    """An Excel 97-2003 (.xls) workbook, which pyxform reads too (many published forms are
    .xls). It holds no compression, so the upload limit bounds what xlrd builds; each sheet
    is read with the same hard stop at MAX_ROWS rows and MAX_COLUMNS columns."""
    if len(data) > inputs.MAX_UPLOAD_BYTES:
        raise XLSFormError(inputs._too_large().messages)  # the limit .xlsx files get
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except Exception as exc:  # xlrd fails with many kinds of errors on a damaged file
        raise XLSFormError(inputs.not_xlsx().messages) from exc
    sheets = {}
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            rows = []
            for number in range(min(sheet.nrows, MAX_ROWS + 1)):
                cells = sheet.row(number)[:MAX_COLUMNS]
                rows.append([_cell(xls_value_to_unicode(c.value, c.ctype, book.datemode))
                             if c.value not in ("", None) else None for c in cells])
            sheets[sheet.name.strip().lower()] = _sheet_of(rows)
            book.unload_sheet(index)
    except Exception as exc:  # a damaged record, an ambiguous date...
        raise XLSFormError(inputs.not_xlsx().messages) from exc
    finally:
        book.release_resources()
    return sheets


def _read(data: bytes) -> dict[str, _Sheet]:
    """Every sheet by lower-cased name, within the bounds; XLSFormError if not a workbook."""
    if data.startswith(_OLE2):
        return _read_xls(data)
    try:
        used = {s.title: s.rows for s in inputs.check_xlsx(data, MAX_ROWS, MAX_COLUMNS)}
    except inputs.InputRefused as refused:
        raise XLSFormError(refused.messages) from None
    try:
        book = load_workbook(BytesIO(data), data_only=True, read_only=True)
    except (BadZipFile, InvalidFileException, KeyError, OSError, ValueError, TypeError) as exc:
        raise XLSFormError(inputs.not_xlsx().messages) from exc
    try:
        return {sheet.title.strip().lower(): _read_sheet(sheet, used.get(sheet.title, MAX_ROWS))
                for sheet in book.worksheets}
    finally:
        book.close()


def parse_xlsform(data: bytes, filename: str | None = None) -> dict:
    """Read an XLSForm workbook into a definition dict, or raise XLSFormError with all problems.

    Headers and types are read through pyxform's own normalisation (its aliases, "::" or ":"
    language columns, "select one from X", curly quotes), so every spelling pyxform accepts
    is read; what the app does not support is refused (xlsform_rules), never dropped. The
    form is also converted by pyxform, as ODK / KoboToolbox would. Without a form_id (or
    id_string) the form is named after `filename`, as pyxform does. Every message names the
    sheet and, where there is one, the row and column. A file outside the bounds is refused
    first, with a message in the user's language.
    """
    sheets = _read(data)
    if len(sheets) == 1 and not set(sheets) & {*_PYXFORM_SHEETS, "scales"}:
        sheets = {"survey": next(iter(sheets.values()))}  # pyxform reads a lone sheet so
    errors: list[str] = []
    if "survey" not in sheets:
        errors.append(_("%(where)s: the workbook has no sheet named 'survey'",
                        where=rules.place("survey")))
    for name in _UNSUPPORTED_SHEETS:
        if sheets.get(name) and sheets[name].rows and f"sheet::{name}" in rules.OUT_OF_SCOPE:
            errors.append(rules.out_of_scope(rules.place(name), name, f"sheet::{name}"))
        elif sheets.get(name) and sheets[name].rows:
            errors.append(rules.Refusal(_("%(sheet)s sheet: this sheet is not supported yet; "
                                          "remove it.", sheet=name), f"sheet::{name}"))
    settings = _normalise("settings", sheets.get("settings"), errors) or [(2, {})]
    number, setting = settings[0]
    strip = _YES_NO.get(setting.get("clean_text_values", "yes"), True)
    default = _default_language(setting)
    choices = _parse_choices(_normalise("choices", sheets.get("choices"), errors), default,
                             errors, _YES_NO.get(setting.get("allow_choice_duplicates", "no"),
                                                 False))
    survey_rows = _normalise("survey", sheets.get("survey"), errors, strip)
    survey_rows = _expand_loops(survey_rows, choices, errors)
    groups, questions, meta, rows = _parse_survey(survey_rows, choices, default, errors)
    if _flag(setting, "add_none_option", number, errors):
        _add_none_option(questions)
    _check_references(groups, questions, rows, errors)
    in_repeat = {q["name"] for q in questions if q.get("repeat")}
    for question in questions:  # a trigger is compared in the draft's top level only
        if question.get("trigger") and ({question["name"], question["trigger"][2:-1]}
                                        & in_repeat):
            errors.append(rules.value_refused("survey", question["row"], "trigger",
                                              question["trigger"], "trigger"))
    form_id = setting.get("form_id") or _form_name(filename) or ""
    if not form_id:
        errors.append(_("%(where)s: form_id is required", where=rules.place("settings", number)))
    elif len(form_id) > _FORM_ID_MAX:
        errors.append(_("settings sheet, row %(row)d: the form_id “%(form_id)s” is longer than "
                        "%(n)d characters.", row=number, form_id=form_id, n=_FORM_ID_MAX))
    by_name = {q["name"]: q for q in questions}
    # Without a survey sheet every scale item would be reported unknown as well.
    scales = _parse_scales(_scale_rows(sheets.get("scales")), by_name, errors) \
        if "survey" in sheets else []
    for message in _pyxform_messages(sheets, filename, rows):
        # pyxform stops at its first problem, usually one we reported too: keep one per row.
        # The guard's "pyxform reads “what”" is dropped when a rule refused that column.
        where = rules.place_of(message)  # in the user's language, as the messages are
        what = _WHAT.search(message)
        if not any(where and m.startswith(where) and not m[len(where):][:1].isdigit()
                   for m in errors) \
                and not (what and any(f"({what.group(1)})" in m for m in errors)):
            errors.append(message)
    if errors:
        raise XLSFormError(errors)
    definition = {
        "title": _texts(setting, "bladi_title") or _texts(setting, "form_title", default),
        "form_id": form_id,
        "version": setting.get("version") or None,
        "groups": groups,
        "questions": questions,
        "scales": scales,
    }
    if meta:
        definition["meta"] = meta
    if default:
        definition["default_language"] = default
    return definition


def _add_none_option(questions: list[dict]) -> None:
    """The settings' add_none_option, as pyxform applies it: every select_multiple gets a
    last choice "none", and a constraint that "none" is chosen alone."""
    for question in questions:
        if question["type"] != "select_multiple" or not question["choices"]:
            continue  # pyxform refuses a select without choices already
        if any(c["name"] == "none" for c in question["choices"]):
            continue
        question["choices"].append({"name": "none", "label": dict(NONE_LABEL)})
        constraint = question["constraint"]
        question["constraint"] = f"{constraint} and {NONE_CONSTRAINT}" if constraint \
            else NONE_CONSTRAINT


def _default_language(setting: dict[str, str]) -> str | None:
    """The language of columns without one, and the form's fallback language when a text
    is not in the user's: the settings' default_language as a code ("Kiswahili (sw)" ->
    "sw"), any language."""
    value = setting.get("default_language")
    if not value or value == "default":
        return None
    return rules.language_code(value)


def _scale_rows(sheet: _Sheet | None) -> list[tuple[int, dict[str, str]]]:
    """Rows of our scales sheet, "label::Arabic (ar)" read as "label::ar"."""
    if sheet is None:
        return []
    rows = []
    for number, raw in sheet.rows:
        row = {}
        for key, value in raw.items():
            base, _sep, language = _header(key).partition("::")
            row[f"{base}::{rules.language_code(language)}" if language else base] = value
        rows.append((number, row))
    return rows


def _parse_choices(rows, default: str | None, errors: list[str],
                   duplicates: bool = False) -> dict[str, list[dict]]:
    """The choice lists by name. With the setting allow_choice_duplicates (as pyxform), a
    name may appear twice in a list, e.g. a county of two states told apart by a filter."""
    lists: dict[str, list[dict]] = {}
    for number, row in rows:
        where = rules.place("choices", number)
        list_name, name = row.get("list_name", ""), row.get("name", "")
        if not list_name or not name:
            errors.append(_("%(where)s: list_name and name are both required", where=where))
        elif not duplicates and any(c["name"] == name for c in lists.get(list_name, [])):
            errors.append(_("%(where)s: the choice '%(name)s' appears twice in the list "
                            "'%(list)s'", where=where, name=name, list=list_name))
        else:
            choice = {"name": name, "label": _texts(row, "label", default)}
            data = {k[len(_DATA):]: v for k, v in row.items() if k.startswith(_DATA)}
            if data:
                choice["data"] = data  # kept only where a choice_filter reads it
            lists.setdefault(list_name, []).append(choice)
    return lists


def _select_kind(kind: str, choices: list[dict]) -> str:
    names = [c["name"] for c in choices]
    if kind == "select_one" and names and all(_INT.match(n) for n in names):
        return "likert"
    if kind == "select_one" and sorted(names) == ["no", "yes"]:
        return "yes_no"
    return kind


def _flag(row: dict[str, str], key: str, number: int, errors: list[str]) -> bool:
    """A yes/no column (read_only); anything else is refused."""
    value = row.get(key, "")
    if not value:
        return False
    if value not in _YES_NO and value.lower() not in _YES_NO:
        errors.append(rules.value_refused("survey", number, row[_HEADER + key], value))
        return False
    return _YES_NO.get(value, _YES_NO.get(value.lower(), False))


def _required(row: dict[str, str]) -> tuple[bool, str | None]:
    """(required, None) for yes/no; (False, expression) for required written as a condition."""
    value = row.get("required", "")
    if not value:
        return False, None
    flag = _YES_NO.get(value, _YES_NO.get(value.lower()))
    return (flag, None) if flag is not None else (False, value)


def _range_parameters(row: dict[str, str], number: int, errors: list[str]) -> dict:
    """A range's start, end and step (pyxform's defaults 1, 10, 1), as numbers."""
    found = {"start": 1, "end": 10, "step": 1}
    text = row.get("parameters", "")
    for part in re.split(r"[\s,;]+", text.strip()) if text.strip() else []:
        key, _sep, value = part.partition("=")
        key = key.strip().lower()
        try:
            number_value = float(value)
        except ValueError:
            number_value = math.nan
        if key not in found or not math.isfinite(number_value):
            errors.append(rules.value_refused("survey", number, row[_HEADER + "parameters"],
                                              text))
            return found
        found[key] = int(number_value) if number_value.is_integer() else number_value
    if found["step"] <= 0 or found["start"] == found["end"]:
        errors.append(rules.value_refused("survey", number, row[_HEADER + "parameters"], text))
    return found


_TRIGGER = re.compile(r"\$\{[^${}\s]+\}")


def _extras(row: dict[str, str], qtype: str, written: str, number: int,
            default: str | None, errors: list[str]) -> tuple[dict, bool]:
    """The optional keys of a question (see the module docstring), present only when used."""
    extra: dict = {}
    required, required_if = _required(row)
    if required_if:
        extra["required_if"] = required_if
    message = _texts(row, "required_message", default)
    if message:
        extra["required_message"] = message
    if row.get("calculation"):
        extra["calculation"] = row["calculation"]
    elif qtype == "calculate" and written == "calculate":  # "hidden" may stay empty
        errors.append(_("%(where)s: a calculate question needs a calculation.",
                        where=rules.where("survey", number, "calculation")))
    if row.get("trigger"):
        # ODK's trigger: the calculation (or, without one, clearing the answer) runs only
        # when that answer changes; otherwise the question keeps its value and may be
        # typed (logic.fire_triggers). One ${name}, outside repeats.
        if _TRIGGER.fullmatch(row["trigger"].strip()):
            extra["trigger"] = row["trigger"].strip()
            if "calculation" in extra:
                extra["trigger_calculation"] = extra.pop("calculation")
        else:
            errors.append(rules.value_refused("survey", number, row[_HEADER + "trigger"],
                                              row["trigger"], "trigger"))
    if _flag(row, "read_only", number, errors):
        extra["read_only"] = True
    value = row.get("default", "")
    if value:
        if "${" in value or "(" in value or qtype in ("calculate", "note"):
            # A default computed from other answers (or today()): not supported yet.
            errors.append(rules.value_refused("survey", number, row[_HEADER + "default"],
                                              value))
        else:
            extra["default"] = value
    if row.get("choice_filter"):
        if qtype not in ("select_one", "select_multiple", "likert", "yes_no"):
            errors.append(rules.value_refused("survey", number, row[_HEADER + "choice_filter"],
                                              row["choice_filter"]))
        else:
            extra["choice_filter"] = row["choice_filter"]
    if qtype == "range":
        extra["parameters"] = _range_parameters(row, number, errors)
    elif row.get("parameters"):
        errors.append(rules.value_refused("survey", number, row[_HEADER + "parameters"],
                                          row["parameters"]))
    return extra, required


def _loop_list(kind: str) -> str | None:
    """The list of a `begin loop over LIST` (pyxform's spellings: "begin_loop", "over" or
    not), else None."""
    begin = RE_BEGIN_CONTROL.match(" ".join(kind.split()))
    if begin and aliases.control.get(begin.group("type")) == constants.LOOP:
        return begin.group("list_name") or ""
    return None


def _loop_end(kind: str) -> bool:
    end = RE_END_CONTROL.match(" ".join(kind.split()))
    return bool(end and aliases.control.get(end.group("type")) == constants.LOOP)


_LOOP_FIELD = re.compile(r"%\((name|label)\)s")
_HIDDEN = (_HEADER, _DATA)
_TEXT_COLUMNS = ("label", "hint", "constraint_message", "required_message", "no_app_error")


def _expand_loops(rows, choices, errors: list[str], others: set | None = None):
    """`begin loop over LIST` … `end loop`, expanded as pyxform's builder expands it, so the
    rest of the parser sees ordinary groups: the loop becomes a group (its name, label and
    relevance), holding a group per choice of LIST (named and labelled as the choice; a choice
    "none" is skipped, as pyxform does), each holding the loop's rows with `%(name)s` and
    `%(label)s` replaced by the choice's name and label (per language). pyxform keeps each
    name as written (it refuses `%(name)s` in a name), the same in every choice's group: its
    XForm tells them apart by path. Names here are one namespace, so a question or group
    `<name>` in the loop becomes `<choice>_<name>`, and `../<name>` in the loop's expressions
    (a sibling in the same choice's group), or `${<name>}`, becomes `${<choice>_<name>}`.
    Loops nest (the inner one is expanded first). Expanded rows keep
    the loop's row numbers, for messages. A list that an `or_other` select uses has its choice
    "other" in the loop too, wherever that select stands: pyxform appends it to the list."""
    if others is None:
        others = {(rules.question_type(row.get("type", "")) or (None, None))[1]
                  for _number, row in rows if rules.or_other(row.get("type", ""))}
    out = []
    index = 0
    while index < len(rows):
        number, row = rows[index]
        list_name = _loop_list(row.get("type", ""))
        if list_name is None:
            if _loop_end(row.get("type", "")):
                errors.append(_("%(where)s: end loop without a matching begin loop",
                                where=rules.place("survey", number)))
            else:
                out.append((number, row))
            index += 1
            continue
        depth, end = 1, index + 1
        while end < len(rows) and depth:
            inner = rows[end][1].get("type", "")
            depth += 1 if _loop_list(inner) is not None else -1 if _loop_end(inner) else 0
            end += 1
        if depth:
            errors.append(_("%(where)s: the %(type)s “%(name)s” is never closed (no matching "
                            "end_%(type)s).", where=rules.place("survey", number), type="loop",
                            name=row.get("name", "")))
            return out
        if not list_name:
            errors.append(_("%(where)s: a loop needs a choice list: “begin loop over LIST”.",
                            where=rules.where("survey", number, "type")))
            index = end
            continue
        if list_name not in choices:
            errors.append(_("%(where)s: the choice list '%(list)s' is not on the choices "
                            "sheet", where=rules.place("survey", number), list=list_name))
            index = end
            continue
        body = _expand_loops(rows[index + 1 : end - 1], choices, errors, others)
        closing = rows[end - 1][0]
        out.append((number, {**row, "type": "begin group"}))
        columns = choices[list_name]
        if list_name in others and not any(c["name"] == "other" for c in columns):
            columns = [*columns, {"name": "other", "label": dict(OTHER_LABEL)}]
        for choice in columns:
            if choice["name"] == "none":
                continue
            out.append((number, {"type": "begin group", "name": choice["name"],
                                 **{f"label::{code}": text
                                    for code, text in choice["label"].items()}}))
            out.extend(_loop_rows(body, choice))
            out.append((closing, {"type": "end group"}))
        out.append((closing, {"type": "end group"}))
        index = end
    return out


def _loop_rows(body, choice: dict):
    """The loop's rows for one choice (see _expand_loops)."""
    labels = choice["label"]
    any_label = next(iter(labels.values()), "")

    def fill(key: str, text: str) -> str:
        code = key.partition("::")[2]
        return _LOOP_FIELD.sub(lambda m: choice["name"] if m.group(1) == "name"
                               else labels.get(code, any_label), text)

    renamed = {}
    for _number, row in body:
        name = row.get("name", "")
        if name:
            renamed[name] = f"{choice['name']}_{name}"
    names = "|".join(map(re.escape, renamed))
    # `${name}` too: pyxform refuses it in a loop of two choices or more (the name is not
    # unique), so it is either a one-choice loop's or one an inner loop's expansion wrote.
    sibling = re.compile(rf"(?<![\w.$/])\.\./({names})\b|\$\{{({names})\}}") \
        if renamed else None
    for number, row in body:
        copy_ = {}
        for key, value in sorted(row.items(), key=lambda item: "::" not in item[0]):
            if key.startswith(_HIDDEN) or not isinstance(value, str):
                copy_[key] = value
                continue
            if key == "name":
                value = renamed.get(value, value)
                copy_[key] = value
                continue
            if "::" not in key and "%(label)s" in value and key in _TEXT_COLUMNS:
                # A column without a language fills every language: in each, the choice's
                # label in that language (pyxform would write the dict of labels).
                for code in labels:
                    copy_.setdefault(f"{key}::{code}", fill(f"{key}::{code}", value))
            value = fill(key, value)
            if sibling:
                value = sibling.sub(
                    lambda m: f"${{{renamed[m.group(1) or m.group(2)]}}}", value)
            copy_[key] = value
        yield number, copy_


def _parse_survey(rows, choices, default: str | None, errors: list[str]):
    """Questions, groups and metadata in order, and the row of every name (for later
    messages)."""
    groups: list[dict] = []
    questions: list[dict] = []
    meta: list[dict] = []
    seen: dict[str, int] = {}
    # Open groups and repeats as (name, row, "group" or "repeat"), the innermost last.
    stack: list[tuple[str, int, str]] = []
    for number, row in rows:
        where = rules.place("survey", number)
        kind = " ".join(row.get("type", "").split())
        parsed = rules.question_type(kind) if kind else None
        qtype, list_name = parsed or (None, None)
        name = row.get("name", "")
        if qtype == "note" and not name:
            name = f"generated_note_name_{number}"  # as pyxform names them
        if not kind and not name and not _texts(row, "label"):
            continue  # a comment row: pyxform skips it too
        if qtype in ("end_group", "end_repeat") and stack and stack[-1][2] != qtype[4:]:
            opened, opened_row, _kind = stack.pop()
            errors.append(_("%(where)s: %(type)s cannot close “%(name)s”, opened on row "
                            "%(row)d.", where=rules.where("survey", number, "type"),
                            type=qtype, name=opened, row=opened_row))
            continue
        if qtype == "end_repeat" and not stack:
            errors.append(_("%(where)s: end_repeat without a matching begin_repeat",
                            where=where))
            continue
        if qtype in ("end_group", "end_repeat"):
            if stack:
                stack.pop()
            else:
                errors.append(_("%(where)s: end_group without a matching begin_group",
                                where=where))
            continue
        if kind and not parsed:
            errors.append(rules.type_refused("survey", number, kind))
            if name:  # so that references to it are not also reported as unknown
                seen.setdefault(name, number)
            continue
        if not kind or not name:
            errors.append(_("%(where)s: the type is missing", where=where) if not kind
                          else _("%(where)s: the name is missing", where=where))
            continue
        if name in seen:
            errors.append(_("%(where)s: the name '%(name)s' is already used on row %(row)d",
                            where=where, name=name, row=seen[name]))
            continue
        seen[name] = number
        repeat = next((n for n, _row, k in reversed(stack) if k == "repeat"), None)
        if repeat and (qtype in (*rules.META_TYPES, "begin_repeat")
                       or row.get("choice_filter")):
            # Not supported yet: repeats in a repeat, metadata and cascading selects in a
            # repeat (groups in a repeat are).
            column = "choice_filter" if row.get("choice_filter") else "type"
            errors.append(_("%(where)s: “%(what)s” inside the repeat “%(repeat)s” is not "
                            "supported yet.", where=rules.where("survey", number, column),
                            what=row.get(column), repeat=repeat))
            if qtype in ("begin_group", "begin_repeat"):
                stack.append((name, number, qtype[6:]))
            continue
        if row.get("repeat_count") and qtype != "begin_repeat":
            errors.append(rules.value_refused("survey", number, row[_HEADER + "repeat_count"],
                                              row["repeat_count"]))
        if qtype in rules.META_TYPES:
            meta.append({"name": name, "type": qtype})
            continue
        relevant = row.get("relevant") or None
        if "search(" in row.get("control::appearance", ""):  # choices from a CSV file
            errors.append(rules.value_refused("survey", number,
                                              row[_HEADER + "control::appearance"],
                                              row["control::appearance"], "search"))
        if qtype in ("begin_group", "begin_repeat"):
            group = {"name": name, "label": _texts(row, "label", default), "relevant": relevant}
            if stack:
                group["parent"] = stack[-1][0]  # a nested group
            if qtype == "begin_repeat":
                group["repeat"] = True
                if row.get("repeat_count"):
                    group["repeat_count"] = row["repeat_count"]
            groups.append(group)
            stack.append((name, number, qtype[6:]))
            continue
        q_choices = []
        if list_name:
            if list_name in choices:
                q_choices = [{**c, "label": dict(c["label"])} for c in choices[list_name]]
                if not row.get("choice_filter"):
                    for choice in q_choices:
                        choice.pop("data", None)
                qtype = _select_kind(qtype, q_choices)
            else:
                errors.append(_("%(where)s: the choice list '%(list)s' is not on the choices "
                                "sheet", where=where, list=list_name))
        label, hint = _texts(row, "label", default), _texts(row, "hint", default)
        defaults = rules.type_defaults(kind)  # "phone number": its constraint and hint
        if defaults and not row.get("constraint"):
            row["constraint"] = defaults["constraint"]
        if defaults and not hint:
            hint = _in_each_language(defaults["hint"])
        # A question whose only label is media (a note showing an image) is refused for
        # the media column (out of scope), not a second time for a missing label.
        if not label and not hint and qtype != "calculate" and not row.get(_MEDIA):
            errors.append(_("%(where)s: the question '%(name)s' has no label", where=where,
                            name=name))
        extra, required = _extras(row, qtype, kind, number, default, errors)
        other = rules.or_other(kind) and list_name in choices
        if other and not any(c["name"] == "other" for c in q_choices):
            q_choices.append({"name": "other", "label": dict(OTHER_LABEL)})
            qtype = _select_kind(qtype, q_choices)
        questions.append(dict(
            name=name, type=qtype, label=label, hint=hint, required=required,
            relevant=relevant, constraint=row.get("constraint") or None,
            constraint_message=_texts(row, "constraint_message", default)
            or _texts(row, "no_app_error", default), choices=q_choices,
            group=stack[-1][0] if stack else None, row=number, **extra,
            **({"repeat": repeat} if repeat else {}),
        ))  # fmt: skip
        if other:
            # pyxform's expansion of or_other: the text question it adds after the select.
            specify = f"{name}_other"
            if specify in seen:
                errors.append(_("%(where)s: the name '%(name)s' is already used on row "
                                "%(row)d", where=where, name=specify, row=seen[specify]))
                continue
            seen[specify] = number
            questions.append(dict(
                name=specify, type="text", label=dict(SPECIFY_OTHER_LABEL), hint={},
                required=False, relevant=f"selected(${{{name}}}, 'other')", constraint=None,
                constraint_message={}, choices=[], group=stack[-1][0] if stack else None,
                row=number, **({"repeat": repeat} if repeat else {}),
            ))  # fmt: skip
    for name, number, _kind in stack:
        errors.append(_("%(where)s: the group '%(name)s' is never closed",
                        where=rules.place("survey", number), name=name))
    return groups, questions, meta, seen


def _check_references(groups, questions, rows: dict[str, int], errors: list[str]) -> None:
    """Unknown ${name} references, and cycles in which questions' visibility depends on itself."""
    for item in groups + questions:
        texts = [*(item.get("label") or {}).values(), *(item.get("hint") or {}).values()]
        for field, text in [(f, item.get(f)) for f in _EXPRESSIONS] + \
                [("label", t) for t in texts]:
            for ref in _REF.findall(text or ""):
                if ref not in rows:
                    errors.append(_(
                        "%(where)s: the %(field)s refers to an unknown question '${%(ref)s}'",
                        where=rules.place("survey", rows[item["name"]]), field=field, ref=ref
                    ))
    # A calculation may not depend on itself, directly or through other calculations.
    calc = {q["name"]: set(_REF.findall(q["calculation"])) for q in questions
            if q.get("calculation")}
    for start in calc:
        seen_calc, todo = set(), list(calc[start])
        while todo:
            node = todo.pop()
            if node in calc and node not in seen_calc:
                seen_calc.add(node)
                todo.extend(calc[node])
        if start in seen_calc:
            errors.append(_("%(where)s: the calculation of “%(name)s” depends on itself.",
                            where=rules.where("survey", rows[start], "calculation"),
                            name=start))
    by_group = {g["name"]: g for g in groups}

    def enclosing(group: str | None) -> str:
        """The relevant expressions of a group and of every group around it."""
        texts = []
        while group in by_group:
            texts.append(by_group[group]["relevant"] or "")
            group = by_group[group].get("parent")
        return " ".join(texts)

    # A question is shown only if its own relevant and those of its groups hold.
    deps = {
        q["name"]: set(_REF.findall(f"{q['relevant'] or ''} {enclosing(q['group'])}"))
        for q in questions
    }
    reach: dict[str, set[str]] = {}
    for start, direct in deps.items():
        seen: set[str] = set()
        todo = list(direct)
        while todo:
            node = todo.pop()
            if node in deps and node not in seen:
                seen.add(node)
                todo.extend(deps[node])
        reach[start] = seen
    reported: set[str] = set()
    for name in deps:
        if name in reach[name] and name not in reported:
            members = [m for m in deps if m in reach[name] and name in reach[m]]
            reported.update(members)
            where = rules.place("survey", rows[name])
            if len(members) == 1:
                errors.append(_("%(where)s: cyclic relevance: '%(name)s' depends on itself",
                                where=where, name=name))
            else:
                errors.append(_("%(where)s: cyclic relevance between %(names)s", where=where,
                                names=", ".join(members)))


def _int(text: str | None, default, field: str, where: str, errors: list[str]):
    if not text:
        return default
    if _INT.match(text):
        return int(text)
    errors.append(_("%(where)s: %(field)s must be a whole number, not '%(text)s'",
                    where=where, field=field, text=text))
    return None


def _parse_scales(rows, by_name: dict[str, dict], errors: list[str]) -> list[dict]:
    scales: list[dict] = []
    for number, row in rows:
        where, before = rules.place("scales", number), len(errors)
        name, method = row.get("name", ""), row.get("method", "").lower()
        items, reverse = _split(row.get("items")), _split(row.get("reverse"))
        if not name or any(s["name"] == name for s in scales):
            errors.append(_("%(where)s: the scale name '%(name)s' is missing or already used",
                            where=where, name=name))
        if not items or len(set(items)) != len(items):
            errors.append(_("%(where)s: items must list distinct question names", where=where))
        for item in items:
            question = by_name.get(item)
            if question is None:
                errors.append(_("%(where)s: the item '%(item)s' is not a question of the survey "
                                "sheet", where=where, item=item))
            elif question.get("repeat"):
                errors.append(_("%(where)s: the item “%(item)s” is inside the repeat "
                                "“%(repeat)s”; a scale item has one answer per response.",
                                where=where, item=item, repeat=question["repeat"]))
            elif question["type"] not in ("likert", "integer"):
                errors.append(_(
                    "%(where)s: the item '%(item)s' is a %(type)s question "
                    "(items must be likert or integer questions)", where=where, item=item,
                    type=question["type"]
                ))
        outside = [r for r in reverse if r not in items]
        if outside:
            errors.append(_("%(where)s: the reverse items %(names)s are not in items",
                            where=where, names=", ".join(outside)))
        if method not in ("sum", "mean"):
            errors.append(_("%(where)s: the method must be sum or mean, not '%(method)s'",
                            where=where, method=method))
        # Bounds default to the likert items' choice names, e.g. 1 and 5 for a 1..5 scale.
        values = [
            int(c["name"])
            for item in items
            if by_name.get(item, {}).get("type") == "likert"
            for c in by_name[item]["choices"]
        ]
        min_answered = _int(row.get("min_answered"), len(items), "min_answered", where, errors)
        item_min = _int(row.get("item_min"), min(values, default=None), "item_min", where, errors)
        item_max = _int(row.get("item_max"), max(values, default=None), "item_max", where, errors)
        if min_answered is not None and not 1 <= min_answered <= max(len(items), 1):
            errors.append(_("%(where)s: min_answered must be between 1 and the number of "
                            "items", where=where))
        if item_min is not None and item_max is not None and item_min >= item_max:
            errors.append(_("%(where)s: item_min must be smaller than item_max", where=where))
        if reverse and (item_min is None or item_max is None):
            errors.append(_("%(where)s: item_min and item_max are needed to reverse items",
                            where=where))
        if len(errors) == before:
            scales.append(dict(
                name=name, label=_texts(row, "label"), items=items, method=method,
                reverse=reverse, min_answered=min_answered, item_min=item_min, item_max=item_max,
            ))  # fmt: skip
    return scales


def _definition_data(sheets: dict[str, _Sheet], filename: str | None) -> DefinitionData:
    """The sheets as pyxform's reader gives them (empty rows kept, so row numbers agree)."""
    parts = {}
    for name in _PYXFORM_SHEETS:
        sheet = sheets.get(name)
        if sheet is None:
            continue
        table: list[dict[str, str]] = []
        for number, row in sheet.rows:
            table.extend({} for _ in range(number - 2 - len(table)))
            table.append(dict(row))
        parts[name], parts[f"{name}_header"] = table, [dict.fromkeys(sheet.headers)]
    return DefinitionData(**parts, sheet_names=list(sheets),
                          fallback_form_name=_form_name(filename))


def _unread(elements: list[dict], rows: dict[str, int], seen: set[str] | None = None
            ) -> list[str]:
    """What pyxform read into its questions that the app does not honour, a second guard
    behind the column and type rules: any such thing is refused, never dropped. Each thing
    is reported once (its first row), and not at all if the rules refused it already."""
    messages = []
    seen = set() if seen is None else seen

    def refuse(name: str, what: str, column: str) -> None:
        if what in seen:
            return
        seen.add(what)
        place = rules.where("survey", rows[name], column) if name in rows else "survey sheet"
        messages.append(_("%(where)s: pyxform reads “%(what)s” here, which this app does not "
                          "support yet.", where=place, what=what))

    # pyxform computes a repeat_count that is not a plain ${name} into a calculate of its
    # own, "<repeat>_count"; the app reads the repeat_count itself.
    generated = {f"{e['name']}_count" for e in elements if e.get("type") == "repeat"
                 and e.get("control", {}).get("jr:count") == f"${{{e['name']}_count}}"}
    for element in elements:
        name = element.get("name", "")
        if element.get("control", {}).get("bodyless"):
            continue  # the meta group pyxform adds (instanceID)
        if name in generated and name not in rows and element.get("type") == "calculate":
            continue
        if name not in rows and _TABLE_LIST.fullmatch(name):
            continue  # a layout hint (appearance table-list): the group keeps its label
        if name not in rows:
            refuse(name, name, "name")
        if element.get("type") == "loop":
            continue  # expanded by the parser itself (_expand_loops), as pyxform's builder does
        for key, value in element.items():
            if key == "bind":
                for bind in set(value) - _BIND_READ:
                    refuse(name, f"bind::{bind}", bind)
            elif key == "control":
                # pyxform writes a range's parameters on its control as well.
                read = {"appearance", "rows", "start", "end", "step"} \
                    if element.get("type") == "range" else \
                    {"appearance", "rows", "jr:count"} if element.get("type") == "repeat" \
                    else {"appearance", "rows"}
                for control in set(value) - read:
                    refuse(name, f"control::{control}", control)
            elif key == "parameters" and value and element.get("type") != "range" \
                    or key in _SLOTS_NOT_READ:
                refuse(name, key, key)
        messages.extend(_unread(element.get("children", []), rows, seen))
    return messages


def _form_name(filename: str | None) -> str | None:
    """pyxform's name for a form without form_id: its file name without the extension."""
    name = re.split(r"[\\/]", filename or "")[-1]  # a browser may send a Windows path
    return (PurePath(name).stem.strip() or None) if name else None


def _pyxform_messages(sheets: dict[str, _Sheet], filename: str | None,
                      rows: dict[str, int]) -> list[str]:
    """Convert the form with pyxform, as ODK / KoboToolbox would; return its complaint, if any.

    pyxform stops at the first problem. Its row numbers are spreadsheet rows, like ours.
    """
    if "survey" not in sheets:
        return []
    try:
        form = workbook_to_json(_definition_data(sheets, filename), warnings=[])
        read = copy.deepcopy(form)  # what pyxform read, before the builder touches it
        # workbook_to_json accepts per-language form_title columns, but building the XForm
        # then fails on the dict; the title plays no part in validating the questions.
        if not isinstance(form.get("title"), str):
            form["title"] = form.get("id_string") or "form"
        create_survey_element_from_dict(form).to_xml(validate=False, warnings=[])
    except Exception as exc:  # pyxform also fails with KeyError etc. on malformed forms
        message = str(exc).strip()
    else:
        return _unread(read.get("children", []), rows)
    sheet = next((s for s in ("choices", "settings") if f"'{s}' sheet" in message), "survey")
    match = _PYXFORM_ROW.match(message)
    if match:
        return [rules.pyxform_message(sheet, int(match.group(1)), message[match.end() :])]
    # Messages from the XForm builder name the element instead of the row.
    named = [rows[n] for n in re.findall(r"'([^']+)'", message) if n in rows]
    return [rules.pyxform_message(sheet, named[0] if named else None, message)]

"""Import and export of survey definitions as XLSForm spreadsheets (ODK / KoboToolbox).

Only a subset of XLSForm is supported: the question types text, integer, decimal, date, note,
select_one LIST and select_multiple LIST, and groups that are not nested. A `select_one` whose
choice names are all integers becomes a `likert` question, one whose choice names are exactly
{yes, no} a `yes_no` question. An optional extra sheet `scales` (not standard XLSForm; ODK and
KoboToolbox ignore it) defines scores computed from likert or integer items.

The definition is a JSON-able dict with the keys title, form_id, version, groups, questions
and scales; see `parse_xlsform`. Texts are dicts keyed by language code (ar, fr, en).

Round trip: `parse_xlsform(export_xlsform(d)) == d` for every `d` returned by `parse_xlsform`,
except the questions' "row" values (the export writes its own layout) and the choice list names,
which the definition does not keep (the export names each list "<question>_list"). The export
goes through the app's one writer (services/files.py), which puts an apostrophe before a text
that a spreadsheet would run as a formula; reading undoes exactly that (`files.restore`).

Bounds: the workbook is checked as a ZIP first (services/inputs.py: sizes, compression, the
range each sheet uses) and every sheet is read with a hard stop at MAX_ROWS rows and
MAX_COLUMNS columns.
"""

from __future__ import annotations

import re
from io import BytesIO
from zipfile import BadZipFile

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from pyxform.builder import create_survey_element_from_dict
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import get_xlsform

from .. import inputs
from ..files import Sheet, restore, xlsx_bytes

LANGS = ("ar", "fr", "en")
LANG_HEADERS = {"ar": "Arabic (ar)", "fr": "French (fr)", "en": "English (en)"}
_LANG_NAMES = {"arabic": "ar", "french": "fr", "english": "en"}
PLAIN_TYPES = ("text", "integer", "decimal", "date", "note")
SUPPORTED = (
    "text, integer, decimal, date, note, select_one LIST, select_multiple LIST, "
    "begin_group, end_group"
)
_SELECT = re.compile(r"^(select_one|select_multiple) (\S+)$")
_REF = re.compile(r"\$\{([^}]*)\}")
_INT = re.compile(r"^-?\d+$")
_PYXFORM_ROW = re.compile(r"^\s*\[row\s*:\s*(\d+)\]\s*", re.S)
_TRUE = {"yes", "true", "true()", "1"}
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
    text = _cell(value)
    if "::" in text:
        base, lang = text.split("::", 1)
        return f"{base.strip().lower()}::{lang.strip()}"
    return text.lower()


def _rows(sheet, used_rows: int) -> list[tuple[int, dict[str, str]]]:
    """Non-empty rows of a sheet as (1-based spreadsheet row number, {header: text}),
    reading no further than the rows its cells use and MAX_COLUMNS columns."""
    values = inputs.sheet_rows(sheet, min(used_rows, MAX_ROWS), MAX_COLUMNS)
    keys = [_header(h) for h in next(values, None) or ()]
    rows = []
    for number, cells in enumerate(values, start=2):
        row = {k: _cell(v) for k, v in zip(keys, cells, strict=False) if k}
        if any(row.values()):
            rows.append((number, row))
    return rows


def _lang(tag: str) -> str:
    match = re.search(r"\(([A-Za-z]{2,3})(?:[-_]\w+)?\)\s*$", tag)
    code = (match.group(1) if match else tag).strip().lower()
    return _LANG_NAMES.get(code, code)


def _texts(row: dict[str, str], base: str) -> dict[str, str]:
    """Per-language texts of `base` (label, hint...); a plain column fills missing languages."""
    found: dict[str, str] = {}
    for key, value in row.items():
        if value and key.startswith(base + "::"):
            found.setdefault(_lang(key[len(base) + 2 :]), value)
    if row.get(base):
        for code in LANGS:
            found.setdefault(code, row[base])
    return {code: found[code] for code in LANGS if code in found}


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_xlsform(data: bytes) -> dict:
    """Read an XLSForm workbook into a definition dict, or raise XLSFormError with all problems.

    The form is checked by pyxform (as ODK / KoboToolbox would convert it) and by the rules of
    the supported subset; every message names the sheet and, where there is one, the row.
    A file outside the bounds is refused first, with a message in the user's language.
    """
    try:
        used = {s.title: s.rows for s in inputs.check_xlsx(data, MAX_ROWS, MAX_COLUMNS)}
    except inputs.InputRefused as refused:
        raise XLSFormError(refused.messages) from None
    try:
        book = load_workbook(BytesIO(data), data_only=True, read_only=True)
    except (BadZipFile, InvalidFileException, KeyError, OSError, ValueError, TypeError) as exc:
        raise XLSFormError(inputs.not_xlsx().messages) from exc
    try:
        sheets = {sheet.title.strip().lower(): _rows(sheet, used.get(sheet.title, MAX_ROWS))
                  for sheet in book.worksheets}
    finally:
        book.close()

    errors: list[str] = []
    if "survey" not in sheets:
        errors.append("survey sheet: the workbook has no sheet named 'survey'")
    choices = _parse_choices(sheets.get("choices", []), errors)
    groups, questions, rows = _parse_survey(sheets.get("survey", []), choices, errors)
    _check_references(groups, questions, rows, errors)
    settings = sheets.get("settings") or [(2, {})]
    number, setting = settings[0]
    if not setting.get("form_id"):
        errors.append(f"settings sheet, row {number}: form_id is required")
    by_name = {q["name"]: q for q in questions}
    # Without a survey sheet every scale item would be reported unknown as well.
    scales = _parse_scales(sheets.get("scales", []), by_name, errors) if "survey" in sheets else []
    for message in _pyxform_messages(data, rows):
        # pyxform stops at its first problem, usually one we reported too: keep one per row
        where = message.split(":", 1)[0]
        if not any(m.startswith(where + ":") or m.startswith(where + ",") for m in errors):
            errors.append(message)
    if errors:
        raise XLSFormError(errors)
    return {
        "title": _texts(setting, "form_title"),
        "form_id": setting["form_id"],
        "version": setting.get("version") or None,
        "groups": groups,
        "questions": questions,
        "scales": scales,
    }


def _parse_choices(rows, errors: list[str]) -> dict[str, list[dict]]:
    lists: dict[str, list[dict]] = {}
    for number, row in rows:
        where = f"choices sheet, row {number}"
        list_name, name = row.get("list_name", ""), row.get("name", "")
        if not list_name or not name:
            errors.append(f"{where}: list_name and name are both required")
        elif any(c["name"] == name for c in lists.get(list_name, [])):
            errors.append(f"{where}: the choice '{name}' appears twice in the list '{list_name}'")
        else:
            lists.setdefault(list_name, []).append({"name": name, "label": _texts(row, "label")})
    return lists


def _select_kind(kind: str, choices: list[dict]) -> str:
    names = [c["name"] for c in choices]
    if kind == "select_one" and names and all(_INT.match(n) for n in names):
        return "likert"
    if kind == "select_one" and sorted(names) == ["no", "yes"]:
        return "yes_no"
    return kind


def _parse_survey(rows, choices, errors: list[str]):
    """Questions and groups in order, and the row of every name (for later messages)."""
    groups: list[dict] = []
    questions: list[dict] = []
    seen: dict[str, int] = {}
    # Open groups as (name, row). Nesting is refused, but a nested group is still tracked so
    # that its end_group does not also count as unbalanced.
    stack: list[tuple[str, int]] = []
    for number, row in rows:
        where = f"survey sheet, row {number}"
        kind = " ".join(row.get("type", "").split())
        name = row.get("name", "")
        if kind in ("end_group", "end group"):
            if stack:
                stack.pop()
            else:
                errors.append(f"{where}: end_group without a matching begin_group")
            continue
        select = _SELECT.match(kind)
        is_group = kind in ("begin_group", "begin group")
        if kind and kind not in PLAIN_TYPES and not select and not is_group:
            errors.append(f"{where}: the type '{kind}' is not supported (supported: {SUPPORTED})")
            if name:  # so that references to it are not also reported as unknown
                seen.setdefault(name, number)
            continue
        if not kind or not name:
            errors.append(f"{where}: the {'type' if not kind else 'name'} is missing")
            continue
        if name in seen:
            errors.append(f"{where}: the name '{name}' is already used on row {seen[name]}")
            continue
        seen[name] = number
        relevant = row.get("relevant") or None
        if is_group:
            if stack:
                outer, outer_row = stack[-1]
                errors.append(
                    f"{where}: groups cannot be nested ('{name}' is inside '{outer}', "
                    f"opened on row {outer_row})"
                )
            else:
                groups.append({"name": name, "label": _texts(row, "label"), "relevant": relevant})
            stack.append((name, number))
            continue
        qtype, q_choices = kind, []
        if select:
            qtype, list_name = select.groups()
            if list_name in choices:
                q_choices = [{**c, "label": dict(c["label"])} for c in choices[list_name]]
                qtype = _select_kind(qtype, q_choices)
            else:
                errors.append(f"{where}: the choice list '{list_name}' is not on the choices sheet")
        label, hint = _texts(row, "label"), _texts(row, "hint")
        if not label and not hint:
            errors.append(f"{where}: the question '{name}' has no label")
        questions.append(dict(
            name=name, type=qtype, label=label, hint=hint,
            required=row.get("required", "").lower() in _TRUE,
            relevant=relevant, constraint=row.get("constraint") or None,
            constraint_message=_texts(row, "constraint_message"), choices=q_choices,
            group=stack[0][0] if stack else None, row=number,
        ))  # fmt: skip
    for name, number in stack:
        errors.append(f"survey sheet, row {number}: the group '{name}' is never closed")
    return groups, questions, seen


def _check_references(groups, questions, rows: dict[str, int], errors: list[str]) -> None:
    """Unknown ${name} references, and cycles in which questions' visibility depends on itself."""
    for item in groups + questions:
        for field in ("relevant", "constraint"):
            for ref in _REF.findall(item.get(field) or ""):
                if ref not in rows:
                    errors.append(
                        f"survey sheet, row {rows[item['name']]}: the {field} refers to "
                        f"an unknown question '${{{ref}}}'"
                    )
    group_relevant = {g["name"]: g["relevant"] or "" for g in groups}
    # A question is shown only if its own relevant and its group's relevant hold.
    deps = {
        q["name"]: set(_REF.findall(f"{q['relevant'] or ''} {group_relevant.get(q['group'], '')}"))
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
            where = f"survey sheet, row {rows[name]}"
            if len(members) == 1:
                errors.append(f"{where}: cyclic relevance: '{name}' depends on itself")
            else:
                errors.append(f"{where}: cyclic relevance between {', '.join(members)}")


def _int(text: str | None, default, field: str, where: str, errors: list[str]):
    if not text:
        return default
    if _INT.match(text):
        return int(text)
    errors.append(f"{where}: {field} must be a whole number, not '{text}'")
    return None


def _parse_scales(rows, by_name: dict[str, dict], errors: list[str]) -> list[dict]:
    scales: list[dict] = []
    for number, row in rows:
        where, before = f"scales sheet, row {number}", len(errors)
        name, method = row.get("name", ""), row.get("method", "").lower()
        items, reverse = _split(row.get("items")), _split(row.get("reverse"))
        if not name or any(s["name"] == name for s in scales):
            errors.append(f"{where}: the scale name '{name}' is missing or already used")
        if not items or len(set(items)) != len(items):
            errors.append(f"{where}: items must list distinct question names")
        for item in items:
            question = by_name.get(item)
            if question is None:
                errors.append(f"{where}: the item '{item}' is not a question of the survey sheet")
            elif question["type"] not in ("likert", "integer"):
                errors.append(
                    f"{where}: the item '{item}' is a {question['type']} question "
                    "(items must be likert or integer questions)"
                )
        outside = [r for r in reverse if r not in items]
        if outside:
            errors.append(f"{where}: the reverse items {', '.join(outside)} are not in items")
        if method not in ("sum", "mean"):
            errors.append(f"{where}: the method must be sum or mean, not '{method}'")
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
            errors.append(f"{where}: min_answered must be between 1 and the number of items")
        if item_min is not None and item_max is not None and item_min >= item_max:
            errors.append(f"{where}: item_min must be smaller than item_max")
        if reverse and (item_min is None or item_max is None):
            errors.append(f"{where}: item_min and item_max are needed to reverse items")
        if len(errors) == before:
            scales.append(dict(
                name=name, label=_texts(row, "label"), items=items, method=method,
                reverse=reverse, min_answered=min_answered, item_min=item_min, item_max=item_max,
            ))  # fmt: skip
    return scales


def _pyxform_messages(data: bytes, rows: dict[str, int]) -> list[str]:
    """Convert the form with pyxform, as ODK / KoboToolbox would; return its complaint, if any.

    pyxform stops at the first problem. Its row numbers are spreadsheet rows, like ours.
    """
    try:
        form = workbook_to_json(get_xlsform(BytesIO(data), file_type=".xlsx"), warnings=[])
        # workbook_to_json accepts per-language form_title columns, but building the XForm
        # then fails on the dict; the title plays no part in validating the questions.
        if not isinstance(form.get("title"), str):
            form["title"] = form.get("id_string") or "form"
        create_survey_element_from_dict(form).to_xml(validate=False, warnings=[])
    except Exception as exc:  # pyxform also fails with KeyError etc. on malformed forms
        message = str(exc).strip()
    else:
        return []
    sheet = next((s for s in ("choices", "settings") if f"'{s}' sheet" in message), "survey")
    match = _PYXFORM_ROW.match(message)
    if match:
        return [f"{sheet} sheet, row {match.group(1)}: {message[match.end() :]}"]
    # Messages from the XForm builder name the element instead of the row.
    named = [rows[n] for n in re.findall(r"'([^']+)'", message) if n in rows]
    where = f"{sheet} sheet, row {named[0]}" if named else f"{sheet} sheet"
    return [f"{where}: {message}"]


def _lang_columns(base: str) -> list[str]:
    return [f"{base}::{LANG_HEADERS[code]}" for code in LANGS]


def _lang_values(texts: dict | None) -> list[str | None]:
    return [(texts or {}).get(code) or None for code in LANGS]


def export_xlsform(definition: dict) -> bytes:
    """Write a definition (as returned by `parse_xlsform`) as an XLSForm workbook.

    likert, yes_no and select questions get a choice list named "<question>_list". The title
    is written as one plain form_title when all its languages agree; otherwise as per-language
    form_title columns, which this module reads back but pyxform cannot turn into an XForm.
    """
    survey: list[list] = []
    survey.append([
        "type", "name", *_lang_columns("label"), *_lang_columns("hint"),
        "required", "relevant", "constraint", *_lang_columns("constraint_message"),
    ])  # fmt: skip
    choices: list[list] = [["list_name", "name", *_lang_columns("label")]]

    groups = definition.get("groups") or []
    by_group = {g["name"]: g for g in groups}
    used = {q.get("group") for q in definition.get("questions", [])}
    opened: set[str] = set()

    def write_group(name: str, close: bool) -> None:
        group = by_group.get(name, {"name": name})
        # Columns: type, name, 3 labels, 3 hints, required, relevant.
        survey.append(["begin_group", name, *_lang_values(group.get("label")), *[None] * 4,
                       group.get("relevant")])  # fmt: skip
        opened.add(name)
        if close:
            survey.append(["end_group"])

    current = None
    for question in definition.get("questions", []):
        if question.get("group") != current:
            if current:
                survey.append(["end_group"])
            current = question.get("group")
            if current:
                # Empty groups listed before this one are written first, keeping the order.
                for group in groups:
                    if group["name"] == current:
                        break
                    if group["name"] not in used and group["name"] not in opened:
                        write_group(group["name"], close=True)
                write_group(current, close=False)
        name, qtype = question["name"], question["type"]
        if qtype in ("likert", "yes_no", "select_one", "select_multiple"):
            list_name = f"{name}_list"
            kind = ("select_multiple " if qtype == "select_multiple" else "select_one ") + list_name
            for choice in question.get("choices", []):
                choices.append([list_name, str(choice["name"]), *_lang_values(choice["label"])])
        else:
            kind = qtype
        survey.append([
            kind, name, *_lang_values(question.get("label")), *_lang_values(question.get("hint")),
            "yes" if question.get("required") else None, question.get("relevant"),
            question.get("constraint"), *_lang_values(question.get("constraint_message")),
        ])  # fmt: skip
    if current:
        survey.append(["end_group"])
    for group in groups:
        if group["name"] not in opened:
            write_group(group["name"], close=True)

    settings: list[list] = []
    title = definition.get("title") or {}
    if len(title) == len(LANGS) and len(set(title.values())) == 1:
        heads, values = ["form_title"], [title[LANGS[0]]]
    elif title:
        heads, values = _lang_columns("form_title"), _lang_values(title)
    else:
        heads, values = [], []
    settings.append([*heads, "form_id", "version"])
    settings.append([*values, definition["form_id"], definition.get("version")])

    sheets = [Sheet("survey", survey), Sheet("choices", choices), Sheet("settings", settings)]
    if definition.get("scales"):
        scales: list[list] = []
        sheets.append(Sheet("scales", scales))
        scales.append(["name", *_lang_columns("label"), "items", "method", "reverse",
                      "min_answered", "item_min", "item_max"])  # fmt: skip
        for scale in definition["scales"]:
            scales.append([
                scale["name"], *_lang_values(scale.get("label")), ", ".join(scale["items"]),
                scale["method"], ", ".join(scale.get("reverse") or []) or None,
                scale.get("min_answered"), scale.get("item_min"), scale.get("item_max"),
            ])  # fmt: skip
    return xlsx_bytes(sheets)

"""Writing a survey definition back as an XLSForm workbook (the reader is xlsform.py)."""

from __future__ import annotations

import re

from ..files import Sheet, xlsx_bytes
from .xlsform_rules import LANGS

LANG_HEADERS = {"ar": "Arabic (ar)", "fr": "French (fr)", "en": "English (en)"}


def _lang_columns(base: str, langs: list[str]) -> list[str]:
    """One column per language: "label::Arabic (ar)"; another code as "label::sw (sw)", a
    key that is a name (a column written without a code) as that name."""
    return [f"{base}::{_lang_header(code)}" for code in langs]


def _lang_header(code: str) -> str:
    if code in LANG_HEADERS:
        return LANG_HEADERS[code]
    return f"{code} ({code})" if re.fullmatch(r"[a-z]{2,3}", code) else code


def _lang_values(texts: dict | None, langs: list[str]) -> list[str | None]:
    return [(texts or {}).get(code) or None for code in langs]


def _languages(definition: dict) -> list[str]:
    """Every language the definition's texts use: ar, fr and en (always, as before), then
    the others in the order met."""
    found = dict.fromkeys(LANGS)
    items = [definition, *(definition.get("groups") or []), *(definition.get("scales") or [])]
    for question in definition.get("questions") or []:
        items += [question, *(question.get("choices") or [])]
    for item in items:
        for key in ("title", "label", "hint", "constraint_message", "required_message"):
            texts = item.get(key)
            if isinstance(texts, dict):
                found.update(dict.fromkeys(texts))
    return list(found)


def export_xlsform(definition: dict) -> bytes:
    """Write a definition (as returned by `parse_xlsform`) as an XLSForm workbook.

    likert, yes_no and select questions get a choice list named "<question>_list". The title
    is written as one plain form_title when all its languages agree; otherwise form_title holds
    the first language's and per-language bladi_title columns (which pyxform ignores) hold
    them all, so pyxform converts the file and `parse_xlsform` reads the same titles back.
    """
    langs = _languages(definition)

    def columns(base: str) -> list[str]:
        return _lang_columns(base, langs)

    def texts_of(texts: dict | None) -> list[str | None]:
        return _lang_values(texts, langs)

    survey: list[list] = []
    survey.append([
        "type", "name", *columns("label"), *columns("hint"),
        "required", "relevant", "constraint", *columns("constraint_message"),
        *columns("required_message"), "calculation", "read_only", "default",
        "parameters", "choice_filter", "trigger", "repeat_count",
    ])  # fmt: skip
    width = len(survey[0])
    # Choice columns a choice_filter reads (e.g. the county of each sub-county).
    data_columns = sorted({column for q in definition.get("questions", [])
                           for c in q.get("choices") or [] for column in c.get("data") or {}})
    choices: list[list] = [["list_name", "name", *columns("label"), *data_columns]]

    groups = definition.get("groups") or []
    by_group = {g["name"]: g for g in groups}
    parents = {g["name"]: g.get("parent") for g in groups}

    def chain(name: str | None) -> list[str]:
        """A group and the groups around it, the outermost first."""
        found: list[str] = []
        while name and name not in found:
            found.insert(0, name)
            name = parents.get(name)
        return found

    # Groups that hold a question, directly or in a nested group.
    used = {g for q in definition.get("questions", []) for g in chain(q.get("group"))}
    opened: set[str] = set()
    stack: list[str] = []  # the groups open now, the innermost last
    for item in definition.get("meta", []):  # metadata first, as ODK's templates write it
        survey.append([item["type"], item["name"]])

    def write_group(name: str, close: bool) -> None:
        group = by_group.get(name, {"name": name})
        # Columns: type, name, the labels, the hints, required, relevant.
        kind = "repeat" if group.get("repeat") else "group"
        row = ["begin_" + kind, name, *texts_of(group.get("label")), *[None] * (len(langs) + 1),
               group.get("relevant")]  # fmt: skip
        if group.get("repeat_count"):  # the last column
            row += [None] * (width - len(row) - 1) + [group["repeat_count"]]
        survey.append(row)
        opened.add(name)
        if close:  # an empty group: its empty nested groups go inside it
            for inner in groups:
                if inner.get("parent") == name and inner["name"] not in opened:
                    write_group(inner["name"], close=True)
            survey.append([end(name)])

    def open_group(name: str) -> None:
        # Empty groups listed before this one, in the same parent, are written first.
        for group in groups:
            if group["name"] == name:
                break
            if group["name"] not in used and group["name"] not in opened \
                    and group.get("parent") == parents.get(name):
                write_group(group["name"], close=True)
        write_group(name, close=False)
        stack.append(name)

    def end(name: str) -> str:
        return "end_repeat" if by_group.get(name, {}).get("repeat") else "end_group"

    for question in definition.get("questions", []):
        wanted = chain(question.get("group"))
        while stack and stack != wanted[: len(stack)]:
            survey.append([end(stack.pop())])
        for name in wanted[len(stack):]:
            open_group(name)
        name, qtype = question["name"], question["type"]
        if qtype in ("likert", "yes_no", "select_one", "select_multiple"):
            list_name = f"{name}_list"
            kind = ("select_multiple " if qtype == "select_multiple" else "select_one ") + list_name
            for choice in question.get("choices", []):
                data = choice.get("data") or {}
                choices.append([list_name, str(choice["name"]), *texts_of(choice["label"]),
                                *[data.get(column) for column in data_columns]])
        elif qtype == "calculate" and not question.get("calculation") \
                and not question.get("trigger_calculation"):
            kind = "hidden"  # pyxform's spelling of a calculate that has no calculation
        else:
            kind = qtype
        params = question.get("parameters")
        survey.append([
            kind, name, *texts_of(question.get("label")), *texts_of(question.get("hint")),
            "yes" if question.get("required") else question.get("required_if"),
            question.get("relevant"),
            question.get("constraint"), *texts_of(question.get("constraint_message")),
            *texts_of(question.get("required_message")),
            question.get("calculation") or question.get("trigger_calculation"),
            "yes" if question.get("read_only") else None, question.get("default"),
            " ".join(f"{k}={params[k]}" for k in ("start", "end", "step")) if params else None,
            question.get("choice_filter"), question.get("trigger"),
        ])  # fmt: skip
    while stack:
        survey.append([end(stack.pop())])
    for group in groups:
        if group["name"] not in opened and group.get("parent") not in by_group:
            write_group(group["name"], close=True)

    settings: list[list] = []
    title = definition.get("title") or {}
    if set(title) == set(LANGS) and len(set(title.values())) == 1 \
            and not definition.get("default_language"):
        heads, values = ["form_title"], [title[LANGS[0]]]
    elif title:
        # pyxform takes one title only: the first language's. The others go in a column
        # pyxform ignores and this module reads back.
        heads = ["form_title", *columns("bladi_title")]
        values = [next(title[c] for c in langs if c in title), *texts_of(title)]
    else:
        heads, values = [], []
    # A name twice in a list (told apart by a choice_filter) needs pyxform's setting.
    duplicates = any(len({c["name"] for c in q.get("choices") or []}) < len(q.get("choices") or [])
                     for q in definition.get("questions", []))
    heads, values = (heads + ["allow_choice_duplicates"], values + ["yes"]) if duplicates \
        else (heads, values)
    if definition.get("default_language"):  # the form's fallback language
        heads, values = heads + ["default_language"], values + [
            _lang_header(definition["default_language"])]
    settings.append([*heads, "form_id", "version"])
    settings.append([*values, definition["form_id"], definition.get("version")])

    sheets = [Sheet("survey", survey), Sheet("choices", choices), Sheet("settings", settings)]
    if definition.get("scales"):
        scales: list[list] = []
        sheets.append(Sheet("scales", scales))
        scales.append(["name", *columns("label"), "items", "method", "reverse",
                      "min_answered", "item_min", "item_max"])  # fmt: skip
        for scale in definition["scales"]:
            scales.append([
                scale["name"], *texts_of(scale.get("label")), ", ".join(scale["items"]),
                scale["method"], ", ".join(scale.get("reverse") or []) or None,
                scale.get("min_answered"), scale.get("item_min"), scale.get("item_max"),
            ])  # fmt: skip
    return xlsx_bytes(sheets)

"""Skip logic, constraints, answer validation and scale scores for a survey definition
(the dict built from an XLSForm: groups, questions, scales).

Expressions are XPath 1.0 as XLSForm writes them. They are evaluated by elementpath over an
XML instance `<data><name>value</name>...</data>` (a repeat's entries are repeated
`<repeat>` elements holding their questions), never by Python eval: an expression can
only read the answers. The ODK functions and type rules (dates compare and subtract as days)
are in `xpath`.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime
from decimal import Decimal

from elementpath import ElementPathError
from flask_babel import lazy_gettext as _l

from ...models.common import in_language
from . import xpath

MSG_REQUIRED = _l("This question must be answered.")
MSG_INTEGER = _l("Enter a whole number.")
MSG_DECIMAL = _l("Enter a number.")
MSG_DATE = _l("Enter a date as YYYY-MM-DD.")
MSG_CHOICE = _l("Choose from the list.")
MSG_REJECTED = _l("This answer is not accepted.")
MSG_TIME = _l("Enter a time as HH:MM.")
MSG_DATETIME = _l("Enter a date and a time.")
MSG_RANGE = _l("Enter a number from %(start)s to %(end)s, in steps of %(step)s.")
MSG_ACKNOWLEDGE = _l("Tick the box to acknowledge.")
MSG_ENTRY = _l("%(repeat)s %(number)d: %(message)s")
MSG_TOO_MANY = _l("At most %(n)d entries.")
# Entries of a repeat: what a worker may add, and where a repeat_count stops.
MAX_ENTRIES = 50

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_LITERAL = re.compile(r"""('[^']*'|"[^"]*")""")
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?")
_DATETIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T(.+)")
# Questions whose value the server computes rather than the worker types.
_NUMERIC = ("decimal", "range")
# XPath 1.0's number(): no exponent, no 'inf'/'nan', unlike Python's float().
_XPATH_NUMBER = re.compile(r"\s*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*")


class LogicError(Exception):
    """An expression of the definition cannot be parsed or evaluated."""

    def __init__(self, expression: str, message: str):
        super().__init__(f"{message} (in {expression!r})")
        self.expression = expression
        self.message = message


# --- The XPath dialect -------------------------------------------------------------------

def _to_number(value) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | Decimal):
        return float(value)
    text = str(value)
    return float(text) if _XPATH_NUMBER.fullmatch(text) else math.nan


# --- Evaluation --------------------------------------------------------------------------

def to_xpath(expression: str, inside: dict[str, str] | None = None,
             here: str | None = None) -> str:
    """Rewrite `${name}` into `/data/name` (outside string literals); `.` stays as is.
    `inside` maps the questions of repeats to their repeat: `${q}` is `/data/repeat/q`
    (every entry's), or `../q` (the current entry's, as in ODK) when the expression is
    read inside that repeat, `here`."""
    inside = inside or {}

    def path(match) -> str:
        name = match.group(1)
        repeat = inside.get(name)
        if repeat is None:
            return f"/data/{name}"
        return f"../{name}" if repeat == here else f"/data/{repeat}/{name}"

    parts = _LITERAL.split(expression)
    return "".join(part if i % 2 else _REFERENCE.sub(path, part)
                   for i, part in enumerate(parts))


# --- Repeats -----------------------------------------------------------------------------

def repeats(definition: dict) -> dict[str, dict]:
    """The repeats (groups with "repeat": true) by name."""
    return {g["name"]: g for g in definition.get("groups", []) if g.get("repeat")}


def slot(repeat: str, number: int, name: str) -> str:
    """The key of a question of a repeat's entry `number` (from 1): "repeat/number/name",
    as used in visibility, errors and the fill page's field names."""
    return f"{repeat}/{number}/{name}"


def entries(answers: dict, repeat: str) -> list[dict]:
    """A repeat's entries in `answers` (a list of dicts; anything else counts as none)."""
    value = answers.get(repeat)
    return [e if isinstance(e, dict) else {} for e in value] if isinstance(value, list) else []


def _inside(definition: dict) -> dict[str, str]:
    return {q["name"]: q["repeat"] for q in definition["questions"] if q.get("repeat")}


def _slots(definition: dict, working: dict) -> list[tuple[dict, str, dict | None]]:
    """(question, key, entry) for every place an answer goes, in question order: a question
    in a repeat has one per entry of `working` (`entry` the dict its answer is in)."""
    result = []
    for question in definition["questions"]:
        repeat = question.get("repeat")
        if not repeat:
            result.append((question, question["name"], None))
            continue
        for number, entry in enumerate(working.get(repeat) or [], start=1):
            result.append((question, slot(repeat, number, question["name"]), entry))
    return result


def new_entry(definition: dict, repeat: str) -> dict:
    """A new entry of a repeat: its questions' defaults."""
    return {q["name"]: (q["default"].split() if q["type"] == "select_multiple" else
                        q["default"])
            for q in definition["questions"] if q.get("repeat") == repeat and q.get("default")}


def _text(value) -> str:
    """An answer as instance text: lists (select_multiple) joined with spaces, as ODK does."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


def _node_text(question: dict, value) -> str:
    text = _text(value)
    if question["type"] in _NUMERIC:
        text = text.replace(",", ".")  # so "1,5" compares as the number 1.5
    return text


def _instance(definition: dict, answers: dict) -> ET.Element:
    """`<data><name>value</name>...</data>`; a repeat is one `<repeat>` element per entry,
    holding its questions, where its first question is."""
    root = ET.Element("data")
    written: set[str] = set()
    for question in [*definition["questions"], *definition.get("meta", [])]:
        repeat = question.get("repeat")
        if not repeat:
            ET.SubElement(root, question["name"]).text = \
                _node_text(question, answers.get(question["name"]))
        elif repeat not in written:
            written.add(repeat)
            inner = [q for q in definition["questions"] if q.get("repeat") == repeat]
            for entry in entries(answers, repeat):
                element = ET.SubElement(root, repeat)
                for member in inner:
                    ET.SubElement(element, member["name"]).text = \
                        _node_text(member, entry.get(member["name"]))
    return root


def _node(root: ET.Element, key: str | None) -> ET.Element | None:
    """The instance element of a question name or of a repeat's slot key."""
    if not key:
        return None
    if "/" not in key:
        return root.find(key)
    repeat, number, name = key.split("/")
    found = root.findall(repeat)
    return found[int(number) - 1].find(name) if 0 < int(number) <= len(found) else None


def _names(definition: dict) -> set[str]:
    """The names an expression may refer to: questions, metadata and repeats."""
    return {q["name"] for q in [*definition["questions"], *definition.get("meta", [])]} | \
        set(repeats(definition))


def texts_in(definition: dict, lang: str):
    """What templates call to show a text of `definition` (a label, a hint): `text(texts,
    default="")` in `lang`, else in the form's default_language (models.common.in_language
    picks)."""
    fallback = definition.get("default_language")

    def text(texts: dict | None, default: str = "") -> str:
        return in_language(texts, lang, default, fallback)

    return text


def _choice_labels(definition: dict, lang: str) -> dict[str, dict[str, str]]:
    """For jr:choice-name(): each question's choice labels in `lang`, by choice name."""
    fallback = definition.get("default_language")
    return {q["name"]: {str(c["name"]): in_language(c.get("label"), lang, str(c["name"]),
                                                    fallback)
                        for c in q.get("choices") or []}
            for q in definition["questions"] if q.get("choices")}


def _value_on(root: ET.Element, expression: str, definition: dict, current: str | None,
              now: datetime | None = None, lang: str = "en"):
    known = _names(definition)
    for part in _LITERAL.split(expression)[::2]:  # odd parts are string literals
        for name in _REFERENCE.findall(part):
            if name not in known:
                raise LogicError(expression, f"unknown question ${{{name}}}")
    inside = _inside(definition)
    here = current.split("/")[0] if current and "/" in current else inside.get(current)
    try:
        item = _node(root, current)
        return xpath.evaluate_value(to_xpath(expression, inside, here), root, item, now=now,
                                    choices=_choice_labels(definition, lang))
    except (ElementPathError, TypeError, ValueError, ArithmeticError, re.error) as exc:
        # elementpath reports bad syntax, unknown functions (e.g. `__import__`) and type
        # errors with these; to the caller all are a broken expression in the definition.
        raise LogicError(expression, str(exc)) from exc


def _evaluate_on(root: ET.Element, expression: str, definition: dict,
                 current: str | None, now: datetime | None = None) -> bool:
    return xpath.as_boolean(_value_on(root, expression, definition, current, now))


def evaluate(expression: str, answers: dict, definition: dict,
             current: str | None = None, *, now: datetime | None = None) -> bool:
    """The boolean value of an XLSForm expression given the answers; `.` is the question
    `current` (a name, or a repeat's slot key, see `slot`); today() and now() read `now`
    (default: the clock). Raises LogicError for an
    expression that cannot be parsed or evaluated."""
    return _evaluate_on(_instance(definition, answers), expression, definition, current, now)


def value(expression: str, answers: dict, definition: dict, current: str | None = None, *,
          now: datetime | None = None, lang: str = "en") -> bool | float | str:
    """The value of an XLSForm expression (a calculation, a default): a bool, a float (NaN
    for no number) or a str (a date as 'YYYY-MM-DD', a node-set as its first node's text);
    jr:choice-name() gives labels in `lang`. Raises LogicError like `evaluate`."""
    result = _value_on(_instance(definition, answers), expression, definition, current, now,
                       lang)
    return result if isinstance(result, bool | float | str) else xpath.as_string(result)


def fire_triggers(definition: dict, before: dict, answers: dict) -> None:
    """ODK's `trigger`: each question whose triggering answer differs in `answers` from
    `before` (the draft as it was) gets its trigger_calculation's value, computed from the
    answers as they count (or is cleared when it has none), in `answers`; the others keep
    what they had. Answers are compared as they count, so a calculation can trigger too
    (the draft does not hold computed values). Triggered questions are top-level (the
    parser refuses them in repeats)."""
    triggered = [q for q in definition["questions"] if q.get("trigger")]
    if not triggered:
        return
    was, counted = effective(definition, before), effective(definition, answers)
    for question in triggered:
        by = question["trigger"][2:-1]
        if was.get(by) == counted.get(by):
            continue
        name, expression = question["name"], question.get("trigger_calculation")
        if not expression:
            answers[name] = [] if question["type"] == "select_multiple" else ""
            continue
        result = _value_on(_instance(definition, counted), expression, definition, name)
        number = isinstance(result, float) and not isinstance(result, bool)
        answers[name] = "" if number and math.isnan(result) else xpath.as_string(result)


def computed(question: dict) -> bool:
    """Whether the server computes the question's value (it has a calculation), so what a
    client sends for it is ignored."""
    return bool(question.get("calculation"))


def _calculate(question: dict, root: ET.Element, definition: dict, working: dict,
               key: str | None = None, entry: dict | None = None) -> bool:
    """Compute a calculation into the instance and `working` (or the repeat's `entry`,
    `key` its slot); True if its value changed. A result that is not a number (NaN) is
    empty, as in ODK."""
    name = question["name"]
    key = key or name
    result = _value_on(root, question["calculation"], definition, key)
    number = isinstance(result, float) and not isinstance(result, bool)
    text = "" if number and math.isnan(result) else xpath.as_string(result)
    node = _node(root, key)
    if node is None or (node.text or "") == text:
        return False
    node.text = text
    (working if entry is None else entry)[name] = text
    return True


def _count(definition: dict, repeat: dict, root: ET.Element, current: int) -> int:
    """How many entries a repeat has: its repeat_count (0 to MAX_ENTRIES; nothing usable
    is 0), else as many as the worker made."""
    if not repeat.get("repeat_count"):
        return current
    number = xpath.as_number(_value_on(root, repeat["repeat_count"], definition, None))
    return 0 if math.isnan(number) else int(max(0, min(MAX_ENTRIES, math.trunc(number))))


def _resolve(definition: dict, answers: dict) -> tuple[dict[str, bool], dict, ET.Element]:
    """Visibility in question order, each hidden answer cleared before later questions are
    considered (so a hidden 'yes' cannot open a follow-up). Calculations are computed first
    until they settle (one may use another written after it), then again in question order
    with the hidden answers cleared. With calculations, this is repeated with the hidden
    answers cleared from the start, until what is hidden settles (a calculation may read an
    answer written after it that turns out hidden). Returns (shown, effective answers,
    instance of the effective answers)."""
    calculations = [q for q in definition["questions"] if q.get("calculation")]
    hidden: set[str] = set()
    # With repeats, a calculation counts once per entry.
    attempts = len(calculations) * (MAX_ENTRIES if repeats(definition) else 1) + 1 \
        if calculations else 1
    for _attempt in range(attempts):
        shown, working, root = _resolve_once(definition, answers, calculations, hidden)
        now_hidden = {name for name, ok in shown.items() if not ok}
        if now_hidden == hidden:
            break
        hidden = now_hidden
    return shown, working, root


def _resolve_once(definition: dict, answers: dict, calculations: list[dict],
                  hidden: set[str]) -> tuple[dict[str, bool], dict, ET.Element]:
    """One pass of `_resolve`, the answers of `hidden` (keys, see `_slots`) cleared from the
    start. A repeat with a repeat_count gets that many entries (new ones empty, extra ones
    dropped)."""
    groups = {g["name"]: g for g in definition.get("groups", [])}
    working = dict(answers)
    for name in repeats(definition):
        working[name] = [dict(e) for e in entries(answers, name)]

    def prepare() -> tuple[ET.Element, list]:
        for question, key, entry in _slots(definition, working):
            place = working if entry is None else entry
            if computed(question):
                place.pop(question["name"], None)  # never what a client sent
            elif key in hidden:
                place[question["name"]] = [] if question["type"] == "select_multiple" else ""
        root = _instance(definition, working)
        # Hidden calculations stay empty.
        settling = [(q, k, e) for q, k, e in _slots(definition, working)
                    if q.get("calculation") and k not in hidden]
        for _round in range(len(settling) + 1):
            if not any([_calculate(q, root, definition, working, k, e)
                        for q, k, e in settling]):
                break
        return root, settling

    root, _settled = prepare()
    counted = False
    for name, repeat in repeats(definition).items():
        number = _count(definition, repeat, root, len(working[name]))
        if number != len(working[name]):
            counted = True
            working[name] = working[name][:number] + [
                new_entry(definition, name) for _ in range(number - len(working[name]))]
    if counted:
        root, _settled = prepare()
    shown: dict[str, bool] = {}
    group_shown: dict[str, bool] = {}
    for name in repeats(definition):
        shown[name] = all(_group_shown(definition, groups, g, root, group_shown)
                          for g in group_chain(definition, name))
    for question, key, entry in _slots(definition, working):
        chain = group_chain(definition, question.get("group"))
        repeat = question.get("repeat")
        # A group inside a repeat is read once per entry, the entry as its context.
        inner = chain[chain.index(repeat) + 1:] if repeat in chain else []
        ok = all(_group_shown(definition, groups, g, root, group_shown)
                 for g in chain if g not in inner) and \
            all(_group_shown(definition, groups, g, root, group_shown, key) for g in inner)
        if ok and question.get("relevant"):
            ok = _evaluate_on(root, question["relevant"], definition, key)
        shown[key] = ok
        if ok and question.get("calculation"):
            _calculate(question, root, definition, working, key, entry)
        if not ok:
            (working if entry is None else entry)[question["name"]] = \
                [] if question["type"] == "select_multiple" else ""
            node = _node(root, key)
            if node is not None:
                node.text = ""
    return shown, working, root


def _group_shown(definition: dict, groups: dict, group: str, root: ET.Element,
                 known: dict[str, bool], key: str | None = None) -> bool:
    """Whether a group's own relevant holds (read once per pass, into `known`): a group
    shows or hides as a whole, and with it every group nested in it. A group inside a
    repeat is read per entry: `key` is the slot key of one of its questions (see `slot`),
    whose entry `${q}` and `position(..)` read."""
    entry = key.rsplit("/", 1)[0] if key and "/" in key else None
    cached = f"{entry}/{group}" if entry else group
    if cached not in known:
        relevant = groups.get(group, {}).get("relevant")
        known[cached] = not relevant or _evaluate_on(root, relevant, definition, key)
    return known[cached]


_CHOICE_ITEM = "_choice_item_"  # where a choice_filter reads the choice it looks at


def _filtered_on(root: ET.Element, question: dict, definition: dict) -> list[dict]:
    """The choices the question's choice_filter lets through, the answers being `root`.
    As in ODK, the filter is read with each choice as its context: `county` is that choice's
    column (its "data"), `name` its name; `${name}` reads an answer."""
    choices = question.get("choices") or []
    expression = question.get("choice_filter")
    if not expression:
        return choices
    kept = []
    for choice in choices:
        item = ET.SubElement(root, _CHOICE_ITEM)
        ET.SubElement(item, "name").text = str(choice["name"])
        for column, text in (choice.get("data") or {}).items():
            ET.SubElement(item, column).text = text
        try:
            if _evaluate_on(root, expression, definition, _CHOICE_ITEM):
                kept.append(choice)
        finally:
            root.remove(item)
    return kept


def choices_for(definition: dict, answers: dict) -> dict[str, list[dict]]:
    """The choices of each question with a choice_filter, as the answers let through."""
    _shown, _working, root = _resolve(definition, answers)
    return {q["name"]: _filtered_on(root, q, definition)
            for q in definition["questions"] if q.get("choice_filter")}


def effective(definition: dict, answers: dict) -> dict:
    """The answers as they count: calculations computed, hidden answers cleared."""
    return _resolve(definition, answers)[1]


def interpolate(text: str, answers: dict) -> str:
    """A label or hint with each `${name}` replaced by that answer (as stored text; a
    select's choice names). The caller escapes the result when it writes HTML."""
    return _REFERENCE.sub(lambda m: _text(answers.get(m.group(1))), text or "")


def defaults(definition: dict) -> dict:
    """The answers a new draft starts with: each question's `default` (those of a repeat's
    questions go in each new entry, see `new_entry`)."""
    return {q["name"]: (q["default"].split() if q["type"] == "select_multiple"
                        else q["default"])
            for q in definition["questions"] if q.get("default") and not q.get("repeat")}


def visible(definition: dict, answers: dict) -> dict[str, bool]:
    """Whether each question is shown: its groups' and its own `relevant` are true, hidden
    answers counting as empty for the questions after them. A question of a repeat is
    keyed per entry (see `slot`); a repeat by its name."""
    return _resolve(definition, answers)[0]


def group_chain(definition: dict, group: str | None) -> list[str]:
    """The names of a group and of the groups it is nested in, the outermost first ([] for
    no group)."""
    parents = {g["name"]: g.get("parent") for g in definition.get("groups", [])}
    chain: list[str] = []
    while group and group not in chain:
        chain.insert(0, group)
        group = parents.get(group)
    return chain


def pages(definition: dict) -> list[dict]:
    """The form's pages: one per top-level group (its nested groups included), and one per
    run of consecutive ungrouped questions (named `page_<n>`, n its position in the list,
    with an empty label)."""
    labels = {g["name"]: g.get("label") or {} for g in definition.get("groups", [])}
    result: list[dict] = []
    by_group: dict[str, dict] = {}
    run = None
    for question in definition["questions"]:
        if question["type"] == "calculate":
            continue  # nothing to show or answer
        group = next(iter(group_chain(definition, question.get("group"))), None)
        if group:
            run = None
            if group not in by_group:
                by_group[group] = {"name": group, "label": labels.get(group, {}),
                                   "questions": []}
                result.append(by_group[group])
            by_group[group]["questions"].append(question["name"])
        else:
            if run is None:
                run = {"name": f"page_{len(result) + 1}", "label": {}, "questions": []}
                result.append(run)
            run["questions"].append(question["name"])
    return result


# --- Validation and storage --------------------------------------------------------------

def _choices(question: dict) -> set[str]:
    names = {str(c["name"]) for c in question.get("choices") or []}
    return names or ({"yes", "no"} if question["type"] == "yes_no" else set())


def _type_error(question: dict, text: str):
    kind = question["type"]
    if kind == "integer" and not _INTEGER.fullmatch(text):
        return MSG_INTEGER
    if kind == "decimal" and not _DECIMAL.fullmatch(text):
        return MSG_DECIMAL
    if kind == "date":
        try:
            if not _DATE.fullmatch(text):
                raise ValueError(text)
            date.fromisoformat(text)  # also refuses 2025-02-30
        except ValueError:
            return MSG_DATE
    if kind == "time" and not _TIME.fullmatch(text):
        return MSG_TIME
    if kind == "datetime":
        match = _DATETIME.fullmatch(text)
        try:
            if not match or not _TIME.fullmatch(match.group(2)):
                raise ValueError(text)
            date.fromisoformat(match.group(1))
        except ValueError:
            return MSG_DATETIME
    if kind == "range":
        return _range_error(question, text)
    if kind == "acknowledge" and text != "OK":
        return MSG_ACKNOWLEDGE
    if kind in ("select_one", "likert", "yes_no") and text not in _choices(question):
        return MSG_CHOICE
    if kind == "select_multiple" and not set(text.split()) <= _choices(question):
        return MSG_CHOICE
    return None


def _range_error(question: dict, text: str):
    """A range answer must be a number from start to end, a whole number of steps from
    start (compared as decimals, so 0.1 steps are exact)."""
    params = question.get("parameters") or {}
    start, end, step = (Decimal(str(params.get(k, d))) for k, d in
                        (("start", 1), ("end", 10), ("step", 1)))
    low, high = min(start, end), max(start, end)
    message = MSG_RANGE % {"start": start, "end": end, "step": step}
    if not _DECIMAL.fullmatch(text):
        return message
    value = Decimal(text.replace(",", "."))
    if not low <= value <= high or (value - start) % step != 0:
        return message
    return None


def _constraint_message(question: dict, lang: str, fallback: str | None = None) -> str:
    messages = question.get("constraint_message") or {}
    if isinstance(messages, str):
        return messages
    return in_language(messages, lang, fallback=fallback) or str(MSG_REJECTED)


def validate(definition: dict, answers: dict, names: list[str] | None = None,
             lang: str = "en") -> dict[str, str]:
    """Error messages by question name, for `names` (all questions if None). Hidden
    questions and notes are never required nor checked; a failed constraint gives its
    constraint_message in `lang` (else any language, else a default)."""
    shown, working, root = _resolve(definition, answers)
    wanted = None if names is None else set(names)
    errors: dict[str, str] = {}
    for question, key, entry in _slots(definition, working):
        name = question["name"]
        if (wanted is not None and name not in wanted and key not in wanted) \
                or not shown[key] or question["type"] == "note":
            continue
        text = _text((working if entry is None else entry).get(name))
        error = None
        if not text:
            if question.get("required") or question.get("required_if") and _evaluate_on(
                    root, question["required_if"], definition, key):
                error = in_language(question.get("required_message") or {}, lang,
                                    fallback=definition.get("default_language")) \
                    or str(MSG_REQUIRED)
        else:
            error = _type_error(question, text)
            if error is None and question.get("choice_filter") and not set(text.split()) <= {
                    str(c["name"]) for c in _filtered_on(root, question, definition)}:
                error = MSG_CHOICE  # a choice its filter does not offer
            if error is None and question.get("constraint") and not _evaluate_on(
                    root, question["constraint"], definition, key):
                error = _constraint_message(question, lang,
                                            definition.get("default_language"))
        if error is not None:
            errors[key] = _in_entry(definition, key, str(error), lang)
    for name in repeats(definition):
        if (wanted is None or name in wanted or any(q.get("repeat") == name for q in
                                                    definition["questions"]
                                                    if q["name"] in wanted)) \
                and shown.get(name) and len(working.get(name) or []) > MAX_ENTRIES:
            errors[name] = str(MSG_TOO_MANY % {"n": MAX_ENTRIES})
    return errors


def _in_entry(definition: dict, key: str, message: str, lang: str) -> str:
    """An error of a repeat's entry names the entry ("Household member 2: ...")."""
    if "/" not in key:
        return message
    repeat, number, _name = key.split("/")
    label = in_language(repeats(definition)[repeat].get("label"), lang, repeat,
                        definition.get("default_language"))
    return str(MSG_ENTRY % {"repeat": label, "number": int(number), "message": message})


def _typed(question: dict, value):
    # Invalid values are kept as text rather than raising: callers may clean before they
    # validate, and validate() is what reports them.
    text, kind = _text(value), question["type"]
    if kind == "integer" and _INTEGER.fullmatch(text):
        return int(text)
    if kind in _NUMERIC and _DECIMAL.fullmatch(text):
        number = float(text.replace(",", "."))
        return int(number) if kind == "range" and number.is_integer() else number
    if kind == "select_multiple":
        return sorted(set(text.split()))
    return text


def clean(definition: dict, answers: dict) -> dict:
    """The answers to store: visible, non-note, answered questions only, typed (integer ->
    int, decimal -> float, range -> int or float, select_multiple -> sorted list of names,
    others -> str), calculations included; a shown repeat with entries as a list of such
    dicts, one per entry (in order); then the metadata values given in `answers`."""
    shown, working, _root = _resolve(definition, answers)
    cleaned: dict = {name: [{} for _ in working[name]] for name in repeats(definition)
                     if shown.get(name) and working.get(name)}
    for question, key, entry in _slots(definition, working):
        value = (working if entry is None else entry).get(question["name"])
        if not shown[key] or question["type"] == "note" or not _text(value):
            continue
        if entry is None:
            cleaned[question["name"]] = _typed(question, value)
        elif question["repeat"] in cleaned:
            number = int(key.split("/")[1])
            cleaned[question["repeat"]][number - 1][question["name"]] = _typed(question, value)
    for item in definition.get("meta", []):
        if _text(answers.get(item["name"])):
            cleaned[item["name"]] = _text(answers[item["name"]])
    return cleaned


def _item_value(value) -> float | None:
    number = math.nan if value is None or isinstance(value, bool) else _to_number(value)
    return None if math.isnan(number) else number


def scores(definition: dict, cleaned: dict) -> dict[str, float | None]:
    """Each scale's score from cleaned answers, rounded to 2 decimals; None when fewer than
    `min_answered` items (default: all) have a numeric answer.

    Reversed items count as `item_min + item_max - value`. `mean` is the mean of the
    answered items. `sum` is PRORATED when items are missing: sum(answered) * n_items /
    n_answered, so a youth who skipped one item is not scored as if they had answered 0
    and scores stay comparable across youth (with all items answered it is the plain sum).
    """
    result: dict[str, float | None] = {}
    for scale in definition.get("scales", []):
        items, reverse = scale["items"], set(scale.get("reverse") or [])
        values = []
        for item in items:
            value = _item_value(cleaned.get(item))
            if value is not None:
                values.append(scale["item_min"] + scale["item_max"] - value
                              if item in reverse else value)
        needed = scale.get("min_answered")
        needed = len(items) if needed is None else needed
        if not values or len(values) < needed:
            result[scale["name"]] = None
        elif scale.get("method", "sum") == "mean":
            result[scale["name"]] = round(sum(values) / len(values), 2)
        elif scale.get("method", "sum") == "sum":
            result[scale["name"]] = round(sum(values) * len(items) / len(values), 2)
        else:
            raise ValueError(f"unknown scoring method {scale['method']!r}")
    return result

"""Skip logic, constraints, answer validation and scale scores for a survey definition
(the dict built from an XLSForm: groups, questions, scales).

Expressions are XPath 1.0 as XLSForm writes them. They are evaluated by elementpath over an
XML instance `<data><name>value</name>...</data>`, never by Python eval: an expression can
only read the answers. Two ODK functions are added, `selected()` and `count-selected()`, and
the comparison operators are replaced by XPath 1.0's own rules (see `_compare`).
"""

from __future__ import annotations

import math
import operator
import re
import xml.etree.ElementTree as ET
from copy import copy
from datetime import date
from decimal import Decimal

from elementpath import ElementPathError, XPath1Parser, XPathContext, XPathNode
from flask_babel import lazy_gettext as _l

from ...models.common import in_language

MSG_REQUIRED = _l("This question must be answered.")
MSG_INTEGER = _l("Enter a whole number.")
MSG_DECIMAL = _l("Enter a number.")
MSG_DATE = _l("Enter a date as YYYY-MM-DD.")
MSG_CHOICE = _l("Choose from the list.")
MSG_REJECTED = _l("This answer is not accepted.")

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_LITERAL = re.compile(r"""('[^']*'|"[^"]*")""")
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# XPath 1.0's number(): no exponent, no 'inf'/'nan', unlike Python's float().
_XPATH_NUMBER = re.compile(r"\s*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*")


class LogicError(Exception):
    """An expression of the definition cannot be parsed or evaluated."""

    def __init__(self, expression: str, message: str):
        super().__init__(f"{message} (in {expression!r})")
        self.expression = expression
        self.message = message


# --- The XPath dialect -------------------------------------------------------------------

class _ODKParser(XPath1Parser):
    """XPath 1.0 plus ODK's functions. The subclass gets its own copy of the symbol table,
    so nothing here changes elementpath's XPath1Parser for other users."""

    function_signatures = XPath1Parser.function_signatures.copy()


def _selected(self, context=None) -> bool:
    """selected(node, value): value is one of the node's space-separated choice names."""
    tokens = self.string_value(self.get_argument(context)).split()
    return self.string_value(self.get_argument(context, index=1)).strip() in tokens


def _count_selected(self, context=None) -> int:
    """count-selected(node): how many choice names the node holds."""
    return len(self.string_value(self.get_argument(context)).split())


_ODKParser.function("selected", nargs=2, sequence_types=(
    "xs:string?", "xs:string?", "xs:boolean")).evaluate = _selected
_ODKParser.function("count-selected", nargs=1, sequence_types=(
    "xs:string?", "xs:integer")).evaluate = _count_selected


def _to_number(value) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | Decimal):
        return float(value)
    text = str(value)
    return float(text) if _XPATH_NUMBER.fullmatch(text) else math.nan


def _to_boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return not (value == 0 or math.isnan(value))
    return bool(str(value))


def _operand(token, context) -> tuple[bool, object]:
    """(True, [string values]) for a node-set, (False, value) for a string/number/boolean."""
    items = list(token.select(copy(context)))
    if not items or any(isinstance(item, XPathNode) for item in items):
        return True, [token.string_value(item) for item in items]
    return False, items[0]


def _compare(op, left: tuple[bool, object], right: tuple[bool, object]) -> bool:
    """XPath 1.0 comparison (section 3.4). elementpath 5.1's XPath1Parser compares a node
    with a number as untyped text (`${age} = 18` is false for "18") and raises on an empty
    node with `<`; ODK forms rely on the 1.0 rules, where "" is NaN and simply false."""
    (left_nodes, lval), (right_nodes, rval) = left, right
    equality = op in (operator.eq, operator.ne)
    if left_nodes and right_nodes:
        conv = str if equality else _to_number
        return any(op(conv(a), conv(b)) for a in lval for b in rval)
    if left_nodes or right_nodes:
        nodes, other = (lval, rval) if left_nodes else (rval, lval)
        if isinstance(other, bool):
            pairs = [(bool(nodes), other)]
        else:
            conv = str if equality and isinstance(other, str) else _to_number
            pairs = [(conv(text), conv(other)) for text in nodes]
        return any(op(a, b) if left_nodes else op(b, a) for a, b in pairs)
    if not equality:
        return op(_to_number(lval), _to_number(rval))
    if isinstance(lval, bool) or isinstance(rval, bool):
        return op(_to_boolean(lval), _to_boolean(rval))
    if any(isinstance(v, int | float | Decimal) for v in (lval, rval)):
        return op(_to_number(lval), _to_number(rval))
    return op(str(lval), str(rval))


def _comparison_class(symbol: str, op):
    base = XPath1Parser.symbol_table[symbol]

    def evaluate(self, context=None):
        return _compare(op, _operand(self[0], context), _operand(self[1], context))

    return type(base)(base.__name__, (base,), {"evaluate": evaluate, "__module__": __name__})


for _symbol, _op in {"=": operator.eq, "!=": operator.ne, "<": operator.lt,
                     ">": operator.gt, "<=": operator.le, ">=": operator.ge}.items():
    _ODKParser.symbol_table[_symbol] = _comparison_class(_symbol, _op)


# --- Evaluation --------------------------------------------------------------------------

def to_xpath(expression: str) -> str:
    """Rewrite `${name}` into `/data/name` (outside string literals); `.` stays as is."""
    parts = _LITERAL.split(expression)
    return "".join(part if i % 2 else _REFERENCE.sub(lambda m: f"/data/{m.group(1)}", part)
                   for i, part in enumerate(parts))


def _text(value) -> str:
    """An answer as instance text: lists (select_multiple) joined with spaces, as ODK does."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


def _instance(definition: dict, answers: dict) -> ET.Element:
    root = ET.Element("data")
    for question in definition["questions"]:
        text = _text(answers.get(question["name"]))
        if question["type"] == "decimal":
            text = text.replace(",", ".")  # so "1,5" compares as the number 1.5
        ET.SubElement(root, question["name"]).text = text
    return root


def _evaluate_on(root: ET.Element, expression: str, definition: dict,
                 current: str | None) -> bool:
    known = {q["name"] for q in definition["questions"]}
    for part in _LITERAL.split(expression)[::2]:  # odd parts are string literals
        for name in _REFERENCE.findall(part):
            if name not in known:
                raise LogicError(expression, f"unknown question ${{{name}}}")
    try:
        # A fresh parser each time: parsing takes ~40 us, and nothing is shared by threads.
        token = _ODKParser().parse(to_xpath(expression))
        item = root.find(current) if current else None
        results = list(token.select(XPathContext(root, item=item)))
    except (ElementPathError, TypeError, ValueError, ArithmeticError) as exc:
        # elementpath reports bad syntax, unknown functions (e.g. `__import__`) and type
        # errors with these; to the caller all are a broken expression in the definition.
        raise LogicError(expression, str(exc)) from exc
    if not results:
        return False
    if any(isinstance(item, XPathNode) for item in results):
        return True
    return _to_boolean(results[0])


def evaluate(expression: str, answers: dict, definition: dict,
             current: str | None = None) -> bool:
    """The boolean value of an XLSForm expression given the answers; `.` is the question
    `current`. Raises LogicError for an expression that cannot be parsed or evaluated."""
    return _evaluate_on(_instance(definition, answers), expression, definition, current)


def _resolve(definition: dict, answers: dict) -> tuple[dict[str, bool], dict, ET.Element]:
    """Visibility in question order, each hidden answer cleared before later questions are
    considered (so a hidden 'yes' cannot open a follow-up). Returns (shown, effective
    answers, instance of the effective answers)."""
    groups = {g["name"]: g for g in definition.get("groups", [])}
    working = dict(answers)
    root = _instance(definition, working)
    shown: dict[str, bool] = {}
    group_shown: dict[str, bool] = {}
    for question in definition["questions"]:
        name, group = question["name"], question.get("group")
        ok = True
        if group:
            if group not in group_shown:  # a group shows or hides as a whole page
                relevant = groups.get(group, {}).get("relevant")
                group_shown[group] = not relevant or _evaluate_on(root, relevant, definition,
                                                                  None)
            ok = group_shown[group]
        if ok and question.get("relevant"):
            ok = _evaluate_on(root, question["relevant"], definition, name)
        shown[name] = ok
        if not ok:
            working[name] = [] if question["type"] == "select_multiple" else ""
            root.find(name).text = ""
    return shown, working, root


def visible(definition: dict, answers: dict) -> dict[str, bool]:
    """Whether each question is shown: its group's and its own `relevant` are true, hidden
    answers counting as empty for the questions after them."""
    return _resolve(definition, answers)[0]


def pages(definition: dict) -> list[dict]:
    """The form's pages: one per group, and one per run of consecutive ungrouped questions
    (named `page_<n>`, n its position in the list, with an empty label)."""
    labels = {g["name"]: g.get("label") or {} for g in definition.get("groups", [])}
    result: list[dict] = []
    by_group: dict[str, dict] = {}
    run = None
    for question in definition["questions"]:
        group = question.get("group")
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
    if kind in ("select_one", "likert", "yes_no") and text not in _choices(question):
        return MSG_CHOICE
    if kind == "select_multiple" and not set(text.split()) <= _choices(question):
        return MSG_CHOICE
    return None


def _constraint_message(question: dict, lang: str) -> str:
    messages = question.get("constraint_message") or {}
    if isinstance(messages, str):
        return messages
    return in_language(messages, lang) or str(MSG_REJECTED)


def validate(definition: dict, answers: dict, names: list[str] | None = None,
             lang: str = "en") -> dict[str, str]:
    """Error messages by question name, for `names` (all questions if None). Hidden
    questions and notes are never required nor checked; a failed constraint gives its
    constraint_message in `lang` (else any language, else a default)."""
    shown, working, root = _resolve(definition, answers)
    wanted = None if names is None else set(names)
    errors: dict[str, str] = {}
    for question in definition["questions"]:
        name = question["name"]
        if (wanted is not None and name not in wanted) or not shown[name] \
                or question["type"] == "note":
            continue
        text = _text(working.get(name))
        if not text:
            if question.get("required"):
                errors[name] = str(MSG_REQUIRED)
            continue
        error = _type_error(question, text)
        if error is not None:
            errors[name] = str(error)
        elif question.get("constraint") and not _evaluate_on(
                root, question["constraint"], definition, name):
            errors[name] = _constraint_message(question, lang)
    return errors


def _typed(question: dict, value):
    # Invalid values are kept as text rather than raising: callers may clean before they
    # validate, and validate() is what reports them.
    text, kind = _text(value), question["type"]
    if kind == "integer" and _INTEGER.fullmatch(text):
        return int(text)
    if kind == "decimal" and _DECIMAL.fullmatch(text):
        return float(text.replace(",", "."))
    if kind == "select_multiple":
        return sorted(set(text.split()))
    return text


def clean(definition: dict, answers: dict) -> dict:
    """The answers to store: visible, non-note, answered questions only, typed (integer ->
    int, decimal -> float, select_multiple -> sorted list of names, others -> str)."""
    shown, working, _root = _resolve(definition, answers)
    return {q["name"]: _typed(q, working.get(q["name"]))
            for q in definition["questions"]
            if shown[q["name"]] and q["type"] != "note" and _text(working.get(q["name"]))}


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

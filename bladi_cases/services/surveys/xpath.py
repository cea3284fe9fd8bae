"""The XPath dialect of XLSForm expressions, with ODK semantics, evaluated by elementpath.

XPath 1.0 (elementpath's XPath1Parser, never Python eval) plus the ODK functions, with the
type rules of openrosa-xpath-evaluator, the evaluator Enketo and our offline field app use,
so that the server and the phone agree (tests/test_surveys_xpath.py runs one table through
both):

- a value is a node-set, a string, a number, a boolean or a date. Dates come from today(),
  now() and date(); they compare and subtract as days since 1970-01-01 (UTC), with the
  time of day as a fraction.
- a string that starts like a date ('YYYY-MM-DD', also an answer) is a date in number(),
  in comparisons and in `+`/`-`: `${dob} <= '2007-01-01'` compares days, and
  `${end} - ${start}` is a number of days.
- numbers are converted from strings as JavaScript does ('' is NaN, '1e3' is 1000); the
  comparisons follow XPath 1.0 (a node-set compares each of its nodes).

today() and now() read `now` given to `evaluate_value` (a datetime, naive = UTC), never the
real clock when one is given, so tests do not depend on the date.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from copy import copy
from datetime import UTC, date, datetime, timedelta

from elementpath import XPath1Parser, XPathContext, XPathNode

_DAY_MS = 86_400_000.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# openrosa-xpath-evaluator's DATE_STRING: anything that *starts* like a date.
_DATE_STRING = re.compile(
    r"^\d\d\d\d-\d{1,2}-\d{1,2}(?:T\d\d:\d\d:\d\d\.?\d?\d?(?:Z|[+-]\d\d:\d\d)|.*)?$", re.S)
_RAW_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_JS_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")
_LITERAL = re.compile(r"""('[^']*'|"[^"]*")""")


class ODKDate:
    """A date or date-time value: milliseconds since 1970-01-01T00:00Z (NaN if invalid).
    `blank` is date(''), whose string is '' (JavaRosa) rather than 'Invalid Date'."""

    __slots__ = ("blank", "ms")

    def __init__(self, ms: float, blank: bool = False):
        self.ms, self.blank = float(ms), blank

    @property
    def days(self) -> float:
        return self.ms / _DAY_MS

    def __str__(self) -> str:
        if math.isnan(self.ms):
            return "" if self.blank else "Invalid Date"
        moment = _EPOCH + timedelta(milliseconds=self.ms)
        if moment.hour == moment.minute == moment.second == moment.microsecond == 0:
            return moment.strftime("%Y-%m-%d")
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"

    def __repr__(self) -> str:
        return f"ODKDate({self})"


class Nodes(list):
    """A node-set operand: the string values of its nodes (`.nodes` keeps the nodes)."""

    nodes: list = []


# --- Conversions (openrosa-xpath-evaluator's xpath-cast.js) --------------------------------

def _days_from_ymd(year: int, month: int, day: int) -> float:
    # Like JavaScript's Date(y, m - 1, d): an out-of-range day rolls into the next month.
    first = date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    return float((first - date(1970, 1, 1)).days + day - 1)


def _parse_datetime(text: str) -> float:
    """Milliseconds of an ISO date-time string, NaN if it is not one."""
    match = _DATETIME.fullmatch(text.strip())
    if not match:
        return math.nan
    y, mo, d, h, mi, s, frac, zone = match.groups()
    try:
        moment = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0),
                          int(round(float(frac or 0) * 1_000_000)), tzinfo=UTC)
    except ValueError:
        return math.nan
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return (moment - _EPOCH) / timedelta(milliseconds=1)


def date_string_days(text: str) -> float:
    """Days since 1970-01-01 of a string that starts like a date (NaN if it is not one)."""
    if "T" in text[1:]:
        return _parse_datetime(text) / _DAY_MS
    parts = text.split("-")
    try:
        return _days_from_ymd(*(int(p) for p in parts[:3])) if len(parts) == 3 else math.nan
    except ValueError:
        return math.nan


def _js_number_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def as_string(value) -> str:
    if isinstance(value, Nodes):
        return value[0] if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _js_number_text(float(value))
    return str(value)


def as_number(value) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, ODKDate):
        return value.days
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str | Nodes):  # e.g. elementpath's Decimal from a native function
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan
    text = as_string(value).strip()
    if _DATE_STRING.match(text):
        return date_string_days(text)
    if _JS_NUMBER.fullmatch(text):
        return float(text)
    if text in ("Infinity", "+Infinity", "-Infinity"):
        return -math.inf if text.startswith("-") else math.inf
    return math.nan


def as_boolean(value) -> bool:
    if isinstance(value, Nodes):
        return bool(value)
    if isinstance(value, ODKDate):
        return not math.isnan(value.ms)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return not (value == 0 or math.isnan(value))
    if not isinstance(value, str):
        return as_boolean(as_number(value))
    return bool(value)


def as_date(value) -> ODKDate:
    if isinstance(value, ODKDate):
        return value
    if isinstance(value, bool):
        return ODKDate(math.nan)
    if isinstance(value, int | float):
        return ODKDate(float(value) * _DAY_MS)
    text = as_string(value)
    if not text:
        return ODKDate(math.nan, blank=True)
    if _RAW_NUMBER.match(text):
        return ODKDate(int(float(text)) * _DAY_MS)
    if _DATE_STRING.match(text):
        if "T" in text:
            return ODKDate(_parse_datetime(text))
        parts = text.split("-")
        try:
            y, m, d = (int(p) for p in parts)
            date(y, m, d)  # an invalid day is NaN, not rolled over as by date_string_days
        except ValueError:
            return ODKDate(math.nan)
        return ODKDate(_days_from_ymd(y, m, d) * _DAY_MS)
    return ODKDate(math.nan)


def _as_integer(value) -> float:
    number = as_number(value)
    return float(math.trunc(number)) if math.isfinite(number) else number


# --- Operands and operators ----------------------------------------------------------------

def operand(token, context):
    """The value of a sub-expression: a Nodes for a node-set, else the atomic value."""
    items = list(token.select(copy(context)))
    if not items or any(isinstance(item, XPathNode) for item in items):
        nodes = Nodes(token.string_value(item) for item in items)
        nodes.nodes = items
        return nodes
    item = items[0]
    if isinstance(item, bool | str | ODKDate):
        return item
    return as_number(item)


_EQUALITY = {operator.eq, operator.ne}
_RELATIONAL = {operator.lt, operator.le, operator.gt, operator.ge}


def _number_op(op, left: float, right: float) -> float:
    if op is operator.truediv:
        if right == 0:
            if left == 0 or math.isnan(left):
                return math.nan
            return math.copysign(math.inf, left) * math.copysign(1, right)
        return left / right
    if op is operator.mod:
        try:
            return math.fmod(left, right)  # JavaScript's %: the sign of the dividend
        except ValueError:
            return math.nan
    try:
        return op(left, right)
    except OverflowError:
        return math.nan


def infix(op, lhs, rhs):
    """A binary operator with openrosa-xpath-evaluator's rules (its handleInfix, then
    XPath 1.0's comparisons)."""
    if isinstance(lhs, ODKDate) or isinstance(rhs, ODKDate):
        if not (isinstance(lhs, bool) or isinstance(rhs, bool)):
            lhs, rhs = as_date(lhs).days, as_date(rhs).days
    elif op in (operator.add, operator.sub):
        if _DATE_STRING.match(as_string(lhs)):
            return op(date_string_days(as_string(lhs)), as_number(rhs))
        if _DATE_STRING.match(as_string(rhs)):
            return op(as_number(lhs), date_string_days(as_string(rhs)))
    elif op in _EQUALITY or op in _RELATIONAL:
        if _DATE_STRING.match(as_string(lhs)):
            lhs = date_string_days(as_string(lhs))
        if _DATE_STRING.match(as_string(rhs)):
            rhs = date_string_days(as_string(rhs))
    if op in _RELATIONAL:
        left = list(map(as_number, lhs)) if isinstance(lhs, Nodes) else [as_number(lhs)]
        right = list(map(as_number, rhs)) if isinstance(rhs, Nodes) else [as_number(rhs)]
        return any(op(a, b) for a in left for b in right)
    if op in _EQUALITY:
        if isinstance(lhs, Nodes) and isinstance(rhs, Nodes):
            return any(op(a, b) for a in lhs for b in rhs)
        if isinstance(lhs, bool) or isinstance(rhs, bool):
            return op(as_boolean(lhs), as_boolean(rhs))
        if isinstance(lhs, Nodes) or isinstance(rhs, Nodes):
            nodes, other = (lhs, rhs) if isinstance(lhs, Nodes) else (rhs, lhs)
            cast = as_string if isinstance(other, str) else as_number
            return any(op(cast(text), cast(other)) for text in nodes)
        if isinstance(lhs, float) or isinstance(rhs, float):
            return op(as_number(lhs), as_number(rhs))
        return op(as_string(lhs), as_string(rhs))
    return _number_op(op, as_number(lhs), as_number(rhs))


class ODKParser(XPath1Parser):
    """XPath 1.0 with ODK's functions and type rules. The subclass gets its own copy of the
    symbol table, so nothing here changes elementpath's XPath1Parser for other users.
    `now` (an aware datetime), `choices` and `current` are set per evaluation."""

    function_signatures = XPath1Parser.function_signatures.copy()
    now: datetime | None = None
    choices: Mapping[str, Mapping[str, str]] | None = None


def _operator_class(symbol: str, op):
    base = XPath1Parser.symbol_table[symbol]

    def evaluate(self, context=None):
        if len(self) == 1 and symbol in ("+", "-"):  # unary
            value = as_number(operand(self[0], context))
            return -value if symbol == "-" else value
        if symbol == "*" and len(self) != 2:  # the wildcard
            return base.evaluate(self, context)
        return infix(op, operand(self[0], context), operand(self[1], context))

    members = {"evaluate": evaluate, "__module__": __name__}
    if op in _EQUALITY or op in _RELATIONAL:
        # XPath 1.0 chains comparisons (`1 < 2 < 3`), which XPath 2's grammar refuses, and
        # binds < > <= >= tighter than = and !=.
        bp = 35 if op in _RELATIONAL else 30

        def led(self, left):
            self[:] = left, self.parser.expression(rbp=bp)
            return self

        members.update(led=led, lbp=bp, rbp=bp)
    return type(base)(base.__name__, (base,), members)


for _symbol, _op in {"=": operator.eq, "!=": operator.ne, "<": operator.lt,
                     ">": operator.gt, "<=": operator.le, ">=": operator.ge,
                     "+": operator.add, "-": operator.sub, "*": operator.mul,
                     "div": operator.truediv, "mod": operator.mod}.items():
    ODKParser.symbol_table[_symbol] = _operator_class(_symbol, _op)


def _logical_class(symbol: str):
    base = XPath1Parser.symbol_table[symbol]

    def evaluate(self, context=None):
        left = as_boolean(operand(self[0], context))
        if left == (symbol == "or"):
            return left
        return as_boolean(operand(self[1], context))

    return type(base)(base.__name__, (base,), {"evaluate": evaluate, "__module__": __name__})


for _symbol in ("and", "or"):
    ODKParser.symbol_table[_symbol] = _logical_class(_symbol)


# --- Functions -----------------------------------------------------------------------------

def _function(name: str, nargs):
    """Register `name` (replacing XPath 1.0's own, if any); the decorated function gets
    the token and its evaluated arguments (see `operand`)."""
    def register(fn):
        ODKParser.symbol_table.pop(name, None)
        token_class = ODKParser.function(name, nargs=nargs)

        def evaluate(self, context=None):
            args = [operand(child, context) for child in self]
            return fn(self, context, *args)

        token_class.evaluate = evaluate
        return fn
    return register


def _current_value(token, context) -> str:
    item = getattr(context, "item", None)
    return token.string_value(item) if isinstance(item, XPathNode) else ""


def _clock(token) -> datetime:
    now = token.parser.now or datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


@_function("today", 0)
def _today(token, context):
    today = _clock(token).date()
    return ODKDate(_days_from_ymd(today.year, today.month, today.day) * _DAY_MS)


@_function("now", 0)
def _now(token, context):
    return ODKDate((_clock(token) - _EPOCH) / timedelta(milliseconds=1))


@_function("date", 1)
def _date(token, context, value):
    return as_date(value)


ODKParser.symbol_table["date-time"] = ODKParser.symbol_table["date"]


@_function("decimal-date-time", 1)
def _decimal_date_time(token, context, value):
    if isinstance(value, float):
        return value
    if isinstance(value, ODKDate):
        return value.days
    text = as_string(value)
    return date_string_days(text) if _DATE_STRING.match(text) else math.nan


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@_function("format-date", 2)
def _format_date(token, context, value, fmt):
    moment = as_date(value)
    if math.isnan(moment.ms):
        return ""
    when = _EPOCH + timedelta(milliseconds=moment.ms)
    fields = {"Y": f"{when.year:04d}", "y": f"{when.year:04d}"[2:], "m": f"{when.month:02d}",
              "n": str(when.month), "b": _MONTHS[when.month - 1], "d": f"{when.day:02d}",
              "e": str(when.day), "H": f"{when.hour:02d}", "h": str(when.hour),
              "M": f"{when.minute:02d}", "S": f"{when.second:02d}",
              "3": f"{when.microsecond // 1000:03d}", "a": _WEEKDAYS[when.weekday()], "%": "%"}
    text, out, i = as_string(fmt), [], 0
    while i < len(text):
        if text[i] == "%":
            i += 1
            if i >= len(text) or text[i] not in fields:
                raise ValueError(f"unsupported date format {text!r}")
            out.append(fields[text[i]])
        else:
            out.append(text[i])
        i += 1
    return "".join(out)


ODKParser.symbol_table["format-date-time"] = ODKParser.symbol_table["format-date"]


@_function("if", 3)
def _if(token, context, condition, then, otherwise):
    return then if as_boolean(condition) else otherwise


@_function("coalesce", 2)
def _coalesce(token, context, first, second):
    return as_string(first) or as_string(second)


def _each(fn, args):
    """fn of every argument, of every node of a node-set argument (JavaRosa's mapFn)."""
    return [fn(Nodes([text])) if isinstance(arg, Nodes) else fn(arg)
            for arg in args for text in (arg if isinstance(arg, Nodes) else [None])]


@_function("concat", (0, None))
def _concat(token, context, *args):
    return "".join(_each(as_string, args))


@_function("regex", 2)
def _regex(token, context, text, pattern):
    return re.search(as_string(pattern), as_string(text)) is not None


@_function("int", 1)
def _int(token, context, value):
    return _as_integer(value)


def _js_round(number: float) -> float:
    if not math.isfinite(number):
        return number
    return -math.floor(-number + 0.5) if number < 0 else float(math.floor(number + 0.5))


@_function("round", (1, 2))
def _round(token, context, value, *digits):
    number = as_number(value)
    if not digits:
        return _js_round(number)
    places = _as_integer(digits[0])
    if math.isnan(places):
        return math.nan
    scale = 10.0 ** abs(places)
    return _js_round(number * scale) / scale if places > 0 else scale * _js_round(number / scale)


@_function("number", (0, 1))
def _number(token, context, *value):
    return as_number(value[0] if value else Nodes([_current_value(token, context)]))


@_function("string", (0, 1))
def _string(token, context, *value):
    return as_string(value[0]) if value else _current_value(token, context)


@_function("string-length", (0, 1))
def _string_length(token, context, *value):
    text = as_string(value[0]) if value else _current_value(token, context)
    return float(len(text.encode("utf-16-le")) // 2)  # JavaScript counts UTF-16 units


@_function("selected", 2)
def _selected(token, context, values, choice):
    return as_string(choice).strip() in as_string(values).split(" ")


@_function("selected-at", 2)
def _selected_at(token, context, values, index):
    parts, at = as_string(values).split(" "), _as_integer(index)
    return parts[int(at)] if math.isfinite(at) and 0 <= at < len(parts) else ""


@_function("count-selected", 1)
def _count_selected(token, context, values):
    return float(sum(1 for part in as_string(values).split(" ") if part))


@_function("choice-name", 2)
def _choice_name(token, context, value, question):
    """jr:choice-name(value, '${q}'): the label of choice `value` of question q."""
    path = as_string(question).strip()
    name = path[2:-1] if path.startswith("${") else path.rstrip("/").rsplit("/", 1)[-1]
    labels = (token.parser.choices or {}).get(name) or {}
    return str(labels.get(as_string(value).strip(), ""))


@_function("once", 1)
def _once(token, context, value):
    return _current_value(token, context) or as_string(value)


@_function("position", (0, 1))
def _position(token, context, *nodes):
    if not nodes:
        return float(getattr(context, "position", 1) or 1)
    if not isinstance(nodes[0], Nodes) or not nodes[0].nodes:
        raise ValueError("position() needs a node")
    node = nodes[0].nodes[0]
    parent, elem = getattr(node, "parent", None), getattr(node, "elem", None)
    if parent is None or elem is None:
        return 1.0
    siblings = [child for child in getattr(parent, "elem", []) if child.tag == elem.tag]
    return float(next((i for i, child in enumerate(siblings, 1) if child is elem), 1))


@_function("count", 1)
def _count(token, context, nodes):
    if not isinstance(nodes, Nodes):
        raise ValueError("count() needs a node-set")
    return float(len(nodes))


@_function("sum", 1)
def _sum(token, context, nodes):
    if not isinstance(nodes, Nodes):
        raise ValueError("sum() needs a node-set")
    return float(sum(as_number(text) for text in nodes))


def _extreme(pick, args):
    numbers = _each(as_number, args)
    return math.nan if not numbers or any(math.isnan(n) for n in numbers) else pick(numbers)


@_function("max", (0, None))
def _max(token, context, *args):
    return _extreme(max, args)


@_function("min", (0, None))
def _min(token, context, *args):
    return _extreme(min, args)


@_function("true", 0)
def _true(token, context):
    return True


@_function("false", 0)
def _false(token, context):
    return False


@_function("not", 1)
def _not(token, context, value):
    return not as_boolean(value)


@_function("boolean", 1)
def _boolean(token, context, value):
    return as_boolean(value)


def _js_index(value, length: int) -> int:
    number = as_number(value)
    if math.isnan(number):
        return 0
    if math.isinf(number):
        return length if number > 0 else 0
    index = math.trunc(number)
    return max(length + index, 0) if index < 0 else min(index, length)


@_function("substr", (2, 3))
def _substr(token, context, text, start, *end):
    text = as_string(text)
    stop = _js_index(end[0], len(text)) if end else len(text)
    return text[_js_index(start, len(text)):stop]


@_function("contains", 2)
def _contains(token, context, text, part):
    return as_string(part) in as_string(text)


@_function("starts-with", 2)
def _starts_with(token, context, text, part):
    return as_string(text).startswith(as_string(part))


@_function("ends-with", 2)
def _ends_with(token, context, text, part):
    return as_string(text).endswith(as_string(part))


@_function("floor", 1)
def _floor(token, context, value):
    number = as_number(value)
    return float(math.floor(number)) if math.isfinite(number) else number


@_function("ceiling", 1)
def _ceiling(token, context, value):
    number = as_number(value)
    return float(math.ceil(number)) if math.isfinite(number) else number


@_function("abs", 1)
def _abs(token, context, value):
    return abs(as_number(value))


@_function("pow", 2)
def _pow(token, context, base, exponent):
    try:
        return math.pow(as_number(base), as_number(exponent))
    except (OverflowError, ValueError):
        return math.nan


# --- Evaluation ----------------------------------------------------------------------------

def prepare(expression: str) -> str:
    """An ODK spelling elementpath does not parse: the `jr:` prefix of jr:choice-name
    (outside string literals)."""
    parts = _LITERAL.split(expression)
    return "".join(part if i % 2 else part.replace("jr:choice-name(", "choice-name(")
                   for i, part in enumerate(parts))


def evaluate_value(xpath: str, root, current=None, *, now: datetime | None = None,
                   choices: Mapping[str, Mapping[str, str]] | None = None):
    """The value of an XPath expression (`${name}` already rewritten) over the instance
    `root` (an ElementTree element), `.` being the element `current`: a bool, a float, a
    str, an ODKDate or a Nodes. Raises elementpath's errors, TypeError or ValueError for
    an expression that cannot be parsed or evaluated."""
    parser = ODKParser()  # fresh each time: parsing is cheap and nothing is shared by threads
    parser.now, parser.choices = now, choices
    token = parser.parse(prepare(xpath))
    return operand(token, XPathContext(root, item=current))


def to_json(value):
    """A value as the differential table writes it: booleans, numbers (NaN as None,
    infinities as 'Infinity'/'-Infinity'), strings; a date or a node-set as its string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return float(value)
    return as_string(value)

"""XLSForm expressions with ODK semantics: the table tests/data/xpath_cases.json through the
server's evaluator (logic.value, i.e. elementpath with the ODK functions), the same table
through the phone's (openrosa-xpath-evaluator in headless Chromium, tests/xpath_browser.py),
and dates in the skip logic and constraints of a form.

A case is {"expr", "answers", "today"?, "current"?, "choices"?, "expected", "note"?,
"server_only"?/"js_only"? (the reason)}. Each expected value was written by hand from ODK's
rules (openrosa-xpath-evaluator's and JavaRosa's), not copied from a run.

Normalisation (`_normal`, `_same`): null, NaN and the string "NaN" are one value; infinities
are "Infinity"/"-Infinity"; booleans compare as booleans (never as 0/1); other numbers as
floats within 1e-9 (relative) or 1e-9 (absolute); strings exactly. A date result is its
string ('YYYY-MM-DD'), a node-set never is a result (the table wraps them in string()).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import pytest

from bladi_cases.services.surveys import logic, xpath

CASES = json.loads((Path(__file__).parent / "data" / "xpath_cases.json")
                   .read_text(encoding="utf-8"))
# For cases without "today": a fixed clock, so no case can depend on the real date.
DEFAULT_NOW = datetime(2001, 2, 3)


def _normal(value):
    if value is None:
        return "NaN"
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    return value  # e.g. the runner's {"error": ...}: never equal to an expected value


def _same(actual, expected) -> bool:
    actual, expected = _normal(actual), _normal(expected)
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(actual, float) and isinstance(expected, float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    return type(actual) is type(expected) and actual == expected


def _definition(case: dict) -> dict:
    """Questions for the case's answers (select_multiple for a list), with its choices."""
    choices = case.get("choices") or {}
    return {"questions": [
        {"name": name, "type": "select_multiple" if isinstance(value, list) else "text",
         "choices": [{"name": k, "label": {"en": v}} for k, v in choices.get(name, {}).items()]}
        for name, value in case["answers"].items()]}


def _now(case: dict) -> datetime:
    return datetime.fromisoformat(case["today"]) if case.get("today") else DEFAULT_NOW


def server_value(case: dict):
    return xpath.to_json(logic.value(case["expr"], case["answers"], _definition(case),
                                     case.get("current"), now=_now(case)))


def _id(case: dict) -> str:
    return case["expr"][:60]


def test_the_table_is_big_and_well_formed():
    assert len(CASES) >= 300
    for case in CASES:
        assert set(case) <= {"expr", "answers", "today", "current", "choices", "expected",
                             "note", "server_only", "js_only"}, case
        assert "expected" in case
        assert not (case.get("server_only") and case.get("js_only"))
    functions = ["today(", "now(", "date(", "decimal-date-time(", "format-date(", "if(",
                 "coalesce(", "concat(", "regex(", "int(", "round(", "number(",
                 "string-length(", "selected(", "selected-at(", "count-selected(",
                 "jr:choice-name(", "once(", "position(", "count(", "sum(", "max(", "min(",
                 "true(", "false(", "not(", "boolean(", "string(", "substr(", "contains(",
                 "starts-with(", "ends-with(", "floor(", "ceiling(", "abs(", "pow(",
                 " div ", " mod ", " and ", " or ", "${"]
    missing = [f for f in functions if not any(f in case["expr"] for case in CASES)]
    assert missing == []


@pytest.mark.parametrize("case", [c for c in CASES if not c.get("js_only")], ids=_id)
def test_server_evaluator(case):
    assert _same(server_value(case), case["expected"]), (case, server_value(case))


def _browser_runner():
    try:
        from tests import xpath_browser
    except ImportError as error:  # only the module's absence skips; its own bugs fail
        if "xpath_browser" not in str(error):
            raise
        pytest.skip("tests/xpath_browser.py (the Chromium runner of openrosa-xpath-evaluator) "
                    "is not there yet")
    return xpath_browser


def test_openrosa_xpath_evaluator_gives_the_same_results():
    """The differential test: the table through the phone's evaluator."""
    runner = _browser_runner()
    cases = [c for c in CASES if not c.get("server_only")]
    results = runner.evaluate_all(cases)
    assert len(results) == len(cases)
    wrong = [(c["expr"], c["answers"], c.get("today"), c["expected"], r)
             for c, r in zip(cases, results, strict=True) if not _same(r, c["expected"])]
    assert wrong == []


def test_normalisation():
    assert _same(None, float("nan")) and _same("NaN", None)
    assert _same(1, 1.0) and _same(0.30000000000000004, 0.3)
    assert not _same(True, 1) and not _same(False, 0.0) and not _same("1", 1)
    assert _same("Infinity", math.inf) and not _same(math.inf, -math.inf)
    assert not _same({"error": "x"}, "x")


# --- today() and now() are injected ------------------------------------------------------

def test_today_reads_the_given_clock():
    defn = {"questions": [{"name": "a", "type": "text"}]}
    assert logic.value("today()", {}, defn, now=datetime(2030, 12, 31, 23, 59)) == "2030-12-31"
    assert logic.value("today()", {}, defn, now=datetime(2024, 2, 29)) == "2024-02-29"
    assert logic.evaluate("now() > today()", {}, defn, now=datetime(2024, 2, 29, 8))


@pytest.mark.parametrize("expression", [
    "count('x')", "sum(1)", "format-date(today(), '%Z')", "regex('a', '[')", "if(1, 2)",
    "selected-at('a b')", "position(/data/missing)", "date('2024-01-01', 1)",
])
def test_misuse_of_a_function_is_a_logic_error(expression):
    with pytest.raises(logic.LogicError):
        logic.value(expression, {}, {"questions": []}, now=DEFAULT_NOW)


# --- dates in a real form: skip logic and constraints -------------------------------------

def q(name, kind="text", **fields):
    return {"name": name, "type": kind, "label": {"en": name}, "hint": {}, "required": False,
            "relevant": None, "constraint": None, "constraint_message": {}, "choices": [],
            "group": None, "row": 0, **fields}


PROJECT = {
    "groups": [],
    "questions": [
        q("start_date", "date", required=True),
        q("visit_date", "date", required=True, constraint=". >= ${start_date}",
          constraint_message={"en": "The visit is after the start."}),
        q("dob", "date", required=True),
        q("adult_consent", "yes_no", required=True, relevant="${dob} <= '2007-01-01'",
          choices=[{"name": "yes", "label": {}}, {"name": "no", "label": {}}]),
        q("days", "integer", relevant="${visit_date} - ${start_date} > 30"),
    ],
    "scales": [],
}


def test_date_constraint_accepts_dates_after_the_start():
    answers = {"start_date": "2024-02-01", "dob": "2010-01-01"}
    assert logic.validate(PROJECT, {**answers, "visit_date": "2024-03-01"}, ["visit_date"]) == {}
    assert logic.validate(PROJECT, {**answers, "visit_date": "2024-02-01"}, ["visit_date"]) == {}
    assert logic.validate(PROJECT, {**answers, "visit_date": "2024-01-31"}, ["visit_date"]) == {
        "visit_date": "The visit is after the start."}


def test_date_relevance_shows_the_question_for_adults():
    shown = logic.visible(PROJECT, {"dob": "2006-12-31"})
    assert shown["adult_consent"] is True
    assert logic.visible(PROJECT, {"dob": "2007-01-01"})["adult_consent"] is True
    assert logic.visible(PROJECT, {"dob": "2007-01-02"})["adult_consent"] is False
    assert logic.visible(PROJECT, {"dob": ""})["adult_consent"] is False
    # Shown, hence required; hidden, hence neither required nor kept.
    assert "adult_consent" in logic.validate(PROJECT, {"dob": "2006-05-01"})
    young = {"start_date": "2024-02-01", "visit_date": "2024-02-02", "dob": "2010-01-01",
             "adult_consent": "yes"}
    assert logic.validate(PROJECT, young) == {}
    assert "adult_consent" not in logic.clean(PROJECT, young)


def test_date_difference_in_relevance():
    base = {"start_date": "2024-02-01", "dob": "2000-01-01"}
    # February 2024 has 29 days: 1 Feb to 3 Mar is 31 days, to 2 Mar 30.
    assert logic.visible(PROJECT, {**base, "visit_date": "2024-03-03"})["days"] is True
    assert logic.visible(PROJECT, {**base, "visit_date": "2024-03-02"})["days"] is False

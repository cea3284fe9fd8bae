"""Survey skip logic, constraints, validation, cleaning and scale scores (no database)."""

from __future__ import annotations

import pytest

from bladi_cases.services.surveys.logic import (
    LogicError,
    clean,
    evaluate,
    pages,
    scores,
    to_xpath,
    validate,
    visible,
)

AGE_MESSAGE = {"ar": "العمر بين 10 و30 سنة.", "fr": "L'âge est entre 10 et 30 ans.",
               "en": "Age is between 10 and 30."}
YES_NO = [{"name": "yes", "label": {}}, {"name": "no", "label": {}}]
LIKERT = [{"name": str(n), "label": {}} for n in range(1, 6)]


def q(name, kind="text", **fields):
    """A question with the definition's keys, defaults for those not given."""
    return {"name": name, "type": kind, "label": {"en": name}, "hint": {}, "required": False,
            "relevant": None, "constraint": None, "constraint_message": {}, "choices": [],
            "group": None, "row": 0, **fields}


DEFINITION = {
    "groups": [
        {"name": "g_wellbeing", "label": {"en": "Well-being"}, "relevant": None},
        {"name": "g_adult", "label": {"en": "Adult life"}, "relevant": "${age} >= 18"},
    ],
    "questions": [
        q("consent", "yes_no", required=True, choices=YES_NO),
        q("age", "integer", required=True, relevant="${consent} = 'yes'",
          constraint=". >= 10 and . <= 30", constraint_message=AGE_MESSAGE),
        q("has_job", "yes_no", required=True, relevant="${consent} = 'yes'", choices=YES_NO),
        q("job_title", required=True, relevant="${has_job} = 'yes'"),
        q("reasons", "select_multiple", relevant="${has_job} = 'no'",
          choices=[{"name": n, "label": {}} for n in ("family", "money", "school")]),
        q("family_detail", required=True, relevant="selected(${reasons}, 'family')"),
        q("many_reasons", "note", relevant="count-selected(${reasons}) >= 2"),
        q("income", "decimal"),
        q("birth", "date"),
        *[q(f"w{n}", "likert", choices=LIKERT, group="g_wellbeing") for n in range(1, 5)],
        q("children", "integer", required=True, group="g_adult"),
        q("remarks"),
    ],
    "scales": [
        {"name": "wellbeing", "label": {"en": "Well-being"}, "items": ["w1", "w2", "w3", "w4"],
         "method": "sum", "reverse": ["w2", "w4"], "min_answered": 3, "item_min": 1,
         "item_max": 5},
        {"name": "wellbeing_mean", "label": {}, "items": ["w1", "w2", "w3", "w4"],
         "method": "mean", "reverse": ["w2", "w4"], "min_answered": 3, "item_min": 1,
         "item_max": 5},
    ],
}


def answers(**values):
    """A consenting 20-year-old with a job, well-being answered, with overrides."""
    base = {"consent": "yes", "age": "20", "has_job": "yes", "job_title": "Plombier",
            "reasons": [], "family_detail": "", "income": "", "birth": "",
            "w1": "4", "w2": "2", "w3": "5", "w4": "1", "children": "0", "remarks": ""}
    base.update(values)
    return base


def test_to_xpath_rewrites_references_only():
    assert to_xpath("${a} = 'yes' and . > ${b_2}") == "/data/a = 'yes' and . > /data/b_2"
    assert to_xpath("${a} = '${b}'") == "/data/a = '${b}'"  # literals are left alone


def test_relevance_follows_has_job():
    shown = visible(DEFINITION, answers(has_job="yes"))
    assert shown["job_title"] and not shown["reasons"]
    shown = visible(DEFINITION, answers(has_job="no"))
    assert not shown["job_title"] and shown["reasons"]


def test_group_relevance_hides_its_whole_page():
    young = visible(DEFINITION, answers(age="15"))
    assert young["children"] is False and young["w1"] is True
    assert visible(DEFINITION, answers(age="18"))["children"] is True
    # Hidden, so not required even though it is empty and marked required.
    assert "children" not in validate(DEFINITION, answers(age="15", children=""))
    assert "children" in validate(DEFINITION, answers(age="18", children=""))


def test_selected_and_count_selected():
    shown = visible(DEFINITION, answers(has_job="no", reasons=["family"]))
    assert shown["family_detail"] and not shown["many_reasons"]
    shown = visible(DEFINITION, answers(has_job="no", reasons=["money", "school"]))
    assert not shown["family_detail"] and shown["many_reasons"]
    assert not evaluate("selected(${reasons}, 'fam')", {"reasons": ["family"]}, DEFINITION)
    assert evaluate("count-selected(${reasons}) = 0", {"reasons": []}, DEFINITION)


def test_constraint_message_in_the_chosen_language():
    assert validate(DEFINITION, answers(age="9"), ["age"], lang="ar") == {"age": AGE_MESSAGE["ar"]}
    assert validate(DEFINITION, answers(age="31"), ["age"], lang="fr") == {"age": AGE_MESSAGE["fr"]}
    assert validate(DEFINITION, answers(age="10"), ["age"]) == {}
    assert validate(DEFINITION, answers(age="30"), ["age"]) == {}


def test_constraint_message_fallbacks():
    only_fr = {**DEFINITION, "questions": [q("n", "integer", constraint=". > 0",
                                             constraint_message={"fr": "Positif."})]}
    assert validate(only_fr, {"n": "-1"}, lang="ar") == {"n": "Positif."}
    none = {**DEFINITION, "questions": [q("n", "integer", constraint=". > 0")]}
    assert validate(none, {"n": "-1"}) == {"n": "This answer is not accepted."}


def test_numbers_compare_numerically():
    defn = {"questions": [q("a", "integer"), q("b", "integer"), q("x", "decimal")]}
    assert evaluate("${a} < ${b}", {"a": "9", "b": "10"}, defn)  # as strings "9" > "10"
    assert evaluate("${a} = 9", {"a": "9"}, defn)
    assert evaluate("${a} = 9.0", {"a": "9"}, defn)
    assert evaluate("${a} != 10", {"a": "9"}, defn)
    assert evaluate("${x} = 1.5", {"x": "1,5"}, defn)  # decimal comma accepted
    # Empty is NaN: every comparison with a number is false, none raises.
    assert not evaluate("${a} < 10", {"a": ""}, defn)
    assert not evaluate("${a} >= 10", {}, defn)
    assert evaluate("${a} = ''", {"a": ""}, defn)
    assert evaluate("string-length(.) = 2", {"a": "12"}, defn, current="a")


def test_hidden_answers_are_ignored_down_the_chain():
    # consent=no hides has_job; its stale 'yes' must not show job_title (a -> b -> c).
    stale = answers(consent="no", has_job="yes", job_title="Plombier")
    shown = visible(DEFINITION, stale)
    assert not shown["age"] and not shown["has_job"] and not shown["job_title"]
    assert validate(DEFINITION, stale) == {}
    assert clean(DEFINITION, stale) == {"consent": "no", "w1": "4", "w2": "2", "w3": "5",
                                        "w4": "1"}


def test_required_visible_questions():
    errors = validate(DEFINITION, answers(job_title="", consent=""))
    assert errors == {"consent": "This question must be answered."}
    errors = validate(DEFINITION, answers(job_title="  "))
    assert errors == {"job_title": "This question must be answered."}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("age", "twelve", "Enter a whole number."),
    ("age", "12.5", "Enter a whole number."),
    ("income", "12a", "Enter a number."),
    ("birth", "14/05/2006", "Enter a date as YYYY-MM-DD."),
    ("birth", "2006-02-30", "Enter a date as YYYY-MM-DD."),
    ("has_job", "maybe", "Choose from the list."),
    ("w1", "6", "Choose from the list."),
    ("reasons", ["family", "boredom"], "Choose from the list."),
])
def test_type_errors(name, value, message):
    values = answers(**{"has_job": "no", "family_detail": "x", name: value})
    assert validate(DEFINITION, values, [name]) == {name: message}


@pytest.mark.parametrize(("name", "value"), [
    ("age", "12"), ("income", "-3,25"), ("income", "7."), ("birth", "2006-05-14"),
    ("w1", "5"), ("reasons", ["school", "money"]),
])
def test_valid_values(name, value):
    assert validate(DEFINITION, answers(**{"has_job": "no", name: value}), [name]) == {}


def test_validate_only_the_named_questions():
    values = answers(consent="", job_title="")
    assert validate(DEFINITION, values, ["remarks", "income"]) == {}


def test_clean_types_and_drops():
    values = answers(has_job="no", job_title="Plombier", reasons=["school", "family"],
                     family_detail=" ma mère ", income="12,5", birth="2006-05-14", age="20")
    cleaned = clean(DEFINITION, values)
    assert cleaned == {"consent": "yes", "age": 20, "has_job": "no",
                       "reasons": ["family", "school"], "family_detail": "ma mère",
                       "income": 12.5, "birth": "2006-05-14", "w1": "4", "w2": "2",
                       "w3": "5", "w4": "1", "children": 0}
    assert "job_title" not in cleaned and "many_reasons" not in cleaned  # hidden; a note


def test_scores_match_hand_computation():
    # Reversed w2 and w4 on 1..5: 6-2=4, 6-1=5 -> 4, 4, 5, 5.
    assert scores(DEFINITION, {"w1": "4", "w2": "2", "w3": "5", "w4": "1"}) == {
        "wellbeing": 18.0, "wellbeing_mean": 4.5}
    # w4 missing: 4, 4, 5 -> sum 13 prorated to 13 * 4 / 3 = 17.33; mean 13 / 3 = 4.33.
    assert scores(DEFINITION, {"w1": "4", "w2": "2", "w3": "5"}) == {
        "wellbeing": 17.33, "wellbeing_mean": 4.33}
    # Two items answered, three required.
    assert scores(DEFINITION, {"w1": "4", "w3": "5"}) == {
        "wellbeing": None, "wellbeing_mean": None}
    assert scores(DEFINITION, {}) == {"wellbeing": None, "wellbeing_mean": None}


def test_scores_from_cleaned_answers():
    cleaned = clean(DEFINITION, answers())
    assert scores(DEFINITION, cleaned)["wellbeing"] == 18.0


def test_pages():
    assert pages(DEFINITION) == [
        {"name": "page_1", "label": {}, "questions": [
            "consent", "age", "has_job", "job_title", "reasons", "family_detail",
            "many_reasons", "income", "birth"]},
        {"name": "g_wellbeing", "label": {"en": "Well-being"},
         "questions": ["w1", "w2", "w3", "w4"]},
        {"name": "g_adult", "label": {"en": "Adult life"}, "questions": ["children"]},
        {"name": "page_4", "label": {}, "questions": ["remarks"]},
    ]


@pytest.mark.parametrize("expression", [
    "${age} >", "${age} = 'yes", "(${age} = 1", "${unknown} = 1", "", "foo(${age})",
    "selected(${reasons})",
])
def test_malformed_expressions_raise(expression):
    with pytest.raises(LogicError) as failure:
        evaluate(expression, answers(), DEFINITION)
    assert failure.value.expression == expression


@pytest.mark.parametrize("expression", [
    "__import__('os').system('touch {marker}')", "__import__('os')", "eval('1')",
    "open('{marker}', 'w')", "().__class__",
])
def test_python_code_is_never_run(expression, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(LogicError):
        evaluate(expression.format(marker=marker), answers(), DEFINITION)
    assert not marker.exists()


def test_bad_relevant_in_a_definition_raises():
    broken = {"questions": [q("a"), q("b", relevant="${a} = = 'x'")]}
    with pytest.raises(LogicError):
        visible(broken, {"a": "x"})


def test_scale_without_min_answered_needs_every_item():
    scale = {"name": "s", "items": ["w1", "w2"], "method": "sum", "reverse": [],
             "item_min": 1, "item_max": 5}
    assert scores({"scales": [scale]}, {"w1": 3}) == {"s": None}
    assert scores({"scales": [scale]}, {"w1": 3, "w2": "4"}) == {"s": 7.0}


def test_elementpath_itself_is_left_unchanged():
    from elementpath import XPath1Parser

    assert "selected" not in XPath1Parser.symbol_table

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


# --- Calculations, required as an expression, the new types (issue 17) -------------------

def _calc_definition():
    return {"groups": [], "meta": [{"name": "today", "type": "today"}], "questions": [
        q("a", "integer"),
        q("double_total", "calculate", calculation="${total} * 2"),  # uses a later one
        q("total", "calculate", calculation="${a} + ${b}"),
        q("b", "integer", relevant="${a} > 0"),
        q("shown", "integer", calculation="${total}", read_only=True),
        q("guess", "integer", calculation="${a} * 10"),  # not read_only: computed as well
        q("why", "text", required_if="${total} > 5",
          required_message={"ar": "قل لماذا", "en": "Say why"}),
        q("day", "date", constraint=". <= ${today}"),
    ]}


def test_calculations_settle_and_are_stored():
    definition = _calc_definition()
    cleaned = clean(definition, {"a": "2", "b": "3", "shown": "99", "total": "1"})
    assert cleaned["total"] == "5" and cleaned["double_total"] == "10"
    assert cleaned["shown"] == 5, "a read-only calculation ignores what a client sends"
    assert cleaned["guess"] == 20
    assert clean(definition, {"a": "2", "guess": "7"})["guess"] == 20
    # b hidden (a = 0): it counts as empty, and so the total is no answer (NaN).
    hidden = clean(definition, {"a": "0", "b": "3"})
    assert "b" not in hidden and "total" not in hidden and hidden["guess"] == 0


def test_required_as_an_expression_with_its_message():
    definition = _calc_definition()
    assert validate(definition, {"a": "2", "b": "4"}, lang="ar")["why"] == "قل لماذا"
    assert validate(definition, {"a": "2", "b": "4"}, lang="en")["why"] == "Say why"
    assert "why" not in validate(definition, {"a": "2", "b": "3"})


def test_metadata_values_are_read_by_expressions():
    definition = _calc_definition()
    answers = {"a": "1", "today": "2025-03-01"}
    assert "day" not in validate(definition, {**answers, "day": "2025-02-01"})
    assert "day" in validate(definition, {**answers, "day": "2025-04-01"})
    assert clean(definition, answers)["today"] == "2025-03-01"


@pytest.mark.parametrize(("kind", "extra", "good", "bad"), [
    ("time", {}, ["06:30", "23:59:59"], ["25:00", "6:30", "06:60", "noon"]),
    ("datetime", {}, ["2025-01-02T10:30", "2025-01-02T10:30:05"],
     ["2025-02-30T10:30", "2025-01-02", "2025-01-02T24:00"]),
    ("range", {"parameters": {"start": 0, "end": 10, "step": 2}}, ["0", "4", "10"],
     ["3", "12", "-2", "x"]),
    ("range", {"parameters": {"start": 0, "end": 1, "step": 0.1}}, ["0.3", "0,7", "1"],
     ["0.35", "1.1"]),
    ("range", {"parameters": {"start": 10, "end": 0, "step": 5}}, ["0", "5"], ["3"]),
    ("acknowledge", {}, ["OK"], ["yes", "ok"]),
])
def test_new_types_are_checked(kind, extra, good, bad):
    definition = {"groups": [], "questions": [q("x", kind, **extra)]}
    for value in good:
        assert validate(definition, {"x": value}) == {}, value
    for value in bad:
        assert "x" in validate(definition, {"x": value}), value


def test_a_range_answer_is_stored_as_a_number_and_calculate_is_not_a_page_question():
    definition = {"groups": [], "questions": [
        q("r", "range", parameters={"start": 0, "end": 1, "step": 0.5}),
        q("c", "calculate", calculation="${r} * 2")]}
    assert clean(definition, {"r": "1"}) == {"r": 1, "c": "2"}
    assert clean(definition, {"r": "0.5"})["r"] == 0.5
    assert pages(definition)[0]["questions"] == ["r"]
    message = validate(definition, {"r": "0.7"})["r"]
    assert message == "Enter a number from 0 to 1, in steps of 0.5."


def test_a_hidden_calculation_is_not_stored_nor_read():
    definition = {"groups": [], "questions": [
        q("a", "integer"),
        q("twice", "calculate", calculation="${half} * 4"),  # reads a later, hidden one
        q("half", "calculate", calculation="${a} div 2", relevant="${a} > 10"),
    ]}
    assert clean(definition, {"a": "20"}) == {"a": 20, "half": "10", "twice": "40"}
    assert clean(definition, {"a": "4"}) == {"a": 4}


def test_messages_of_the_new_types_in_french_and_arabic(app):
    from flask_babel import force_locale

    definition = {"groups": [], "questions": [
        q("r", "range", parameters={"start": 0, "end": 10, "step": 2}), q("t", "time")]}
    with force_locale("fr"):
        errors = validate(definition, {"r": "3", "t": "9h"}, lang="fr")
        assert errors == {"r": "Saisissez un nombre de 0 à 10, par pas de 2.",
                          "t": "Saisissez une heure au format HH:MM."}
    with force_locale("ar"):
        assert validate(definition, {"r": "3"}, lang="ar")["r"] == \
            "أدخل عددًا من 0 إلى 10، بخطوات قدرها 2."


def test_choice_filter_offers_and_accepts_the_matching_choices_only():
    from bladi_cases.services.surveys.logic import choices_for

    sub_choices = [{"name": n, "label": {}, "data": {"county": n[0]}} for n in ("a1", "a2", "b1")]
    definition = {"groups": [], "questions": [
        q("county", "select_one", choices=[{"name": "a", "label": {}},
                                           {"name": "b", "label": {}}]),
        q("sub", "select_one", choices=sub_choices, choice_filter="county = ${county}"),
        q("subs", "select_multiple", choices=sub_choices, choice_filter="county = ${county}")]}
    offered = choices_for(definition, {"county": "a"})
    assert [c["name"] for c in offered["sub"]] == ["a1", "a2"]
    assert choices_for(definition, {})["sub"] == []
    assert validate(definition, {"county": "a", "sub": "a2", "subs": ["a1", "a2"]}) == {}
    errors = validate(definition, {"county": "a", "sub": "b1", "subs": ["a1", "b1"]})
    assert errors == {"sub": "Choose from the list.", "subs": "Choose from the list."}

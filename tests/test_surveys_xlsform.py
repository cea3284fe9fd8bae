"""XLSForm import and export of survey definitions (bladi_cases.services.xlsform)."""

from __future__ import annotations

import copy
from io import BytesIO

import pytest
from openpyxl import Workbook, load_workbook
from pyxform.errors import PyXFormError

from bladi_cases.services.surveys import xlsform
from bladi_cases.services.surveys.xlsform import XLSFormError, export_xlsform, parse_xlsform

SURVEY_HEAD = [
    "type", "name", "label::Arabic (ar)", "label::French (fr)", "hint::Arabic (ar)",
    "hint::French (fr)", "required", "relevant", "constraint",
    "constraint_message::Arabic (ar)", "constraint_message::French (fr)",
]  # fmt: skip

AGREE = [("1", "أبدا", "Jamais"), ("2", "نادرا", "Rarement"), ("3", "أحيانا", "Parfois"),
         ("4", "غالبا", "Souvent"), ("5", "دائما", "Toujours")]  # fmt: skip


def _xlsx(sheets: dict[str, list[list]]) -> bytes:
    """A workbook with one sheet per key; each list of rows starts with the header row."""
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def _q(kind, name, ar="", fr="", *, hint=("", ""), required="", relevant="", constraint="",
       message=("", "")):  # fmt: skip
    return [kind, name, ar, fr, *hint, required, relevant, constraint, *message]


def _sheets() -> dict[str, list[list]]:
    """A realistic wellbeing form in Arabic and French."""
    return {
        "survey": [
            SURVEY_HEAD,
            _q("note", "intro", "مرحبا بكم", "Bienvenue"),  # row 2
            _q("begin_group", "g_family", "الأسرة", "Famille"),  # row 3
            _q("integer", "age", "العمر", "Âge", hint=("بالسنوات", "En années"), required="yes",
               constraint=". >= 10 and . <= 30",
               message=("بين 10 و 30", "Entre 10 et 30")),  # row 4  # fmt: skip
            _q("select_one yn", "has_job", "هل تعمل؟", "Travaillez-vous ?", required="TRUE"),
            _q("text", "job_title", "ما هو عملك؟", "Quel emploi ?",
               relevant="  ${has_job} = 'yes' "),  # row 6  # fmt: skip
            _q("select_multiple services", "services", "الخدمات", "Services"),  # row 7
            _q("end_group", ""),
            _q("begin_group", "g_wellbeing", "الرفاه", "Bien-être", relevant="${age} >= 15"),
            _q("select_one agree", "w1", "أشعر بالهدوء", "Je me sens calme"),  # row 10
            _q("select_one agree", "w2", "أشعر بالقلق", "Je me sens anxieux"),
            _q("select_one agree", "w3", "أنام جيدا", "Je dors bien"),  # row 12
            _q("end_group", ""),
        ],
        "choices": [
            ["list_name", "name", "label::Arabic (ar)", "label::French (fr)"],
            ["yn", "yes", "نعم", "Oui"],
            ["yn", "no", "لا", "Non"],
            ["services", "health", "الصحة", "Santé"],
            ["services", "education", "التعليم", "Éducation"],
            ["services", "legal", "", "Juridique"],
            *[["agree", int(n), ar, fr] for n, ar, fr in AGREE],
        ],
        "settings": [
            ["form_title::Arabic (ar)", "form_title::French (fr)", "form_id", "version"],
            ["استبيان الرفاه", "Questionnaire bien-être", "wellbeing", "2026-01"],
        ],
        "scales": [
            ["name", "label::Arabic (ar)", "label::French (fr)", "items", "method", "reverse",
             "min_answered"],  # fmt: skip
            ["wellbeing", "الرفاه", "Bien-être", "w1, w2,w3", "mean", "w2", 2],
        ],
    }


def _question(name, qtype, label, row, **extra):
    question = {
        "name": name, "type": qtype, "label": label, "hint": {}, "required": False,
        "relevant": None, "constraint": None, "constraint_message": {}, "choices": [],
        "group": None, "row": row,
    }  # fmt: skip
    question.update(extra)
    return question


AGREE_CHOICES = [{"name": n, "label": {"ar": ar, "fr": fr}} for n, ar, fr in AGREE]

EXPECTED = {
    "title": {"ar": "استبيان الرفاه", "fr": "Questionnaire bien-être"},
    "form_id": "wellbeing",
    "version": "2026-01",
    "groups": [
        {"name": "g_family", "label": {"ar": "الأسرة", "fr": "Famille"}, "relevant": None},
        {"name": "g_wellbeing", "label": {"ar": "الرفاه", "fr": "Bien-être"},
         "relevant": "${age} >= 15"},  # fmt: skip
    ],
    "questions": [
        _question("intro", "note", {"ar": "مرحبا بكم", "fr": "Bienvenue"}, 2),
        _question("age", "integer", {"ar": "العمر", "fr": "Âge"}, 4, group="g_family",
                  hint={"ar": "بالسنوات", "fr": "En années"}, required=True,
                  constraint=". >= 10 and . <= 30",
                  constraint_message={"ar": "بين 10 و 30", "fr": "Entre 10 et 30"}),  # fmt: skip
        _question("has_job", "yes_no", {"ar": "هل تعمل؟", "fr": "Travaillez-vous ?"}, 5,
                  group="g_family", required=True,
                  choices=[{"name": "yes", "label": {"ar": "نعم", "fr": "Oui"}},
                           {"name": "no", "label": {"ar": "لا", "fr": "Non"}}]),  # fmt: skip
        _question("job_title", "text", {"ar": "ما هو عملك؟", "fr": "Quel emploi ?"}, 6,
                  group="g_family", relevant="${has_job} = 'yes'"),  # fmt: skip
        _question("services", "select_multiple", {"ar": "الخدمات", "fr": "Services"}, 7,
                  group="g_family",
                  choices=[{"name": "health", "label": {"ar": "الصحة", "fr": "Santé"}},
                           {"name": "education", "label": {"ar": "التعليم", "fr": "Éducation"}},
                           {"name": "legal", "label": {"fr": "Juridique"}}]),  # fmt: skip
        _question("w1", "likert", {"ar": "أشعر بالهدوء", "fr": "Je me sens calme"}, 10,
                  group="g_wellbeing", choices=AGREE_CHOICES),  # fmt: skip
        _question("w2", "likert", {"ar": "أشعر بالقلق", "fr": "Je me sens anxieux"}, 11,
                  group="g_wellbeing", choices=AGREE_CHOICES),  # fmt: skip
        _question("w3", "likert", {"ar": "أنام جيدا", "fr": "Je dors bien"}, 12,
                  group="g_wellbeing", choices=AGREE_CHOICES),  # fmt: skip
    ],
    "scales": [
        {"name": "wellbeing", "label": {"ar": "الرفاه", "fr": "Bien-être"},
         "items": ["w1", "w2", "w3"], "method": "mean", "reverse": ["w2"], "min_answered": 2,
         "item_min": 1, "item_max": 5},  # fmt: skip
    ],
}


def _without_rows(definition: dict) -> dict:
    definition = copy.deepcopy(definition)
    for question in definition["questions"]:
        question.pop("row")
    return definition


def _errors(sheets: dict[str, list[list]]) -> list[str]:
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(_xlsx(sheets))
    return caught.value.messages


def test_realistic_form_parses_to_the_definition():
    assert parse_xlsform(_xlsx(_sheets())) == EXPECTED


def test_plain_columns_fill_every_language():
    sheets = {
        "survey": [["type", "name", "label", "label::English (en)", "hint::fr"],
                   ["text", "city", "Ville", "City", "Commune"]],  # fmt: skip
        "settings": [["form_title", "form_id", "version"], ["Enquête", "city_form", 3]],
    }
    definition = parse_xlsform(_xlsx(sheets))
    assert definition["title"] == {"ar": "Enquête", "fr": "Enquête", "en": "Enquête"}
    assert definition["version"] == "3"
    assert definition["groups"] == [] and definition["scales"] == []
    question = definition["questions"][0]
    assert question["label"] == {"ar": "Ville", "fr": "Ville", "en": "City"}
    assert question["hint"] == {"fr": "Commune"}
    assert question["group"] is None and question["row"] == 2


def test_round_trip_keeps_the_definition_except_rows():
    definition = parse_xlsform(_xlsx(_sheets()))
    data = export_xlsform(definition)
    assert set(load_workbook(BytesIO(data)).sheetnames) == {
        "survey", "choices", "settings", "scales"
    }  # fmt: skip
    again = parse_xlsform(data)
    assert _without_rows(again) == _without_rows(definition)
    # Rows stay real spreadsheet rows of the exported file.
    survey = load_workbook(BytesIO(data))["survey"]
    assert all(survey.cell(q["row"], 2).value == q["name"] for q in again["questions"])


def test_round_trip_with_one_title_empty_groups_and_decimal_date():
    sheets = {
        "survey": [
            SURVEY_HEAD,
            _q("begin_group", "g_empty", "فارغ", "Vide"),
            _q("end_group", ""),
            _q("decimal", "weight", "الوزن", "Poids", constraint=". > 0"),
            _q("date", "visit", "التاريخ", "Date"),
            _q("select_one colour", "colour", "اللون", "Couleur"),
        ],
        "choices": [["list_name", "name", "label"], ["colour", "red", "Rouge"],
                    ["colour", "blue", "Bleu"]],  # fmt: skip
        "settings": [["form_title", "form_id"], ["Suivi", "followup"]],
    }
    definition = parse_xlsform(_xlsx(sheets))
    assert definition["version"] is None
    assert [q["type"] for q in definition["questions"]] == ["decimal", "date", "select_one"]
    assert _without_rows(parse_xlsform(export_xlsform(definition))) == _without_rows(definition)


def test_export_writes_likert_and_yes_no_as_select_one_lists():
    data = export_xlsform(parse_xlsform(_xlsx(_sheets())))
    book = load_workbook(BytesIO(data))
    types = {row[1]: row[0] for row in book["survey"].iter_rows(min_row=2, values_only=True)}
    assert types["w1"] == "select_one w1_list"
    assert types["has_job"] == "select_one has_job_list"
    assert types["services"] == "select_multiple services_list"
    lists = {row[0] for row in book["choices"].iter_rows(min_row=2, values_only=True)}
    assert lists == {"has_job_list", "services_list", "w1_list", "w2_list", "w3_list"}


def test_not_an_xlsx_file():
    for data in (b"", b"name,age\nAmina,17\n", _xlsx({"survey": [["type"]]})[:200]):
        with pytest.raises(XLSFormError) as caught:
            parse_xlsform(data)
        assert caught.value.messages == ["The file is not a valid XLSX spreadsheet."]


def _with_rows(*rows, sheet="survey"):
    sheets = _sheets()
    sheets[sheet].extend(rows)
    return sheets


def _scale(*cells):
    return _with_rows(["bad", "", "", *cells], sheet="scales")


def _drop(sheet, index):
    sheets = _sheets()
    del sheets[sheet][index]
    return sheets


BAD_CASES = {
    "no survey sheet": ({k: v for k, v in _sheets().items() if k != "survey"},
                        ["survey sheet", "no sheet named 'survey'"]),  # fmt: skip
    "no form_id": ({**_sheets(), "settings": [["form_title", "form_id"], ["Titre", ""]]},
                   ["settings sheet, row 2", "form_id is required"]),  # fmt: skip
    "duplicate name": (_with_rows(_q("text", "age", "x", "x")), ["row 14", "already used"]),
    "missing list": (_with_rows(_q("select_one nowhere", "q", "x", "x")),
                     ["row 14", "'nowhere' is not on the choices sheet"]),  # fmt: skip
    "geopoint": (_with_rows(_q("geopoint", "where", "x", "x")),
                 ["survey sheet, row 14: the type 'geopoint' is not supported (supported:"]),
    "calculate": (_with_rows(_q("calculate", "c", "x", "x")), ["row 14", "'calculate'"]),
    "repeat": (_with_rows(_q("begin_repeat", "kids", "x", "x"), _q("end_repeat", "")),
               ["row 14: the type 'begin_repeat' is not supported",
                "row 15: the type 'end_repeat' is not supported"]),  # fmt: skip
    "range": (_with_rows(_q("range", "r", "x", "x")), ["row 14", "'range' is not supported"]),
    "unknown reference": (_with_rows(_q("text", "q", "x", "x", relevant="${nobody} = 1")),
                          ["row 14", "unknown question '${nobody}'"]),  # fmt: skip
    "unknown constraint ref": (_with_rows(_q("integer", "q", "x", "x", constraint=". < ${n}")),
                               ["row 14", "constraint", "'${n}'"]),  # fmt: skip
    "self relevance": (_with_rows(_q("integer", "q", "x", "x", relevant="${q} > 1")),
                       ["survey sheet, row 14: cyclic relevance", "'q' depends on itself"]),
    "cycle": (_with_rows(_q("integer", "a", "x", "x", relevant="${b} > 1"),
                         _q("integer", "m", "x", "x", relevant="${a} > 1"),
                         _q("integer", "b", "x", "x", relevant="${m} > 1")),
              ["row 14", "cyclic relevance between a, m, b"]),  # fmt: skip
    "group relevance on own question": (
        _with_rows(_q("begin_group", "g", "x", "x", relevant="${inner} = 1"),
                   _q("integer", "inner", "x", "x"), _q("end_group", "")),
        ["row 15", "'inner' depends on itself"]),  # fmt: skip
    "nested group": (
        _with_rows(_q("begin_group", "g1", "x", "x"), _q("begin_group", "g2", "y", "y"),
                   _q("end_group", ""), _q("end_group", "")),
        ["row 15", "cannot be nested", "opened on row 14"]),  # fmt: skip
    "unclosed group": (_with_rows(_q("begin_group", "g1", "x", "x"), _q("text", "t", "x", "x")),
                       ["row 14", "'g1' is never closed"]),  # fmt: skip
    "stray end_group": (_with_rows(_q("end_group", "")),
                        ["row 14", "end_group without a matching begin_group"]),  # fmt: skip
    "no label": (_with_rows(_q("text", "silent")), ["row 14", "'silent' has no label"]),
    "no type": (_with_rows(_q("", "typeless", "x", "x")), ["row 14", "type is missing"]),
    "duplicate choice": (_with_rows(["yn", "yes", "x", "x"], sheet="choices"),
                         ["choices sheet, row 12", "appears twice"]),  # fmt: skip
    "unknown scale item": (_scale("w1, ghost", "sum"), ["scales sheet, row 3", "'ghost'"]),
    "reverse not in items": (_scale("w1, w3", "sum", "w2"),
                             ["scales sheet, row 3", "w2 are not in items"]),  # fmt: skip
    "bad method": (_scale("w1, w3", "median"), ["scales sheet, row 3", "sum or mean"]),
    "item not likert": (_scale("w1, has_job", "sum"),
                        ["scales sheet, row 3", "'has_job' is a yes_no question"]),  # fmt: skip
    "min_answered too big": (_scale("w1, w3", "sum", "", 3), ["row 3", "min_answered"]),
    "integer items cannot reverse": (_scale("age", "sum", "age"),
                                     ["row 3", "item_min and item_max are needed"]),  # fmt: skip
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_forms_are_refused_with_sheet_and_row(case):
    sheets, expected = BAD_CASES[case]
    messages = _errors(sheets)
    for part in expected:
        assert any(part in message for message in messages), (part, messages)
    assert all(" sheet" in message for message in messages)


def test_all_problems_are_collected():
    sheets = _with_rows(
        _q("geopoint", "where", "x", "x"),  # row 14
        _q("text", "age", "x", "x"),  # row 15
        _q("text", "q", "x", "x", relevant="${ghost} = 1"),  # row 16
    )
    sheets["settings"][1][2] = None
    messages = _errors(sheets)
    for part in ("row 14", "row 15", "row 16", "settings sheet, row 2"):
        assert any(part in message for message in messages), (part, messages)


def test_pyxform_problems_we_also_find_are_reported_once_per_row():
    messages = _errors(_with_rows(_q("text", "age", "x", "x")))
    assert len([m for m in messages if m.startswith("survey sheet, row 14:")]) == 1


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (_q("text", "bad name", "x", "x"), "row 14: On the 'survey' sheet, the 'name'"),
        (_q("text", "1st", "x", "x"), "Names must begin with a letter or underscore"),
        (_q("text", "greet", "${ghost}", "x"), "row 14: On the 'survey' sheet, the 'label::"),
    ],
)
def test_problems_only_pyxform_finds_surface(row, expected):
    messages = _errors(_with_rows(row))
    assert any(expected in message for message in messages), messages


def test_pyxform_exceptions_become_messages(monkeypatch):
    def refuse(*args, **kwargs):
        raise PyXFormError("[row : 9] On the 'choices' sheet, something is off.")

    monkeypatch.setattr(xlsform, "workbook_to_json", refuse)
    assert _errors(_sheets()) == ["choices sheet, row 9: On the 'choices' sheet, something is off."]

    def crash(*args, **kwargs):
        raise KeyError("label")

    monkeypatch.setattr(xlsform, "workbook_to_json", crash)
    assert _errors(_sheets()) == ["survey sheet: 'label'"]

    def builder_refuses(*args, **kwargs):
        raise PyXFormError("The survey element named 'age' has no label or hint.")

    monkeypatch.undo()
    monkeypatch.setattr(xlsform, "create_survey_element_from_dict", builder_refuses)
    assert _errors(_sheets()) == [
        "survey sheet, row 4: The survey element named 'age' has no label or hint."
    ]

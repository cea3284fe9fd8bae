"""XLSForm import and export of survey definitions (bladi_cases.services.xlsform)."""

from __future__ import annotations

import copy
import html
import re
from io import BytesIO
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from pyxform.errors import PyXFormError

from bladi_cases.models import Role
from bladi_cases.services.surveys import logic, xlsform
from bladi_cases.services.surveys.xlsform import XLSFormError, export_xlsform, parse_xlsform

from .conftest import follow_job, login

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
                 ["survey sheet, row 14, column “type”: “geopoint” is not supported by this "
                  "app; remove it."]),
    "calculate": (_with_rows(_q("calculate", "c", "x", "x")),
                  ["row 14, column “calculation”", "needs a calculation"]),
    "repeat in a repeat": (_with_rows(_q("begin_repeat", "kids", "x", "x"),
                                      _q("begin_repeat", "g", "x", "x"), _q("text", "t", "x", "x"),
                                      _q("end_repeat", ""), _q("end_repeat", "")),
                           ["row 15, column “type”: “begin_repeat” inside the repeat “kids” is "
                            "not supported yet."]),  # fmt: skip
    "acknowledge without label": (_with_rows(_q("acknowledge", "ok")),
                                  ["row 14", "'ok' has no label"]),
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
    "outer group relevance on a nested question": (
        _with_rows(_q("begin_group", "g1", "x", "x", relevant="${inner} = 1"),
                   _q("begin_group", "g2", "y", "y"), _q("integer", "inner", "x", "x"),
                   _q("end_group", ""), _q("end_group", "")),
        ["row 16", "'inner' depends on itself"]),  # fmt: skip
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


PYXFORM_LEAD = "The form could not be read by pyxform (the XLSForm reference converter): "


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (_q("text", "bad name", "x", "x"), f"row 14: {PYXFORM_LEAD}“On the 'survey' sheet, "
                                           "the 'name'"),
        (_q("text", "1st", "x", "x"), "Names must begin with a letter or underscore"),
        (_q("text", "greet", "${ghost}", "x"),
         "row 14: the label refers to an unknown question '${ghost}'"),
    ],
)
def test_problems_only_pyxform_finds_surface(row, expected):
    messages = _errors(_with_rows(row))
    assert any(expected in message for message in messages), messages


def test_pyxform_exceptions_become_messages(monkeypatch):
    def refuse(*args, **kwargs):
        raise PyXFormError("[row : 9] On the 'choices' sheet, something is off.")

    monkeypatch.setattr(xlsform, "workbook_to_json", refuse)
    assert _errors(_sheets()) == [
        f"choices sheet, row 9: {PYXFORM_LEAD}“On the 'choices' sheet, something is off.”"]

    def crash(*args, **kwargs):
        raise KeyError("label")

    monkeypatch.setattr(xlsform, "workbook_to_json", crash)
    assert _errors(_sheets()) == [f"survey sheet: {PYXFORM_LEAD}“'label'”"]

    def builder_refuses(*args, **kwargs):
        raise PyXFormError("The survey element named 'age' has no label or hint.")

    monkeypatch.undo()
    monkeypatch.setattr(xlsform, "create_survey_element_from_dict", builder_refuses)
    assert _errors(_sheets()) == [
        f"survey sheet, row 4: {PYXFORM_LEAD}“The survey element named 'age' has no label "
        "or hint.”"
    ]


# --- pyxform's spellings are read as pyxform reads them (issue 17) -----------------------

def _small(survey, choices=None, settings=None):
    sheets = {"survey": survey}
    if choices is not None:
        sheets["choices"] = choices
    if settings is not None:
        sheets["settings"] = settings
    return _xlsx(sheets)


YN = [["list name", "name", "label"], ["yn", "yes", "Yes"], ["yn", "no", "No"]]


def test_list_name_header_and_select_from_spellings_are_accepted():
    data = _small(
        [["type", "name", "label"],
         ["select one from yn", "q1", "One"],
         ["select all that apply from colours", "q2", "Many"],
         ["select1 yn", "q3", "Three"],
         ["begin group", "g", "Group"], ["string", "q4", "Text"], ["end group"]],
        [*YN, ["colours", "red", "Red"], ["colours", "blue", "Blue"]],
        [["form_id"], ["spellings"]],
    )  # fmt: skip
    definition = parse_xlsform(data)
    types = {q["name"]: q["type"] for q in definition["questions"]}
    assert types == {"q1": "yes_no", "q2": "select_multiple", "q3": "yes_no", "q4": "text"}
    assert [c["name"] for c in definition["questions"][1]["choices"]] == ["red", "blue"]
    assert definition["groups"][0]["name"] == "g"
    assert definition["questions"][3]["group"] == "g"


def test_single_colon_and_named_languages_are_read():
    data = _small([["type", "name", "label:English", "label:Français", "hint:Arabic"],
                   ["text", "city", "City", "Ville", "المدينة"]],
                  settings=[["form_id"], ["langs"]])  # fmt: skip
    question = parse_xlsform(data)["questions"][0]
    assert question["label"] == {"en": "City", "fr": "Ville"}
    assert question["hint"] == {"ar": "المدينة"}
    data = _small([["type", "name", "label::العربية", "label::Francais", "label::English (en-GB)"],
                   ["text", "city", "المدينة", "Ville", "City"]],
                  settings=[["form_id"], ["langs"]])  # fmt: skip
    assert parse_xlsform(data)["questions"][0]["label"] == {
        "ar": "المدينة", "fr": "Ville", "en": "City"}


def test_default_language_takes_the_plain_columns():
    data = _small([["type", "name", "label", "label::English (en)"],
                   ["text", "city", "Ville", "City"]],
                  settings=[["form_id", "default_language"], ["langs", "French (fr)"]])
    assert parse_xlsform(data)["questions"][0]["label"] == {"fr": "Ville", "en": "City"}


def test_id_string_and_form_title_aliases():
    data = _small([["type", "name", "label"], ["text", "a", "A"]],
                  settings=[["id_string", "title"], ["from_kobo", "Kobo form"]])
    definition = parse_xlsform(data)
    assert definition["form_id"] == "from_kobo"
    assert definition["title"] == {"ar": "Kobo form", "fr": "Kobo form", "en": "Kobo form"}


def test_without_settings_the_form_is_named_after_the_file():
    data = _small([["type", "name", "label"], ["text", "a", "A"]])
    assert parse_xlsform(data, "household_survey.xlsx")["form_id"] == "household_survey"
    assert parse_xlsform(data, "C:\\Users\\me\\baseline v2.xlsx")["form_id"] == "baseline v2"
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    assert any("form_id is required" in m for m in caught.value.messages)


def test_the_upload_names_a_form_without_settings(client, make_user):
    from bladi_cases.models import Role, Survey
    from tests.conftest import login

    login(client, make_user(Role.ADMIN))
    data = _small([["type", "name", "label"], ["text", "a", "A"]])
    follow_job(client, client.post("/surveys/import",
                                   data={"upload": (BytesIO(data), "intake_form.xlsx")}))
    from bladi_cases.extensions import db

    assert db.session.scalars(db.select(Survey).where(Survey.code == "intake_form")).first()


def test_curly_quotes_and_column_aliases_are_read_as_pyxform_reads_them():
    data = _small(
        [["type", "name", "label", "relevance", "bind::constraint", "constraint_message",
          "required", "appearance", "$kuid"],
         ["select_one yn", "ok", "OK?", "", "", "", "true()", "minimal", "k1"],
         ["integer", "n", "N", "${ok} = \u2018yes\u2019", ". > 0", "Positive", "no", "", "k2"]],
        YN, [["form_id"], ["aliases"]],
    )  # fmt: skip
    first, second = parse_xlsform(data)["questions"]
    assert first["required"] is True and second["required"] is False
    assert second["relevant"] == "${ok} = 'yes'"
    assert second["constraint"] == ". > 0"
    assert second["constraint_message"] == {"ar": "Positive", "fr": "Positive", "en": "Positive"}


def test_a_note_without_a_name_is_named_as_pyxform_names_it():
    data = _small([["type", "name", "label"], ["note", "", "Welcome"]],
                  settings=[["form_id"], ["n"]])
    assert parse_xlsform(data)["questions"][0]["name"] == "generated_note_name_2"


# --- Honour it or refuse it ----------------------------------------------------------------

REFUSED_COLUMNS = {
    # column: value on row 3 (row 2 is a plain question using none of them)
    "choice_filter": "${a} = 'x'",
    "repeat_count": "3",
    "guidance_hint": "Ask slowly",
    "image": "photo.jpg",
    "media::audio::English (en)": "q.mp3",
    "parameters": "start=1 end=5",
    "body::accuracyThreshold": "5",
    "bind::odk:length": "5",
}


@pytest.mark.parametrize("column", REFUSED_COLUMNS)
def test_unsupported_columns_are_refused_with_sheet_row_and_column(column):
    data = _small([["type", "name", "label", column], ["text", "a", "A", ""],
                   ["integer", "b", "B", REFUSED_COLUMNS[column]]],
                  settings=[["form_id"], ["refused"]])  # fmt: skip
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    assert any(m.startswith(f"survey sheet, row 3, column “{column}”: ")
               for m in caught.value.messages), caught.value.messages


@pytest.mark.parametrize(("column", "value"), [
    ("read_only", "${a} = 'yes'"), ("default", "${a}"), ("default", "today()"),
    ("parameters", "start=1 end=5"), ("appearance", "search('fruits')")])
def test_expressions_where_only_yes_or_no_is_supported_are_refused(column, value):
    data = _small([["type", "name", "label", column], ["text", "a", "A", "no"],
                   ["integer", "b", "B", value]], settings=[["form_id"], ["refused"]])
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    assert any(m.startswith(f"survey sheet, row 3, column “{column}”: “{value}”")
               for m in caught.value.messages), caught.value.messages


def test_unsupported_choices_and_settings_columns_and_sheets_are_refused():
    data = _xlsx({
        "survey": [["type", "name", "label"], ["select_one yn", "a", "A"]],
        "choices": [["list_name", "name", "label", "image"], ["yn", "yes", "Yes", "y.png"],
                    ["yn", "no", "No", ""]],  # fmt: skip
        "settings": [["form_id", "public_key"], ["s", "MIIBIjAN"]],
        "external_choices": [["list_name", "name"], ["x", "y"]],
    })
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    messages = caught.value.messages
    assert any(m.startswith("choices sheet, row 2, column “image”") for m in messages)
    assert any(m.startswith("settings sheet, row 2, column “public_key”") for m in messages)
    assert any(m.startswith("external_choices sheet:") for m in messages)


def test_an_empty_unsupported_column_and_unknown_columns_are_fine():
    data = _small([["type", "name", "label", "calculation", "read_only", "notes"],
                   ["text", "a", "A", "", "no", "for the enumerator"]],
                  settings=[["form_id", "instance_name", "style"], ["ok", "concat('a')", "pages"]])
    assert parse_xlsform(data)["questions"][0]["name"] == "a"


def test_a_refusal_in_arabic():
    from flask_babel import force_locale

    data = _small([["type", "name", "label", "guidance_hint"], ["integer", "b", "B", "1 + 1"],
                   ["geopoint", "where", "Where"]], settings=[["form_id"], ["ar"]])
    with force_locale("ar"), pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    assert any(m.startswith("الورقة survey، السطر 2، العمود “guidance_hint”:")
               and "غير مدعوم" in m for m in caught.value.messages), caught.value.messages
    assert any(m.startswith("الورقة survey، السطر 3، العمود “type”:") and "geopoint" in m
               for m in caught.value.messages), caught.value.messages


def _pyxform_columns(sheet):
    from pyxform import aliases
    from pyxform.question import MultipleChoiceQuestion, Option
    from pyxform.survey import Survey

    header_aliases, slots = {
        "survey": (aliases.survey_header, MultipleChoiceQuestion.get_slot_names()),
        "choices": (aliases.list_header, Option.get_slot_names()),
        "settings": (aliases.settings_header, Survey.get_slot_names()),
    }[sheet]
    names = set(header_aliases) | {s for s in slots if not s.startswith("_")}
    for target in header_aliases.values():
        names.add("::".join(target) if isinstance(target, tuple) else target)
    if sheet == "survey":
        for target in aliases.TRANSLATABLE_SURVEY_COLUMNS.values():
            names.add("::".join((*target, "French (fr)") if isinstance(target, tuple)
                                else (target, "French (fr)")))
    return sorted(names)


@pytest.mark.parametrize("sheet", ["survey", "choices", "settings"])
def test_every_column_pyxform_knows_is_handled_or_refused(sheet):
    from bladi_cases.services.surveys import xlsform_rules as rules

    handled = {"survey": rules.SURVEY_HANDLED | rules.SURVEY_NO_EFFECT,
               "choices": rules.CHOICES_HANDLED,
               "settings": rules.SETTINGS_HANDLED | rules.SETTINGS_NO_EFFECT}[sheet]
    refused = {"survey": rules.SURVEY_REFUSED, "choices": rules.CHOICES_REFUSED,
               "settings": rules.SETTINGS_REFUSED}[sheet]
    unclassified, silent = [], []
    for header in _pyxform_columns(sheet):
        column = rules.Column(sheet, header, "::" in header)
        if not column.known or (column.key not in handled and column.key not in refused):
            unclassified.append(header)
        elif column.key in refused and column.refusal is None:
            silent.append(header)
        elif column.refusal is None and not column.flat:
            silent.append(header)
    assert unclassified == [] and silent == []


def test_every_refused_survey_column_is_reported_on_import():
    from bladi_cases.services.surveys import xlsform_rules as rules

    refused = [h for h in _pyxform_columns("survey")
               if rules.Column("survey", h, True).refusal]
    assert len(refused) > 30
    data = _small([["type", "name", "label", *refused], ["text", "a", "A", *["x"] * len(refused)]],
                  settings=[["form_id"], ["all"]])
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    for header in refused:
        assert any(f"row 2, column “{header}”" in m for m in caught.value.messages), header


def test_every_question_type_pyxform_knows_is_handled_or_refused():
    from pyxform import aliases
    from pyxform.question_type_dictionary import QUESTION_TYPE_DICT

    from bladi_cases.services.surveys import xlsform_rules as rules

    kinds = set(QUESTION_TYPE_DICT) | {f"{k} yn" for k in aliases.select}
    kinds |= {f"{k} yn or_other" for k in ("select_one", "select one")}
    kinds |= {f"{edge}{sep}{c}" for c in aliases.control for edge in ("begin", "end")
              for sep in (" ", "_")}  # fmt: skip
    handled = {k: rules.question_type(k) for k in sorted(kinds)}
    assert handled["select one from yn"] == ("select_one", "yn")
    assert handled["select all that apply from yn"] == ("select_multiple", "yn")
    assert handled["q int"] == ("integer", None) and handled["begin group"][0] == "begin_group"
    assert all(v is None for k, v in handled.items() if k.startswith(
        ("image", "geopoint", "audio", "file",
         "rank", "select one external", "select_one_from_file")))
    # pyxform's older name of acknowledge, and a text question with a digits-only constraint
    assert handled["trigger"] == ("acknowledge", None)
    assert handled["phone number"] == ("text", None)
    assert handled["begin repeat"][0] == "begin_repeat" == handled["begin_repeat"][0]
    assert handled["begin looped group"][0] == "begin_repeat"  # pyxform's alias of repeat
    # Not a type of ours: loops are expanded into groups before types are read.
    assert handled["begin_loop"] is None and handled["begin loop"] is None
    assert handled["end_repeat"][0] == "end_repeat"
    assert handled["calculate"] == ("calculate", None) and handled["dateTime"][0] == "datetime"
    assert handled["range"] == ("range", None) and handled["deviceid"][0] == "deviceid"
    refused = [k for k, v in handled.items() if v is None and rules.type_feature(k) != "loop"]
    rows = [[kind, f"q{n}", "Q"] for n, kind in enumerate(refused)]
    data = _small([["type", "name", "label"], *rows], YN, [["form_id"], ["types"]])
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    by_row = {m.split(", column")[0]: m for m in caught.value.messages}
    for number, kind in enumerate(refused, start=2):
        message = by_row[f"survey sheet, row {number}"]
        # Out of scope (media, geo, the phone's identifiers…) or not supported yet.
        assert getattr(message, "feature", None) == rules.type_feature(kind), kind
        if rules.type_feature(kind) in rules.OUT_OF_SCOPE:
            assert message.endswith(f"“type”: “{kind}” is not supported by this app; "
                                    "remove it."), kind
        else:
            assert message.startswith(f"survey sheet, row {number}, column “type”: the type “"
                                      ), kind
    assert rules.type_feature("get sim id") == "simserial" in rules.OUT_OF_SCOPE
    assert rules.type_feature("uri:deviceid") == "uri:deviceid" in rules.OUT_OF_SCOPE
    assert rules.question_type("get device id") == ("deviceid", None)  # deviceid is kept


def _pyxform_converts(data: bytes) -> None:
    from pyxform.builder import create_survey_element_from_dict
    from pyxform.xls2json import workbook_to_json
    from pyxform.xls2json_backends import get_xlsform

    form = workbook_to_json(get_xlsform(BytesIO(data), file_type=".xlsx"), warnings=[])
    create_survey_element_from_dict(form).to_xml(validate=False, warnings=[])


def test_export_with_titles_per_language_converts_and_comes_back():
    from bladi_cases.sample_survey import workbook_bytes

    for definition in (parse_xlsform(_xlsx(_sheets())), parse_xlsform(workbook_bytes())):
        assert len(set(definition["title"].values())) > 1
        data = export_xlsform(definition)
        _pyxform_converts(data)
        assert _without_rows(parse_xlsform(data)) == _without_rows(definition)



def test_a_lone_sheet_is_the_survey_as_in_pyxform():
    data = _xlsx({"Sheet1": [["type", "name", "label"], ["text", "a", "A"]]})
    definition = parse_xlsform(data, "lone.xlsx")
    assert definition["form_id"] == "lone" and definition["questions"][0]["name"] == "a"


XLS_SAMPLE = Path(__file__).parent / "data" / "xlsforms" / "pyxform__yes_or_no_question.xls"


@pytest.mark.skipif(not XLS_SAMPLE.exists(), reason="the public corpus is not there")
def test_an_excel_97_file_is_read_as_pyxform_reads_it():
    definition = parse_xlsform(XLS_SAMPLE.read_bytes(), XLS_SAMPLE.name)
    assert definition["questions"]
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(XLS_SAMPLE.read_bytes()[:600])
    assert caught.value.messages == ["The file is not a valid XLSX spreadsheet."]


def test_comment_rows_are_skipped_as_pyxform_skips_them():
    data = _small([["type", "name", "label", "hint"], ["", "", "", "a note to the author"],
                   ["text", "a", "A", ""]], settings=[["form_id"], ["c"]])
    assert [q["name"] for q in parse_xlsform(data)["questions"]] == ["a"]
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(_small([["type", "name", "label"], ["", "", "Orphan"]],
                             settings=[["form_id"], ["c"]]))
    assert any("row 2" in m and "type is missing" in m for m in caught.value.messages)


def test_what_pyxform_reads_and_the_rules_let_through_is_still_refused(monkeypatch):
    from bladi_cases.services.surveys import xlsform_rules as rules

    header_aliases, known, handled, no_effect = rules.SHEETS["survey"]
    monkeypatch.setitem(rules.SHEETS, "survey", (
        header_aliases, known, handled | {"guidance_hint", "bind::saveIncomplete"},
        no_effect))  # fmt: skip
    data = _small([["type", "name", "label", "guidance_hint", "bind::saveIncomplete"],
                   ["integer", "a", "A", "slowly", ""], ["decimal", "b", "B", "", "oops"]],
                  settings=[["form_id"], ["guard"]])  # fmt: skip
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    assert caught.value.messages == [
        "survey sheet, row 2, column “guidance_hint”: pyxform reads “guidance_hint” here, "
        "which this app does not support yet.",
        "survey sheet, row 3, column “saveIncomplete”: pyxform reads "
        "“bind::saveIncomplete” here, which this app does not support yet.",
    ]


# --- Calculations, defaults, metadata and the new types (issue 17, item 3) ---------------

FEATURES = [
    ["type", "name", "label::English (en)", "label::Arabic (ar)", "required",
     "required_message::English (en)", "required_message::Arabic (ar)", "calculation",
     "read_only", "default", "parameters"],
    ["start", "start"], ["end", "end"], ["today", "today"], ["username", "username"],
    ["deviceid", "deviceid"],
    ["integer", "adults", "Adults", "البالغون", "yes", "", "", "", "", "2"],
    ["integer", "children", "Children", "الأطفال"],
    ["calculate", "total", "", "", "", "", "", "${adults} + ${children}"],
    ["integer", "shown_total", "Total", "المجموع", "", "", "", "${total}", "yes"],
    ["text", "why", "Why ${total} people?", "لماذا ${total}؟", "${total} > 5", "Say why",
     "قل لماذا"],
    ["time", "wake", "Wake up", "الاستيقاظ"],
    ["datetime", "visit", "Visit", "الزيارة"],
    ["range", "score", "Score", "النتيجة", "", "", "", "", "", "", "start=0 end=10 step=2"],
    ["acknowledge", "ok", "I agree (${why})", "أوافق"],
]


def features_form() -> bytes:
    """A form using every feature of issue 17's item 3 (also used by tests/test_surveys.py)."""
    return _small(FEATURES, settings=[["form_id"], ["features"]])


def test_calculations_defaults_metadata_and_new_types_are_read():
    definition = parse_xlsform(features_form())
    by_name = {q["name"]: q for q in definition["questions"]}
    assert definition["meta"] == [{"name": n, "type": n} for n in
                                  ("start", "end", "today", "username", "deviceid")]
    assert "start" not in by_name and by_name["adults"]["default"] == "2"
    assert by_name["total"] == {**by_name["total"], "type": "calculate",
                                "calculation": "${adults} + ${children}"}
    assert by_name["shown_total"]["read_only"] is True
    assert by_name["why"]["required"] is False and by_name["why"]["required_if"] == \
        "${total} > 5"
    assert by_name["why"]["required_message"] == {"ar": "قل لماذا", "en": "Say why"}
    assert by_name["score"]["parameters"] == {"start": 0, "end": 10, "step": 2}
    assert [by_name[n]["type"] for n in ("wake", "visit", "ok")] == \
        ["time", "datetime", "acknowledge"]
    # Keys a form does not use are absent: older definitions stay as they were.
    assert "calculation" not in by_name["children"] and "read_only" not in by_name["adults"]


def test_the_new_features_round_trip_through_the_export():
    definition = parse_xlsform(features_form())
    data = export_xlsform(definition)
    _pyxform_converts(data)
    assert _without_rows(parse_xlsform(data)) == _without_rows(definition)


@pytest.mark.parametrize(("row", "expected"), [
    (["calculate", "c", "", "", "", "", "", "${ghost} + 1"],
     "row 3: the calculation refers to an unknown question '${ghost}'"),
    (["text", "t", "T", "", "${ghost} = 1"],
     "row 3: the required_if refers to an unknown question '${ghost}'"),
    (["text", "t", "Hello ${ghost}"], "row 3: the label refers to an unknown question"),
    (["range", "r", "R", "", "", "", "", "", "", "", "start=0 end=10 step=0"],
     "row 3, column “parameters”: “start=0 end=10 step=0”"),
    (["range", "r", "R", "", "", "", "", "", "", "", "from=0"],
     "row 3, column “parameters”: “from=0”"),
    (["integer", "r", "R", "", "", "", "", "", "", "", "start=1"],
     "row 3, column “parameters”: “start=1”"),
    (["calculate", "c"], "row 3, column “calculation”: a calculate question needs"),
    (["calculate", "c", "", "", "", "", "", "${c} + 1"],
     "row 3, column “calculation”: the calculation of “c” depends on itself."),
])
def test_bad_calculations_and_parameters_are_refused_with_the_row(row, expected):
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(_small([FEATURES[0], ["integer", "a", "A"], row],
                             settings=[["form_id"], ["bad"]]))
    assert any(expected in m for m in caught.value.messages), caught.value.messages


CASCADE = [["type", "name", "label", "choice_filter", "required"],
           ["select_one county", "county", "County", "", "yes"],
           ["select_one sub", "sub", "Sub-county", "county = ${county}", "yes"]]
CASCADE_CHOICES = [["list_name", "name", "label", "county"],
                   ["county", "a", "A", ""], ["county", "b", "B", ""],
                   ["sub", "a1", "A one", "a"], ["sub", "a2", "A two", "a"],
                   ["sub", "b1", "B one", "b"]]


def cascade_form() -> bytes:
    """Cascading selects (also used by tests/test_surveys.py)."""
    return _small(CASCADE, CASCADE_CHOICES, [["form_id"], ["cascade"]])


def test_choice_filter_keeps_the_columns_it_reads_and_round_trips():
    definition = parse_xlsform(cascade_form())
    county, sub = definition["questions"]
    assert sub["choice_filter"] == "county = ${county}" and "choice_filter" not in county
    assert sub["choices"][0] == {"name": "a1", "label": {"ar": "A one", "fr": "A one",
                                                         "en": "A one"}, "data": {"county": "a"}}
    assert all("data" not in c for c in county["choices"]), "kept only where a filter reads"
    data = export_xlsform(definition)
    _pyxform_converts(data)
    assert _without_rows(parse_xlsform(data)) == _without_rows(definition)


def test_a_choice_filter_on_an_unknown_name_or_a_text_question_is_refused():
    bad = [*CASCADE[:2], ["select_one sub", "sub", "Sub", "county = ${ghost}", ""],
           ["text", "t", "T", "county = 'a'", ""]]
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(_small(bad, CASCADE_CHOICES, [["form_id"], ["bad"]]))
    messages = caught.value.messages
    assert any("row 3: the choice_filter refers to an unknown question '${ghost}'" in m
               for m in messages), messages
    assert any("row 4, column “choice_filter”: “county = 'a'”" in m for m in messages), messages


def test_every_accepted_corpus_form_round_trips_and_its_expressions_evaluate():
    from bladi_cases.services import ValidationError
    from bladi_cases.services.surveys.surveys import _check_expressions
    from tests.xlsform_corpus import forms

    accepted = 0
    for path in forms():
        try:
            definition = parse_xlsform(path.read_bytes(), path.name)
        except XLSFormError:
            continue
        try:
            _check_expressions(definition)  # what import_version refuses besides
        except ValidationError:
            continue
        accepted += 1
        data = export_xlsform(definition)
        _pyxform_converts(data)
        assert _without_rows(parse_xlsform(data)) == _without_rows(definition), path.name
    assert accepted >= 17


# --- Refusals in the user's language (issue 17) --------------------------------------------

def _i18n_form(*rows, choices=(), settings=(("form_id",), ("i18n",)), **extra):
    """A small valid form with `rows` added to its survey sheet (from row 4)."""
    return {
        "survey": [["type", "name", "label", "relevant"], ["text", "a", "A", ""],
                   ["integer", "n", "N", ""], *rows],
        "choices": [["list_name", "name", "label"], ["yn", "yes", "Yes"], ["yn", "no", "No"],
                    *choices],
        "settings": [list(r) for r in settings], **extra,
    }  # fmt: skip


# One broken workbook per message family: (sheets, file name, English fragment).
I18N_CASES = {
    "no survey sheet": ({"settings": [["form_id"], ["i18n"]], "choices": [["list_name"]]},
                        "f.xlsx", "no sheet named 'survey'"),
    "no form_id": (_i18n_form(settings=[["form_title"], ["T"]]), " .xlsx",
                   "form_id is required"),
    "duplicate name": (_i18n_form(["text", "a", "B", ""]), "f.xlsx", "already used on row 2"),
    "missing list": (_i18n_form(["select_one nowhere", "q", "Q", ""]), "f.xlsx",
                     "'nowhere' is not on the choices sheet"),
    "unknown reference": (_i18n_form(["text", "q", "Q", "${ghost} = 1"]), "f.xlsx",
                          "unknown question '${ghost}'"),
    "self relevance": (_i18n_form(["integer", "q", "Q", "${q} > 1"]), "f.xlsx",
                       "cyclic relevance: 'q' depends on itself"),
    "cycle": (_i18n_form(["integer", "p", "P", "${q} > 1"], ["integer", "q", "Q", "${p} > 1"]),
              "f.xlsx", "cyclic relevance between p, q"),
    "no label": (_i18n_form(["text", "q", "", ""]), "f.xlsx", "'q' has no label"),
    "no type": (_i18n_form(["", "q", "Q", ""]), "f.xlsx", "the type is missing"),
    "unclosed group": (_i18n_form(["begin_group", "g", "G", ""]), "f.xlsx",
                       "'g' is never closed"),
    "stray end_group": (_i18n_form(["end_group", "", "", ""]), "f.xlsx",
                        "end_group without a matching begin_group"),
    "choice without name": (_i18n_form(choices=[["yn", "", "Maybe"]]), "f.xlsx",
                            "list_name and name are both required"),
    "duplicate choice": (_i18n_form(choices=[["yn", "yes", "Again"]]), "f.xlsx",
                         "'yes' appears twice in the list 'yn'"),
    "scale items": (_i18n_form(scales=[["name", "items", "method"], ["s", "n, ghost", "median"]]),
                    "f.xlsx", "'ghost' is not a question of the survey sheet"),
    "scale bounds": (_i18n_form(scales=[["name", "items", "method", "item_min", "item_max"],
                                        ["s", "n, n", "sum", "x", "1"]]),
                     "f.xlsx", "item_min must be a whole number"),
    "pyxform's own": (_i18n_form(["text", "bad name", "B", ""]), "f.xlsx",
                      "could not be read by pyxform"),
    "expression": (_i18n_form(["integer", "q", "Q", "1 +* 2"]), "f.xlsx",
                   "cannot be evaluated"),
}

# pyxform's texts the app tells in its own words: (function to patch, text, English fragment).
PYXFORM_TEXTS = {
    "duplicate name": ("workbook_to_json", "[row : 3] On the 'survey' sheet, the 'name' value "
                       "'n' is invalid. Questions, groups, and repeats must be unique within "
                       "their nearest parent group", "the name “n” is used twice"),
    "duplicate choice": ("workbook_to_json", "[row : 3] On the 'choices' sheet, the 'name' "
                         "value is invalid. Choice names must be unique for each choice list. ",
                         "choices sheet, row 3: a choice name appears twice"),
    "unmatched end": ("workbook_to_json", "[row : 3] Unmatched 'end_group'. No matching "
                      "'begin_group' was found for the name 'g'.",
                      "this end_group has no matching begin_group"),
    "unmatched begin": ("workbook_to_json", "[row : 3] Unmatched 'begin_group'. No matching "
                        "'end_group' was found for the name 'g'.", "“g” is never closed"),
    "unknown type": ("create_survey_element_from_dict", "Unknown question type 'gizmo'.",
                     "the question type “gizmo” is not an XLSForm type"),
    "no survey sheet": ("workbook_to_json", "You must have a sheet named 'survey'. ",
                        "no sheet named 'survey'"),
}

_LATIN_WORDS = re.compile(r"[A-Za-z][\w.-]*(?:\s+[A-Za-z][\w.-]*){2,}")
_QUOTED = re.compile(r"“[^”]*”|«[^»]*»|'[^']*'|\$\{[^}]*\}")


def _refusal(client, lang: str, sheets, filename: str) -> str:
    """The import page's refusal text for a workbook, under the UI language `lang`."""
    client.set_cookie("lang", lang, domain="bladi.test")
    response = follow_job(client, client.post(
        "/surveys/import", data={"upload": (BytesIO(_xlsx(sheets)), filename)},
        content_type="multipart/form-data"))
    page = response.get_data(as_text=True)
    assert 'data-status="failed"' in page, (lang, filename)
    found = re.search(r'role="alert">.*?<ul>(.*?)</ul>', page, re.S)
    assert found, page[:2000]
    items = re.findall(r"<li>(.*?)</li>", found.group(1), re.S)
    return " ".join(html.unescape(item).strip() for item in items)


def _check_in_arabic(english: str, arabic: str, fragment: str) -> None:
    assert fragment in english, (fragment, english)
    assert arabic != english
    assert re.search(r"[\u0600-\u06ff]", arabic), arabic
    # What is left once names, values and pyxform's quoted text are taken out holds no
    # English sentence (three Latin words in a row).
    leftover = _LATIN_WORDS.search(_QUOTED.sub(" ", arabic))
    assert leftover is None, (leftover.group(0), arabic)


@pytest.mark.parametrize("case", I18N_CASES)
def test_import_refusals_are_in_arabic_under_the_arabic_ui(client, make_user, case):
    sheets, filename, fragment = I18N_CASES[case]
    login(client, make_user(Role.CSO_MANAGER, "BA"))
    english = _refusal(client, "en", sheets, filename)
    _check_in_arabic(english, _refusal(client, "ar", sheets, filename), fragment)


@pytest.mark.parametrize("case", PYXFORM_TEXTS)
def test_pyxform_texts_are_told_in_arabic(client, make_user, monkeypatch, case):
    target, text, fragment = PYXFORM_TEXTS[case]

    def refuse(*args, **kwargs):
        raise PyXFormError(text)

    monkeypatch.setattr(xlsform, target, refuse)
    login(client, make_user(Role.CSO_MANAGER, "BA"))
    english = _refusal(client, "en", _i18n_form(), "f.xlsx")
    _check_in_arabic(english, _refusal(client, "ar", _i18n_form(), "f.xlsx"), fragment)
    assert "pyxform" not in english  # told in the app's words, not quoted


def _other_form(settings=None) -> bytes:
    return _xlsx({
        "survey": [["type", "name", "label::English (en)", "constraint"],
                   ["select_one colours or_other", "colour", "Colour?"],
                   ["select_multiple colours or specify other", "fruits", "Fruits?"],
                   ["select_multiple colours", "tools", "Tools?", "count-selected(.) < 3"]],
        "choices": [["list_name", "name", "label::English (en)"],
                    ["colours", "red", "Red"], ["colours", "blue", "Blue"]],
        "settings": settings or [["form_id"], ["others"]],
    })


def test_or_other_expands_as_pyxform_does(app):
    from pyxform import xls2xform

    data = _other_form()
    definition = parse_xlsform(data)
    by_name = {q["name"]: q for q in definition["questions"]}
    assert [q["name"] for q in definition["questions"]] == [
        "colour", "colour_other", "fruits", "fruits_other", "tools"]
    assert [c["name"] for c in by_name["colour"]["choices"]] == ["red", "blue", "other"]
    assert by_name["colour"]["choices"][-1]["label"]["en"] == "Other"
    assert by_name["colour_other"]["type"] == "text"
    assert by_name["colour_other"]["label"]["en"] == "Specify other."
    assert by_name["fruits_other"]["relevant"] == "selected(${fruits}, 'other')"
    assert [c["name"] for c in by_name["tools"]["choices"]] == ["red", "blue"]
    # pyxform names the added question and choice the same way.
    xml = xls2xform.convert(xlsform=data, warnings=[], file_type=".xlsx").xform
    assert "<colour_other/>" in xml
    assert '"/data/fruits_other" type="string" relevant="selected(../fruits, \'other\')"' in xml
    with app.test_request_context():
        shown = logic.visible(definition, {"colour": "other", "fruits": ["red"]})
        assert shown["colour_other"] and not shown["fruits_other"]
        assert logic.validate(definition, {"colour": "other", "colour_other": "Green"}) == {}
        assert logic.clean(definition, {"colour": "red", "colour_other": "Green"}).get(
            "colour_other") is None
    again = parse_xlsform(export_xlsform(definition))
    assert _without_rows(again) == _without_rows(definition)


def test_add_none_option_adds_a_none_choice_as_pyxform_does(app):
    settings = [["form_id", "add_none_option"], ["others", "yes"]]
    definition = parse_xlsform(_other_form(settings))
    by_name = {q["name"]: q for q in definition["questions"]}
    assert [c["name"] for c in by_name["fruits"]["choices"]] == ["red", "blue", "other", "none"]
    assert [c["name"] for c in by_name["colour"]["choices"]] == ["red", "blue", "other"]
    assert by_name["fruits"]["constraint"] == "(.='none' or not(selected(., 'none')))"
    assert by_name["tools"]["constraint"] == \
        "count-selected(.) < 3 and (.='none' or not(selected(., 'none')))"
    with app.test_request_context():
        assert logic.validate(definition, {"fruits": ["none"], "tools": ["none"]}) == {}
        assert set(logic.validate(definition, {"fruits": ["red", "none"]})) == {"fruits"}
    again = parse_xlsform(export_xlsform(definition))
    assert _without_rows(again) == _without_rows(definition)
    with pytest.raises(XLSFormError) as refused:
        parse_xlsform(_other_form([["form_id", "add_none_option"], ["others", "maybe"]]))
    assert any("add_none_option" in m for m in refused.value.messages)


# --- Out of scope: refused, each under its own key, as "not supported by this app" --------

def _refusals(data, locale="en"):
    from flask_babel import force_locale

    with force_locale(locale), pytest.raises(XLSFormError) as caught:
        parse_xlsform(data)
    return caught.value.messages


def test_sms_submission_and_client_settings_are_out_of_scope():
    from bladi_cases.services.surveys.xlsform_rules import OUT_OF_SCOPE

    data = _small(
        [["type", "name", "label", "sms_field", "bind::saveIncomplete", "body::accuracy",
          "instance::odk:tag"],
         ["text", "a", "A", "AA", "true()", "1", "x"]],
        [["list_name", "name", "label", "sms_option"], ["yn", "yes", "Yes", "1"]],
        [["form_id", "sms_keyword", "submission_url", "public_key", "attribute::x"],
         ["f", "kw", "https://example.org/submission", "MIIB", "1"]])
    messages = _refusals(data)
    by_feature = {m.feature: m for m in messages}
    assert set(by_feature) == {"sms_field", "sms_option", "sms_keyword", "submission_url",
                               "public_key", "attribute", "custom-attribute"}, messages
    assert set(by_feature) <= OUT_OF_SCOPE
    assert "settings sheet, row 2, column “submission_url”: “submission_url” is not " \
           "supported by this app; remove it." in messages
    assert "survey sheet, row 2, column “body::accuracy”: “control::accuracy” is not " \
           "supported by this app; remove it." in messages
    assert "choices sheet, row 2, column “sms_option”: “sms_option” is not supported by " \
           "this app; remove it." in messages
    french = _refusals(data, "fr")
    assert "settings sheet, row 2, column “submission_url”" not in " ".join(french)
    assert any("n’est pas pris en charge par cette application" in m for m in french), french
    arabic = _refusals(data, "ar")
    assert any(m.startswith("الورقة settings، السطر 2، العمود “public_key”:")
               and "غير مدعوم في هذا التطبيق" in m for m in arabic), arabic


def test_the_phones_identifiers_are_out_of_scope_but_deviceid_is_kept():
    messages = _refusals(_small(
        [["type", "name", "label"], ["deviceid", "dev", ""], ["simserial", "sim", ""],
         ["subscriberid", "sub", ""], ["phonenumber", "phone", ""], ["uri:deviceid", "u", ""],
         ["get sim id", "sim2", ""], ["text", "a", "A"]], settings=[["form_id"], ["f"]]))
    assert sorted(m.feature for m in messages) == [
        "phonenumber", "simserial", "simserial", "subscriberid", "uri:deviceid"], messages
    assert "survey sheet, row 6, column “type”: “uri:deviceid” is not supported by this app; " \
           "remove it." in messages
    definition = parse_xlsform(_small([["type", "name", "label"], ["deviceid", "dev", ""],
                                       ["text", "a", "A"]], settings=[["form_id"], ["f"]]))
    assert definition["meta"] == [{"name": "dev", "type": "deviceid"}]


def test_forms_that_need_attached_files_are_out_of_scope(app):
    from bladi_cases.services import ValidationError
    from bladi_cases.services.surveys.surveys import _check_expressions

    messages = _refusals(_xlsx({
        "survey": [["type", "name", "label", "appearance"],
                   ["select_one_external city", "c", "City", ""],
                   ["select_one yn", "f", "Fruit", "search('fruits')"]],
        "choices": YN,
        "external_choices": [["list_name", "name", "label"], ["city", "a", "A"]],
        "settings": [["form_id"], ["f"]]}))
    assert {m.feature for m in messages} >= {"select_one_external", "sheet::external_choices",
                                             "search"}, messages
    assert "survey sheet, row 3, column “appearance”: “search('fruits')” is not supported by " \
           "this app; remove it." in messages
    definition = parse_xlsform(_small(
        [["type", "name", "label", "calculation"], ["text", "a", "A", ""],
         ["calculate", "p", "", "pulldata('fruits', 'name', 'name', ${a})"]],
        settings=[["form_id"], ["f"]]))
    with app.test_request_context(headers={"Accept-Language": "en"}), \
            pytest.raises(ValidationError) as caught:
        _check_expressions(definition)
    [message] = caught.value.errors["upload"]
    assert message.feature == "pulldata"
    assert message == "survey sheet, row 3, column “calculation”: “pulldata()” is not " \
                      "supported by this app; remove it."


def test_an_expression_that_cannot_be_evaluated_carries_a_key(app):
    from bladi_cases.services import ValidationError
    from bladi_cases.services.surveys.surveys import _check_expressions

    definition = parse_xlsform(_small(
        [["type", "name", "label", "calculation"], ["text", "a", "A", ""],
         ["calculate", "p", "", "nowhere(${a})"]], settings=[["form_id"], ["f"]]))
    with app.test_request_context(headers={"Accept-Language": "en"}), \
            pytest.raises(ValidationError) as caught:
        _check_expressions(definition)
    [message] = caught.value.errors["upload"]
    assert message.feature == "expression::calculation"
    assert "cannot be evaluated" in message



TRIGGERED = [["type", "name", "label", "calculation", "trigger", "read_only"],
             ["integer", "age", "Age", "", "", ""],
             ["integer", "years_left", "Years to 18", "18 - ${age}", "${age}", ""],
             ["text", "note_age", "Why", "", "${age}", ""],
             ["calculate", "stamp", "", "concat('age ', ${age})", "${age}", ""],
             ["integer", "other", "Other", "", "", ""],
             ["integer", "older", "Older", "${age} + 1", "", "yes"],
             ["text", "by_calc", "By", "concat('was ', ${older})", "${older}", "yes"]]


def triggered_form() -> bytes:
    """ODK's `trigger` (also used by tests/test_surveys.py)."""
    return _small(TRIGGERED, settings=[["form_id"], ["triggered"]])


def test_a_trigger_is_read_round_trips_and_is_refused_in_a_repeat():
    from bladi_cases.services.surveys.xlsform_rules import OUT_OF_SCOPE

    definition = parse_xlsform(triggered_form())
    by_name = {q["name"]: q for q in definition["questions"]}
    assert by_name["years_left"]["trigger"] == "${age}"
    assert by_name["years_left"]["trigger_calculation"] == "18 - ${age}"
    assert "calculation" not in by_name["years_left"]  # not recomputed from the answers
    assert by_name["note_age"]["trigger"] == "${age}" and \
        "trigger_calculation" not in by_name["note_age"]
    data = export_xlsform(definition)
    _pyxform_converts(data)
    assert _without_rows(parse_xlsform(data)) == _without_rows(definition)
    assert "trigger" not in OUT_OF_SCOPE
    bad = _refusals(_small(
        [["type", "name", "label", "calculation", "trigger"], ["integer", "a", "A", "", ""],
         ["integer", "b", "B", "", "${a} + 1"], ["integer", "c", "C", "", "${ghost}"],
         ["begin_repeat", "kids", "Kids", "", ""], ["integer", "d", "D", "1", "${a}"],
         ["end_repeat", "", "", "", ""]], settings=[["form_id"], ["f"]]))
    assert "survey sheet, row 3, column “trigger”: “${a} + 1” is not supported yet in this " \
           "column." in bad
    assert any("row 4: the trigger refers to an unknown question '${ghost}'" in m
               for m in bad), bad
    assert "survey sheet, row 6, column “trigger”: “${a}” is not supported yet in this " \
           "column." in bad


def test_fire_triggers_computes_only_when_the_triggering_answer_changes():
    from bladi_cases.services.surveys import logic

    definition = parse_xlsform(triggered_form())
    answers = {"age": "12", "years_left": "", "note_age": "typed", "other": "1"}
    logic.fire_triggers(definition, {}, answers)
    assert answers == {"age": "12", "years_left": "6", "note_age": "",
                       "stamp": "age 12", "other": "1", "by_calc": "was 13"}
    answers.update(years_left="7", note_age="kept", other="2")  # typed over; age unchanged
    logic.fire_triggers(definition, dict(answers, other="1"), answers)
    assert answers["years_left"] == "7" and answers["note_age"] == "kept"
    assert answers["stamp"] == "age 12"
    before = dict(answers)
    answers["age"] = "15"
    logic.fire_triggers(definition, before, answers)
    assert answers["years_left"] == "3" and answers["note_age"] == "" and \
        answers["stamp"] == "age 15" and answers["by_calc"] == "was 16"  # a calculation


def test_the_fill_page_shows_the_users_language_then_the_forms_default(client, make_user):
    from bladi_cases.extensions import db
    from bladi_cases.services.surveys import surveys as service

    survey_sheet = [["type", "name", "label::English (en)", "label::Kiswahili (sw)"],
                    ["select_one colour", "colour", "Colour", "Rangi"]]
    choices = [["list_name", "name", "label::English (en)", "label::Kiswahili (sw)"],
               ["colour", "red", "Red", "Nyekundu"], ["colour", "blue", "Blue", "Bluu"]]
    settings = [["form_title", "form_id", "default_language"], ["Rangi", "rangi", "sw"]]
    version = service.import_version(make_user(Role.ADMIN), _small(survey_sheet, choices,
                                                                   settings), None, publish=True)
    worker = make_user(Role.FIELD_WORKER, "BA")
    for lang, shown, hidden in (("fr", ["Rangi", "Nyekundu"], "Colour"),
                                ("en", ["Colour", "Red"], "Nyekundu")):
        worker.preferred_language = lang
        db.session.commit()
        login(client, worker)
        page = client.get(f"/surveys/{version.survey.uuid}/fill?page=0")
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and all(t in text for t in shown), (lang, text[-1500:])
        assert hidden not in text


# --- Languages, layout hints and formatted columns (issue 17) ------------------------------

def test_any_language_is_kept_by_code_and_round_trips():
    survey = [["type", "name", "label::English (en)", "label::Kiswahili (sw)",
               "label::Deutsch", "hint::Kiswahili (sw)", "required_message::Kiswahili (sw)",
               "required"],
              ["text", "jina", "Name", "Jina", "Name (de)", "Andika", "Lazima", "yes"],
              ["begin_group", "kundi", "Group", "Kundi", "", "", "", ""],
              ["integer", "namba", "", "Namba", "", "", "", ""],
              ["end_group", "", "", "", "", "", "", ""],
              ["begin_repeat", "watu", "", "Watu", "", "", "", ""],
              ["text", "mtu", "", "Mtu", "", "", "", ""],
              ["end_repeat", "", "", "", "", "", "", ""]]
    settings = [["form_title", "form_id", "default_language"], ["Fomu", "fomu", "Kiswahili (sw)"]]
    definition = parse_xlsform(_small(survey, settings=settings))
    question = definition["questions"][0]
    assert question["label"] == {"en": "Name", "sw": "Jina", "deutsch": "Name (de)"}
    assert question["hint"] == {"sw": "Andika"}
    assert definition["default_language"] == "sw" and definition["title"] == {"sw": "Fomu"}
    assert [g["label"] for g in definition["groups"]] == [{"en": "Group", "sw": "Kundi"},
                                                          {"sw": "Watu"}]
    data = export_xlsform(definition)
    _pyxform_converts(data)
    assert _without_rows(parse_xlsform(data)) == _without_rows(definition)


def test_a_column_without_a_code_is_matched_by_its_known_name():
    survey = [["type", "name", "label::العربية", "label::Français", "label::English"],
              ["text", "a", "الاسم", "Nom", "Name"]]
    definition = parse_xlsform(_small(survey, settings=[["form_id"], ["named"]]))
    assert definition["questions"][0]["label"] == {"ar": "الاسم", "fr": "Nom", "en": "Name"}
    assert "default_language" not in definition


def test_texts_fall_back_to_the_forms_default_language_then_english_then_any():
    from bladi_cases.models.common import in_language

    texts = {"en": "Name", "sw": "Jina"}
    assert in_language(texts, "fr", fallback="sw") == "Jina"
    assert in_language(texts, "fr") == "Name"
    assert in_language(texts, "en", fallback="sw") == "Name"
    assert in_language({"de": "Name (de)"}, "ar", "x", fallback="sw") == "Name (de)"
    assert in_language({}, "ar", "x", fallback="sw") == "x"
    definition = {"default_language": "sw", "questions": [
        {"name": "jina", "type": "text", "label": texts, "hint": {}, "required": True,
         "required_message": {"en": "Needed", "sw": "Lazima"}, "relevant": None,
         "constraint": None, "constraint_message": {}, "choices": [], "group": None}],
        "groups": [], "scales": []}  # fmt: skip
    assert logic.texts_in(definition, "ar")(texts) == "Jina"
    assert logic.validate(definition, {}, lang="ar") == {"jina": "Lazima"}
    assert logic.validate(definition, {}, lang="en") == {"jina": "Needed"}


def test_layout_hints_are_accepted_without_effect():
    survey = [["type", "name", "label", "appearance", "control::rows"],
              ["text", "notes", "Notes", "multiline", "4"],
              ["begin_group", "grid", "Grid", "table-list", ""],
              ["select_one yn", "q1", "Q1", "", ""],
              ["select_one yn", "q2", "Q2", "", ""],
              ["end_group", "", "", "", ""]]
    definition = parse_xlsform(_small(survey, YN, settings=[["form_id"], ["layout"]]))
    assert [q["name"] for q in definition["questions"]] == ["notes", "q1", "q2"]
    assert definition["groups"][0]["label"] == {"ar": "Grid", "fr": "Grid", "en": "Grid"}


def test_no_app_error_string_is_the_constraint_message_when_there_is_none():
    survey = [["type", "name", "label", "constraint", "constraint_message",
               "bind::jr:noAppErrorString"],
              ["integer", "a", "A", ". > 0", "", "Positive please"],
              ["integer", "b", "B", ". > 0", "More than zero", "Positive please"]]
    definition = parse_xlsform(_small(survey, settings=[["form_id"], ["aggregate"]]))
    a, b = definition["questions"]
    assert a["constraint_message"]["en"] == "Positive please"
    assert b["constraint_message"]["en"] == "More than zero"


def _formatted_sheet(rows: list[list[str]], empty_to: str, empty_rows: int = 1) -> bytes:
    """A survey sheet whose rows are "formatted" with empty cells out to `empty_to`."""
    from openpyxl.utils import column_index_from_string, get_column_letter

    from .bombs import workbook

    strings = sorted({text for row in rows for text in row})
    last = column_index_from_string(empty_to)
    body = [f'<dimension ref="A1:{empty_to}{max(len(rows), empty_rows)}"/><sheetData>']
    for number in range(1, max(len(rows), empty_rows) + 1):
        values = rows[number - 1] if number <= len(rows) else []
        cells = "".join(f'<c r="{get_column_letter(i + 1)}{number}" t="s"><v>'
                        f"{strings.index(text)}</v></c>" for i, text in enumerate(values))
        cells += "".join(f'<c r="{get_column_letter(i)}{number}"/>'
                         for i in range(len(values) + 1, last + 1))
        body.append(f'<row r="{number}">{cells}</row>')
    return workbook("".join(body) + "</sheetData>", strings=strings)


def test_empty_formatted_columns_do_not_count_towards_the_column_limit():
    data = _formatted_sheet([["type", "name", "label"], ["text", "q", "Q"]], "AMJ")
    assert [q["name"] for q in parse_xlsform(data, "formatted.xlsx")["questions"]] == ["q"]
    corpus = Path(__file__).parent / "data" / "xlsforms"
    for name in ("pyxform__bug_xl_date_ambiguous_v1.xlsx", "pyxform__flat_xlsform_test.xlsx"):
        try:
            parse_xlsform((corpus / name).read_bytes(), name)
        except XLSFormError as error:
            assert not any("columns are accepted" in m for m in error.messages), error.messages


def test_a_value_beyond_the_column_limit_is_still_refused():
    header = ["type", "name", "label", *[f"x{i}" for i in range(3, 201)], "late"]
    data = _formatted_sheet([header, ["text", "q", "Q"]], "GS")
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data, "wide.xlsx")
    assert any("reaches column GT" in m and "at most 200 columns" in m
               for m in caught.value.messages), caught.value.messages


def test_too_many_empty_cells_are_stopped_by_their_own_bound():
    from bladi_cases.services import inputs

    data = _formatted_sheet([["type", "name", "label"], ["text", "q", "Q"]], "AMJ",
                            empty_rows=inputs.MAX_EMPTY_CELLS // 1024 + 2)
    with pytest.raises(XLSFormError) as caught:
        parse_xlsform(data, "hostile.xlsx")
    assert any("empty formatted cells" in m for m in caught.value.messages)


def test_phone_number_is_text_with_pyxform_digits_only_constraint_and_hint(app):
    from pyxform.question_type_dictionary import QUESTION_TYPE_DICT

    data = _small([["type", "name", "label", "hint", "constraint"],
                   ["phone number", "tel", "Phone", "", ""],
                   ["phone number", "own", "Own", "Local number", "string-length(.) = 8"]],
                  settings=[["form_id"], ["phones"]])
    with app.test_request_context():
        definition = parse_xlsform(data)
        tel, own = definition["questions"]
        assert tel["type"] == "text"
        assert tel["constraint"] == QUESTION_TYPE_DICT["phone number"]["bind"]["constraint"]
        assert tel["constraint"] == "regex(., '^\\d*$')"
        assert tel["hint"]["en"] == "Enter numbers only."
        assert tel["hint"]["fr"] == "Saisissez uniquement des chiffres."
        assert set(tel["hint"]) == {"ar", "fr", "en"}
        # As in pyxform, the row's own constraint and hint replace the type's.
        assert own["constraint"] == "string-length(.) = 8"
        assert set(own["hint"].values()) == {"Local number"}
        assert logic.validate(definition, {"tel": "0612345678"}) == {}
        assert set(logic.validate(definition, {"tel": "+33 6 12"})) == {"tel"}
        assert set(logic.validate(definition, {"own": "1234567"})) == {"own"}
        exported = export_xlsform(definition)
    _pyxform_converts(exported)
    with app.test_request_context():
        again = parse_xlsform(exported)
    assert again["questions"][0]["constraint"] == tel["constraint"]
    assert again["questions"][0]["type"] == "text"


def test_the_trigger_type_is_acknowledge_and_stays_apart_from_the_trigger_column(app):
    data = _small([["type", "name", "label", "trigger", "calculation"],
                   ["integer", "age", "Age", "", ""],
                   ["trigger", "ok", "Confirm", "", ""],
                   ["acknowledge", "ok2", "Confirm again", "", ""],
                   ["integer", "next", "Next", "${age}", "${age} + 1"]],
                  settings=[["form_id"], ["triggers"]])
    with app.test_request_context():
        definition = parse_xlsform(data)
    by_name = {q["name"]: q for q in definition["questions"]}
    assert by_name["ok"]["type"] == by_name["ok2"]["type"] == "acknowledge"
    assert "trigger" not in by_name["ok"]  # the type is not the column
    assert by_name["next"]["trigger"] == "${age}"
    assert by_name["ok"] == {**by_name["ok2"], "name": "ok", "label": by_name["ok"]["label"],
                             "row": by_name["ok"]["row"]}


def test_a_question_whose_only_label_is_media_is_refused_for_the_media_alone(app):
    data = _small([["type", "name", "label", "image"],
                   ["note", "intro", "Welcome", ""],
                   ["note", "picture", "", "img.jpg"],
                   ["text", "empty", "", ""]],
                  settings=[["form_id"], ["media"]])
    with app.test_request_context():
        messages = _refusals(data)
    assert any("column “image”" in m and "media::image" in m for m in messages), messages
    assert not any("'picture' has no label" in m for m in messages), messages
    assert any("'empty' has no label" in m for m in messages), messages  # still refused
    from bladi_cases.services.surveys.xlsform_rules import OUT_OF_SCOPE

    media = [m for m in messages if getattr(m, "feature", None) == "media::image"]
    assert media and "media::image" in OUT_OF_SCOPE


# --- begin loop over LIST, expanded at import as pyxform's builder expands it ----------------

LOOP_CHOICES = [["list_name", "name", "label::English (en)", "label::French (fr)"],
                ["vehicles", "car", "Car", "Voiture"],
                ["vehicles", "moto", "Motorcycle", "Moto"],
                ["vehicles", "none", "None", "Aucun"]]  # fmt: skip


def _loop_form():
    return _small(
        [["type", "name", "label::English (en)", "label::French (fr)", "relevant", "constraint"],
         ["integer", "owners", "Owners", "Propriétaires", "", ""],
         ["begin loop over vehicles", "fleet", "Fleet", "Parc", "${owners} > 0", ""],
         ["integer", "total", "How many %(label)s?", "Combien de %(label)s ?", "", ""],
         ["integer", "working", "Working", "En marche", "", ". <= ../total"],
         ["text", "remark", "About %(name)s", "Sur %(name)s", "", ""],
         ["end loop", "", "", "", "", ""]],
        LOOP_CHOICES, [["form_id"], ["loops"]])  # fmt: skip


def test_a_loop_becomes_a_group_per_choice_as_pyxform_makes_it(app):
    from pyxform import xls2xform

    data = _loop_form()
    with app.test_request_context():
        definition = parse_xlsform(data)
    assert [(g["name"], g.get("parent"), g["label"]) for g in definition["groups"]] == [
        ("fleet", None, {"en": "Fleet", "fr": "Parc"}),
        ("car", "fleet", {"en": "Car", "fr": "Voiture"}),
        ("moto", "fleet", {"en": "Motorcycle", "fr": "Moto"}),  # "none" is skipped
    ]
    assert definition["groups"][0]["relevant"] == "${owners} > 0"
    by_name = {q["name"]: q for q in definition["questions"]}
    assert list(by_name) == ["owners", "car_total", "car_working", "car_remark", "moto_total",
                             "moto_working", "moto_remark"]
    assert by_name["car_total"]["label"] == {"en": "How many Car?", "fr": "Combien de Voiture ?"}
    assert by_name["moto_total"]["group"] == "moto"
    assert by_name["moto_remark"]["label"] == {"en": "About moto", "fr": "Sur moto"}
    # ../total, the sibling in the same choice's group, is that choice's question.
    assert by_name["moto_working"]["constraint"] == ". <= ${moto_total}"
    with app.test_request_context():
        shown = logic.visible(definition, {"owners": 0})
        assert not shown["car_total"] and not shown["moto_working"]
        answers = {"owners": 1, "car_total": 2, "car_working": 3, "moto_total": 2,
                   "moto_working": 1}
        assert set(logic.validate(definition, answers)) == {"car_working"}
    # pyxform makes the same groups, in the same order, with the questions inside.
    xml = xls2xform.convert(xlsform=data, warnings=[], file_type=".xlsx").xform
    assert "<fleet><car><total/><working/><remark/></car><moto><total/><working/>" \
           "<remark/></moto></fleet>" in xml


def test_a_loop_exports_as_its_groups_and_comes_back(app):
    with app.test_request_context():
        definition = parse_xlsform(_loop_form())
        data = export_xlsform(definition)
        _pyxform_converts(data)
        assert _without_rows(parse_xlsform(data)) == _without_rows(definition)
    types = [row[0] for row in load_workbook(BytesIO(data))["survey"].iter_rows(values_only=True)]
    assert not any("loop" in str(kind) for kind in types)


def test_a_loop_over_an_or_other_list_has_a_group_other_as_in_pyxform(app):
    from pyxform import xls2xform

    data = _small([["type", "name", "label"],
                   ["begin loop over vehicles", "fleet", "Fleet"],
                   ["integer", "total", "How many %(label)s?"],
                   ["end loop", "", ""],
                   ["select_one vehicles or_other", "main", "Main vehicle"]],
                  LOOP_CHOICES[:3], [["form_id"], ["loops"]])  # fmt: skip
    with app.test_request_context():
        definition = parse_xlsform(data)
    assert [g["name"] for g in definition["groups"]] == ["fleet", "car", "moto", "other"]
    assert "other_total" in {q["name"] for q in definition["questions"]}
    xml = xls2xform.convert(xlsform=data, warnings=[], file_type=".xlsx").xform
    assert "<other><total/></other>" in xml


@pytest.mark.parametrize("rows, expected", [
    ([["begin loop over vehicles", "fleet", "Fleet"], ["integer", "n", "N"]],
     "row 2: the loop “fleet” is never closed"),
    ([["integer", "n", "N"], ["end loop", "", ""]],
     "row 3: end loop without a matching begin loop"),
    ([["begin loop", "fleet", "Fleet"], ["integer", "n", "N"], ["end loop", "", ""]],
     "row 2, column “type”: a loop needs a choice list"),
    ([["begin loop over trucks", "fleet", "Fleet"], ["integer", "n", "N"], ["end loop", "", ""]],
     "row 2: the choice list 'trucks' is not on the choices sheet"),
    ([["integer", "car_n", "N"], ["begin loop over vehicles", "fleet", "Fleet"],
      ["integer", "n", "N"], ["end loop", "", ""]],  # n in the loop is car_n for "car"
     "row 4: the name 'car_n' is already used on row 2"),
])  # fmt: skip
def test_a_broken_loop_is_refused_with_its_row(app, rows, expected):
    data = _small([["type", "name", "label"], *rows], LOOP_CHOICES, [["form_id"], ["loops"]])
    with app.test_request_context():
        messages = _refusals(data)
    assert any(expected in m for m in messages), messages


def test_the_flat_setting_is_accepted_and_changes_nothing(app):
    survey = [["type", "name", "label", "relevant"],
              ["integer", "a", "A", ""],
              ["begin group", "g", "G", "${a} > 1"],
              ["text", "t", "T", "${a} < 5"],
              ["end group", "", "", ""]]  # fmt: skip
    with app.test_request_context():
        flat = parse_xlsform(_small(survey, settings=[["form_id", "flat"], ["f", "TRUE"]]))
        plain = parse_xlsform(_small(survey, settings=[["form_id"], ["f"]]))
        assert flat == plain
        # pyxform ANDs the group's relevance into its questions'; the app applies it so.
        assert logic.visible(flat, {"a": 3})["t"] and not logic.visible(flat, {"a": 1})["t"]


def test_loops_nest_as_in_pyxform(app):
    from pyxform import xls2xform

    data = _small([["type", "name", "label", "constraint"],
                   ["begin_loop over vehicles", "fleet", "Fleet", ""],
                   ["begin loop vehicles", "inner", "Inner", ""],  # pyxform's other spellings
                   ["integer", "total", "T", ""],
                   ["integer", "w", "W %(label)s", ". < ../total"],
                   ["end loop", "", "", ""],
                   ["end_loop", "", "", ""]],
                  LOOP_CHOICES, [["form_id"], ["nested"]])  # fmt: skip
    with app.test_request_context():
        definition = parse_xlsform(data)
        by_name = {q["name"]: q for q in definition["questions"]}
        assert list(by_name) == ["car_car_total", "car_car_w", "car_moto_total", "car_moto_w",
                                 "moto_car_total", "moto_car_w", "moto_moto_total",
                                 "moto_moto_w"]
        assert by_name["moto_car_w"]["constraint"] == ". < ${moto_car_total}"
        # The innermost loop's choice; a column without a language gets it in each language.
        assert by_name["moto_car_w"]["label"] == {"ar": "W Voiture", "fr": "W Voiture",
                                                  "en": "W Car"}
        assert by_name["moto_car_w"]["group"] == "moto_car"
        assert {g["name"]: g.get("parent") for g in definition["groups"]}["moto_car"] \
            == "moto_inner"
        errors = logic.validate(definition, {"car_car_total": 1, "car_car_w": 1,
                                             "moto_car_total": 5, "moto_car_w": 1})
        assert set(errors) == {"car_car_w"}
    xml = xls2xform.convert(xlsform=data, warnings=[], file_type=".xlsx").xform
    assert "<fleet><car><inner><car><total/><w/></car>" in xml

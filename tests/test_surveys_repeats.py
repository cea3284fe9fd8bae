"""Nested groups and repeats (issue 17): a household roster from import to export, without
JavaScript: entries by repeat_count or added by the worker, per-entry validation naming the
entry, position()/count()/sum() over entries, long-format export, XLSForm round trip."""

from __future__ import annotations

import io
import re
import uuid

import openpyxl
import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Role, SurveyResponse
from bladi_cases.services import ValidationError
from bladi_cases.services.surveys import logic
from bladi_cases.services.surveys import surveys as service
from bladi_cases.services.surveys.xlsform import XLSFormError, export_xlsform, parse_xlsform

from .conftest import get_file, login, text_of

HEADER = ["type", "name", "label::English (en)", "label::Arabic (ar)", "required", "relevant",
          "constraint", "calculation", "repeat_count"]
ROSTER = [
    ["integer", "household_size", "How many people live here?", "كم شخصا؟", "yes", "",
     ". >= 1 and . <= 10"],
    ["begin_group", "info", "Home", "المنزل", "", "${household_size} > 1"],
    ["text", "village", "Village", "القرية"],
    ["begin_group", "water", "Water", "الماء"],
    ["select_one yn", "has_tap", "A tap?", "صنبور؟"],
    ["end_group"],
    ["end_group"],
    ["begin_repeat", "members", "Household member", "فرد", "", "", "", "",
     "${household_size}"],
    ["text", "mname", "Name", "الاسم", "yes"],
    ["integer", "age", "Age of ${mname}", "العمر", "yes", "", ". < 120"],
    ["calculate", "num", "", "", "", "", "", "position(..)"],
    ["text", "school", "School", "المدرسة", "", "${age} < 18 and position(..) > 1"],
    ["end_repeat"],
    ["calculate", "total_age", "", "", "", "", "", "sum(${age})"],
    ["calculate", "n_members", "", "", "", "", "", "count(${members})"],
    ["begin_repeat", "siblings", "Sibling", "أخ"],
    ["text", "sname", "Sibling's name", "اسم الأخ", "yes"],
    ["end_repeat"],
    ["note", "done", "Members: ${n_members}", "الأفراد", "", "count(${members}) >= 3"],
]


def roster(rows=ROSTER, scales=None) -> bytes:
    book = openpyxl.Workbook()
    survey = book.active
    survey.title = "survey"
    for row in [HEADER, *rows]:
        survey.append(row)
    choices = book.create_sheet("choices")
    for row in [["list_name", "name", "label::English (en)", "label::Arabic (ar)"],
                ["yn", "yes", "Yes", "نعم"], ["yn", "no", "No", "لا"]]:
        choices.append(row)
    settings = book.create_sheet("settings")
    settings.append(["form_title", "form_id"])
    settings.append(["Household roster", "hh_roster"])
    if scales:
        sheet = book.create_sheet("scales")
        for row in scales:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def worker(client, make_user):
    user = make_user(Role.FIELD_WORKER, "BA")
    user.preferred_language = "en"
    db.session.commit()
    login(client, user)
    return user


def _url(survey, page):
    return f"/surveys/{survey.uuid}/fill?page={page}"


def _shown(response) -> str:
    return re.search(r'name="shown" value="([^"]*)"', response.get_data(as_text=True)).group(1)


def test_import_reads_nested_groups_and_repeats():
    definition = parse_xlsform(roster())
    groups = {g["name"]: g for g in definition["groups"]}
    assert groups["water"]["parent"] == "info" and "parent" not in groups["info"]
    assert groups["members"] == {"name": "members", "label": {"ar": "فرد",
                                 "en": "Household member"}, "relevant": None, "repeat": True,
                                 "repeat_count": "${household_size}"}
    assert groups["siblings"]["repeat"] and "repeat_count" not in groups["siblings"]
    by_name = {q["name"]: q for q in definition["questions"]}
    assert by_name["has_tap"]["group"] == "water" and by_name["village"]["group"] == "info"
    assert by_name["age"]["repeat"] == "members" and "repeat" not in by_name["total_age"]
    assert not service.works_offline(definition)  # the field app renders neither
    nested_only = {**definition, "groups": [g for g in definition["groups"]
                                            if not g.get("repeat")]}
    assert not service.works_offline(nested_only)


def test_refused_inside_a_repeat_and_as_scale_items():
    rows = [*ROSTER[:8], ["begin_repeat", "inner", "Inner", "د"], ["text", "x", "X", "س"],
            ["end_repeat"], *ROSTER[8:]]
    with pytest.raises(XLSFormError) as refused:
        parse_xlsform(roster(rows))
    assert any("row 10" in m and "“begin_repeat” inside the repeat “members”" in m
               for m in refused.value.messages), refused.value.messages
    with pytest.raises(XLSFormError) as refused:
        parse_xlsform(roster(scales=[["name", "items", "method"], ["s", "age", "sum"]]))
    assert any("scales sheet, row 2" in m and "“age” is inside the repeat “members”" in m
               for m in refused.value.messages), refused.value.messages


def test_relevance_of_an_outer_group_applies_to_its_nested_groups():
    definition = parse_xlsform(roster())
    one = logic.visible(definition, {"household_size": "1", "has_tap": "yes"})
    assert one["village"] is False and one["has_tap"] is False
    two = logic.visible(definition, {"household_size": "2", "has_tap": "yes"})
    assert two["village"] is True and two["has_tap"] is True
    assert logic.clean(definition, {"household_size": "1", "has_tap": "yes"}).get(
        "has_tap") is None
    pages = [p["name"] for p in logic.pages(definition)]
    assert pages[:3] == ["page_1", "info", "members"]  # the nested group is on its page


def test_position_count_and_sum_over_entries():
    definition = parse_xlsform(roster())
    answers = {"household_size": "3", "members": [
        {"mname": "A", "age": "40"}, {"mname": "B", "age": "9"}, {"mname": "C", "age": "10"}]}
    values = logic.effective(definition, answers)
    assert [e["num"] for e in values["members"]] == ["1", "2", "3"]
    assert values["total_age"] == "59" and values["n_members"] == "3"
    shown = logic.visible(definition, answers)
    # ${age} is the entry's own age; position(..) > 1 hides the first entry's question.
    assert [shown[f"members/{n}/school"] for n in (1, 2, 3)] == [False, True, True]
    assert shown["done"] is True
    fewer = logic.effective(definition, {**answers, "household_size": "2"})
    assert len(fewer["members"]) == 2 and fewer["n_members"] == "2"
    assert logic.visible(definition, {**answers, "household_size": "2"})["done"] is False


def test_fill_without_javascript_store_and_export(client, worker, make_user):
    version = service.import_version(make_user(Role.ADMIN), roster(), None, publish=True)
    survey = version.survey
    first = client.post(_url(survey, 0), data={"household_size": "3", "nav": "next",
                                               "shown": "household_size"})
    assert first.status_code == 302
    home = client.get(_url(survey, 1))
    assert 'data-group="water"' in home.get_data(as_text=True) and "Water" in text_of(home)
    assert client.post(_url(survey, 1), data={"village": "Tunis", "has_tap": "yes",
                                              "nav": "next", "shown": _shown(home)}
                       ).status_code == 302
    page = client.get(_url(survey, 2))
    html = page.get_data(as_text=True)
    assert page.status_code == 200, text_of(page)[-500:]
    assert 'name="members/count" value="3"' in html and "Household member 3" in html
    assert "Add an entry" not in html  # repeat_count sets the entries
    shown = _shown(page)
    assert "members/3/mname" in shown and "members/3/school" not in shown
    members = {"members/count": "3", "members/1/mname": "Amina", "members/1/age": "40",
               "members/2/mname": "", "members/2/age": "38",
               "members/3/mname": "Sami", "members/3/age": "10"}
    missing = client.post(_url(survey, 2), data={**members, "nav": "next", "shown": shown})
    assert missing.status_code == 422
    assert "Household member 2: This question must be answered." in text_of(missing)
    visibility = client.post(f"/surveys/{survey.uuid}/visibility", data=members).get_json()
    assert visibility["members/3/school"] is True and visibility["members/1/school"] is False
    members["members/2/mname"] = "Karim"
    revealed = client.post(_url(survey, 2), data={**members, "nav": "next", "shown": shown})
    # Sami (10) now has a school question: shown, not failed.
    assert revealed.status_code == 200 and "members/3/school" in _shown(revealed)
    assert "Age of Sami" in text_of(revealed)  # ${mname} is the entry's own name
    ok = client.post(_url(survey, 2), data={**members, "members/3/school": "Ecole 1",
                                            "nav": "next", "shown": _shown(revealed)})
    assert ok.status_code == 302, text_of(ok)[-300:]
    # Siblings: the worker adds and removes entries.
    for nav in ("add:siblings", "add:siblings", "remove:siblings"):
        count = _shown(client.get(_url(survey, 3))).count("siblings/")
        client.post(_url(survey, 3), data={"siblings/count": str(count), "nav": nav})
    page = client.get(_url(survey, 3))
    assert 'name="siblings/count" value="1"' in page.get_data(as_text=True)
    assert client.post(_url(survey, 3), data={"siblings/count": "1", "siblings/1/sname": "Lina",
                                              "nav": "next", "shown": _shown(page)}
                       ).status_code == 302
    note = client.get(_url(survey, 4))
    assert "Members: 3" in text_of(note)
    client.post(_url(survey, 4), data={"nav": "next", "shown": _shown(note)})
    review = client.get(_url(survey, 5))
    assert "Household member 3" in text_of(review) and "Ecole 1" in text_of(review)
    token = re.search(r'name="response_uuid" value="([^"]+)"',
                      review.get_data(as_text=True)).group(1)
    assert client.post(_url(survey, 5), data={"nav": "submit", "response_uuid": token}
                       ).status_code == 302
    stored = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(token))).one()
    # Text answers of entries are encrypted with the others; numbers stay plain.
    assert stored.answers["members"] == [{"age": 40}, {"age": 38}, {"age": 10}]
    assert b"Amina" not in (stored.text_answers_enc or b"")
    answers = service.response_answers(stored)
    assert answers["members"] == [
        {"mname": "Amina", "age": 40, "num": "1"}, {"mname": "Karim", "age": 38, "num": "2"},
        {"mname": "Sami", "age": 10, "num": "3", "school": "Ecole 1"}]
    assert answers["siblings"] == [{"sname": "Lina"}] and answers["total_age"] == "88"
    # Export: the main table, and one long-format sheet per repeat.
    xlsx = get_file(client, f"/surveys/{survey.uuid}/responses.xlsx")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.data))
    assert book.sheetnames == ["hh_roster", "members", "siblings"]
    main = list(book["hh_roster"].iter_rows(values_only=True))
    assert main[0][0] == "Response" and main[1][0] == token
    assert "Name" not in main[0]  # a repeat's questions are in its own sheet
    rows = list(book["members"].iter_rows(values_only=True))
    assert rows[0][:5] == ("Response", "Code", "Wave", "Entry", "Name")
    assert [r[3:5] for r in rows[1:]] == [(1, "Amina"), (2, "Karim"), (3, "Sami")]
    assert {r[0] for r in rows[1:]} == {token}
    csv_text = get_file(client, f"/surveys/{survey.uuid}/responses.csv?repeat=siblings"
                          ).data.decode("utf-8-sig")
    assert csv_text.splitlines()[1].endswith(",1,Lina") and token in csv_text
    assert get_file(client, f"/surveys/{survey.uuid}/responses.csv?repeat=nope").status_code == 404
    assert "responses.csv?repeat=siblings" in client.get(f"/surveys/{survey.uuid}"
                                                         ).get_data(as_text=True)


def test_validation_per_entry_in_the_service(make_user):
    version = service.import_version(make_user(Role.ADMIN), roster(), None, publish=True)
    worker = make_user(Role.FIELD_WORKER, "BA")
    answers = {"household_size": "2", "members": [{"mname": "A", "age": "400"}, {"age": "3"}]}
    with pytest.raises(ValidationError) as refused:
        service.submit(worker, version, None, None, answers, uuid.uuid4())
    assert refused.value.errors == {
        "members/1/age": ["Household member 1: This answer is not accepted."],
        "members/2/mname": ["Household member 2: This question must be answered."]}


def test_xlsform_round_trip_through_pyxform():
    definition = parse_xlsform(roster())
    exported = export_xlsform(definition)
    again = parse_xlsform(exported)  # pyxform converts it on the way
    strip = lambda d: [{k: v for k, v in q.items() if k != "row"} for q in d["questions"]]  # noqa: E731
    assert again["groups"] == definition["groups"] and strip(again) == strip(definition)
    from pyxform import xls2xform
    xml = xls2xform.convert(xlsform=exported, warnings=[], file_type=".xlsx").xform
    assert 'jr:count="' in xml and "<members" in xml


def test_entry_messages_in_arabic_and_french(app):
    from flask_babel import force_locale

    definition = parse_xlsform(roster())
    answers = {"household_size": "1", "members": [{"age": "3"}]}
    with app.test_request_context():
        with force_locale("fr"):
            fr = logic.validate(definition, answers, lang="fr")["members/1/mname"]
        with force_locale("ar"):
            ar = logic.validate(definition, answers, lang="ar")["members/1/mname"]
    assert fr.startswith("Household member 1 : ")  # the form has no French label
    assert ar.startswith("فرد 1: ") and "Household" not in ar


@pytest.mark.parametrize("count", ["2", "${household_size} - 1"])
def test_a_repeat_count_pyxform_computes_apart_is_read_and_written_back(count):
    rows = [list(row) for row in ROSTER]
    rows[7] = [*rows[7][:8], count]
    definition = parse_xlsform(roster(rows))  # pyxform's generated members_count: not refused
    assert next(g for g in definition["groups"] if g["name"] == "members")[
        "repeat_count"] == count
    assert len(logic.effective(definition, {"household_size": "3"})["members"]) == 2
    assert parse_xlsform(export_xlsform(definition))["groups"] == definition["groups"]


# A group inside the repeat: its relevance is read entry by entry, the entry as context.
IN_REPEAT = [
    ["integer", "household_size", "How many people live here?", "كم شخصا؟", "yes"],
    ["begin_repeat", "members", "Household member", "فرد", "", "", "", "",
     "${household_size}"],
    ["text", "mname", "Name", "الاسم", "yes"],
    ["integer", "age", "Age", "العمر", "yes"],
    ["begin_group", "schooling", "Schooling", "التمدرس", "", "${age} < 18"],
    ["text", "school", "School of ${mname}", "المدرسة", "yes"],
    ["begin_group", "grade_box", "Grade", "القسم", "", "position(..) > 1"],
    ["integer", "grade", "Grade", "القسم"],
    ["end_group"],
    ["end_group"],
    ["end_repeat"],
]


def test_a_group_inside_a_repeat_is_read_per_entry():
    definition = parse_xlsform(roster(IN_REPEAT))
    groups = {g["name"]: g for g in definition["groups"]}
    assert groups["schooling"]["parent"] == "members"
    assert groups["grade_box"]["parent"] == "schooling"
    by_name = {q["name"]: q for q in definition["questions"]}
    assert by_name["grade"]["group"] == "grade_box" and by_name["grade"]["repeat"] == "members"
    answers = {"household_size": "3", "members": [
        {"mname": "A", "age": "9", "school": "S1", "grade": "3"},
        {"mname": "B", "age": "40", "school": "x", "grade": "1"},
        {"mname": "C", "age": "10", "school": "S3", "grade": "4"}]}
    shown = logic.visible(definition, answers)
    assert [shown[f"members/{n}/school"] for n in (1, 2, 3)] == [True, False, True]
    # The nested group needs its own relevance (position(..) > 1) and its parent's.
    assert [shown[f"members/{n}/grade"] for n in (1, 2, 3)] == [False, False, True]
    values = logic.clean(definition, answers)
    assert values["members"][1].get("school") is None and values["members"][2]["grade"] == 4
    assert values["members"][0].get("grade") is None
    # Required inside a hidden group is not asked; inside a shown one it is.
    errors = logic.validate(definition, {"household_size": "2", "members": [
        {"mname": "A", "age": "50"}, {"mname": "B", "age": "5"}]})
    assert set(errors) == {"members/2/school"}, errors


def test_a_group_inside_a_repeat_without_javascript(client, worker, make_user):
    version = service.import_version(make_user(Role.ADMIN), roster(IN_REPEAT), None,
                                     publish=True)
    survey = version.survey
    assert client.post(_url(survey, 0), data={"household_size": "2", "nav": "next",
                                              "shown": "household_size"}).status_code == 302
    members = {"members/count": "2", "members/1/mname": "Amina", "members/1/age": "40",
               "members/2/mname": "Sami", "members/2/age": "10"}
    page = client.post(_url(survey, 1), data={**members, "nav": "next",
                                              "shown": _shown(client.get(_url(survey, 1)))})
    html = page.get_data(as_text=True)
    # Sami's schooling is revealed by his age on this page: shown, not failed.
    assert page.status_code == 200 and "members/2/school" in _shown(page)
    assert "members/1/school" not in _shown(page)
    entries = html.split('class="stack entry"')[1:]
    assert len(entries) == 2 and all('data-group="schooling"' in e for e in entries)
    assert re.search(r'data-group="schooling" hidden', entries[0])
    assert not re.search(r'data-group="schooling" hidden', entries[1])
    assert "School of Sami" in text_of(page)
    ok = client.post(_url(survey, 1), data={**members, "members/2/school": "Ecole",
                                            "members/2/grade": "4", "nav": "next",
                                            "shown": _shown(page)})
    assert ok.status_code == 302, text_of(ok)[-300:]
    review = client.get(_url(survey, 2))
    token = re.search(r'name="response_uuid" value="([^"]+)"',
                      review.get_data(as_text=True)).group(1)
    assert client.post(_url(survey, 2), data={"nav": "submit", "response_uuid": token}
                       ).status_code == 302
    stored = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(token))).one()
    assert service.response_answers(stored)["members"] == [
        {"mname": "Amina", "age": 40}, {"mname": "Sami", "age": 10, "school": "Ecole",
                                        "grade": 4}]
    xlsx = get_file(client, f"/surveys/{survey.uuid}/responses.xlsx")
    rows = list(openpyxl.load_workbook(io.BytesIO(xlsx.data))["members"].iter_rows(
        values_only=True))
    assert [r[3] for r in rows[1:]] == [1, 2] and "Ecole" in rows[2]


def test_a_group_inside_a_repeat_round_trips_through_pyxform():
    definition = parse_xlsform(roster(IN_REPEAT))
    exported = export_xlsform(definition)
    again = parse_xlsform(exported)
    strip = lambda d: [{k: v for k, v in q.items() if k != "row"} for q in d["questions"]]  # noqa: E731
    assert again["groups"] == definition["groups"] and strip(again) == strip(definition)
    from pyxform import xls2xform
    xml = xls2xform.convert(xlsform=exported, warnings=[], file_type=".xlsx").xform
    assert "<schooling>" in xml and "/data/members/schooling/grade_box/grade" in xml


def test_or_other_in_a_repeat_without_javascript(client, worker, make_user):
    rows = [IN_REPEAT[0], IN_REPEAT[1], IN_REPEAT[2],
            ["select_one yn or_other", "tap", "Water from?", "الماء؟", "yes"], ["end_repeat"]]
    version = service.import_version(make_user(Role.ADMIN), roster(rows), None, publish=True)
    survey = version.survey
    client.post(_url(survey, 0), data={"household_size": "1", "nav": "next",
                                       "shown": "household_size"})
    data = {"members/count": "1", "members/1/mname": "Amina", "members/1/tap": "other"}
    page = client.post(_url(survey, 1), data={**data, "nav": "next",
                                              "shown": _shown(client.get(_url(survey, 1)))})
    assert page.status_code == 200 and "members/1/tap_other" in _shown(page)
    assert 'value="other"' in page.get_data(as_text=True) and "Specify other." in text_of(page)
    ok = client.post(_url(survey, 1), data={**data, "members/1/tap_other": "A well",
                                            "nav": "next", "shown": _shown(page)})
    assert ok.status_code == 302, text_of(ok)[-300:]
    review = client.get(_url(survey, 2))
    token = re.search(r'name="response_uuid" value="([^"]+)"',
                      review.get_data(as_text=True)).group(1)
    client.post(_url(survey, 2), data={"nav": "submit", "response_uuid": token})
    stored = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(token))).one()
    assert service.response_answers(stored)["members"] == [
        {"mname": "Amina", "tap": "other", "tap_other": "A well"}]
    xlsx = get_file(client, f"/surveys/{survey.uuid}/responses.xlsx")
    rows = list(openpyxl.load_workbook(io.BytesIO(xlsx.data))["members"].iter_rows(
        values_only=True))
    assert "A well" in rows[1] and "Specify other." in rows[0]

"""Surveys through the pages: import and versions, filling page by page with skip logic,
review and retry-safe submission, consent and waves, scores, exports."""

from __future__ import annotations

import io
import re
import uuid

import openpyxl
import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Role, Survey, SurveyResponse, SurveyVersion
from bladi_cases.sample_survey import FORM_ID, workbook_bytes
from bladi_cases.services import ValidationError
from bladi_cases.services.retries import RetryConflict
from bladi_cases.services.surveys import surveys as service

from .conftest import follow_job, get_file, login, statements_of, text_of


def _sample() -> Survey:
    return db.session.scalars(sa.select(Survey).where(
        Survey.code == FORM_ID, Survey.organization_id.is_(None))).one()


def _count(model, *where):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@pytest.fixture
def worker(client, make_user):
    user = make_user(Role.FIELD_WORKER, "BA")
    login(client, user)
    return user


def _fill_url(survey, youth=None, wave=None, page=None):
    url = f"/surveys/{survey.uuid}/fill"
    params = []
    if youth is not None:
        params += [f"beneficiary={youth.uuid}", f"wave={wave}"]
    if page is not None:
        params.append(f"page={page}")
    return url + ("?" + "&".join(params) if params else "")


GOOD_PAGES = [
    {"situation": "working", "has_job": "yes", "job_hours": "40", "activities": ["sport"]},
    {"w1": "4", "w2": "2", "w3": "5", "w4": "3", "w5": "1"},
    {"trust_staff": "5", "comments": "شكرا"},
]


def test_the_sample_survey_is_loaded_and_published(app):
    survey = _sample()
    assert survey.current is not None and survey.organization_id is None
    assert survey.title["ar"] and survey.title["fr"]
    assert [s["name"] for s in survey.current.definition["scales"]] == ["wellbeing"]


def test_filling_page_by_page_with_review_and_scores(client, worker, make_beneficiary):
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    survey = _sample()
    first = client.get(_fill_url(survey, youth, "baseline"))
    assert first.status_code == 200 and "ماذا تفعل حاليًا" in text_of(first)
    # A constraint message in Arabic, next to the field; nothing moves on.
    bad = client.post(_fill_url(survey, youth, "baseline", 0),
                      data={**GOOD_PAGES[0], "job_hours": "90", "nav": "next",
                            "shown": "situation has_job job_hours activities"})
    assert bad.status_code == 422 and "بين 1 و80 ساعة" in text_of(bad)
    for page, answers in enumerate(GOOD_PAGES):
        shown = " ".join(answers)
        response = client.post(_fill_url(survey, youth, "baseline", page),
                               data={**answers, "nav": "next", "shown": shown})
        assert response.status_code == 302, text_of(response)[-500:]
    review = client.get(_fill_url(survey, youth, "baseline", 3))
    assert review.status_code == 200 and "شكرا" in text_of(review)
    token = re.search(r'name="response_uuid" value="([^"]+)"',
                      review.get_data(as_text=True)).group(1)
    sent = client.post(_fill_url(survey, youth, "baseline", 3),
                       data={"nav": "submit", "response_uuid": token})
    assert sent.status_code == 302
    response = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(token))).one()
    # Hand computation: 4 + (6-2) + 5 + 3 + (6-1) = 21.
    assert response.scores == {"wellbeing": 21}
    assert response.answers["job_hours"] == 40 and response.answers["activities"] == ["sport"]
    # One baseline per youth and survey.
    again = client.get(_fill_url(survey, youth, "baseline"))
    assert again.status_code == 302


def test_back_keeps_answers_and_hidden_questions_are_not_required(client, worker,
                                                                  make_beneficiary):
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    survey = _sample()
    # A student: has_job and job_hours are hidden, so not required.
    ok = client.post(_fill_url(survey, youth, "midline", 0),
                     data={"situation": "studying", "nav": "next",
                           "shown": "situation activities"})
    assert ok.status_code == 302
    client.post(_fill_url(survey, youth, "midline", 1), data={"w1": "3", "nav": "back"})
    page = client.get(_fill_url(survey, youth, "midline", 1)).get_data(as_text=True)
    assert 'name="w1" value="3" checked' in page


def test_same_page_reveal_without_javascript(client, worker, make_beneficiary):
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    survey = _sample()
    # job_hours was not on screen (has_job unanswered); answering 'yes' reveals it: the
    # same page comes back with it instead of moving on.
    response = client.post(_fill_url(survey, youth, "follow_up", 0), data={
        "situation": "working", "has_job": "yes", "nav": "next",
        "shown": "situation has_job activities"})
    assert response.status_code in (200, 422)
    assert 'data-question="job_hours"' in response.get_data(as_text=True)


def test_revealed_required_question_is_shown_not_failed(client, worker, make_beneficiary):
    """Without JavaScript, a required question revealed on the same page is not failed
    before the worker has seen it: the page comes back with a notice, then it is checked."""
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    survey = _sample()
    job_hours = next(q for q in survey.current.definition["questions"]
                     if q["name"] == "job_hours")
    assert job_hours["required"]
    url = _fill_url(survey, youth, "follow_up", 0)
    first = client.post(url, data={"situation": "working", "has_job": "yes",
                                   "activities": ["sport"], "nav": "next",
                                   "shown": "situation has_job activities"})
    page = first.get_data(as_text=True)
    assert first.status_code == 200
    assert "has-error" not in page and 'class="flash flash-info"' in page
    assert re.search(r'data-question="job_hours"(?! hidden)>', page)
    assert 'name="shown" value="situation has_job job_hours activities"' in page
    # Seen now: left empty, it is required.
    second = client.post(url, data={"situation": "working", "has_job": "yes",
                                    "activities": ["sport"], "nav": "next",
                                    "shown": "situation has_job job_hours activities"})
    assert second.status_code == 422 and 'id="err-job_hours"' in second.get_data(as_text=True)
    third = client.post(url, data={"situation": "working", "has_job": "yes", "job_hours": "20",
                                   "activities": ["sport"], "nav": "next",
                                   "shown": "situation has_job job_hours activities"})
    assert third.status_code == 302


def test_resubmitting_the_same_uuid_never_duplicates(worker, make_beneficiary):
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    version = _sample().current
    answers = {k: v for page in GOOD_PAGES for k, v in page.items()}
    key = uuid.uuid4()
    first, created = service.submit(worker, version, youth, "endline", answers, key)
    again, created_again = service.submit(worker, version, youth, "endline", answers, key)
    assert created and not created_again and first.id == again.id
    assert _count(SurveyResponse, SurveyResponse.uuid == key) == 1
    with pytest.raises(RetryConflict):
        service.submit(worker, version, youth, "endline", {**answers, "w1": "1"}, key)


def test_consent_and_wave_rules(client, worker, make_beneficiary):
    survey = _sample()
    no_consent = make_beneficiary("BA", consent_scopes=["participation"])
    assert client.get(_fill_url(survey, no_consent, "baseline")).status_code == 302
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    assert client.get(_fill_url(survey, youth, "sometime")).status_code == 302
    with pytest.raises(ValidationError):
        service.check_can_fill(survey.current, None, "baseline")


def test_anonymous_community_survey(client, worker):
    survey = _sample()
    for page, answers in enumerate(GOOD_PAGES):
        client.post(_fill_url(survey, page=page), data={**answers, "nav": "next",
                                                        "shown": " ".join(answers)})
    review = client.get(_fill_url(survey, page=3))
    token = re.search(r'name="response_uuid" value="([^"]+)"',
                      review.get_data(as_text=True)).group(1)
    client.post(_fill_url(survey, page=3), data={"nav": "submit", "response_uuid": token})
    response = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(token))).one()
    assert response.beneficiary_id is None and response.wave is None


def test_another_cso_cannot_survey_or_read_responses(app, client, make_user, make_beneficiary):
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    survey = _sample()
    login(client, make_user(Role.FIELD_WORKER, "ACEC"))
    assert client.get(_fill_url(survey, youth, "baseline")).status_code == 404
    assert client.post(f"/surveys/{survey.uuid}/visibility?beneficiary={youth.uuid}"
                       "&wave=baseline", data={}).status_code == 404


def test_visibility_endpoint(client, worker, make_beneficiary):
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    survey = _sample()
    response = client.post(f"/surveys/{survey.uuid}/visibility?beneficiary={youth.uuid}"
                           "&wave=baseline", data={"situation": "studying"})
    assert response.get_json()["has_job"] is False
    response = client.post(f"/surveys/{survey.uuid}/visibility?beneficiary={youth.uuid}"
                           "&wave=baseline", data={"situation": "working", "has_job": "yes"})
    assert response.get_json()["job_hours"] is True


def test_import_versions_and_publish(client, make_user):
    login(client, make_user(Role.ADMIN))
    survey = _sample()
    before = len(survey.versions)
    response = client.post("/surveys/import", data={"upload": (io.BytesIO(workbook_bytes()),
                                                               "form.xlsx")},
                           content_type="multipart/form-data")
    assert 'data-status="done"' in follow_job(client, response).get_data(as_text=True)
    db.session.refresh(survey)
    draft = survey.versions[0]
    assert len(survey.versions) == before + 1 and draft.published_at is None
    assert survey.current.number == before, "the published version stays current"
    client.post(f"/surveys/versions/{draft.uuid}/publish")
    db.session.refresh(survey)
    assert survey.current.number == before + 1
    exported = client.get(f"/surveys/versions/{draft.uuid}/xlsform")
    assert openpyxl.load_workbook(io.BytesIO(exported.data))["survey"].max_row > 10


def test_bad_xlsform_is_refused_with_the_row(client, make_user):
    login(client, make_user(Role.REVIEWER))
    book = openpyxl.Workbook()
    book.active.title = "settings"
    book.active.append(["form_id"])
    book.active.append(["broken"])
    buffer = io.BytesIO()
    book.save(buffer)
    before = _count(SurveyVersion)
    response = client.post("/surveys/import", data={"upload": (io.BytesIO(buffer.getvalue()),
                                                               "broken.xlsx")},
                           content_type="multipart/form-data")
    page = follow_job(client, response)
    assert 'data-status="failed"' in page.get_data(as_text=True) and "survey" in text_of(page)
    assert _count(SurveyVersion) == before
    not_xlsx = follow_job(client, client.post(
        "/surveys/import", data={"upload": (io.BytesIO(b"hello"), "a.xlsx")},
        content_type="multipart/form-data"))
    assert 'data-status="failed"' in not_xlsx.get_data(as_text=True)
    assert _count(SurveyVersion) == before


def test_manager_imports_for_own_cso_field_worker_cannot(client, make_user):
    login(client, make_user(Role.FIELD_WORKER, "BA"))
    assert client.get("/surveys/import").status_code == 403
    manager = make_user(Role.CSO_MANAGER, "BA")
    login(client, manager)
    follow_job(client, client.post("/surveys/import", data={
        "upload": (io.BytesIO(workbook_bytes()), "f.xlsx")}, content_type="multipart/form-data"))
    own = db.session.scalars(sa.select(Survey).where(
        Survey.organization_id == manager.organization_id)).one()
    assert own.code == FORM_ID
    program_wide = _sample()
    version = program_wide.versions[0]
    assert client.post(f"/surveys/versions/{version.uuid}/publish").status_code == 403


def test_a_csos_survey_is_published_by_its_managers_only(client, make_user):
    owner = make_user(Role.CSO_MANAGER, "BA")
    version = service.import_version(owner, workbook_bytes(), owner.organization)
    db.session.commit()
    publish_url = f"/surveys/versions/{version.uuid}/publish"
    for role in (Role.REVIEWER, Role.ADMIN):
        login(client, make_user(role))
        page = client.get(f"/surveys/{version.survey.uuid}")
        assert page.status_code == 200 and publish_url not in page.get_data(as_text=True)
        with pytest.raises(PermissionError):
            service.publish_version(make_user(role), version)
    db.session.rollback()
    assert version.published_at is None
    login(client, owner)
    assert publish_url in client.get(f"/surveys/{version.survey.uuid}").get_data(as_text=True)
    service.publish_version(owner, version)
    assert version.published_at is not None


def test_export_in_french_and_scores_on_the_youth_page(client, worker, make_beneficiary):
    youth = make_beneficiary("BA", consent_scopes=["participation", "surveys"])
    version = _sample().current
    answers = {k: v for page in GOOD_PAGES for k, v in page.items()}
    service.submit(worker, version, youth, "baseline", answers, uuid.uuid4())
    service.submit(worker, version, youth, "endline", {**answers, "w1": "5"}, uuid.uuid4())
    db.session.commit()
    page = text_of(client.get(f"/beneficiaries/{youth.uuid}"))
    assert "21" in page and "22" in page and "+1" in page  # endline 22 - baseline 21
    csv_file = get_file(client, f"/surveys/{_sample().uuid}/responses.csv?lang=fr")
    text = csv_file.data.decode("utf-8-sig")
    assert "Que fais-tu actuellement" in text and "Je travaille" in text and youth.code in text
    xlsx = get_file(client, f"/surveys/{_sample().uuid}/responses.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.data)).active
    assert sheet.max_row >= 3


# --- Calculations, defaults, metadata and the new types, end to end (issue 17) -----------

def test_calculations_and_new_types_from_import_to_export(client, worker, make_user):
    from bladi_cases.services.field import data as field_data

    from .test_surveys_xlsform import features_form

    version = service.import_version(make_user(Role.ADMIN), features_form(), None,
                                     publish=True)
    worker.preferred_language = "en"
    db.session.commit()
    survey = version.survey
    url = _fill_url(survey, page=0)
    first = client.get(url)
    page = first.get_data(as_text=True)
    assert first.status_code == 200 and 'name="adults" value="2"' in page  # the default
    assert 'data-question="total"' not in page  # a calculate question is not shown
    assert 'type="time"' in page and 'type="datetime-local"' in page
    assert 'min="0" max="10" step="2"' in page and 'value="OK"' in page
    names = "adults children shown_total why wake visit score ok"
    bad = client.post(url, data={"adults": "4", "children": "3", "shown_total": "99",
                                 "why": "", "wake": "25:00", "visit": "2025-01-02T10:30",
                                 "score": "3", "nav": "next", "shown": names})
    text = text_of(bad)
    assert bad.status_code == 422
    assert "Say why" in text  # required because total = 7 > 5, with its own message
    assert "Why 7 people?" in text and "Enter a time as HH:MM." in text
    assert "Enter a number from 0 to 10, in steps of 2." in text
    assert 'id="q-shown_total" value="7" readonly' in bad.get_data(as_text=True)
    good = client.post(url, data={"adults": "4", "children": "3", "shown_total": "99",
                                  "why": "<b>big</b>", "wake": "06:30",
                                  "visit": "2025-01-02T10:30", "score": "4", "ok": "OK",
                                  "nav": "next", "shown": names})
    assert good.status_code == 302, text_of(good)[-400:]
    review = client.get(_fill_url(survey, page=1))
    html = review.get_data(as_text=True)
    assert "I agree (&lt;b&gt;big&lt;/b&gt;)" in html and "<b>big</b>" not in html
    token = re.search(r'name="response_uuid" value="([^"]+)"', html).group(1)
    assert client.post(_fill_url(survey, page=1),
                       data={"nav": "submit", "response_uuid": token}).status_code == 302
    stored = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(token))).one()
    answers = service.response_answers(stored)
    assert answers["total"] == "7" and answers["shown_total"] == 7 and answers["score"] == 4
    assert answers["wake"] == "06:30" and answers["ok"] == "OK"
    assert answers["username"] == worker.email and answers["deviceid"] == "web"
    assert answers["today"] == stored.submitted_on.isoformat()
    assert answers["start"] <= answers["end"] and "T" in answers["start"]
    csv_text = get_file(client, f"/surveys/{survey.uuid}/responses.csv").data.decode("utf-8-sig")
    header = csv_text.splitlines()[0]
    assert "total" in header and "start" in header and "deviceid" in header
    assert worker.email in csv_text and "06:30" in csv_text
    # The offline field app cannot compute these: the survey is filled online only.
    offline = [s["survey"] for s in field_data.fillable_surveys(worker, "en")]
    assert FORM_ID in offline and "features" not in offline


def test_cascading_selects_on_one_page_without_javascript(client, worker, make_user):
    from .test_surveys_xlsform import cascade_form

    version = service.import_version(make_user(Role.ADMIN), cascade_form(), None, publish=True)
    db.session.commit()
    survey = version.survey
    url = _fill_url(survey, page=0)
    first = client.get(url).get_data(as_text=True)
    assert 'value="a1"' not in first, "no county yet: no sub-county to offer"
    # Choosing the county changes the sub-counties offered on this page: shown, not failed.
    again = client.post(url, data={"county": "a", "nav": "next", "shown": "county sub"})
    page = again.get_data(as_text=True)
    assert again.status_code == 200 and "has-error" not in page
    assert 'value="a1"' in page and 'value="a2"' in page and 'value="b1"' not in page
    wrong = client.post(url, data={"county": "a", "sub": "b1", "nav": "next",
                                   "shown": "county sub"})
    assert wrong.status_code == 422 and 'id="err-sub"' in wrong.get_data(as_text=True)
    right = client.post(url, data={"county": "a", "sub": "a2", "nav": "next",
                                   "shown": "county sub"})
    assert right.status_code == 302
    review = client.get(_fill_url(survey, page=1)).get_data(as_text=True)
    token = re.search(r'name="response_uuid" value="([^"]+)"', review).group(1)
    client.post(_fill_url(survey, page=1), data={"nav": "submit", "response_uuid": token})
    stored = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(token))).one()
    assert stored.answers == {"county": "a", "sub": "a2"}
    csv_text = get_file(client, f"/surveys/{survey.uuid}/responses.csv").data.decode("utf-8-sig")
    assert "A two" in csv_text


def test_a_trigger_recomputes_only_when_its_answer_changes(client, worker, make_user):
    from .test_surveys_xlsform import triggered_form

    version = service.import_version(make_user(Role.ADMIN), triggered_form(), None,
                                     publish=True)
    url = _fill_url(version.survey, page=0)
    names = "age years_left note_age other older by_calc"

    def post(**values):
        response = client.post(url, data={**values, "nav": "next", "shown": names})
        assert response.status_code == 302, text_of(response)[-400:]
        draft = service.draft_for(worker, version, None, None)
        return service.draft_answers(draft)

    first = post(age="12", years_left="", note_age="typed", other="1")
    assert first["years_left"] == "6" and first["note_age"] == "" and first["stamp"] == "age 12"
    kept = post(age="12", years_left="9", note_age="mine", other="2")  # age did not change
    assert kept["years_left"] == "9" and kept["note_age"] == "mine" and kept["other"] == "2"
    again = post(age="15", years_left="9", note_age="mine", other="2")
    assert again["years_left"] == "3" and again["note_age"] == "" and again["stamp"] == "age 15"
    review = client.get(_fill_url(version.survey, page=1))
    token = re.search(r'name="response_uuid" value="([^"]+)"',
                      review.get_data(as_text=True)).group(1)
    assert client.post(_fill_url(version.survey, page=1),
                       data={"nav": "submit", "response_uuid": token}).status_code == 302
    stored = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(token))).one()
    answers = service.response_answers(stored)
    assert answers["years_left"] == 3 and answers["stamp"] == "age 15"
    assert answers["by_calc"] == "was 16"


def test_phone_number_and_trigger_types_fill_without_javascript(client, worker, make_user):
    from .test_surveys_xlsform import _small

    form = _small([["type", "name", "label"], ["phone number", "tel", "Phone"],
                   ["trigger", "ok", "I confirm"]], settings=[["form_id"], ["phone_form"]])
    version = service.import_version(make_user(Role.ADMIN), form, None, publish=True)
    url = _fill_url(version.survey, page=0)
    page = text_of(client.get(url))
    assert "أدخل أرقامًا فقط." in page and "I confirm" in page  # the hint, in the UI language
    refused = client.post(url, data={"tel": "+33 6", "ok": "OK", "nav": "next",
                                     "shown": "tel ok"})
    assert refused.status_code == 422
    accepted = client.post(url, data={"tel": "0612345678", "ok": "OK", "nav": "next",
                                      "shown": "tel ok"})
    assert accepted.status_code == 302, text_of(accepted)[-400:]
    draft = service.draft_for(worker, version, None, None)
    assert service.draft_answers(draft)["tel"] == "0612345678"


def test_the_survey_list_names_each_current_version_in_one_statement(client, make_user,
                                                                     add_survey):
    """The list of surveys says each one's current version (the newest published, not a
    newer draft) or that none is published, in one statement however many surveys there
    are; another CSO's survey is not listed."""
    login(client, make_user(Role.CSO_MANAGER, "BA"))

    def listed():
        html, sent = statements_of(lambda: text_of(client.get("/surveys/")))
        return html, len(sent)

    _html, statements = listed()
    add_survey("second_survey", None, True, True, False)
    add_survey("own_survey", "BA", True)
    add_survey("drafts_survey", None, False)
    add_survey("their_survey", "ACEC", True)
    html, more = listed()
    assert more == statements
    for shown in ("second_survey · النسخة 2", "own_survey · النسخة 1",
                  "drafts_survey · غير منشور"):
        assert shown in html, shown
    assert "their_survey" not in html

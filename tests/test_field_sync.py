"""The batch sync of the offline field app: each record type stored, already stored,
in conflict or rejected with its reason; savepoints per record; retries after a cut
connection store each record exactly once; a registration named later in its batch."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import (
    ActivitySession,
    Attendance,
    AuditEntry,
    Beneficiary,
    CaseNote,
    Role,
    Survey,
    SurveyResponse,
)
from bladi_cases.sample_survey import FORM_ID, workbook_bytes
from bladi_cases.services.field import sync as sync_service
from bladi_cases.services.surveys import surveys as survey_service

from .conftest import login

TODAY = date.today()
ANSWERS = {"situation": "working", "has_job": "yes", "job_hours": "40",
           "activities": ["sport"], "w1": "4", "w2": "2", "w3": "5", "w4": "3", "w5": "1",
           "trust_staff": "5", "comments": "شكرا"}


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _survey_version():
    survey = db.session.scalars(sa.select(Survey).where(
        Survey.code == FORM_ID, Survey.organization_id.is_(None))).one()
    return survey.current


def _send(client, *records, status=200):
    response = client.post("/api/v1/sync", json={"records": list(records)})
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["results"] if status == 200 else response.get_json()


def _one(client, record) -> dict:
    [result] = _send(client, record)
    assert result["uuid"] == (record.get("uuid") if isinstance(record, dict) else None)
    return result


def session_record(field, key=None, **data) -> dict:
    values = {"activity": str(field["activity"].uuid), "date": TODAY.isoformat(),
              "duration_minutes": 60, "attendance": {str(field["youth"].uuid): "present"}}
    values.update(data)
    return {"uuid": key or str(uuid.uuid4()), "type": "session", "base_version": None,
            "data": values}


def registration_record(key=None, **data) -> dict:
    values = {"first_name_ar": "سلمى", "last_name_ar": "الحمروني", "sex": "female",
              "birth_date": "2004-03-02", "governorate_code": "TN-61",
              "setting_kind": "youth_centre", "consent_given_by": "self",
              "consent_method": "signed_form", "consent_scopes": ["participation", "surveys"],
              "first_contact_date": TODAY.isoformat()}
    values.update(data)
    return {"uuid": key or str(uuid.uuid4()), "type": "registration", "data": values}


def survey_record(survey_version, youth=None, key=None, **data) -> dict:
    values = {"version": str(survey_version.uuid), "youth": str(youth.uuid) if youth else None,
              "wave": "baseline" if youth else None, "answers": ANSWERS}
    values.update(data)
    return {"uuid": key or str(uuid.uuid4()), "type": "survey_response", "data": values}


def note_record(case, key=None, **data) -> dict:
    values = {"case": str(case.uuid), "kind": "phone_call", "text": "اتصال مع الشاب",
              "due_date": (TODAY + timedelta(days=3)).isoformat(), "confidential": False}
    values.update(data)
    return {"uuid": key or str(uuid.uuid4()), "type": "case_note", "data": values}


def follow_up_record(note, done_on: date | None = None) -> dict:
    done_on = done_on or TODAY
    return {"uuid": str(uuid.uuid4()), "type": "follow_up",
            "data": {"note": str(note.uuid), "done_on": done_on.isoformat()}}


# --- Sessions ----------------------------------------------------------------------------

def test_session_stored_then_already_stored_then_conflict(field):
    client, record = field["client"], session_record(field)
    assert _one(client, record)["status"] == "stored"
    key = uuid.UUID(record["uuid"])
    stored = db.session.scalars(sa.select(ActivitySession).where(
        ActivitySession.uuid == key)).one()
    assert stored.duration_minutes == 60 and stored.facilitator_id == field["worker"].id
    assert _count(AuditEntry, AuditEntry.action == "session_recorded",
                  AuditEntry.object_id == str(key)) == 1
    again = _one(client, record)
    assert again == {"uuid": record["uuid"], "status": "already_stored", "reason": None,
                     "field_errors": None, "id": record["uuid"]}
    changed = session_record(field, key=record["uuid"],
                             attendance={str(field["youth"].uuid): "absent"})
    conflict = _one(client, changed)
    assert conflict["status"] == "conflict" and conflict["reason"]
    assert _count(ActivitySession, ActivitySession.uuid == key) == 1
    assert db.session.scalars(sa.select(Attendance.status).where(
        Attendance.session_id == stored.id)).all() == ["present"]


def test_reasons_are_in_the_users_language(field):
    field["worker"].preferred_language = "ar"
    db.session.commit()
    result = _one(field["client"], registration_record(sex="other"))
    assert result["status"] == "rejected"
    assert any("\u0600" <= c <= "\u06ff" for c in result["field_errors"]["sex"][0])


def test_session_without_duration_takes_the_activitys(field):
    result = _one(field["client"], session_record(field, duration_minutes=None))
    stored = db.session.scalars(sa.select(ActivitySession).where(
        ActivitySession.uuid == uuid.UUID(result["id"]))).one()
    assert stored.duration_minutes == field["activity"].default_duration_minutes


def test_session_of_a_closed_or_unknown_activity_is_rejected(field):
    field["activity"].active = False
    db.session.commit()
    result = _one(field["client"], session_record(field))
    assert result["status"] == "rejected" and "closed" in result["reason"]
    assert list(result["field_errors"]) == ["activity"]
    unknown = _one(field["client"], session_record(field, activity=str(uuid.uuid4())))
    assert unknown["status"] == "rejected" and unknown["field_errors"]["activity"]
    assert _count(ActivitySession, ActivitySession.activity_id == field["activity"].id) == 1


def test_session_with_a_youth_not_enrolled_or_transferred_is_rejected(field, make_beneficiary):
    stranger = make_beneficiary("BA", first_name_ar="كريم", last_name_ar="الزواري",
                                first_name_latin="Karim", last_name_latin="Zouari")
    result = _one(field["client"], session_record(
        field, attendance={str(stranger.uuid): "present"}))
    assert result["status"] == "rejected" and "not enrolled" in result["reason"]
    other_cso = make_beneficiary("ACEC")
    result = _one(field["client"], session_record(
        field, attendance={str(other_cso.uuid): "present"}))
    assert result["status"] == "rejected" and "not (or no longer)" in result["reason"]
    assert result["field_errors"] == {"attendance": [result["reason"]]}


def test_another_csos_activity_is_rejected(field, make_user, make_site, make_beneficiary,
                                           make_activity):
    ks_worker = make_user(Role.FIELD_WORKER, "ACEC")
    ks_site = make_site("ACEC", name="دار الشباب الكبارية")
    ks_youth = make_beneficiary("ACEC", site=ks_site)
    ks_activity, _session, _event = make_activity(ks_site, ks_youth, ks_worker)
    record = session_record(field, activity=str(ks_activity.uuid),
                            attendance={str(ks_youth.uuid): "present"})
    result = _one(field["client"], record)
    assert result["status"] == "rejected" and result["field_errors"]["activity"]
    assert _count(ActivitySession, ActivitySession.uuid == uuid.UUID(record["uuid"])) == 0


# --- Registrations -----------------------------------------------------------------------

def test_registration_stored_already_stored_conflict(field):
    client, record = field["client"], registration_record()
    result = _one(client, record)
    assert result["status"] == "stored" and result["id"] == record["uuid"]
    youth = db.session.scalars(sa.select(Beneficiary).where(
        Beneficiary.uuid == uuid.UUID(record["uuid"]))).one()
    assert youth.organization_id == field["worker"].organization_id
    assert youth.code.startswith("BA-")
    assert _count(AuditEntry, AuditEntry.action == "beneficiary_created",
                  AuditEntry.object_id == record["uuid"]) == 1
    assert _one(client, record)["status"] == "already_stored"
    changed = registration_record(key=record["uuid"], first_name_ar="سلوى")
    assert _one(client, changed)["status"] == "conflict"
    assert _count(Beneficiary, Beneficiary.uuid == uuid.UUID(record["uuid"])) == 1


def test_invalid_registration_is_rejected_with_field_errors(field):
    result = _one(field["client"], registration_record(
        birth_date="2030-01-01", sex="other", phone="12"))
    assert result["status"] == "rejected"
    assert set(result["field_errors"]) >= {"birth_date", "sex", "phone"}
    assert "future" in " ".join(result["field_errors"]["birth_date"])
    bad_date = _one(field["client"], registration_record(birth_date="14/05/2006"))
    assert bad_date["status"] == "rejected" and "YYYY-MM-DD" in bad_date["reason"]


@pytest.mark.parametrize("name,field_name,message", [
    ("\u202eيمورحلا", "last_name_ar", "invisible characters that change the direction"),
    ("\u2066Salma\u2069", "first_name_ar", "invisible characters that change the direction"),
    ("\u200b\u200d", "first_name_ar", "must contain at least one letter"),
    ("- 42 -", "last_name_ar", "must contain at least one letter"),
])
def test_registration_with_a_bad_name_is_rejected_and_nothing_stored(field, name, field_name,
                                                                    message):
    before = _count(Beneficiary), _count(AuditEntry)
    record = registration_record(**{field_name: name})
    result = _one(field["client"], record)
    assert result["status"] == "rejected"
    assert message in " ".join(result["field_errors"][field_name]), result
    assert message in result["reason"]
    assert (_count(Beneficiary), _count(AuditEntry)) == before
    arabic = field["worker"]
    arabic.preferred_language = "ar"
    db.session.commit()
    again = _one(field["client"], registration_record(**{field_name: name}))
    assert "الاسم" in " ".join(again["field_errors"][field_name])


def test_possible_duplicate_is_a_conflict_naming_codes_until_confirmed(field):
    first = registration_record()
    assert _one(field["client"], first)["status"] == "stored"
    code = db.session.scalars(sa.select(Beneficiary.code).where(
        Beneficiary.uuid == uuid.UUID(first["uuid"]))).one()
    twin = registration_record()
    result = _one(field["client"], twin)
    assert result["status"] == "conflict" and code in result["reason"]
    assert "سلمى" not in result["reason"]
    confirmed = registration_record(key=twin["uuid"], confirmed_new=True)
    assert _one(field["client"], confirmed)["status"] == "stored"


def test_registration_referenced_later_in_the_same_batch(field):
    version = _survey_version()
    youth_key = str(uuid.uuid4())
    registration = registration_record(key=youth_key, activity=str(field["activity"].uuid))
    session = session_record(field, attendance={str(field["youth"].uuid): "present",
                                                youth_key: "present"})
    survey = survey_record(version, youth=None)
    survey["data"].update(youth=youth_key, wave="baseline")
    results = _send(field["client"], registration, session, survey)
    assert [r["status"] for r in results] == ["stored", "stored", "stored"], results
    youth = db.session.scalars(sa.select(Beneficiary).where(
        Beneficiary.uuid == uuid.UUID(youth_key))).one()
    assert _count(Attendance, Attendance.beneficiary_id == youth.id) == 1
    assert _count(SurveyResponse, SurveyResponse.beneficiary_id == youth.id) == 1


# --- Surveys -----------------------------------------------------------------------------

def test_survey_response_stored_already_stored_conflict_rejected(field):
    version, client = _survey_version(), field["client"]
    record = survey_record(version, field["youth"])
    assert _one(client, record)["status"] == "stored"
    assert _one(client, record)["status"] == "already_stored"
    changed = survey_record(version, field["youth"], key=record["uuid"],
                            answers={**ANSWERS, "w1": "1"})
    assert _one(client, changed)["status"] == "conflict"
    bad = _one(client, survey_record(version, None, answers={**ANSWERS, "w1": "9"}))
    assert bad["status"] == "rejected" and "w1" in bad["field_errors"]
    unknown = _one(client, survey_record(version, None, version=str(uuid.uuid4())))
    assert unknown["status"] == "rejected" and "version" in unknown["field_errors"]
    assert _count(SurveyResponse, SurveyResponse.uuid == uuid.UUID(record["uuid"])) == 1


def test_a_response_to_an_older_survey_version_is_accepted(field, make_user):
    old = _survey_version()
    newer = survey_service.import_version(make_user(Role.ADMIN), workbook_bytes(), None,
                                          publish=True)
    db.session.commit()
    assert newer.number > old.number and old.survey.current.id == newer.id
    record = survey_record(old, None)
    assert _one(field["client"], record)["status"] == "stored"
    stored = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.uuid == uuid.UUID(record["uuid"]))).one()
    assert stored.version_id == old.id


# --- Case notes and follow-ups -----------------------------------------------------------

def test_case_note_stored_already_stored_conflict_rejected(field):
    client, case = field["client"], field["case"]
    record = note_record(case, confidential=True)
    assert _one(client, record)["status"] == "stored"
    note = db.session.scalars(sa.select(CaseNote).where(
        CaseNote.uuid == uuid.UUID(record["uuid"]))).one()
    assert note.confidential and note.author_id == field["worker"].id
    assert note.text_enc and "اتصال".encode() not in note.text_enc
    assert _one(client, record)["status"] == "already_stored"
    assert _one(client, note_record(case, key=record["uuid"], text="آخر"))["status"] == \
        "conflict"
    bad = _one(client, note_record(case, kind="gossip"))
    assert bad["status"] == "rejected" and "kind" in bad["field_errors"]
    past = _one(client, note_record(case, due_date="2020-01-01"))
    assert past["status"] == "rejected" and "due_date" in past["field_errors"]
    assert _count(CaseNote, CaseNote.case_id == case.id) == 2


def test_follow_up_done_once(field):
    client, note = field["client"], field["note"]
    first = _one(client, follow_up_record(note))
    assert first["status"] == "stored" and first["id"] == str(note.uuid)
    db.session.refresh(note)
    assert note.done_on == TODAY
    assert _one(client, follow_up_record(note))["status"] == "already_stored"
    other_day = _one(client, follow_up_record(note, done_on=TODAY - timedelta(days=1)))
    assert other_day["status"] in ("conflict", "rejected")
    future = _one(client, follow_up_record(note, done_on=TODAY + timedelta(days=2)))
    assert future["status"] == "rejected" and "done_on" in future["field_errors"]


def test_another_csos_case_and_note_are_rejected(field, make_user, make_beneficiary,
                                                 make_case):
    ks_worker = make_user(Role.FIELD_WORKER, "ACEC")
    ks_case, _provider = make_case(make_beneficiary("ACEC"), ks_worker)
    ks_note = db.session.scalars(sa.select(CaseNote).where(
        CaseNote.case_id == ks_case.id)).one()
    note = _one(field["client"], note_record(ks_case))
    assert note["status"] == "rejected" and note["field_errors"]["case"]
    done = _one(field["client"], follow_up_record(ks_note))
    assert done["status"] == "rejected" and done["field_errors"]["note"]
    db.session.refresh(ks_note)
    assert ks_note.done_on is None and _count(CaseNote, CaseNote.case_id == ks_case.id) == 1


# --- Malformed input, permissions, limits ------------------------------------------------

@pytest.mark.parametrize("record", [
    "not an object", None, 7, [], {"uuid": "nope", "type": "session", "data": {}},
    {"uuid": str(uuid.uuid4()), "type": "rumour", "data": {}},
    {"uuid": str(uuid.uuid4()), "type": "session", "data": "x"},
    {"uuid": str(uuid.uuid4()), "type": "session", "data": {"activity": 5, "date": []}},
    {"uuid": str(uuid.uuid4()), "type": "registration", "data": {"sex": ["female"]}},
    {"uuid": str(uuid.uuid4()), "type": "survey_response", "data": {"version": {}}},
    {"uuid": str(uuid.uuid4()), "type": "case_note", "data": {"case": None}},
    {"uuid": str(uuid.uuid4()), "type": "follow_up", "data": {"note": "x", "done_on": 3}},
])
def test_malformed_records_are_rejected_never_500(field, record):
    result = _one(field["client"], record)
    assert result["status"] == "rejected" and result["reason"] and result["id"] is None


@pytest.mark.parametrize("body", [None, {"records": "x"}, {"recs": []}, [1, 2]])
def test_malformed_body_is_400_json(field, body):
    response = field["client"].post("/api/v1/sync", json=body) if body is not None else \
        field["client"].post("/api/v1/sync", data="{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


def test_more_than_100_records_is_413_json(field):
    records = [session_record(field) for _ in range(101)]
    error = _send(field["client"], *records, status=413)
    assert error["error"] == "payload_too_large" and "100" in error["message"]
    assert _count(ActivitySession, ActivitySession.activity_id == field["activity"].id) == 1


def test_record_types_need_their_permission(field, monkeypatch):
    from bladi_cases.policy import Perm

    stricter = replace(sync_service.RECORD_KINDS["session"], permission=Perm.ACTIVITIES_MANAGE)
    monkeypatch.setitem(sync_service.RECORD_KINDS, "session", stricter)
    result = _one(field["client"], session_record(field))
    assert result["status"] == "rejected" and "may not" in result["reason"]


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.DONOR, Role.ADMIN])
def test_other_roles_get_403_json(client, make_user, role):
    login(client, make_user(role))
    response = client.post("/api/v1/sync", json={"records": []})
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"


def test_anonymous_gets_401_json(client):
    response = client.post("/api/v1/sync", json={"records": []})
    assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"


# --- Savepoints and retries --------------------------------------------------------------

def _mixed_batch(field) -> list[dict]:
    version = _survey_version()
    return [session_record(field), registration_record(),
            survey_record(version, field["youth"]), note_record(field["case"]),
            follow_up_record(field["note"])]


def _stored_once(batch) -> bool:
    keys = {r["type"]: uuid.UUID(r["uuid"]) for r in batch}
    return (_count(ActivitySession, ActivitySession.uuid == keys["session"]) == 1
            and _count(Beneficiary, Beneficiary.uuid == keys["registration"]) == 1
            and _count(SurveyResponse, SurveyResponse.uuid == keys["survey_response"]) == 1
            and _count(CaseNote, CaseNote.uuid == keys["case_note"]) == 1)


def test_one_invalid_record_leaves_nothing_and_the_others_are_stored(field):
    batch = _mixed_batch(field)
    bad = registration_record(first_name_ar="نور", last_name_ar="البجاوي",
                              activity=str(field["activity"].uuid),
                              consent_scopes=["surveys"])  # enrolment needs participation
    batch.insert(2, bad)
    results = _send(field["client"], *batch)
    assert [r["status"] for r in results] == ["stored", "stored", "rejected", "stored",
                                              "stored", "stored"], results
    assert results[2]["uuid"] == bad["uuid"] and results[2]["reason"]
    # The rejected registration failed after its beneficiary row was flushed: the savepoint
    # took it back, with its code, consent, name index and audit entry.
    assert _count(Beneficiary, Beneficiary.uuid == uuid.UUID(bad["uuid"])) == 0
    assert _count(AuditEntry, AuditEntry.object_id == bad["uuid"]) == 0
    assert _stored_once([r for r in batch if r is not bad])


def test_same_batch_three_times_with_the_connection_cut_during_the_second(field, monkeypatch):
    client, batch = field["client"], _mixed_batch(field)
    first = _send(client, *batch)
    assert [r["status"] for r in first] == ["stored"] * 5
    audit_before = _count(AuditEntry)

    # The second attempt dies after three records, as when the connection is cut: the
    # request's transaction is rolled back and the phone never sees an answer.
    original, calls = sync_service.process_record, {"n": 0}

    def cut_after_three(actor, raw):
        outcome = original(actor, raw)
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("connection cut")
        return outcome

    monkeypatch.setattr(sync_service, "process_record", cut_after_three)
    response = client.post("/api/v1/sync", json={"records": batch})
    assert response.status_code == 500 and response.get_json()["error"] == "server_error"
    monkeypatch.undo()

    third = _send(client, *batch)
    assert [r["status"] for r in third] == ["already_stored"] * 5
    assert [r["id"] for r in third] == [r["id"] for r in first]
    assert _stored_once(batch)
    # Nothing recorded twice; the only new entry is the (audited) comparison of the
    # retried registration with the stored identity.
    new = db.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()[audit_before:]
    assert [(e.action, e.detail["purpose"]) for e in new] == [
        ("beneficiary_viewed", "sync_retry_check")]


def test_cut_first_attempt_then_two_retries(field, monkeypatch):
    client, batch = field["client"], _mixed_batch(field)
    original = sync_service.process_record
    calls = {"n": 0}

    def cut(actor, raw):
        outcome = original(actor, raw)
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("connection cut")
        return outcome

    monkeypatch.setattr(sync_service, "process_record", cut)
    assert client.post("/api/v1/sync", json={"records": batch}).status_code == 500
    monkeypatch.undo()
    assert _count(ActivitySession, ActivitySession.uuid == uuid.UUID(batch[0]["uuid"])) == 0
    assert [r["status"] for r in _send(client, *batch)] == ["stored"] * 5
    assert [r["status"] for r in _send(client, *batch)] == ["already_stored"] * 5
    assert _stored_once(batch)

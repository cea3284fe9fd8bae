"""Withdrawn consent to take part stops attendance: the roster shows the youth as not
markable, the web form and the field app's sync refuse a mark with a message naming the
youth by code, and nothing of a refused session is saved."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import ActivitySession, Attendance, Role
from bladi_cases.services import ValidationError
from bladi_cases.services.activities import activities as service
from bladi_cases.services.beneficiaries import registry

from .conftest import login, text_of

TODAY = date.today()


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@pytest.fixture
def withdrawn(client, make_user, make_site, make_beneficiary, make_activity):
    """An activity with two youth present 7 days ago; then one withdraws consent."""
    worker = make_user(Role.FIELD_WORKER, "BA", preferred_language="en")
    site = make_site("BA")
    stays = make_beneficiary("BA", site=site)
    leaves = make_beneficiary("BA", first_name_ar="سامي", last_name_ar="الصغير",
                              first_name_latin="Sami", last_name_latin="Sghaier", site=site)
    activity, session, _event = make_activity(site, stays, worker)
    service.enrol_in_activity(worker, leaves, activity, TODAY - timedelta(days=30))
    service.update_session(worker, session, {"date": session.date, "duration_minutes": 90},
                           {stays.id: "present", leaves.id: "present"})
    registry.withdraw_consent(worker, leaves, TODAY)
    db.session.commit()
    login(client, worker)
    return {"worker": worker, "stays": stays, "leaves": leaves, "activity": activity,
            "session": session, "client": client}


def _new_session(client, activity, start="16:00", **marks):
    page = client.get(f"/activities/{activity.uuid}/sessions/new")
    token = re.search(r'name="session_uuid" type="hidden" value="([^"]+)"',
                      page.get_data(as_text=True)).group(1)
    data = {"session_uuid": token, "date": TODAY.isoformat(), "start_time": start,
            "duration_minutes": "60", **marks}
    return token, client.post(f"/activities/{activity.uuid}/sessions/new", data=data)


def test_the_roster_shows_the_youth_as_not_markable(withdrawn):
    client, leaves, stays = withdrawn["client"], withdrawn["leaves"], withdrawn["stays"]
    html = client.get(f"/activities/{withdrawn['activity'].uuid}/sessions/new").get_data(
        as_text=True)
    assert f'name="att-{stays.uuid}"' in html
    assert f'name="att-{leaves.uuid}"' not in html, "no radio for them"
    assert leaves.code in html and "Consent to take part withdrawn" in html


def test_the_web_form_saves_the_others_and_refuses_a_mark_for_them(withdrawn):
    client, leaves, stays = withdrawn["client"], withdrawn["leaves"], withdrawn["stays"]
    token, saved = _new_session(client, withdrawn["activity"])  # the page as it is
    assert saved.status_code == 302
    session = db.session.scalars(sa.select(ActivitySession).where(
        ActivitySession.uuid == uuid.UUID(token))).one()
    assert {a.beneficiary_id: a.status for a in session.attendance} == {stays.id: "present"}
    # A page opened before the withdrawal still posts a mark for them.
    before = (_count(ActivitySession), _count(Attendance))
    token, refused = _new_session(client, withdrawn["activity"], "18:00",
                                  **{f"att-{leaves.uuid}": "present",
                                     f"att-{stays.uuid}": "present"})
    assert refused.status_code == 422
    assert f"No valid consent to take part in activities for {leaves.code}" in text_of(refused)
    assert (_count(ActivitySession), _count(Attendance)) == before, "nothing half-saved"
    assert _count(ActivitySession, ActivitySession.uuid == uuid.UUID(token)) == 0


def test_an_absent_mark_is_refused_too_and_the_message_is_translated(withdrawn):
    worker, leaves = withdrawn["worker"], withdrawn["leaves"]
    worker.preferred_language = "ar"
    db.session.commit()
    _token, refused = _new_session(withdrawn["client"], withdrawn["activity"],
                                   **{f"att-{leaves.uuid}": "absent"})
    assert refused.status_code == 422
    page = text_of(refused)
    assert leaves.code in page and "لا توجد موافقة" in page


def test_correcting_a_past_session_keeps_their_mark_and_refuses_a_change(withdrawn):
    client, session = withdrawn["client"], withdrawn["session"]
    leaves, stays = withdrawn["leaves"], withdrawn["stays"]
    page = client.get(f"/activities/sessions/{session.uuid}").get_data(as_text=True)
    assert f'name="att-{leaves.uuid}"' not in page and "Present · Consent" in page
    form = {"date": session.date.isoformat(), "duration_minutes": "80"}
    ok = client.post(f"/activities/sessions/{session.uuid}",
                     data={**form, f"att-{stays.uuid}": "absent"})
    assert ok.status_code == 302
    db.session.expire_all()
    marks = dict(db.session.execute(sa.select(Attendance.beneficiary_id, Attendance.status)
                                    .where(Attendance.session_id == session.id)).all())
    assert marks == {stays.id: "absent", leaves.id: "present"}, "their mark stays as it was"
    changed = client.post(f"/activities/sessions/{session.uuid}",
                          data={**form, "duration_minutes": "70",
                                f"att-{leaves.uuid}": "absent"})
    assert changed.status_code == 422 and leaves.code in text_of(changed)
    db.session.expire_all()
    assert db.session.get(ActivitySession, session.id).duration_minutes == 80
    assert db.session.scalar(sa.select(Attendance.status).where(
        Attendance.session_id == session.id, Attendance.beneficiary_id == leaves.id)) == \
        "present"


def test_the_same_mark_sent_again_unchanged_is_not_new(withdrawn):
    session, leaves, stays = withdrawn["session"], withdrawn["leaves"], withdrawn["stays"]
    service.update_session(withdrawn["worker"], session, {
        "date": session.date, "duration_minutes": 90}, {stays.id: "present",
                                                        leaves.id: "present"})
    with pytest.raises(ValidationError) as refused:
        service.update_session(withdrawn["worker"], session, {
            "date": session.date, "duration_minutes": 90}, {leaves.id: "excused"})
    assert leaves.code in str(refused.value.errors[""][0])


def test_a_newer_consent_without_participation_refuses_too(withdrawn, make_beneficiary):
    worker, activity = withdrawn["worker"], withdrawn["activity"]
    other = make_beneficiary("BA", first_name_ar="هند", first_name_latin="Hind")
    service.enrol_in_activity(worker, other, activity, TODAY - timedelta(days=2))
    registry.record_consent(worker, other, {
        "consent_given_by": "self", "consent_method": "signed_form",
        "consent_scopes": ["surveys"], "consent_date": TODAY})
    db.session.commit()
    with pytest.raises(ValidationError) as refused:
        service.record_session(worker, activity, {"date": TODAY, "duration_minutes": 60},
                               {other.id: "present"}, uuid.uuid4())
    assert other.code in str(refused.value.errors[""][0])


def test_the_field_app_roster_leaves_them_out(withdrawn):
    [activity] = withdrawn["client"].get("/api/v1/activities").get_json()["activities"]
    assert [y["code"] for y in activity["roster"]] == [withdrawn["stays"].code]


def test_sync_refuses_a_session_marking_them_and_saves_nothing(withdrawn):
    client, leaves, stays = withdrawn["client"], withdrawn["leaves"], withdrawn["stays"]
    key = str(uuid.uuid4())
    before = (_count(ActivitySession), _count(Attendance))
    record = {"uuid": key, "type": "session", "data": {
        "activity": str(withdrawn["activity"].uuid), "date": TODAY.isoformat(),
        "duration_minutes": 60,
        "attendance": {str(stays.uuid): "present", str(leaves.uuid): "present"}}}
    [result] = client.post("/api/v1/sync", json={"records": [record]}).get_json()["results"]
    assert result["status"] == "rejected"
    assert leaves.code in result["reason"] and "consent" in result["reason"]
    assert result["field_errors"] == {"record": [result["reason"]]}
    assert (_count(ActivitySession), _count(Attendance)) == before, "nothing half-saved"
    del record["data"]["attendance"][str(leaves.uuid)]
    [result] = client.post("/api/v1/sync", json={"records": [record]}).get_json()["results"]
    assert result["status"] == "stored"


def test_a_retry_of_a_session_stored_before_the_withdrawal_is_already_stored(
        client, make_user, make_site, make_beneficiary, make_activity):
    worker = make_user(Role.FIELD_WORKER, "BA")
    site = make_site("BA")
    youth = make_beneficiary("BA", site=site)
    activity, _session, _event = make_activity(site, youth, worker)
    login(client, worker)
    record = {"uuid": str(uuid.uuid4()), "type": "session", "data": {
        "activity": str(activity.uuid), "date": TODAY.isoformat(), "duration_minutes": 60,
        "attendance": {str(youth.uuid): "present"}}}
    [first] = client.post("/api/v1/sync", json={"records": [record]}).get_json()["results"]
    assert first["status"] == "stored"
    registry.withdraw_consent(worker, youth, TODAY)
    db.session.commit()
    [again] = client.post("/api/v1/sync", json={"records": [record]}).get_json()["results"]
    assert again["status"] == "already_stored", "the phone lost the answer: not a new mark"

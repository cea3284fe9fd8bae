"""After an accepted transfer: the sending CSO's pages keep working, the youth's past
attendance still counts in its figures, and what it left behind (confidential notes) is not
reachable by anyone, nor is the youth's new code."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import (
    Attendance,
    Beneficiary,
    CaseNote,
    CaseTransfer,
    Enrolment,
    Organization,
    Role,
    Survey,
)
from bladi_cases.sample_survey import FORM_ID
from bladi_cases.services.activities import activities as activity_service
from bladi_cases.services.cases import cases as case_service
from bladi_cases.services.cases import transfers
from bladi_cases.services.reports import reports
from bladi_cases.services.reports.indicators import Period
from bladi_cases.services.reports.quality import standing_counts
from bladi_cases.services.reports.reports import funded_csos, seed_indicators, values_by_org
from bladi_cases.services.surveys import surveys as survey_service

from .conftest import login, text_of

TODAY = date.today()


@pytest.fixture
def moved(app, make_user, make_site, make_beneficiary, make_activity, make_case):
    """A BA youth enrolled in an activity, present at 12 past sessions, with a case and a
    confidential note by their worker; transferred to ACEC and accepted there."""
    worker = make_user(Role.FIELD_WORKER, "BA", preferred_language="en")
    manager = make_user(Role.CSO_MANAGER, "BA", preferred_language="en")
    site = make_site("BA")
    youth = make_beneficiary("BA", site=site)
    stays = make_beneficiary("BA", first_name_ar="سامي", last_name_ar="الصغير",
                             first_name_latin="Sami", last_name_latin="Sghaier", site=site)
    activity, session, _event = make_activity(site, youth, worker)
    activity_service.enrol_in_activity(worker, stays, activity, TODAY - timedelta(days=30))
    for days_ago in range(8, 20):  # youth_10_sessions needs 10 in one period
        activity_service.record_session(
            worker, activity, {"date": TODAY - timedelta(days=days_ago), "duration_minutes": 60,
                               "facilitator_id": worker.id},
            {youth.id: "present", stays.id: "absent"})
    case, _provider = make_case(youth, worker)
    secret = case_service.add_note(worker, case, {"kind": "meeting", "text": "سري جدا",
                                                  "confidential": True})
    db.session.commit()
    old_code = youth.code
    receiver = make_user(Role.CSO_MANAGER, "ACEC")
    transfer = transfers.request_transfer(manager, case, _org("ACEC"), "موافقة الشاب كتابيا")
    transfers.decide_transfer(receiver, transfer, accept=True)
    db.session.commit()
    youth = db.session.get(Beneficiary, youth.id)
    assert youth.code != old_code and youth.code.startswith("ACEC-")
    return {"worker": worker, "manager": manager, "receiver": receiver, "youth": youth,
            "stays": stays, "activity": activity, "session": session, "case": case,
            "secret": secret, "old_code": old_code, "site": site}


def test_an_older_closed_case_goes_with_the_youth(app, make_user, make_beneficiary):
    """A file left behind would show the sender a youth (and code) it may no longer see."""
    worker = make_user(Role.FIELD_WORKER, "BA")
    youth = make_beneficiary("BA")
    old = case_service.open_case(worker, youth, {"workers": [worker]})
    case_service.change_status(worker, old, "closed", "goals_met")
    current = case_service.open_case(worker, youth, {"workers": [worker]})
    db.session.commit()
    receiver = make_user(Role.CSO_MANAGER, "ACEC")
    transfers.decide_transfer(receiver, transfers.request_transfer(
        worker, current, _org("ACEC"), "موافقة"), accept=True)
    db.session.commit()
    sender = _client(app, worker)
    assert sender.get(f"/cases/{old.uuid}").status_code == 404
    listing = sender.get("/cases/")
    assert listing.status_code == 200
    assert db.session.get(Beneficiary, youth.id).code not in listing.get_data(as_text=True)
    assert _client(app, receiver).get(f"/cases/{old.uuid}").status_code == 200


def _org(code: str) -> Organization:
    return db.session.scalars(sa.select(Organization).where(Organization.code == code)).one()


def _client(app, user):
    client = app.test_client()
    login(client, user)
    return client


@pytest.mark.parametrize("who", ["worker", "manager"])
def test_the_sending_csos_activity_pages_keep_working(app, moved, who):
    client = _client(app, moved[who])
    activity, session, youth = moved["activity"], moved["session"], moved["youth"]
    pages = [f"/activities/{activity.uuid}", f"/activities/{activity.uuid}/sessions/new",
             f"/activities/{activity.uuid}/sessions/new?date={session.date.isoformat()}",
             f"/activities/sessions/{session.uuid}", "/activities/", "/activities/today", "/"]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        page = response.get_data(as_text=True)
        assert youth.code not in page, f"{path} shows the youth's new code"
        assert str(youth.uuid) not in page, f"{path} links to the youth"
    api = client.get("/api/v1/activities")
    assert api.status_code == 200
    rosters = [y for a in api.get_json()["activities"] for y in a["roster"]]
    assert [y["code"] for y in rosters] == [moved["stays"].code]
    show = text_of(client.get(f"/activities/{activity.uuid}"))
    assert "Transferred to another CSO" in show and "13 / 13" in show


def test_correcting_a_past_session_keeps_the_transferred_youths_attendance(app, moved):
    client = _client(app, moved["worker"])
    session, stays, youth = moved["session"], moved["stays"], moved["youth"]
    before = dict(db.session.execute(sa.select(Attendance.beneficiary_id, Attendance.status)
                                     .where(Attendance.session_id == session.id)).all())
    response = client.post(f"/activities/sessions/{session.uuid}", data={
        "date": session.date.isoformat(), "duration_minutes": "75",
        f"att-{stays.uuid}": "present", f"att-{youth.uuid}": "absent"})
    assert response.status_code == 302
    db.session.expire_all()
    after = dict(db.session.execute(sa.select(Attendance.beneficiary_id, Attendance.status)
                                    .where(Attendance.session_id == session.id)).all())
    assert after[youth.id] == before[youth.id] == "present", "not the sender's to change"
    assert session.duration_minutes == 75


def test_a_new_session_cannot_mark_the_transferred_youth(app, moved):
    client = _client(app, moved["worker"])
    activity, youth = moved["activity"], moved["youth"]
    day = TODAY - timedelta(days=3)  # the youth was still enrolled here then
    response = client.post(f"/activities/{activity.uuid}/sessions/new", data={
        "session_uuid": str(uuid.uuid4()), "date": day.isoformat(), "duration_minutes": "60",
        f"att-{youth.uuid}": "present"})
    assert response.status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Attendance).join(
        Attendance.session).where(Attendance.beneficiary_id == youth.id,
                                  sa.literal_column("activity_session.date") == day)) == 0


def test_the_senders_enrolments_end_on_the_transfer_and_stay_with_it(moved):
    youth = moved["youth"]
    enrolments = db.session.scalars(sa.select(Enrolment).where(
        Enrolment.beneficiary_id == youth.id)).all()
    assert enrolments and all(e.organization_id == _org("BA").id for e in enrolments)
    assert all(e.end_date == TODAY and e.exit_reason == "transferred" for e in enrolments)


def test_the_receiver_sees_the_youth_and_can_enrol_them(app, moved, make_site):
    client = _client(app, moved["receiver"])
    youth = moved["youth"]
    page = client.get(f"/beneficiaries/{youth.uuid}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert moved["activity"].name in html, "the youth's history comes with them"
    assert f"/activities/{moved['activity'].uuid}" not in html, "no link to a page that is 404"
    assert client.get(f"/cases/{moved['case'].uuid}").status_code == 200
    site = make_site("ACEC", name="دار الشباب الكبارية")
    response = client.post(f"/beneficiaries/{youth.uuid}/enrol", data={
        "site": str(site.uuid), "start_date": TODAY.isoformat()})
    assert response.status_code in (200, 302)


ANSWERS = {"situation": "working", "has_job": "yes", "job_hours": "40",
           "activities": ["sport"], "w1": "2", "w2": "2", "w3": "2", "w4": "2", "w5": "2",
           "trust_staff": "5"}
# Figures of the work done at the sending CSO: they stay its own. The case file's figures
# (referrals, placements and their checks) move with the file, for the receiver to follow.
SENDERS = ("youth_reached", "youth_10_sessions", "sessions_held", "participation_hours",
           "youth_baseline_endline", "youth_improved", "score_change")
WITH_THE_FILE = ("youth_placed", "referrals_completed")


def _figures(orgs, years) -> dict:
    """What the dashboard shows: every computed indicator, per CSO, for each year."""
    return {(i.rule, year): values_by_org(i, Period(year), orgs)
            for i in reports.indicators() if i.rule for year in years}


def test_the_senders_past_figures_are_unchanged_by_the_transfer(
        make_user, make_site, make_beneficiary, make_activity, make_case):
    worker = make_user(Role.FIELD_WORKER, "BA")
    site = make_site("BA")
    youth = make_beneficiary("BA", site=site)
    activity, _session, _event = make_activity(site, youth, worker)
    days = range(8, 20)
    for days_ago in days:
        activity_service.record_session(
            worker, activity, {"date": TODAY - timedelta(days=days_ago), "duration_minutes": 60,
                               "facilitator_id": worker.id}, {youth.id: "present"})
    version = db.session.scalars(sa.select(Survey).where(
        Survey.code == FORM_ID, Survey.organization_id.is_(None))).one().current
    for wave, value, days_ago in (("baseline", "2", 25), ("endline", "4", 8)):
        survey_service.submit(worker, version, youth, wave, {
            **ANSWERS, **{f"w{i}": value for i in range(1, 6)}}, uuid.uuid4(),
            today=TODAY - timedelta(days=days_ago))
    case, _provider = make_case(youth, worker)
    referral = case.referrals[0]
    case_service.update_referral(worker, referral, "completed", TODAY, "وجد تربصا")
    db.session.commit()
    seed_indicators()
    orgs = funded_csos()
    ba, acec = _org("BA").id, _org("ACEC").id
    years = sorted({Period.containing(TODAY - timedelta(days=d)).fiscal_year
                    for d in range(0, 31)})
    before = _figures(orgs, years)
    assert sum(before["participation_hours", y][ba] for y in years) == 12 + 1.5
    assert sum(before["youth_improved", y][ba] for y in years) == 1
    assert sum(before["youth_placed", y][ba] for y in years) == 1
    transfer = transfers.request_transfer(worker, case, _org("ACEC"), "موافقة")
    transfers.decide_transfer(make_user(Role.CSO_MANAGER, "ACEC"), transfer, accept=True)
    db.session.commit()
    after = _figures(orgs, years)
    for rule in SENDERS:
        for year in years:
            assert after[rule, year][ba] == before[rule, year][ba], (rule, year)
            assert after[rule, year][acec] == before[rule, year][acec], (rule, year)
    for rule in WITH_THE_FILE:
        for year in years:
            assert after[rule, year][acec] == before[rule, year][ba], (rule, year)
            assert after[rule, year][ba] == before[rule, year][acec] == 0, (rule, year)


# --- What stays behind: confidential notes ----------------------------------------------

def test_confidential_note_left_behind_is_not_reachable_by_anyone(app, moved):
    secret, case = moved["secret"], moved["case"]
    assert db.session.get(CaseNote, secret.id).organization_id == _org("BA").id, "kept"
    for who in ("worker", "manager", "receiver"):
        client = _client(app, moved[who])
        assert client.get(f"/cases/notes/{secret.uuid}").status_code == 404, who
        assert client.post(f"/cases/notes/{secret.uuid}", data={"text": "x"}).status_code == 404
        assert client.post(f"/cases/notes/{secret.uuid}/done").status_code == 404, who
        cases = client.get("/api/v1/cases").get_json()["cases"]
        ids = [n["id"] for c in cases for n in c["follow_ups_due"]]
        assert str(secret.uuid) not in ids
        assert str(secret.uuid) not in client.get("/").get_data(as_text=True), who
    page = _client(app, moved["receiver"]).get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert "سري جدا" not in page
    assert db.session.get(CaseNote, secret.id).versions == [], "nobody edited it"


def test_sync_cannot_reach_a_note_left_behind(app, moved):
    secret = moved["secret"]
    secret.due_date = TODAY
    db.session.commit()
    for who in ("worker", "manager", "receiver"):
        client = _client(app, moved[who])
        result = client.post("/api/v1/sync", json={"records": [{
            "uuid": str(uuid.uuid4()), "type": "follow_up",
            "data": {"note": str(secret.uuid), "done_on": TODAY.isoformat()}}]}).get_json()
        assert result["results"][0]["status"] == "rejected", who
        assert result["results"][0]["field_errors"] == {"note": [result["results"][0]["reason"]]}
    assert db.session.get(CaseNote, secret.id).done_on is None


def test_the_note_comes_back_when_the_case_comes_back(app, moved, make_user):
    """The rule is "a note is reachable while its case is in the note's CSO": a youth
    transferred back brings their old file's confidential notes back to the author."""
    case = moved["case"]
    back = transfers.request_transfer(moved["receiver"], case, _org("BA"), "موافقة")
    transfers.decide_transfer(moved["manager"], back, accept=True)
    db.session.commit()
    client = _client(app, moved["worker"])
    assert client.get(f"/cases/notes/{moved['secret'].uuid}").status_code == 200
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CaseTransfer)) == 2


def test_the_sender_is_not_flagged_for_what_it_can_no_longer_do(moved):
    """A confidential note left behind cannot be marked done, a youth transferred away
    cannot be surveyed: neither is one of the sender's quality flags."""
    ba = _org("BA").id

    def flags() -> dict:
        return {name: counts.get(ba, 0) for name, counts in standing_counts([ba], TODAY).items()
                if name in ("overdue_follow_ups", "baselines_without_endline")}

    before = flags()
    moved["secret"].due_date = TODAY - timedelta(days=3)
    version = db.session.scalars(sa.select(Survey).where(
        Survey.code == FORM_ID, Survey.organization_id.is_(None))).one().current
    for youth in (moved["stays"], moved["youth"]):  # both answered at BA 200 days ago
        survey_service.submit(moved["worker"], version, youth, "baseline", ANSWERS,
                              uuid.uuid4(), today=TODAY - timedelta(days=200))
    db.session.commit()
    assert flags() == {**before, "baselines_without_endline":
                       before["baselines_without_endline"] + 1}, "the one still at BA"

"""Activities, sessions and attendance, participation, group events, through the pages."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Activity, ActivitySession, Attendance, GroupEvent, Role
from bladi_cases.services import ValidationError
from bladi_cases.services.activities import activities as service
from bladi_cases.services.activities.participation import for_activity, for_beneficiary

from .conftest import login, statements_of

TODAY = date.today()


def _count(model, *where):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@pytest.fixture
def setup(client, make_user, make_site, make_beneficiary, make_activity):
    """A field worker logged in, a site, an activity with 30 youth enrolled 30 days ago."""
    worker = make_user(Role.FIELD_WORKER, "BA")
    site = make_site("BA")
    youth = [make_beneficiary("BA", first_name_ar=f"شاب{i}", first_name_latin=f"Youth{i}",
                              site=site) for i in range(30)]
    activity, session, _event = make_activity(site, youth[0], worker)
    for member in youth[1:]:
        service.enrol_in_activity(worker, member, activity, TODAY - timedelta(days=30))
    db.session.commit()
    login(client, worker)
    return {"worker": worker, "site": site, "youth": youth, "activity": activity,
            "session": session}


def _session_form(client, activity):
    page = client.get(f"/activities/{activity.uuid}/sessions/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    token = re.search(r'name="session_uuid" type="hidden" value="([^"]+)"', html).group(1)
    return html, token


def test_the_attendance_form_reads_its_roster_once(client, setup):
    """A new session's form reads the roster (one statement for the youth, their names and
    consents) once: the view hands the roster it read to the page."""

    (html, _token), sent = statements_of(lambda: _session_form(client, setup["activity"]))
    rosters = [s for s in sent if "FROM enrolment JOIN beneficiary" in " ".join(s.split())]
    assert html.count('value="present" checked') == 30
    assert len(rosters) == 1, rosters


def test_attendance_for_30_youth_in_one_save(client, setup):
    activity, youth = setup["activity"], setup["youth"]
    html, token = _session_form(client, activity)
    assert html.count('value="present" checked') == 30, "present by default"
    data = {"session_uuid": token, "date": TODAY.isoformat(), "start_time": "15:00",
            "duration_minutes": "90", "topic": "ارتجال"}
    data.update({f"att-{y.uuid}": "present" for y in youth})
    data[f"att-{youth[3].uuid}"] = "absent"
    data[f"att-{youth[4].uuid}"] = "excused"
    response = client.post(f"/activities/{activity.uuid}/sessions/new", data=data)
    assert response.status_code == 302
    session = db.session.scalars(sa.select(ActivitySession).where(
        ActivitySession.uuid == uuid.UUID(token))).one()
    statuses = [a.status for a in session.attendance]
    assert len(statuses) == 30 and statuses.count("present") == 28


def test_recorded_session_page_checks_each_saved_status(client, setup):
    """A recorded session's page checks the status saved for each youth (its roster and
    marks are read together), one radio per status."""
    activity, youth = setup["activity"], setup["youth"]
    _html, token = _session_form(client, activity)
    data = {"session_uuid": token, "date": TODAY.isoformat(), "start_time": "17:00",
            "duration_minutes": "45"}
    data.update({f"att-{y.uuid}": "present" for y in youth})
    data[f"att-{youth[3].uuid}"] = "absent"
    data[f"att-{youth[4].uuid}"] = "excused"
    assert client.post(f"/activities/{activity.uuid}/sessions/new",
                       data=data).status_code == 302
    page = client.get(f"/activities/sessions/{token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('type="radio"') == 90 and html.count(" checked>") == 30
    assert html.count('value="present" checked') == 28
    absent, excused = youth[3].uuid, youth[4].uuid
    assert (f'<input type="radio" id="att-{absent}-absent" name="att-{absent}" '
            f'value="absent" checked>') in html
    assert f'<label for="att-{absent}-absent" class="st-absent">' in html
    assert f'name="att-{excused}" value="excused" checked>' in html
    assert f'name="att-{excused}" value="present">' in html


def test_resending_the_same_session_stores_it_once(client, setup):
    activity, youth = setup["activity"], setup["youth"]
    _html, token = _session_form(client, activity)
    data = {"session_uuid": token, "date": TODAY.isoformat(), "start_time": "10:00",
            "duration_minutes": "60"}
    data.update({f"att-{y.uuid}": "present" for y in youth})
    before = _count(ActivitySession)
    for _ in range(3):  # a phone retrying on a bad connection
        assert client.post(f"/activities/{activity.uuid}/sessions/new",
                           data=data).status_code == 302
    assert _count(ActivitySession) == before + 1
    changed = {**data, f"att-{youth[0].uuid}": "absent"}
    conflict = client.post(f"/activities/{activity.uuid}/sessions/new", data=changed)
    assert conflict.status_code == 409
    assert _count(ActivitySession) == before + 1
    stored = db.session.scalars(sa.select(Attendance.status).join(ActivitySession).where(
        ActivitySession.uuid == uuid.UUID(token),
        Attendance.beneficiary_id == youth[0].id)).one()
    assert stored == "present", "a conflict is reported, never merged"


@pytest.mark.parametrize("overrides", [
    {"date": (TODAY + timedelta(days=2)).isoformat()},
    {"date": (TODAY - timedelta(days=400)).isoformat()},   # before the activity starts
    {"date": (TODAY - timedelta(days=7)).isoformat()},     # overlaps the session of that day
    {"duration_minutes": "0"},
    {"duration_minutes": "721"},
    {"duration_minutes": "abc"},
    {"topic": "x" * 201},
])
def test_session_bad_input_saves_nothing(client, setup, overrides):
    activity = setup["activity"]
    _html, token = _session_form(client, activity)
    data = {"session_uuid": token, "date": TODAY.isoformat(), "duration_minutes": "90",
            **overrides}
    before = (_count(ActivitySession), _count(Attendance))
    response = client.post(f"/activities/{activity.uuid}/sessions/new", data=data)
    assert response.status_code == 422
    assert 'class="error"' in response.get_data(as_text=True) or "flash-error" in \
        response.get_data(as_text=True)
    assert (_count(ActivitySession), _count(Attendance)) == before


def test_attendance_for_a_youth_not_enrolled_that_day_is_refused(setup, make_beneficiary):
    activity, worker = setup["activity"], setup["worker"]
    late = make_beneficiary("BA", first_name_ar="متأخر")
    service.enrol_in_activity(worker, late, activity, TODAY)
    with pytest.raises(ValidationError):
        service.record_session(worker, activity, {
            "date": TODAY - timedelta(days=3), "duration_minutes": 60},
            {late.id: "present"})
    assert _count(ActivitySession, ActivitySession.date == TODAY - timedelta(days=3)) == 0


def test_all_present_without_javascript_rerenders_and_saves_nothing(client, setup):
    activity = setup["activity"]
    activity.present_by_default = False
    db.session.commit()
    html, token = _session_form(client, activity)
    assert html.count('value="absent" checked') == 30
    before = _count(ActivitySession)
    page = client.post(f"/activities/{activity.uuid}/sessions/new", data={
        "session_uuid": token, "date": TODAY.isoformat(), "duration_minutes": "90",
        "all_present": "1"})
    assert page.status_code == 200
    assert page.get_data(as_text=True).count('value="present" checked') == 30
    assert _count(ActivitySession) == before


def test_participation_rate_hours_completion_and_stopped_coming(setup):
    activity, worker, youth = setup["activity"], setup["worker"], setup["youth"]
    regular, dropout = youth[1], youth[2]
    for days_ago, regular_status, dropout_status in (
            (6, "present", "present"), (5, "present", "absent"), (4, "absent", "absent"),
            (3, "present", "absent")):
        service.record_session(worker, activity, {
            "date": TODAY - timedelta(days=days_ago), "duration_minutes": 120},
            {regular.id: regular_status, dropout.id: dropout_status})
    figures = for_activity(activity)
    rows = {r.beneficiary_id: r for r in figures.rows}
    assert figures.sessions_held == 5
    # The session 7 days ago had only youth[0] marked: the others count it as held, absent.
    assert (rows[regular.id].attended, rows[regular.id].held) == (3, 5)
    assert rows[regular.id].hours == 6.0 and not rows[regular.id].completed
    assert rows[dropout.id].stopped_coming and not rows[regular.id].stopped_coming
    [mine] = for_beneficiary(youth[0])
    assert (mine.attended, mine.held, mine.completed) == (1, 5, False)
    activity.completion_rule, activity.completion_threshold = "hours", 6
    assert rows[regular.id].completed


def test_activity_pages_render(client, setup):
    activity = setup["activity"]
    page = client.get(f"/activities/{activity.uuid}")
    assert page.status_code == 200 and "Youth1" in page.get_data(as_text=True)
    assert client.get(f"/activities/{activity.uuid}?month=garbage").status_code == 200
    assert client.get(f"/activities/{activity.uuid}?month=2026-02").status_code == 200
    youth_page = client.get(f"/beneficiaries/{setup['youth'][0].uuid}")
    assert activity.name in youth_page.get_data(as_text=True)
    assert client.get("/activities/").status_code == 200


def test_today_lists_the_facilitators_sessions(client, setup):
    activity = setup["activity"]
    home = client.get("/").get_data(as_text=True)
    assert f"/activities/{activity.uuid}/sessions/new" in home
    assert f"/activities/{activity.uuid}/sessions/new" in client.get(
        "/activities/today").get_data(as_text=True)


def test_quick_add_by_code(client, setup, make_beneficiary):
    activity = setup["activity"]
    newcomer = make_beneficiary("BA", first_name_ar="جديد")
    no_consent = make_beneficiary("BA", first_name_ar="بلا", consent_given_by="",
                                  consent_scopes=[], phone=None)
    stranger = make_beneficiary("ACEC")
    url = f"/activities/{activity.uuid}/enrol"
    assert client.post(url, data={"code": newcomer.code.lower()}).status_code == 302
    assert any(e.activity_id == activity.id for e in newcomer.enrolments)
    before = _count(Attendance)
    for code in (stranger.code, no_consent.code, "BA-9999", newcomer.code):
        client.post(url, data={"code": code})
    db.session.refresh(no_consent)
    assert not any(e.activity_id == activity.id for e in no_consent.enrolments)
    assert sum(e.activity_id == activity.id for e in newcomer.enrolments) == 1
    assert _count(Attendance) == before


def test_manager_creates_an_activity_and_bad_input_saves_nothing(client, setup, make_user):
    login(client, make_user(Role.CSO_MANAGER, "BA"))
    base = {"name": "نادي الموسيقى", "kind": "music", "site": str(setup["site"].uuid),
            "planned_start": TODAY.isoformat(), "default_duration_minutes": "90",
            "completion_rule": "percent", "completion_threshold": "75", "weekdays": ["1", "3"],
            "present_by_default": "y", "active": "y"}
    before = _count(Activity)
    for bad in ({"name": ""}, {"site": ""}, {"planned_end": "2000-01-01"},
                {"completion_threshold": "150"}, {"default_duration_minutes": "0"},
                {"kind": "juggling"}):
        assert client.post("/activities/new", data={**base, **bad}).status_code == 422
    assert _count(Activity) == before
    assert client.post("/activities/new", data=base).status_code == 302
    created = db.session.scalars(sa.select(Activity).order_by(Activity.id.desc())).first()
    assert created.weekday_numbers == [1, 3]


def test_field_worker_cannot_define_activities(client, setup):
    assert client.get("/activities/new").status_code == 403
    assert client.get(f"/activities/{setup['activity'].uuid}/edit").status_code == 403


def test_group_event_counts(client, setup):
    url = "/activities/events/new"
    base = {"title": "يوم تحسيسي", "kind": "awareness_session", "date": TODAY.isoformat(),
            "duration_minutes": "120", "site": ""}
    before = _count(GroupEvent)
    assert client.post(url, data={**base, "count-female-15-17": "-3"}).status_code == 422
    assert client.post(url, data=base).status_code == 422  # nobody counted
    assert client.post(url, data={**base, "count-male-18-24": "x"}).status_code == 422
    assert client.post(url, data={**base, "duration_minutes": "0",
                                  "count-male-18-24": "4"}).status_code == 422
    assert _count(GroupEvent) == before
    ok = client.post(url, data={**base, "count-female-15-17": "14", "count-male-15-17": "11",
                                "count-female-under_10": "3"})
    assert ok.status_code == 302
    event = db.session.scalars(sa.select(GroupEvent).order_by(GroupEvent.id.desc())).first()
    assert event.total == 28
    assert client.get(f"/activities/events/{event.uuid}").status_code == 200
    assert client.get("/activities/events").status_code == 200


def test_correct_a_recorded_session(client, setup):
    session, youth = setup["session"], setup["youth"]
    page = client.get(f"/activities/sessions/{session.uuid}")
    assert page.status_code == 200 and 'value="present" checked' in page.get_data(as_text=True)
    data = {"date": session.date.isoformat(), "duration_minutes": "45",
            f"att-{youth[0].uuid}": "excused"}
    assert client.post(f"/activities/sessions/{session.uuid}", data=data).status_code == 302
    db.session.refresh(session)
    assert session.duration_minutes == 45
    assert {a.beneficiary_id: a.status for a in session.attendance}[youth[0].id] == "excused"
    bad = client.post(f"/activities/sessions/{session.uuid}", data={**data,
                                                                    "duration_minutes": "0"})
    assert bad.status_code == 422
    db.session.refresh(session)
    assert session.duration_minutes == 45


def test_calendar_links_say_their_visible_day(client, setup):
    """A session's day in the calendar is a link whose accessible name contains the number
    it shows (axe's label-content-name-mismatch: "3" shown, "03/12/2026" read, failed on
    the 1st to the 9th of every month)."""
    session = setup["session"]
    month = session.date.strftime("%Y-%m")
    html = client.get(f"/activities/{setup['activity'].uuid}?month={month}").get_data(
        as_text=True)
    links = re.findall(r'<a class="held"[^>]*aria-label="([^"]*)"[^>]*>([^<]*)</a>', html)
    assert links, "the session's day is a link"
    for label, shown in links:
        assert shown.strip() in label.split(), (label, shown)


def test_rosters_in_one_statement_are_each_roster_and_its_consents(setup, make_beneficiary,
                                                                   make_activity, make_user):
    """`rosters` (rows, one statement for several activities: the pages and the field app)
    lists each youth of the activity's CSO enrolled that day once, in code order, and
    `unmarkable_rows` refuses the youth the model's rule refuses (Beneficiary.allows):
    withdrawn, a newer consent without taking part, no consent at all."""
    from bladi_cases.models import Beneficiary, ConsentScope, Enrolment, Organization
    from bladi_cases.services.beneficiaries import registry

    activity, worker, youth, site = (setup["activity"], setup["worker"], setup["youth"],
                                     setup["site"])
    other, _session, _event = make_activity(site, youth[5], worker, name="نادي الرسم")
    registry.withdraw_consent(worker, youth[1], TODAY)
    registry.record_consent(worker, youth[2], {
        "consent_given_by": "self", "consent_method": "signed_form",
        "consent_scopes": ["surveys"], "consent_date": TODAY})
    no_consent = make_beneficiary("BA", consent_given_by="", consent_scopes=[], phone=None)
    ended, later = make_beneficiary("BA"), make_beneficiary("BA")
    # Enrolments the service would refuse, written as an import or an old version left them.
    for who, start, end in ((no_consent, 10, None), (youth[6], 3, None), (ended, 30, 1),
                            (later, -2, None)):
        db.session.add(Enrolment(beneficiary_id=who.id, organization_id=who.organization_id,
                                 site_id=site.id, activity_id=activity.id,
                                 start_date=TODAY - timedelta(days=start),
                                 end_date=None if end is None else TODAY - timedelta(days=end)))
    youth[8].erased_at = youth[8].created_at
    youth[9].organization_id = db.session.scalar(
        sa.select(Organization.id).where(Organization.code == "ACEC"))
    service.enrol_in_activity(worker, youth[10], other, TODAY)
    db.session.commit()

    rows = service.rosters([activity, other], TODAY)
    for each in (activity, other):
        # The roster read another way: the youth of the activity's CSO with an enrolment in
        # it that covers today, not erased, each once, by their code's sequence.
        objects = db.session.scalars(sa.select(Beneficiary).where(
            Beneficiary.organization_id == each.organization_id,
            Beneficiary.erased_at.is_(None),
            Beneficiary.enrolments.any(sa.and_(
                Enrolment.activity_id == each.id, Enrolment.start_date <= TODAY,
                sa.or_(Enrolment.end_date.is_(None), Enrolment.end_date >= TODAY))))
            .order_by(Beneficiary.sequence)).all()
        assert [(b.id, b.uuid, b.code) for b in rows[each.id]] == [
            (b.id, b.uuid, b.code) for b in objects]
        # The rows' consent columns say what the model's own rule says of the loaded youth.
        assert service.unmarkable_rows(rows[each.id]) == {
            b.id for b in objects if not b.allows(ConsentScope.PARTICIPATION)}
    on_roster = {b.id for b in rows[activity.id]}
    assert youth[6].id in on_roster and no_consent.id in on_roster, "listed once"
    assert [b.id for b in rows[activity.id]].count(youth[6].id) == 1
    assert not on_roster & {ended.id, youth[8].id, youth[9].id, later.id}
    assert service.unmarkable_rows(rows[activity.id]) == {youth[1].id, youth[2].id,
                                                          no_consent.id}
    assert [b.id for b in rows[other.id]] == [youth[5].id, youth[10].id]
    assert db.session.get(Beneficiary, youth[0].id).allows("participation")

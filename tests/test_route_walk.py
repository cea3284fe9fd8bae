"""Every route, every role: the status each one gets.

EXPECTED below is written by hand, independently of policy.py. A route added without an
entry here (or without a declared permission) fails this test, so nobody can add a page
and forget who may open it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Role
from bladi_cases.models.common import utcnow
from bladi_cases.policy import route_permission
from bladi_cases.services.auth import issue_reset

from .conftest import login

ANON = "anonymous"
ALL_ROLES = [r.value for r in Role]
EVERYONE = {ANON, *ALL_ROLES}
LOGGED_IN = set(ALL_ROLES)
MANAGERS = {Role.CSO_MANAGER.value, Role.ADMIN.value}
ADMIN = {Role.ADMIN.value}
CSO_STAFF = {Role.FIELD_WORKER.value, Role.CSO_MANAGER.value}
CSO_MANAGER = {Role.CSO_MANAGER.value}
SURVEY_AUTHORS = {Role.CSO_MANAGER.value, Role.REVIEWER.value, Role.ADMIN.value}
SURVEY_VIEWERS = CSO_STAFF | {Role.REVIEWER.value, Role.ADMIN.value}
EXPORTERS = {Role.REVIEWER.value, Role.ADMIN.value, Role.DONOR.value}

# endpoint -> roles that may use it
EXPECTED: dict[str, set[str]] = {
    "static": EVERYONE,
    "main.healthz": EVERYONE,
    "main.set_language": EVERYONE,
    "main.home": LOGGED_IN,
    "field.page": CSO_STAFF,
    "field.service_worker": EVERYONE,
    "field.manifest": EVERYONE,
    "auth.login": EVERYONE,
    "auth.reset_password": EVERYONE,
    "auth.logout": LOGGED_IN,
    "auth.change_password": LOGGED_IN,
    "auth.login_code": EVERYONE,
    "auth.login_enrol": EVERYONE,
    "auth.login_enrolled": EVERYONE,
    "auth.account_second_factor": LOGGED_IN,
    "auth.account_enrol_start": LOGGED_IN,
    "auth.account_enrol": LOGGED_IN,
    "auth.renew_recovery_codes": LOGGED_IN,
    "auth.login_sessions": LOGGED_IN,
    "auth.end_login_session": LOGGED_IN,  # an empty POST: "already ended", back to the list
    "auth.log_out_everywhere": LOGGED_IN,
    "admin.organizations": ADMIN,
    "admin.new_organization": ADMIN,
    "admin.edit_organization": ADMIN,
    "admin.sites": ADMIN,
    "admin.new_site": ADMIN,
    "admin.edit_site": ADMIN,
    "admin.users": MANAGERS,
    "admin.new_user": MANAGERS,
    "admin.edit_user": MANAGERS,
    "admin.set_user_active": MANAGERS,
    # The account walked is a field worker of BA, which has an active manager: only BA's
    # managers reset it; an administrator may only make an emergency reset (issue 16).
    "admin.issue_user_reset": CSO_MANAGER,
    "admin.emergency_reset": ADMIN,
    # The same field worker's second factor: its manager resets it, not an administrator
    # (who resets a manager's).
    "admin.reset_second_factor": CSO_MANAGER,
    "main.notices_seen": LOGGED_IN,
    "audit.entries": MANAGERS,
    "beneficiaries.index": CSO_STAFF,
    "beneficiaries.new": CSO_STAFF,
    "beneficiaries.show": CSO_STAFF,
    "beneficiaries.edit": CSO_STAFF,
    "beneficiaries.consent": CSO_STAFF,
    "beneficiaries.withdraw": CSO_STAFF,
    "beneficiaries.enrol": CSO_STAFF,
    "beneficiaries.end_enrolment": CSO_STAFF,
    "beneficiaries.access_request": CSO_MANAGER,
    "beneficiaries.erase": CSO_MANAGER,
    "beneficiaries.import_template": CSO_MANAGER,
    "beneficiaries.import_upload": CSO_MANAGER,
    "beneficiaries.import_confirm": CSO_MANAGER,
    "beneficiaries.import_duplicates": CSO_MANAGER,
    # A person's own background jobs (each walker gets a finished export of their own).
    "jobs.index": LOGGED_IN,
    "admin.maintenance": ADMIN,
    "jobs.show": LOGGED_IN,
    "jobs.status": LOGGED_IN,
    "jobs.result": LOGGED_IN,
    "jobs.cancel": LOGGED_IN,  # a finished job: "already ended", back to its page
    "activities.index": CSO_STAFF,
    "activities.today": CSO_STAFF,
    "activities.new": CSO_MANAGER,
    "activities.edit": CSO_MANAGER,
    "activities.show": CSO_STAFF,
    "activities.enrol": CSO_STAFF,
    "activities.new_session": CSO_STAFF,
    "activities.session": CSO_STAFF,
    "activities.events": CSO_STAFF,
    "activities.new_event": CSO_STAFF,
    "activities.event": CSO_STAFF,
    "cases.index": CSO_STAFF,
    "cases.new": CSO_STAFF,
    "cases.show": CSO_STAFF,
    "cases.assessment": CSO_STAFF,
    "cases.status": CSO_STAFF,
    "cases.add_goal": CSO_STAFF,
    "cases.goal_status": CSO_STAFF,
    "cases.add_note": CSO_STAFF,
    "cases.edit_note": CSO_STAFF,
    "cases.note_done": CSO_STAFF,
    "cases.add_referral": CSO_STAFF,
    "cases.update_referral": CSO_STAFF,
    "cases.add_outcome": CSO_STAFF,
    "cases.outcome_check": CSO_STAFF,
    "cases.providers": CSO_STAFF,
    "cases.provider": CSO_STAFF,
    "cases.request_transfer": CSO_STAFF,
    "cases.transfer_list": CSO_STAFF,
    "cases.decide": CSO_MANAGER,
    "surveys.index": SURVEY_VIEWERS,
    "surveys.show": SURVEY_VIEWERS,
    "surveys.import_survey": SURVEY_AUTHORS,
    # The walk's survey is program-wide: a CSO manager publishes only their CSO's own.
    "surveys.publish": {Role.REVIEWER.value, Role.ADMIN.value},
    "surveys.export_definition": SURVEY_AUTHORS,
    "surveys.export_responses": CSO_STAFF,
    "surveys.fill": CSO_STAFF,
    "surveys.visibility": CSO_STAFF,
    "reports.dashboard": LOGGED_IN,
    "reports.quarterly": {Role.CSO_MANAGER.value, Role.REVIEWER.value, Role.ADMIN.value,
                          Role.DONOR.value},
    "reports.generate": CSO_MANAGER,
    "reports.report": LOGGED_IN,  # the walk's report is approved: the donor sees it too
    "reports.targets": {Role.REVIEWER.value, Role.ADMIN.value},
    "reports.manual": CSO_MANAGER,
    "reports.exports_page": EXPORTERS,
    "reports.tracking": EXPORTERS,
    "reports.microdata": EXPORTERS,
    "reports.dictionary": EXPORTERS,
    "field.api.me": LOGGED_IN,
    "field.api.activities": CSO_STAFF,
    "field.api.sessions_today": CSO_STAFF,
    "field.api.surveys": CSO_STAFF,
    "field.api.registration_options": CSO_STAFF,
    "field.api.cases": CSO_STAFF,
    "field.api.sync": CSO_STAFF,  # an empty POST: 400 for those who may send records
    "field.api.openapi": EVERYONE,
}


def _url_args(rule, fixtures) -> dict:
    values = {"code": lambda: "BA", "site_id": lambda: fixtures["site"].uuid,
              "user_id": lambda: fixtures["colleague"].uuid, "token": fixtures["new_token"],
              "filename": lambda: "css/app.css", "fmt": lambda: "xlsx",
              "beneficiary_id": lambda: fixtures["youth"].uuid,
              "enrolment_id": lambda: fixtures["enrolment"].uuid,
              "activity_id": lambda: fixtures["activity"].uuid,
              "session_id": lambda: fixtures["session"].uuid,
              "event_id": lambda: fixtures["event"].uuid,
              "case_id": lambda: fixtures["case"].uuid,
              "goal_id": lambda: fixtures["case"].goals[0].uuid,
              "note_id": lambda: fixtures["note"].uuid,
              "referral_id": lambda: fixtures["case"].referrals[0].uuid,
              "outcome_id": lambda: fixtures["case"].outcomes[0].uuid,
              "provider_id": lambda: fixtures["provider"].uuid,
              "transfer_id": lambda: fixtures["transfer"].uuid,
              "survey_id": lambda: fixtures["survey"].uuid,
              "version_id": lambda: fixtures["survey"].versions[-1].uuid,
              "report_id": lambda: fixtures["report"].uuid, "year": lambda: 2027,
              "job_id": lambda: fixtures["job_of"](fixtures.get("walker")).uuid}
    return {name: values[name]() for name in rule.arguments}


@pytest.fixture
def walk_fixtures(make_user, make_site, make_beneficiary, make_activity, make_case, org):
    colleague = make_user(Role.FIELD_WORKER, "BA")
    site = make_site("BA")
    youth = make_beneficiary("BA", site=site)
    activity, session, event = make_activity(site, youth, colleague)
    case, provider = make_case(youth, colleague)
    # A case of another CSO (KS) that asks Bedhret Amal (BA) to take it.
    from bladi_cases.models import CaseNote
    from bladi_cases.services.cases.transfers import request_transfer

    ks_worker = make_user(Role.FIELD_WORKER, "KS")
    ks_case, _provider = make_case(make_beneficiary("KS"), ks_worker)
    transfer = request_transfer(ks_worker, ks_case, org("BA"), "موافقة الولي كتابيا")
    db.session.commit()
    note = db.session.scalars(sa.select(CaseNote).where(CaseNote.case_id == case.id)).one()
    admin = make_user(Role.ADMIN)

    def new_token():
        # A fresh code each time: issuing one (a route of the walk) voids the older ones.
        token = issue_reset(colleague, admin)
        db.session.commit()
        return token

    from bladi_cases.models import Survey
    from bladi_cases.services.reports import reports
    from bladi_cases.services.reports.indicators import Period

    manager = make_user(Role.CSO_MANAGER, "BA")
    report = reports.generate_report(manager, org("BA"), Period(2027, 1))
    reports.save_narrative(manager, report, {"achievements": "ورشات منتظمة"})
    reports.submit_report(manager, report)
    reports.review_report(make_user(Role.REVIEWER), report, "approve", "")
    db.session.commit()

    survey = db.session.scalars(sa.select(Survey).where(Survey.organization_id.is_(None))).first()
    jobs_made = {}

    def job_of(user):
        """A finished export of the walker's (the colleague's for anonymous and strangers)."""
        owner = user or colleague
        if owner.id not in jobs_made:
            from bladi_cases.models import Job
            from bladi_cases.services.files import CSV_MIMETYPE
            from bladi_cases.services.jobs import _encrypt_bytes

            job = Job(kind="reports.tracking", user_id=owner.id, status="done",
                      organization_id=owner.organization_id, params={},
                      result_enc=_encrypt_bytes(b"a,b\r\n"), result_name="walk.csv",
                      result_mimetype=CSV_MIMETYPE, expires_at=utcnow() + timedelta(hours=1))
            db.session.add(job)
            db.session.commit()
            jobs_made[owner.id] = job
        return jobs_made[owner.id]

    return {"report": report, "survey": survey, "site": site, "colleague": colleague,
            "job_of": job_of,
            "new_token": new_token, "youth": youth,
            "enrolment": youth.enrolments[-1], "activity": activity, "session": session,
            "event": event, "case": case, "provider": provider, "note": note,
            "transfer": transfer}


def test_every_route_declares_a_permission_and_has_an_expectation(app):
    with app.test_request_context():
        endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
        undeclared = sorted(e for e in endpoints if route_permission(e) is None)
    assert undeclared == [], f"routes without a declared permission: {undeclared}"
    assert sorted(endpoints - set(EXPECTED)) == [], "add the new routes to EXPECTED"
    assert sorted(set(EXPECTED) - endpoints) == [], "EXPECTED names routes that are gone"


@pytest.mark.parametrize("who", [ANON, *ALL_ROLES])
def test_every_route_for_every_role(app, make_user, walk_fixtures, who):
    user = None if who == ANON else make_user(who)
    walk_fixtures["walker"] = user
    failures = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint):
        client = app.test_client()
        if user is not None:
            login(client, user)
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **_url_args(rule, walk_fixtures))
        method = "GET" if "GET" in rule.methods else "POST"
        # A page's forms carry their hidden CSRF inputs, as in production, so that the id
        # check below sees them too (a POST of the walk sends no token).
        app.config["WTF_CSRF_ENABLED"] = method == "GET"
        try:
            response = client.open(url, method=method)
        finally:
            app.config["WTF_CSRF_ENABLED"] = False
        allowed = who in EXPECTED[rule.endpoint]
        location = response.headers.get("Location", "")
        if not allowed and who == ANON and url.startswith("/api/"):
            ok = response.status_code == 401 and response.get_json()["error"] == "unauthorized"
        elif not allowed and who == ANON:
            ok = response.status_code == 302 and "/login" in location
        elif not allowed:
            ok = response.status_code == 403
        else:
            # 400 and 422: the view was reached and refused the (empty) input.
            ok = response.status_code in (200, 302, 400, 422) and "/login?next" not in location
        if not ok:
            failures.append(f"{method} {url}: {response.status_code} {location}")
        elif response.status_code == 200 and response.mimetype == "text/html":
            twice = _ids_used_twice(response.get_data(as_text=True))
            if twice:
                failures.append(f"{method} {url}: the same id twice: {twice}")
    assert failures == [], f"{who}: " + "; ".join(failures)


def _ids_used_twice(html: str) -> list[str]:
    """The ids a page gives to more than one element: a label, a hint or an error message
    names its input by id, and a screen reader (and a tap on the label) goes to the first
    element of that id. The hidden CSRF input of each form is counted too (the walk's pages
    are rendered with CSRF on): invalid HTML however harmless it seems."""
    ids = Counter(re.findall(r'\sid="([^"]*)"', html))
    return sorted(name for name, times in ids.items() if times > 1)


@pytest.mark.parametrize("endpoint,arg", [
    ("admin.edit_user", "user_id"),
    ("admin.set_user_active", "user_id"),
    ("admin.issue_user_reset", "user_id"),
    ("admin.reset_second_factor", "user_id"),
])
def test_manager_gets_404_for_another_csos_account(app, client, make_user, endpoint, arg):
    manager = make_user(Role.CSO_MANAGER, "BA")
    stranger = make_user(Role.FIELD_WORKER, "ACEC")
    login(client, manager)
    with app.test_request_context():
        from flask import url_for

        url = url_for(endpoint, **{arg: stranger.uuid})
    response = client.open(url, method="GET" if endpoint == "admin.edit_user" else "POST",
                           data={"active": "0"})
    assert response.status_code == 404
    assert stranger.active is True


# URL arguments that name a CSO-owned record: another CSO must get 404 for all of them.
CSO_OWNED_ARGUMENTS = {"beneficiary_id", "enrolment_id", "activity_id", "session_id",
                       "event_id", "case_id", "goal_id", "note_id", "referral_id",
                       "outcome_id", "provider_id", "transfer_id", "report_id",
                       "job_id"}  # a job: nobody's but the person's who asked for it


@pytest.mark.parametrize("role", [Role.FIELD_WORKER, Role.CSO_MANAGER])
def test_another_cso_gets_404_on_every_route_of_a_record(app, make_user, walk_fixtures, role):
    stranger = make_user(role, "ACEC")
    checked = 0
    for rule in app.url_map.iter_rules():
        if not set(rule.arguments) & CSO_OWNED_ARGUMENTS:
            continue
        client = app.test_client()
        login(client, stranger)
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **_url_args(rule, walk_fixtures))
        method = "GET" if "GET" in rule.methods else "POST"
        youth = walk_fixtures["youth"]
        response = client.open(url, method=method, data={"confirm": youth.code,
                                                          "active": "0"})
        if role.value not in EXPECTED[rule.endpoint]:  # not theirs in any CSO: 403 or 404
            assert response.status_code in (403, 404), (url, method, response.status_code)
            continue
        assert response.status_code == 404, (url, method, response.status_code)
        checked += 1
    assert checked >= 28
    db.session.refresh(walk_fixtures["youth"])
    assert walk_fixtures["youth"].erased_at is None


# A CSO's own survey: only that CSO's managers publish its versions. Reviewers and admins
# see it (403), another CSO cannot (404): `surveys.publish` above walks a program-wide one.
CSO_SURVEY_PUBLISH = {ANON: 302, Role.FIELD_WORKER.value: 403, Role.CSO_MANAGER.value: 302,
                      Role.REVIEWER.value: 403, Role.DONOR.value: 403, Role.ADMIN.value: 403,
                      "manager of another CSO": 404}


@pytest.mark.parametrize("who", sorted(CSO_SURVEY_PUBLISH))
def test_publishing_a_csos_survey_is_for_its_managers(app, make_user, who):
    from flask import url_for

    from bladi_cases.sample_survey import workbook_bytes
    from bladi_cases.services.surveys.surveys import import_version

    owner = make_user(Role.CSO_MANAGER, "BA")
    version = import_version(owner, workbook_bytes(), owner.organization)
    db.session.commit()
    client = app.test_client()
    if who == "manager of another CSO":
        login(client, make_user(Role.CSO_MANAGER, "ACEC"))
    elif who != ANON:
        login(client, make_user(who))
    with app.test_request_context():
        url = url_for("surveys.publish", version_id=version.uuid)
    response = client.post(url)
    assert response.status_code == CSO_SURVEY_PUBLISH[who], who
    if who == ANON:
        assert "/login" in response.headers["Location"]
    db.session.refresh(version)
    assert (version.published_at is not None) == (who == Role.CSO_MANAGER.value), who


def test_every_form_of_the_app_renders_its_csrf_input_without_an_id(app):
    """Every form class of the app derives from `blueprints.Form` (whose hidden CSRF input
    has no id), so a new form on a page of several cannot bring back a repeated id; the walk
    above sees it only on pages that render two such forms."""
    from flask_wtf import FlaskForm

    from bladi_cases.blueprints import Form

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    ours = {cls for cls in subclasses(FlaskForm) if cls.__module__.startswith("bladi_cases.")}
    assert len(ours) > 30  # the app's forms are loaded with it
    assert sorted(f"{c.__module__}.{c.__name__}" for c in ours
                  if not issubclass(c, Form)) == []

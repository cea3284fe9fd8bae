"""The field app's JSON API: each endpoint, who may use it, names only for the own CSO's
workers (audited), JSON errors, CSRF, the generated OpenAPI document, and a fuzz run."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
import sqlalchemy as sa
from flask import url_for

from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, CaseNote, Role

from .conftest import _clear_g, login, statements_of

READS = ["/api/v1/activities", "/api/v1/sessions/today", "/api/v1/surveys",
         "/api/v1/registration-options", "/api/v1/cases"]


def _audited(action: str, purpose: str) -> list[AuditEntry]:
    entries = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action))
    return [e for e in entries if (e.detail or {}).get("purpose") == purpose]


def test_me(client, field):
    body = client.get("/api/v1/me").get_json()
    worker = field["worker"]
    assert body["user"] == {"id": str(worker.uuid), "name": worker.display_name,
                            "role": "field_worker", "language": "en"}
    assert body["organization"]["code"] == "BA" and body["organization"]["name"]
    assert len(body["csrf_token"]) > 20
    assert body["server_time"].startswith(date.today().isoformat()[:4])


def test_activities_with_named_roster_audited(client, field):
    [activity] = client.get("/api/v1/activities").get_json()["activities"]
    youth = field["youth"]
    assert activity["id"] == str(field["activity"].uuid)
    assert activity["weekdays"] == [date.today().weekday()]
    assert activity["default_duration_minutes"] == 90 and activity["site"] == field["site"].name
    assert activity["roster"] == [{"id": str(youth.uuid), "code": youth.code,
                                   "name": "أميرة الطرابلسي (Amira Trabelsi)"}]
    [entry] = _audited("beneficiaries_listed", "offline_roster")
    assert entry.detail["codes"] == [youth.code] and entry.actor_id == field["worker"].id


def test_a_manager_sees_every_activity_but_names_only_of_own(client, field, make_user):
    login(client, make_user(Role.CSO_MANAGER, "BA"))
    [activity] = client.get("/api/v1/activities").get_json()["activities"]
    assert activity["roster"][0]["code"] == field["youth"].code
    assert activity["roster"][0]["name"] is None
    assert _audited("beneficiaries_listed", "offline_roster") == []


def test_a_colleague_does_not_get_someone_elses_activity(client, field, make_user):
    login(client, make_user(Role.FIELD_WORKER, "BA"))
    assert client.get("/api/v1/activities").get_json()["activities"] == []


def test_an_activity_without_facilitators_is_every_workers(client, field, make_user,
                                                           make_beneficiary, make_activity):
    youth = make_beneficiary("BA", site=field["site"])
    shared, _session, _event = make_activity(field["site"], youth, field["worker"],
                                             name="نادي الجميع", facilitators=[])
    db.session.commit()
    both = client.get("/api/v1/activities").get_json()["activities"]
    assert {a["id"] for a in both} == {str(field["activity"].uuid), str(shared.uuid)}
    login(client, make_user(Role.FIELD_WORKER, "BA"))
    [activity] = client.get("/api/v1/activities").get_json()["activities"]
    assert activity["id"] == str(shared.uuid)
    assert activity["roster"] == [{"id": str(youth.uuid), "code": youth.code,
                                   "name": "أميرة الطرابلسي (Amira Trabelsi)"}]
    [item] = client.get("/api/v1/sessions/today").get_json()["sessions"]
    assert item["activity"] == str(shared.uuid)


def test_sessions_today_then_recorded(client, field):
    [item] = client.get("/api/v1/sessions/today").get_json()["sessions"]
    assert item["activity"] == str(field["activity"].uuid)
    assert item["recorded"] is False and item["session"] is None
    key = str(uuid.uuid4())
    client.post("/api/v1/sync", json={"records": [{
        "uuid": key, "type": "session", "data": {
            "activity": str(field["activity"].uuid), "date": date.today().isoformat(),
            "duration_minutes": None, "attendance": {str(field["youth"].uuid): "present"}}}]})
    [item] = client.get("/api/v1/sessions/today").get_json()["sessions"]
    assert item["recorded"] is True and item["session"] == key


def test_surveys_are_each_current_version_of_the_users_surveys_in_one_statement(
        client, field, add_survey):
    """Each survey the user may fill, with its newest published version: not a newer draft,
    not a survey with drafts only, not another CSO's survey; read in one statement however
    many surveys there are (each survey's versions were a statement of their own)."""

    def fillable():
        """The surveys the API gives (code: version id, number) and its statements."""
        body, sent = statements_of(lambda: client.get("/api/v1/surveys").get_json())
        return {item["survey"]: (item["id"], item["number"])
                for item in body["surveys"]}, len(sent)

    before, statements = fillable()
    second = add_survey("second", None, True, True, False)  # v2 current, v3 a draft
    own = add_survey("own", "BA", True)
    add_survey("drafts_only", None, False)
    add_survey("theirs", "ACEC", True)
    after, more = fillable()
    current = second.survey.current
    assert current.number == 2
    assert after == {**before, "second": (str(current.uuid), 2), "own": (str(own.uuid), 1)}
    assert more == statements


def test_surveys_in_the_users_language(client, field):
    [survey] = client.get("/api/v1/surveys").get_json()["surveys"]
    assert survey["survey"] and survey["number"] >= 1
    assert survey["definition"]["questions"] and survey["title"]
    field["worker"].preferred_language = "fr"
    db.session.commit()
    [french] = client.get("/api/v1/surveys").get_json()["surveys"]
    assert french["id"] == survey["id"]


def test_registration_options(client, field):
    options = client.get("/api/v1/registration-options").get_json()
    assert {"id": str(field["site"].uuid), "name": field["site"].name,
            "kind": "youth_centre"} in options["sites"]
    assert len(options["governorates"]) == 24
    assert {"code": "TN-61", "name": "Sfax"} in options["governorates"]
    assert [c["value"] for c in options["sex"]] == ["female", "male"]
    assert {c["value"] for c in options["consent_given_by"]} == {"self", "guardian",
                                                                  "authority"}
    assert {"participation", "surveys"} <= {c["value"] for c in options["consent_scopes"]}
    assert options["required"] == ["sex", "birth_date", "governorate_code", "setting_kind"]
    assert options["min_age"] == 8 and options["adult_age"] == 18


def test_cases_with_follow_ups_named_for_the_assigned_worker(client, field):
    [case] = client.get("/api/v1/cases").get_json()["cases"]
    note = db.session.scalars(sa.select(CaseNote).where(
        CaseNote.case_id == field["case"].id)).one()
    assert case == {"id": str(field["case"].uuid), "youth_id": str(field["youth"].uuid),
                    "youth_code": field["youth"].code,
                    "youth_name": "أميرة الطرابلسي (Amira Trabelsi)",
                    "follow_ups_due": [{"id": str(note.uuid),
                                        "due_date": date.today().isoformat()}]}
    assert _audited("beneficiaries_listed", "offline_cases")


def test_cases_of_a_manager_without_names_and_none_for_a_colleague(client, field, make_user):
    login(client, make_user(Role.CSO_MANAGER, "BA"))
    [case] = client.get("/api/v1/cases").get_json()["cases"]
    assert case["youth_name"] is None and case["follow_ups_due"]
    login(client, make_user(Role.FIELD_WORKER, "BA"))
    assert client.get("/api/v1/cases").get_json()["cases"] == []


@pytest.mark.parametrize("path", READS)
def test_another_csos_worker_sees_nothing_of_ours(client, field, make_user, path):
    login(client, make_user(Role.FIELD_WORKER, "ACEC"))
    text = client.get(path).get_data(as_text=True)
    for secret in (str(field["youth"].uuid), field["youth"].code, str(field["site"].uuid),
                   str(field["activity"].uuid), str(field["case"].uuid), "أميرة"):
        assert secret not in text


@pytest.mark.parametrize("path", READS + ["/api/v1/me"])
def test_anonymous_gets_401_json_not_a_redirect(client, path):
    response = client.get(path)
    assert response.status_code == 401 and response.is_json
    assert response.get_json()["error"] == "unauthorized" and response.get_json()["message"]


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.DONOR, Role.ADMIN])
@pytest.mark.parametrize("path", READS)
def test_roles_outside_the_csos_get_403_json(client, make_user, role, path):
    login(client, make_user(role))
    response = client.get(path)
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"


def test_json_errors_for_unknown_urls_and_methods(client, field):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert client.get("/api/v2/me").get_json()["error"] == "not_found"
    wrong = client.get("/api/v1/sync")
    assert wrong.status_code == 405 and wrong.get_json()["error"] == "method_not_allowed"
    french = client.get("/api/v1/nothing-here", headers={"Accept-Language": "fr"})
    assert french.get_json()["message"]


def test_csrf_token_from_me_is_required_for_sync(app, client, field, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    refused = client.post("/api/v1/sync", json={"records": []})
    assert refused.status_code == 400 and refused.get_json()["error"] == "csrf_failed"
    token = client.get("/api/v1/me").get_json()["csrf_token"]
    accepted = client.post("/api/v1/sync", json={"records": []},
                           headers={"X-CSRFToken": token})
    assert accepted.status_code == 200 and accepted.get_json() == {"results": []}


# --- The OpenAPI document ----------------------------------------------------------------

def test_openapi_document_is_valid_and_covers_every_api_route(app, client):
    from openapi_spec_validator import validate

    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert document["openapi"].startswith("3.0")
    with app.test_request_context():
        routes = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules()
                  if rule.endpoint.startswith("field.api.")
                  for method in rule.methods - {"HEAD", "OPTIONS"}}
        assert url_for("field.api.openapi") == "/api/v1/openapi.json"
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == routes
    sync = document["paths"]["/api/v1/sync"]["post"]
    assert sync["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "SyncRequest")
    assert document["components"]["schemas"]["SyncRequest"]["properties"]["records"][
        "maxItems"] == 100


# --- Fuzzing -----------------------------------------------------------------------------

def _fuzz(operation, mode, token: str, cookie: str, answered: dict) -> None:
    """Run generated requests of one operation; none may answer 5xx."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=50, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case):
        response = case.call(headers={"X-CSRFToken": token}, cookies={"session": cookie})
        answered.setdefault(operation.label, set()).add(response.status_code)
        assert response.status_code < 500, (case.method, case.path, case.body,
                                            response.text[:500])

    fuzz()


def test_fuzz_every_operation_as_a_field_worker_never_5xx(app, client, field):
    import schemathesis
    from schemathesis import GenerationMode

    token = client.get("/api/v1/me").get_json()["csrf_token"]
    cookie = client.get_cookie("session", domain="bladi.test")
    assert cookie is not None
    app.config["WTF_CSRF_ENABLED"] = True

    def wsgi(environ, start_response):
        _clear_g()  # as the test client does: no `g` shared between requests
        return app(environ, start_response)

    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi)
        answered: dict[str, set[int]] = {}
        for result in schema.get_all_operations():
            # Valid requests, then invalid ones (wrong types, missing fields, bad JSON...).
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(result.ok(), mode, token, cookie.value, answered)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    # Every operation but the document itself (which schemathesis leaves out) was called.
    assert set(answered) == {f"GET {path}" for path in READS + ["/api/v1/me"]} | {
        "POST /api/v1/sync"}, answered
    assert {200, 400} <= answered["POST /api/v1/sync"], answered


def test_field_page_content_follows_each_cso_and_language(app, client, make_user, make_site,
                                                         monkeypatch):
    """The field page's content is rendered once and kept (blueprints/field/views.py): each
    CSO still gets its own sites to enrol at, and each language its own words."""
    monkeypatch.setattr(app.jinja_env, "auto_reload", False)  # as served: kept
    make_site("BA", name="Dar Chabab BA")
    make_site("KS", name="Dar Chabab KS")
    users = {(code, lang): make_user(Role.FIELD_WORKER, code, preferred_language=lang)
             for code, lang in (("BA", "en"), ("KS", "en"), ("KS", "fr"), ("BA", "ar"))}
    words = {"en": "Register a young person", "fr": "Inscrire un jeune",
             "ar": "تسجيل شاب(ة)"}
    for _round in range(2):  # the second time from what was kept
        for (code, lang), user in users.items():
            login(client, user)
            html = client.get("/field").get_data(as_text=True)
            other = "KS" if code == "BA" else "BA"
            assert f"Dar Chabab {code}" in html and f"Dar Chabab {other}" not in html
            assert words[lang] in html and all(
                word not in html for other_lang, word in words.items() if other_lang != lang)
    assert len(app.extensions["bladi_fragments"]["field"]) >= len(users)


def test_governorates_are_read_once_per_process_and_language(app, client, field):
    """The registration choices name each governorate of the table in the user's language,
    in code order, and are read from the database on the first request of a language only:
    reference data the app never writes (`admin.governorate_choices`)."""
    from bladi_cases.models import Governorate
    from bladi_cases.models.admin import localized

    app.extensions.pop("bladi_governorates", None)
    table = db.session.scalars(sa.select(Governorate).order_by(Governorate.iso_code)).all()

    def options():
        body, sent = statements_of(
            lambda: client.get("/api/v1/registration-options").get_json())
        return body["governorates"], [s for s in sent if "FROM governorate" in s]

    for lang in ("en", "fr", "ar"):
        field["worker"].preferred_language = lang
        db.session.commit()
        first, read = options()
        assert first == [{"code": g.iso_code, "name": localized(g, "name", lang)}
                         for g in table]
        assert len(read) == 1
        again, read = options()
        assert again == first and read == []
    assert {g["name"] for g in first} != {g.name("en") for g in table}  # Arabic, not English


def test_an_empty_governorate_table_is_not_kept(file_app):
    """A database not seeded yet gives no governorates, and the next read looks again: the
    seed that follows is seen without a restart."""
    from flask_migrate import upgrade

    from bladi_cases.seed import seed_reference
    from bladi_cases.services.admin import governorate_choices

    with file_app.test_request_context():
        upgrade()
        assert governorate_choices("fr") == ()
        seed_reference()
        db.session.commit()
        choices = governorate_choices("fr")
        assert len(choices) == 24 and ("TN-61", "Sfax") in choices

"""Test fixtures: one app and one database per session, each test in a rolled-back transaction.

The database is SQLite in a temporary folder, or PostgreSQL when TEST_DATABASE_URL is set
(.ci/run does both). Without a reachable PostgreSQL the suite is skipped with a visible
reason on a developer's machine, and fails under CI (CI=true).
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import g, has_app_context
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy.orm import scoped_session, sessionmaker

from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import Organization, Role, Site, SiteKind, User
from bladi_cases.seed import seed_reference
from bladi_cases.services.auth import hash_password
from bladi_cases.services.auth import sessions as auth_sessions
from bladi_cases.services.reports.indicators import Period

TEST_PASSWORD = "Correct-Horse-Battery-9"
_TMP = Path(tempfile.mkdtemp(prefix="bladi-tests-"))
_PG_PROBLEM: str | None = None


def _postgres_problem(url: str) -> str | None:
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no PostgreSQL here"
        return f"PostgreSQL at {url} is unreachable ({type(exc).__name__}: {exc})"[:300]
    return None


def pytest_configure(config):
    """Check PostgreSQL once; CI must not silently skip it."""
    global _PG_PROBLEM
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        _PG_PROBLEM = _postgres_problem(url)
        if _PG_PROBLEM and os.environ.get("CI") == "true":
            raise pytest.UsageError(f"CI=true and {_PG_PROBLEM}")


def pytest_collection_modifyitems(config, items):
    """Skip every test, visibly, when PostgreSQL was asked for but is not there."""
    if _PG_PROBLEM:
        marker = pytest.mark.skip(reason=f"SKIPPED: {_PG_PROBLEM}")
        for item in items:
            item.add_marker(marker)


def pytest_report_header(config):
    """Say which database the run uses."""
    return f"database: {os.environ.get('TEST_DATABASE_URL') or 'SQLite (temporary file)'}"


def _reset_database(url: str) -> None:
    """Start from an empty database, so the migrations build it from nothing."""
    if url.startswith("postgresql"):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> str:
    """The URL of the session's database."""
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{_TMP / 'test.db'}"
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def app(database_url):
    """The one app of the test session, its database migrated from empty and seeded."""
    _reset_database(database_url)
    os.environ["BLADI_INSTANCE_PATH"] = str(_TMP / "instance")
    application = create_app({
        "BLADI_ENV": "testing",
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": False,
        "SERVER_NAME": "bladi.test",
    })
    with application.app_context():
        upgrade()
        seed_reference()
        db.session.commit()
        db.session.remove()
    application.test_client_class = IsolatedClient
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _dates_of_today(request):
    """A module's `TODAY`, `PERIOD` and `YEAR` taken from the date when it was imported are
    today's when each of its tests starts: a run that crosses midnight (CI starts whenever
    a session ends) would otherwise compare the app's new date with the tests' old one.
    Only a value that is yesterday's (the import's, before midnight) is replaced, so a
    module that fixes a date of its own keeps it."""
    module, today = request.module, date.today()
    yesterday = today - timedelta(days=1)
    if getattr(module, "TODAY", None) == yesterday:
        module.TODAY = today
    if getattr(module, "PERIOD", None) == Period.containing(yesterday):
        module.PERIOD = Period.containing(today)
    if getattr(module, "YEAR", None) == Period.containing(yesterday).fiscal_year:
        module.YEAR = Period.containing(today).fiscal_year
    yield


@pytest.fixture(autouse=True)
def _transaction(app):
    """Run each test inside a transaction that is rolled back: no rebuild per test.

    Requests commit as usual; with join_transaction_mode='create_savepoint' their commits
    only release a savepoint of the outer transaction.
    """
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original = db.session
        db.session = scoped_session(
            sessionmaker(bind=connection, join_transaction_mode="create_savepoint"))
        try:
            yield
        finally:
            db.session.remove()
            db.session = original
            outer.rollback()
            connection.close()


class IsolatedClient(FlaskClient):
    """A test client whose requests never see each other's `g`.

    The test's app context stays pushed (so the test and its requests share one database
    session and transaction), which would otherwise let `g` (Flask-Login's cached user,
    the cached language) leak from one request into the next.
    """

    def open(self, *args, **kwargs):
        _clear_g()
        try:
            return super().open(*args, **kwargs)
        finally:
            _clear_g()


def _clear_g() -> None:
    if has_app_context():
        for name in list(vars(g)):
            delattr(g, name)


@pytest.fixture
def file_app(tmp_path, monkeypatch):
    """A second app on its own SQLite file (`tmp_path / "file.db"`, empty: upgrade it), for
    tests that read the database file itself. `db.session` is that app's own while the test
    runs (the suite's rolled-back session would write to the suite's database instead)."""
    application = create_app({"BLADI_ENV": "testing", "WTF_CSRF_ENABLED": False,
                              "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'file.db'}"})
    application.test_client_class = IsolatedClient
    with application.app_context():
        monkeypatch.setattr(db, "session", scoped_session(sessionmaker(bind=db.engine)))
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client; use login(client, user) to act as someone."""
    return app.test_client()


@pytest.fixture
def org():
    """A function returning a seeded organisation by code."""

    def get(code: str) -> Organization:
        return db.session.scalars(sa.select(Organization).where(Organization.code == code)).one()

    return get


@functools.cache
def _hashed(password: str) -> str:
    """One argon2 hash per password for the whole run (each costs ~0.17 s of CPU)."""
    return hash_password(password)


@pytest.fixture
def make_user(org):
    """Factory: make_user(role="field_worker", org_code="BA", **fields) -> User."""
    counter = {"n": 0}
    default_org = {Role.FIELD_WORKER: "BA", Role.CSO_MANAGER: "BA", Role.REVIEWER: "AMIDEAST",
                   Role.DONOR: "DOS", Role.ADMIN: None}

    def make(role: str = Role.FIELD_WORKER, org_code: str | None = "default", **fields) -> User:
        counter["n"] += 1
        code = default_org[Role(role)] if org_code == "default" else org_code
        user = User(
            email=fields.pop("email", f"{role}{counter['n']}@example.tn"),
            display_name=fields.pop("display_name", f"Tester {role} {counter['n']}"),
            role=role, organization_id=org(code).id if code else None,
            password_hash=_hashed(fields.pop("password", TEST_PASSWORD)), **fields)
        db.session.add(user)
        db.session.commit()  # to the outer test transaction: survives a request's rollback
        return user

    return make


@pytest.fixture
def make_site(org):
    """Factory: make_site(org_code="BA", name=..., kind=...) -> Site."""

    def make(org_code: str = "BA", name: str = "Maison des jeunes test",
             kind: str = SiteKind.YOUTH_CENTRE, governorate: str = "TN-61") -> Site:
        site = Site(name=name, kind=kind, governorate_code=governorate)
        site.organizations.append(org(org_code))
        db.session.add(site)
        db.session.commit()
        return site

    return make


def registration(**overrides) -> dict:
    """Valid registration values (an adult who consents), with overrides."""
    values = {
        "first_name_ar": "أميرة", "last_name_ar": "الطرابلسي",
        "first_name_latin": "Amira", "last_name_latin": "Trabelsi",
        "sex": "female", "birth_date": date(2006, 5, 14), "governorate_code": "TN-61",
        "setting_kind": "youth_centre", "phone": "98 123 456",
        "consent_given_by": "self", "consent_method": "signed_form",
        "consent_scopes": ["participation", "surveys"],
    }
    values.update(overrides)
    return values


@pytest.fixture
def make_beneficiary(org, make_user):
    """Factory: make_beneficiary(org_code="BA", **registration overrides) -> Beneficiary."""
    from bladi_cases.services.beneficiaries.registry import register

    def make(org_code: str = "BA", **overrides):
        beneficiary = register(None, org(org_code), registration(**overrides),
                               confirmed_new=True)
        db.session.commit()
        return beneficiary

    return make


@pytest.fixture
def make_activity():
    """Factory: make_activity(site, youth, facilitator) -> (activity, session, group event),
    the youth enrolled since 30 days ago and present at a session 7 days ago."""
    from datetime import timedelta

    from bladi_cases.services.activities import activities as service

    def make(site, youth, facilitator, **overrides):
        org = db.session.get(Organization, youth.organization_id)
        start = date.today() - timedelta(days=60)
        values = {"name": "نادي المسرح", "kind": "drama", "site": site,
                  "planned_start": start, "planned_end": None, "planned_sessions": 20,
                  "default_duration_minutes": 90, "completion_rule": "percent",
                  "completion_threshold": 75, "present_by_default": True,
                  "weekdays": [date.today().weekday()], "facilitators": [facilitator]}
        values.update(overrides)
        activity = service.create_activity(facilitator, org, values)
        service.enrol_in_activity(facilitator, youth, activity,
                                  date.today() - timedelta(days=30))
        session, _ = service.record_session(
            facilitator, activity, {"date": date.today() - timedelta(days=7),
                                    "duration_minutes": 90, "facilitator_id": facilitator.id},
            {youth.id: "present"})
        event = service.record_group_event(
            facilitator, org, {"title": "عرض مسرحي", "kind": "community_event",
                               "date": date.today(), "duration_minutes": 120},
            {("female", "15-17"): 12, ("male", "15-17"): 9})
        db.session.commit()
        return activity, session, event

    return make


@pytest.fixture
def make_case():
    """Factory: make_case(youth, worker) -> case with a goal, a note due today, a referral
    made, a job outcome, each with what the walk and the tests need."""
    from datetime import timedelta

    from bladi_cases.services.cases import cases as service

    def make(youth, worker, **overrides):
        case = service.open_case(worker, youth, {"workers": [worker],
                                                 "needs": {"employment": 1},
                                                 "risk_level": "medium", **overrides})
        service.add_goal(worker, case, {"description": "إيجاد تربص مهني",
                                        "target_date": date.today() + timedelta(days=3)})
        service.add_note(worker, case, {"kind": "phone_call", "text": "اتصال مع الأم",
                                        "due_date": date.today()})
        referral = service.add_referral(worker, case, {"service_type": "employment"})
        service.update_referral(worker, referral, "made", date.today(), None)
        service.add_outcome(worker, case, {"kind": "job", "on_date": date.today()})
        provider = service.save_provider(worker, case.organization_id, {
            "name": "مكتب التشغيل بصفاقس", "service_type": "employment",
            "governorate_code": "TN-61"})
        db.session.commit()
        return case, provider

    return make


@pytest.fixture
def field(client, make_user, make_site, make_beneficiary, make_activity, make_case):
    """A field worker of BA, logged in (on `client`), with an activity (a youth enrolled),
    a case and its note: what the API and sync tests start from."""
    from bladi_cases.models import CaseNote

    worker = make_user(Role.FIELD_WORKER, "BA", preferred_language="en")
    site = make_site("BA")
    youth = make_beneficiary("BA", site=site)
    activity, session, _event = make_activity(site, youth, worker)
    case, _provider = make_case(youth, worker)
    note = db.session.scalars(db.select(CaseNote).where(CaseNote.case_id == case.id)).one()
    login(client, worker)
    return {"worker": worker, "site": site, "youth": youth, "activity": activity,
            "case": case, "note": note, "client": client}


def login(client, user: User, user_agent: str = "") -> None:
    """Act as `user` in later requests of `client`: a real login session on the server
    (services/auth/sessions.py), its token put in the client's cookie directly."""
    token = auth_sessions.start(user, user_agent)
    db.session.commit()  # to the outer test transaction: survives a request's rollback
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
        session[auth_sessions.TOKEN_KEY] = token


def compiled_sql(statement):
    """A statement compiled for the app's database, its expanding lists written out."""
    return statement.compile(db.engine, compile_kwargs={"render_postcompile": True})


def sqlite_plan(compiled, sql: str | None = None) -> str:
    """SQLite's EXPLAIN QUERY PLAN of a compiled statement (or of `sql`, the same with its
    parameters in the same order), its steps joined by " | "."""
    values = compiled.construct_params()
    return " | ".join(row[3] for row in db.session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + (sql or str(compiled)),
        tuple(values[name] for name in compiled.positiontup)))


def statements_of(call):
    """What `call()` returns, and the SQL statements it sent to the database (not the
    savepoints the tests' outer transaction adds around a request)."""
    sent = []

    def note(_conn, _cursor, statement, *_args):
        if not re.match(r"\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", statement):
            sent.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", note)
    try:
        return call(), sent
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", note)


@pytest.fixture
def add_survey(make_user, org):
    """Factory: add_survey(form_id, org_code or None, *published) stores the sample survey's
    definition as versions of survey `form_id` (program-wide, or the CSO's by its manager),
    each published or not in that order; returns the last version."""
    from bladi_cases.sample_survey import workbook_bytes
    from bladi_cases.services.surveys import surveys as survey_service

    definition = survey_service.parsed_form(workbook_bytes())

    def add(form_id: str, org_code: str | None, *published: bool):
        owner = org(org_code) if org_code else None
        actor = make_user(Role.CSO_MANAGER, org_code) if org_code else make_user(Role.ADMIN)
        for done in published:
            version = survey_service.store_version(actor, {**definition, "form_id": form_id},
                                                   owner, publish=done)
        db.session.commit()
        return version

    return add


def text_of(response) -> str:
    """The response body as text, tags stripped and white space folded."""
    html = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def follow_job(client, response):
    """The page a job's start redirected to (jobs run at once after the request in the
    tests, BLADI_JOB_QUEUE=inline), following its redirects (a waiting import's page)."""
    assert response.status_code == 302, response.get_data(as_text=True)[-800:]
    assert "/jobs/" in response.headers["Location"], response.headers["Location"]
    return client.get(response.headers["Location"], follow_redirects=True)


def get_file(client, url: str, **kwargs):
    """A file that a background job makes (the exports): ask for it as a person does, then
    download it from the job's page; any other answer (403, 404, a redirect elsewhere, the
    failed job's page) is returned as it is."""
    response = client.get(url, **kwargs)
    location = response.headers.get("Location", "")
    if response.status_code != 302 or "/jobs/" not in location:
        return response
    state = client.get(location + ".json").get_json()
    if not state["download"]:
        return client.get(location)
    return client.get(location + "/download")


def redis_or_skip(url: str):
    """A Redis client of `url` that answers, else skip the test (a failure under CI=true:
    CI machines run Redis, .ci/run starts it)."""
    import redis

    connection = redis.Redis.from_url(url)
    try:
        connection.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and no Redis at {url}: {exc}")
        pytest.skip(f"SKIPPED: no Redis at {url} ({exc})")
    return connection

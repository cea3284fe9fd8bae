"""Login sessions that end on the server (services/auth/sessions.py): logout ends every copy
of the cookie, the idle timeout, the absolute lifetime, the sessions page, "log out
everywhere", and last_seen_at written at most once a minute. Time moves by editing the
rows' timestamps, never by sleeping or by today's date."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from bladi_cases.config import ROLE_NAMES, ConfigError, load_settings
from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, LoginSession, Role
from bladi_cases.models.common import utcnow
from bladi_cases.services.auth import sessions

from .conftest import TEST_PASSWORD, login, text_of

PHONE = ("Mozilla/5.0 (Linux; Android 13; SM-A146P) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Mobile Safari/537.36")
LAPTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"


def _rows(user) -> list[LoginSession]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(LoginSession).where(
        LoginSession.user_id == user.id).order_by(LoginSession.id)))


def _live(user) -> list[LoginSession]:
    return [row for row in _rows(user) if row.revoked_at is None]


def _move(row: LoginSession, **ago: timedelta) -> None:
    """Pretend the session started / was last seen that long ago."""
    now = utcnow()
    for column, delta in ago.items():
        setattr(row, column, now - delta)
    db.session.commit()


def _logged_in(client) -> bool:
    response = client.get("/")
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


def _session_cookie(client) -> str:
    return client.get_cookie("session", domain="bladi.test").value


def _copy_with_cookie(app, cookie: str):
    """Another browser, given a copy of a session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie, domain="bladi.test")
    return other


# --- logout -------------------------------------------------------------------------------

def test_logout_ends_every_copy_of_the_cookie(app, client, make_user):
    user = make_user(Role.FIELD_WORKER, email="leaves@example.tn")
    response = client.post("/login", data={"email": "leaves@example.tn",
                                           "password": TEST_PASSWORD},
                           headers={"User-Agent": PHONE})
    assert response.status_code == 302
    [row] = _rows(user)
    assert row.user_agent == PHONE and row.revoked_at is None
    copied = _session_cookie(client)
    # The token in the cookie opens the session; the server keeps only its hash.
    with client.session_transaction() as cookie_session:
        token = cookie_session[sessions.TOKEN_KEY]
    assert row.token_hash == sessions.token_hash(token) and token not in row.token_hash
    stolen = _copy_with_cookie(app, copied)
    assert _logged_in(stolen), "a copy works while the session lives"

    assert client.post("/logout").status_code == 302
    assert _rows(user)[0].revoked_at is not None
    assert not _logged_in(client)
    assert not _logged_in(stolen), "a copy taken before logout is refused afterwards"
    assert not _logged_in(_copy_with_cookie(app, copied)), "from any browser"
    # The JSON API answers an ended session with a JSON 401, never the login page.
    for method, url in (("GET", "/api/v1/me"), ("POST", "/api/v1/sync")):
        answer = stolen.open(url, method=method, json={"records": []})
        assert answer.status_code == 401 and answer.is_json, url
        assert answer.get_json()["error"] == "unauthorized"
        assert "Location" not in answer.headers


def test_a_cookie_without_a_live_login_session_is_anonymous(app, client, make_user):
    user = make_user(Role.FIELD_WORKER)
    # The user's id and nonce alone (a cookie from before login sessions): not enough.
    with client.session_transaction() as cookie_session:
        cookie_session["_user_id"] = user.get_id()
    assert not _logged_in(client)
    # Another user's token does not open this user's session.
    other = make_user(Role.FIELD_WORKER)
    with client.session_transaction() as cookie_session:
        cookie_session[sessions.TOKEN_KEY] = sessions.start(other, "")
    db.session.commit()
    assert not _logged_in(client)


# --- idle timeout and lifetime ----------------------------------------------------------

@pytest.mark.parametrize("role", [r.value for r in Role])
def test_idle_timeout_ends_the_session(app, client, make_user, role):
    user = make_user(role)
    login(client, user)
    [row] = _rows(user)
    idle = timedelta(minutes=app.config["BLADI_IDLE_MINUTES"])
    assert idle == timedelta(minutes=30)
    _move(row, last_seen_at=idle - timedelta(minutes=2))
    assert _logged_in(client), "still within the idle timeout"
    _move(_rows(user)[0], last_seen_at=idle + timedelta(minutes=1))
    assert not _logged_in(client)
    assert _rows(user)[0].revoked_at is not None, "the expired row is revoked"
    # Coming back soon after does not revive it.
    _move(_rows(user)[0], last_seen_at=timedelta(0))
    assert not _logged_in(client)


def test_idle_timeout_per_role_override(app, client, make_user, monkeypatch):
    monkeypatch.setitem(app.config, "BLADI_IDLE_MINUTES_BY_ROLE", {"field_worker": 60})
    worker, admin = make_user(Role.FIELD_WORKER), make_user(Role.ADMIN)
    admin_client = app.test_client()
    login(client, worker)
    login(admin_client, admin)
    _move(_rows(worker)[0], last_seen_at=timedelta(minutes=45))
    _move(_rows(admin)[0], last_seen_at=timedelta(minutes=45))
    assert _logged_in(client), "the field worker's own limit is 60 minutes"
    assert not _logged_in(admin_client), "everyone else keeps 30"


def test_absolute_lifetime_ends_an_active_session(app, client, make_user):
    user = make_user(Role.REVIEWER)
    login(client, user)
    lifetime = timedelta(hours=app.config["BLADI_SESSION_HOURS"])
    assert lifetime == timedelta(hours=12)
    _move(_rows(user)[0], created_at=lifetime - timedelta(minutes=1),
          last_seen_at=timedelta(0))
    assert _logged_in(client)
    _move(_rows(user)[0], created_at=lifetime + timedelta(minutes=1),
          last_seen_at=timedelta(0))
    assert not _logged_in(client), "however active, a session ends after 12 hours"
    assert _rows(user)[0].revoked_at is not None


# --- last_seen_at, at most once a minute ------------------------------------------------

@pytest.fixture
def login_session_writes(app):
    """The UPDATE statements sent to login_session while the test runs."""
    seen: list[str] = []

    def watch(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE LOGIN_SESSION"):
            seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", watch)
    yield seen
    event.remove(engine, "before_cursor_execute", watch)


def test_last_seen_is_written_at_most_once_a_minute(app, client, make_user,
                                                    login_session_writes):
    user = make_user(Role.FIELD_WORKER)
    login(client, user)
    _move(_rows(user)[0], last_seen_at=timedelta(seconds=30))
    before = _rows(user)[0].last_seen_at
    login_session_writes.clear()  # the test's own
    for _ in range(3):
        assert _logged_in(client)
    assert _rows(user)[0].last_seen_at == before, "seen 30 s ago: not written again"
    assert login_session_writes == []

    _move(_rows(user)[0], last_seen_at=timedelta(minutes=2))
    login_session_writes.clear()
    started = utcnow()
    assert _logged_in(client)
    seen = _rows(user)[0].last_seen_at
    assert seen >= started - timedelta(seconds=1), "a read request writes it after its page"
    assert len(login_session_writes) == 1
    for _ in range(3):
        assert _logged_in(client)
    assert _rows(user)[0].last_seen_at == seen and len(login_session_writes) == 1

    # A write request writes it with its own changes.
    _move(_rows(user)[0], last_seen_at=timedelta(minutes=2))
    started = utcnow()
    assert client.post("/account/sessions/end", data={}).status_code == 302
    assert _rows(user)[0].last_seen_at >= started - timedelta(seconds=1)


# --- the sessions page -----------------------------------------------------------------

def test_the_sessions_page_lists_and_ends_a_session(app, make_user):
    user = make_user(Role.CSO_MANAGER, preferred_language="en")
    phone, laptop = app.test_client(), app.test_client()
    login(phone, user, user_agent=PHONE)
    login(laptop, user, user_agent=LAPTOP)
    gone = app.test_client()
    login(gone, user)
    gone.post("/logout")
    page = laptop.get("/account/sessions")
    assert page.status_code == 200
    text = text_of(page)
    assert "Chrome · Android" in text and "Firefox · Windows" in text
    assert text.count("This device") == 1
    assert text.index("Firefox · Windows") < text.index("This device") < text.index(
        "Chrome · Android")
    assert text.count("End this session") == 1, "the logged-out one is not listed"
    assert "Log out everywhere" in text
    assert 'href="/account/sessions"' in page.get_data(as_text=True), "in the menu"

    phone_row = next(r for r in _live(user) if r.user_agent == PHONE)
    response = laptop.post("/account/sessions/end", data={"login_session": phone_row.id})
    assert response.status_code == 302
    assert "The session was ended." in text_of(laptop.get("/account/sessions"))
    assert not _logged_in(phone)
    assert _logged_in(laptop)
    assert "Chrome · Android" not in text_of(laptop.get("/account/sessions"))
    assert "login_session_ended" in db.session.scalars(sa.select(AuditEntry.action).where(
        AuditEntry.actor_id == user.id)).all()


def test_a_session_of_someone_else_cannot_be_ended(app, client, make_user):
    user, other = make_user(Role.FIELD_WORKER), make_user(Role.FIELD_WORKER)
    other_client = app.test_client()
    login(client, user)
    login(other_client, other)
    [theirs] = _rows(other)
    client.post("/account/sessions/end", data={"login_session": theirs.id})
    assert _rows(other)[0].revoked_at is None
    assert _logged_in(other_client)


def test_log_out_everywhere_ends_every_session_of_the_account(app, make_user):
    user, colleague = make_user(Role.FIELD_WORKER), make_user(Role.FIELD_WORKER)
    clients = [app.test_client() for _ in range(3)]
    for each in clients:
        login(each, user)
    theirs = app.test_client()
    login(theirs, colleague)
    nonce = user.session_nonce
    response = clients[0].post("/account/sessions/end-all")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert [_logged_in(each) for each in clients] == [False, False, False]
    assert _live(user) == [] and user.session_nonce != nonce
    assert _logged_in(theirs), "a colleague's session is untouched"
    assert "logout_everywhere" in db.session.scalars(sa.select(AuditEntry.action).where(
        AuditEntry.actor_id == user.id)).all()


def test_password_change_and_deactivation_revoke_every_row(app, make_user):
    user = make_user(Role.FIELD_WORKER, email="moves@example.tn")
    phone, laptop = app.test_client(), app.test_client()
    login(phone, user)
    login(laptop, user)
    response = phone.post("/account/password", data={
        "current_password": TEST_PASSWORD, "new_password": "Jasmine-Road-7731",
        "confirm": "Jasmine-Road-7731"})
    assert response.status_code == 302
    assert _logged_in(phone) and not _logged_in(laptop)
    [live] = _live(user)
    assert len(_rows(user)) == 3, "both ended; this device got a new one"

    manager = make_user(Role.CSO_MANAGER)
    boss = app.test_client()
    login(boss, manager)
    assert boss.post(f"/admin/users/{user.uuid}/active", data={"active": "0"}).status_code \
        == 302
    assert _live(user) == [] and not _logged_in(phone)


# --- settings and devices ----------------------------------------------------------------

def test_idle_setting_reads_per_role_overrides(tmp_path):
    def idle(value):
        found = load_settings({"BLADI_ENV": "testing", "BLADI_IDLE_MINUTES": value}, tmp_path)
        return found["BLADI_IDLE_MINUTES"], found["BLADI_IDLE_MINUTES_BY_ROLE"]

    assert idle("") == (30, {})
    assert idle("15") == (15, {})
    assert idle("30, field_worker=60,admin=10") == (30, {"field_worker": 60, "admin": 10})
    for bad in ("0", "thirty", "30,janitor=5", "30,field_worker=0", "30,field_worker"):
        with pytest.raises(ConfigError):
            idle(bad)
    assert set(ROLE_NAMES) == {r.value for r in Role}


@pytest.mark.parametrize("agent,shown", [
    (PHONE, "Chrome · Android"),
    (LAPTOP, "Firefox · Windows"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Safari · iPhone"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51", "Edge · Windows"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/124.0.0.0 Safari/537.36", "Chrome · Linux"),
])
def test_device_summary(app, agent, shown):
    assert sessions.device_summary(agent) == shown


def test_unknown_device_is_named_in_the_users_language(app):
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        assert sessions.device_summary("curl/8.5.0") == "Appareil inconnu"
        assert sessions.device_summary("") == "Appareil inconnu"


def test_the_cookie_is_set_at_login_and_expires_with_it_not_resent_on_each_page(
        app, client, make_user):
    """The session cookie is sent once, by the login, expiring when the login does
    (BLADI_SESSION_HOURS); the pages after it do not send it again, unless the session
    changed (SESSION_REFRESH_EACH_REQUEST off: nothing to sign and send on each answer)."""
    from datetime import datetime

    user = make_user(Role.FIELD_WORKER)
    answer = client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    assert answer.status_code == 302 and "/login" not in answer.location
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("session="))
    expires = datetime.strptime(cookie.split("Expires=")[1].split(";")[0],
                                "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    lifetime = timedelta(hours=app.config["BLADI_SESSION_HOURS"])
    assert abs(expires - (datetime.now(UTC) + lifetime)) < timedelta(minutes=5)
    assert client.get("/").status_code == 200  # the first form's CSRF token joins the session
    for path in ("/", "/beneficiaries/", "/api/v1/me", "/"):
        page = client.get(path)
        assert page.status_code == 200
        assert not [c for c in page.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert _logged_in(client)

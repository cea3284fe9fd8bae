"""Lockout and rate limits that hold across processes and machines.

- The lockout race on a real server: gunicorn with several workers on its own database
  (SQLite, or PostgreSQL when TEST_DATABASE_URL is set, as for the rest of the suite), 40
  wrong passwords at one account at the same instant: 5 are counted, the 5th locks, and the
  right password is refused while the lock lasts.
- After a lock, failures do not lock the account again for BLADI_LOCKOUT_REARM_HOURS.
- The rate limits answer 429 with a message in the user's language and Retry-After: login
  per address and per account, reset per address and per code, the sync API and the
  exports per user. Each test lowers the limit it checks, for addresses and users of its own
  (the suite's own limits are out of reach: config.TESTING_RATE_LIMIT).
- With REDIS_URL two apps count together; in memory each counts alone.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bladi_cases import create_app
from bladi_cases.config import ConfigError, load_settings
from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, Role, User
from bladi_cases.models.common import utcnow
from bladi_cases.services.auth import issue_reset

from . import load_support as load
from .browser_support import ROOT, Words, _env, gunicorn
from .conftest import TEST_PASSWORD, login, redis_or_skip

PARALLEL = 40
RACE_EMAIL = "race@example.tn"
RACE_PASSWORD = "Quiet-Harbour-Lantern-2719"
REDIS_URL = os.environ.get("BLADI_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


# --- the lockout race, on a real server -------------------------------------------------------

@contextmanager
def _own_database(tmp_path: Path) -> Iterator[str]:
    """An empty database for the server: a SQLite file, or a scratch database on the
    PostgreSQL server of TEST_DATABASE_URL (dropped afterwards)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'race.db'}"
        return
    server = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"bladi_race_{secrets.token_hex(4)}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def race_server(tmp_path_factory):
    """gunicorn with 4 sync workers on a database of its own holding one field worker's
    account: (base URL, database URL). Its rate limits are out of reach (browser_support),
    so every attempt reaches the lockout."""
    instance = tmp_path_factory.mktemp("lockout-race")
    with _own_database(instance) as url:
        env = {**_env(instance), "DATABASE_URL": url}
        flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
        for command, stdin in (([*flask, "db", "upgrade"], None),
                               ([*flask, "seed", "reference"], None),
                               ([*flask, "users", "create", "--email", RACE_EMAIL, "--name",
                                 "Race Test", "--role", "field_worker", "--org", "BA",
                                 "--password-stdin"], RACE_PASSWORD + "\n")):
            subprocess.run(command, cwd=ROOT, env=env, input=stdin, text=True, check=True,
                           capture_output=True)
        with gunicorn(instance, "--workers", "4", "--timeout", "60",
                      env={"DATABASE_URL": url}) as base:
            yield base, url


def _login_form(base: str):
    """A browser of its own on the login page: (opener with its cookie, CSRF token)."""
    opener = load._opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(base + "/login", timeout=30).read().decode()
    return opener, re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def _post_login(browser, base: str, password: str) -> int | str:
    opener, token = browser
    data = urllib.parse.urlencode({"email": RACE_EMAIL, "password": password,
                                   "csrf_token": token, "next": ""}).encode()
    try:
        with opener.open(base + "/login", data, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as answer:  # a redirect (logged in) or an error
        return answer.code
    except OSError as exc:
        return f"no answer ({type(exc).__name__})"


def _race_account(url: str):
    """The account's counter and lock, and its audited failures by reason and lockouts."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            user = conn.execute(sa.select(User.id, User.failed_login_count, User.locked_until)
                                .where(User.email == RACE_EMAIL)).one()
            entries = conn.execute(sa.select(AuditEntry.action, AuditEntry.detail)
                                   .where(AuditEntry.actor_id == user.id)).all()
    finally:
        engine.dispose()
    failures = Counter(detail["reason"] for action, detail in entries
                       if action == "login_failed")
    lockouts = sum(action == "lockout" for action, _detail in entries)
    return user, failures, lockouts


@pytest.mark.server
def test_40_wrong_passwords_at_once_count_5_and_the_lock_holds(race_server):
    base, url = race_server
    browsers = [_login_form(base) for _ in range(PARALLEL)]
    barrier = threading.Barrier(PARALLEL)
    statuses: list[int | str] = []

    def guess(index: int) -> None:
        barrier.wait()
        statuses.append(_post_login(browsers[index], base, f"Wrong-Guess-{index:04d}-x"))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(statuses) == {200: PARALLEL}, "each guess gets the login form back"
    user, failures, lockouts = _race_account(url)
    assert failures == {"bad_password": 5, "locked": PARALLEL - 5}, (
        "exactly 5 guesses counted; the others found the account locked")
    assert lockouts == 1
    assert user.locked_until is not None and user.locked_until > utcnow()
    assert user.failed_login_count == 0

    # The right password, while the lock lasts: the same login form, no session.
    assert _post_login(_login_form(base), base, RACE_PASSWORD) == 200
    _user, failures, _lockouts = _race_account(url)
    assert failures["locked"] == PARALLEL - 5 + 1


# --- the lock is short and does not come back at once ---------------------------------------

def _login(client, email, password, address="192.0.2.1", **kwargs):
    return client.post("/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address}, **kwargs)


def test_after_a_lock_failures_do_not_lock_again_until_the_rearm_time(client, make_user):
    user = make_user(Role.FIELD_WORKER, email="rearm@example.tn")
    for _ in range(5):
        _login(client, "rearm@example.tn", "wrong-password-1")
    db.session.refresh(user)
    first_lock = user.locked_until
    assert first_lock is not None and first_lock > utcnow()

    # The lock ended; a stranger tries again: counted, but no new lock, the worker gets in.
    user.locked_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    for _ in range(6):
        _login(client, "rearm@example.tn", "wrong-password-1")
    db.session.refresh(user)
    assert user.locked_until < utcnow() and user.failed_login_count == 6
    assert _login(client, "rearm@example.tn", TEST_PASSWORD).status_code == 302
    db.session.refresh(user)
    assert user.failed_login_count == 0
    client.post("/logout")

    # BLADI_LOCKOUT_REARM_HOURS after the last lock, failures lock again.
    user.locked_until = utcnow() - timedelta(hours=24, minutes=1)
    db.session.commit()
    for _ in range(5):
        _login(client, "rearm@example.tn", "wrong-password-1")
    db.session.refresh(user)
    assert user.locked_until > utcnow()


def test_the_failures_are_cleared_when_every_factor_passed_not_at_the_password(client,
                                                                             make_user):
    """Else whoever knows the password could type it again between wrong codes, and
    guess the second factor without ever being locked."""
    manager = make_user(Role.CSO_MANAGER, email="two-steps@example.tn")
    for _ in range(3):
        _login(client, "two-steps@example.tn", "wrong-password-1")
    response = _login(client, "two-steps@example.tn", TEST_PASSWORD)
    assert response.status_code == 302 and "/login/" in response.headers["Location"]
    db.session.refresh(manager)
    assert manager.failed_login_count == 3, "the second factor is still to come"


def test_a_wrong_password_on_a_locked_account_is_not_counted(client, make_user):
    user = make_user(Role.FIELD_WORKER, email="still@example.tn",
                     locked_until=utcnow() + timedelta(minutes=10))
    _login(client, "still@example.tn", "wrong-password-1")
    db.session.refresh(user)
    assert user.failed_login_count == 0
    entry = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.actor_id == user.id)
                               .order_by(AuditEntry.id.desc())).first()
    assert entry.action == "login_failed" and entry.detail == {"reason": "locked"}


# --- the rate limits answer 429 -------------------------------------------------------------

@pytest.fixture
def low_limit(app, monkeypatch):
    """Set one limit low for this test: low_limit("BLADI_RATELIMIT_LOGIN_IP", "3 per minute")."""
    def lower(setting: str, value: str) -> None:
        monkeypatch.setitem(app.config, setting, value)
    return lower


def _address() -> str:
    """An address no other test (nor an earlier run, in Redis) counted for."""
    return f"test-{secrets.token_hex(6)}"


def _retry_after(response) -> int:
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= 3600
    return seconds


def _too_many(words: Words, minutes: int = 1) -> str:
    """The 429 message, as the catalog of `words` has it."""
    key = "Too many requests in a short time. Try again in %(num)d minute."
    plural = "Too many requests in a short time. Try again in %(num)d minutes."
    text = words.catalog.ngettext(key, plural, minutes)
    assert words.lang == "en" or text not in (key, plural), "not translated"
    return text % {"num": minutes}


def test_login_attempts_turned_away_are_limited_per_address(app, client, low_limit):
    low_limit("BLADI_RATELIMIT_LOGIN_IP", "3 per minute")
    here, elsewhere = _address(), _address()
    for n in range(3):
        assert _login(client, f"nobody{n}@example.tn", "wrong-password-1", here).status_code == 200
    refused = _login(client, "nobody9@example.tn", "wrong-password-1", here)
    assert refused.status_code == 429
    assert _too_many(Words("ar")) in load_text(refused)
    assert _retry_after(refused) <= 61  # the minute, and the spare second of errors.py
    # Another address is not concerned, nor a page that is not a login attempt.
    assert _login(client, "nobody9@example.tn", "wrong-password-1", elsewhere).status_code == 200
    assert client.get("/login", environ_base={"REMOTE_ADDR": here}).status_code == 200


def test_successful_logins_from_one_address_are_not_counted(app, make_user, low_limit):
    low_limit("BLADI_RATELIMIT_LOGIN_IP", "2 per minute")
    office = _address()
    for n in range(4):
        make_user(Role.FIELD_WORKER, email=f"office{n}@example.tn")
        response = _login(app.test_client(), f"office{n}@example.tn", TEST_PASSWORD, office)
        assert response.status_code == 302, n


def test_login_attempts_are_limited_per_account_from_any_address(client, low_limit):
    low_limit("BLADI_RATELIMIT_LOGIN_ACCOUNT", "3 per minute")
    for email in ("target@example.tn", "  TARGET@Example.TN", "target@example.tn"):
        assert _login(client, email, "wrong-password-1", _address()).status_code == 200
    refused = _login(client, "Target@example.tn ", "wrong-password-1", _address(),
                     headers={"Accept-Language": "fr"})
    assert refused.status_code == 429
    assert _too_many(Words("fr")) in load_text(refused)
    _retry_after(refused)
    assert _login(client, "other@example.tn", "wrong-password-1", _address()).status_code == 200


def test_reset_codes_are_limited_per_address_and_per_code(client, make_user, low_limit):
    low_limit("BLADI_RATELIMIT_RESET_IP", "3 per minute")
    low_limit("BLADI_RATELIMIT_RESET_ACCOUNT", "2 per minute")
    here = _address()
    for n in range(3):
        answer = client.get(f"/reset/guess-{n}", environ_base={"REMOTE_ADDR": here})
        assert answer.status_code == 404
    refused = client.get("/reset/guess-9", environ_base={"REMOTE_ADDR": here},
                         headers={"Accept-Language": "en"})
    assert refused.status_code == 429 and _too_many(Words("en")) in load_text(refused)
    _retry_after(refused)

    # One code, tried from several addresses with refused passwords: the code is limited.
    admin = make_user(Role.ADMIN)
    worker = make_user(Role.FIELD_WORKER, email="reset-me@example.tn")
    token = issue_reset(worker, admin)
    db.session.commit()
    weak = {"new_password": "short", "confirm": "short"}
    for _ in range(2):
        answer = client.post(f"/reset/{token}", data=weak,
                             environ_base={"REMOTE_ADDR": _address()})
        assert answer.status_code == 422
    assert client.get(f"/reset/{token}",
                      environ_base={"REMOTE_ADDR": _address()}).status_code == 429


def test_sync_writes_are_limited_per_user_and_answer_json(app, field, make_user, low_limit):
    low_limit("BLADI_RATELIMIT_SYNC", "2 per minute")
    client = field["client"]
    for _ in range(2):
        assert client.post("/api/v1/sync", json={"records": []}).status_code == 200
    refused = client.post("/api/v1/sync", json={"records": []})
    assert refused.status_code == 429
    assert refused.get_json() == {"error": "too_many_requests",
                                  "message": _too_many(Words("en"))}
    _retry_after(refused)
    # Reads are not limited; another worker is not concerned.
    assert client.get("/api/v1/activities").status_code == 200
    other = app.test_client()
    login(other, make_user(Role.FIELD_WORKER, "BA"))
    assert other.post("/api/v1/sync", json={"records": []}).status_code == 200


def test_exports_are_limited_per_user(app, make_user, low_limit):
    low_limit("BLADI_RATELIMIT_EXPORTS", "2 per minute")
    url = f"/reports/exports/tracking-{app.config['BLADI_AWARD_FIRST_FY']}.csv"
    donor, colleague = app.test_client(), app.test_client()
    login(donor, make_user(Role.DONOR, preferred_language="fr"))
    login(colleague, make_user(Role.DONOR))
    for _ in range(2):
        assert donor.get(url).status_code == 302  # to the page of the job making the file
    # The page that lists the files is not a file: not counted, not refused.
    assert donor.get("/reports/exports").status_code == 200
    refused = donor.get(url)
    assert refused.status_code == 429
    assert _too_many(Words("fr")) in load_text(refused)
    _retry_after(refused)
    assert colleague.get(url).status_code == 302


def load_text(response) -> str:
    """The page's text, tags stripped, spaces folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


# --- where the limits are counted -----------------------------------------------------------

def _two_apps(monkeypatch, redis_url: str | None):
    """Two apps as two processes would build them, from the same environment."""
    if redis_url:
        monkeypatch.setenv("REDIS_URL", redis_url)
    else:
        monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("BLADI_RATELIMIT_LOGIN_IP", "2 per minute")
    settings = {"BLADI_ENV": "testing", "WTF_CSRF_ENABLED": False,
                "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    return create_app(settings), create_app(settings)


def _attempt(application, address: str) -> int:
    """An empty login form (turned away without a database) from `address`."""
    return application.test_client().post("/login", data={},
                                          environ_base={"REMOTE_ADDR": address}).status_code


def _redis_or_skip():
    return redis_or_skip(REDIS_URL)


def test_with_redis_two_app_processes_count_together(monkeypatch):
    connection = _redis_or_skip()
    address = _address()
    first, second = _two_apps(monkeypatch, REDIS_URL)
    try:
        assert [_attempt(first, address), _attempt(second, address)] == [200, 200]
        assert _attempt(first, address) == 429
        assert _attempt(second, address) == 429
    finally:
        for key in connection.scan_iter(match=f"*{address}*"):
            connection.delete(key)


def test_in_memory_each_app_counts_alone(monkeypatch):
    address = _address()
    first, second = _two_apps(monkeypatch, None)
    assert [_attempt(first, address) for _ in range(2)] == [200, 200]
    assert _attempt(first, address) == 429
    assert _attempt(second, address) == 200


def test_the_settings_refuse_a_limit_or_redis_url_that_does_not_parse(tmp_path):
    base = {"BLADI_ENV": "testing"}
    assert load_settings(base, tmp_path)["RATELIMIT_STORAGE_URI"] == "memory://"
    assert load_settings({**base, "REDIS_URL": REDIS_URL}, tmp_path)[
        "RATELIMIT_STORAGE_URI"] == REDIS_URL
    with pytest.raises(ConfigError, match="BLADI_RATELIMIT_LOGIN_IP"):
        load_settings({**base, "BLADI_RATELIMIT_LOGIN_IP": "ten a minute"}, tmp_path)
    with pytest.raises(ConfigError, match="REDIS_URL") as refused:
        load_settings({**base, "REDIS_URL": "http://user:secret@cache:6379"}, tmp_path)
    assert "secret" not in str(refused.value)

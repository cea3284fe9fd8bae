"""The second factor under real parallel requests: gunicorn with 4 workers on a database of
its own (SQLite, or PostgreSQL when TEST_DATABASE_URL is set). A manager's password is typed
in four browsers, then the same app code is sent from all four at the same instant: one
login gets in, the three others are refused, because a time step is accepted once only
(an attacker who sees a code over someone's shoulder cannot use it alongside them)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.cookiejar import CookieJar

import pyotp
import pytest
import sqlalchemy as sa

from bladi_cases.models import AuditEntry, User

from . import load_support as load
from .browser_support import ROOT, _env, gunicorn
from .test_auth_limits import _own_database

PARALLEL = 4  # fewer than the failures that lock: every refusal is the replay, not a lock
EMAIL = "code-race@example.tn"
PASSWORD = "Amber-Courtyard-Violin-5381"
# Enrols the account through the service, confirming with the code of the previous time
# step (valid one step either side), so that the current step is left for the race.
ENROL = """
import sys, time, pyotp, sqlalchemy as sa
from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import User
from bladi_cases.services.auth import second_factor
app = create_app()
with app.app_context():
    user = db.session.scalars(sa.select(User).where(User.email == sys.argv[1])).one()
    secret = second_factor.begin_enrolment(user)
    second_factor.confirm_enrolment(user, pyotp.TOTP(secret).at(time.time() - 30))
    db.session.commit()
    print(secret)
"""


@pytest.fixture(scope="module")
def code_server(tmp_path_factory):
    """gunicorn, 4 workers, with one CSO manager enrolled: (base URL, database URL, secret)."""
    instance = tmp_path_factory.mktemp("code-race")
    with _own_database(instance) as url:
        env = {**_env(instance), "DATABASE_URL": url}
        flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
        for command, stdin in (([*flask, "db", "upgrade"], None),
                               ([*flask, "seed", "reference"], None),
                               ([*flask, "users", "create", "--email", EMAIL, "--name",
                                 "Code Race", "--role", "cso_manager", "--org", "BA",
                                 "--password-stdin"], PASSWORD + "\n")):
            subprocess.run(command, cwd=ROOT, env=env, input=stdin, text=True, check=True,
                           capture_output=True)
        secret = subprocess.run([sys.executable, "-c", ENROL, EMAIL], cwd=ROOT, env=env,
                                text=True, check=True, capture_output=True).stdout.split()[-1]
        with gunicorn(instance, "--workers", "4", "--timeout", "60",
                      env={"DATABASE_URL": url}) as base:
            yield base, url, secret


def _send(opener, url: str, form: dict | None = None) -> tuple[int, str, str]:
    """(status, Location, body) of one request; redirects are not followed."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with opener.open(url, data, timeout=60) as response:
            return response.status, "", response.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers.get("Location", ""), answer.read().decode(
            errors="replace")


def _token(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def _at_the_code_page(base: str):
    """A browser of its own whose password has passed: (opener, CSRF token of the code
    page)."""
    opener = load._opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    _status, _location, page = _send(opener, base + "/login")
    status, location, _body = _send(opener, base + "/login", {
        "email": EMAIL, "password": PASSWORD, "csrf_token": _token(page), "next": ""})
    assert status == 302 and location.endswith("/login/code"), (status, location)
    _status, _location, page = _send(opener, base + "/login/code")
    return opener, _token(page)


@pytest.mark.server
def test_the_same_code_sent_from_four_browsers_at_once_lets_one_in(code_server):
    base, url, secret = code_server
    browsers = [_at_the_code_page(base) for _ in range(PARALLEL)]
    code = pyotp.TOTP(secret).now()
    barrier = threading.Barrier(PARALLEL)
    answers: list[tuple[int, str]] = []

    def send(index: int) -> None:
        opener, token = browsers[index]
        barrier.wait()
        status, location, _body = _send(opener, base + "/login/code",
                                        {"code": code, "csrf_token": token})
        answers.append((status, location))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    let_in = [a for a in answers if a[0] == 302 and not a[1].endswith("/login/code")]
    assert len(let_in) == 1, answers
    assert all(status in (200, 422) for status, _l in answers if (status, _l) not in let_in)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            user_id = conn.scalar(sa.select(User.id).where(User.email == EMAIL))
            entries = conn.execute(sa.select(AuditEntry.action, AuditEntry.detail).where(
                AuditEntry.actor_id == user_id)).all()
    finally:
        engine.dispose()
    assert sum(action == "second_factor_passed" for action, _d in entries) == 1
    refused = Counter(detail["reason"] for action, detail in entries
                      if action == "login_failed")
    assert refused == {"bad_code": PARALLEL - 1}

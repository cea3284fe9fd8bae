"""The tests' phone app: whatever logs in through the login form (the Flask test client,
urllib against a real server, Chromium) completes the second factor here, on whichever page
the password leads to: the code page, or the enrolment (the secret read from the page, as a
person without a camera types it), then the recovery codes.

`PHONE` keeps the secrets of the accounts enrolled during the run, by (where, email): where
is a server's base URL, or an app's database URL. Like an app it never gives the same code
twice: the server refuses a time step used before, so a third login within the same 30 s
waits for the clock. `enrol(user)` sets up a factor through the service, for tests that log
in through the form as an account that already has one.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyotp

CODE_PAGE = "/login/code"
ENROL_PAGE = "/login/enrol"
ENROL_DONE = "/login/enrol/done"
SECRET_ON_PAGE = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class Authenticator:
    """Secrets by (where, email), and the last time step each one's codes used."""

    def __init__(self) -> None:
        self._secrets: dict[tuple[str, str], str] = {}
        self._used: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(where: str, email: str) -> tuple[str, str]:
        return where, email.strip().casefold()

    def add(self, where: str, email: str, secret: str, used_step: int | None = None) -> None:
        """A newly enrolled account (its secret as the page shows it, spaces allowed), and
        the time step of a code already typed for it, if one was."""
        with self._lock:
            key = self._key(where, email)
            self._secrets[key] = "".join(secret.split())
            self._used.pop(key, None)
            if used_step is not None:
                self._used[key] = used_step

    def knows(self, where: str, email: str) -> bool:
        """Whether this app holds the account's secret."""
        return self._key(where, email) in self._secrets

    def code(self, where: str, email: str) -> str:
        """The code of the next time step no earlier code of the account used: now's, or
        the next one (the server accepts one step either side); waits when both are used."""
        key = self._key(where, email)
        with self._lock:
            totp = pyotp.TOTP(self._secrets[key])
            while True:
                now = totp.timecode(time.time())
                step = max(now, self._used.get(key, now - 1) + 1)
                if step <= now + 1:
                    break
                time.sleep(1)
            self._used[key] = step
            return totp.generate_otp(step)


PHONE = Authenticator()


def _csrf(page: str) -> dict[str, str]:
    found = CSRF.search(page)
    return {"csrf_token": found.group(1)} if found else {}


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, whichever client got it."""

    status: int
    location: str
    body: str


def complete(get: Callable[[str], Answer], post: Callable[[str, dict], Answer],
             answer: Answer, where: str, email: str) -> Answer:
    """Follow the login form's answer through the second factor; returns the last answer
    (a redirect to where the user was going), or `answer` itself when no factor was asked."""
    path = urlsplit(answer.location).path
    if answer.status != 302 or path not in (CODE_PAGE, ENROL_PAGE):
        return answer
    if path == CODE_PAGE:
        page = get(CODE_PAGE)
        return post(CODE_PAGE, {"code": PHONE.code(where, email), **_csrf(page.body)})
    page = get(ENROL_PAGE)
    PHONE.add(where, email, SECRET_ON_PAGE.search(page.body).group(1))
    shown = post(ENROL_PAGE, {"code": PHONE.code(where, email), **_csrf(page.body)})
    assert shown.status == 200 and "recovery-codes" in shown.body, \
        f"{email}: the enrolment was refused ({shown.status})"
    return post(ENROL_DONE, _csrf(shown.body))


# --- the Flask test client -------------------------------------------------------------------

def _client_answer(response) -> Answer:
    return Answer(response.status_code, response.headers.get("Location", ""),
                  response.get_data(as_text=True))


def where_of(app) -> str:
    """The key of an in-process app's accounts: its database."""
    return str(app.config["SQLALCHEMY_DATABASE_URI"])


def log_in_through_form(client, email: str, password: str, next_url: str | None = None):
    """Post the login form, then the second factor if one is asked; returns the last
    response (302 to where the user was going once logged in)."""
    data = {"email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    responses = [client.post("/login", data=data)]

    def get(path: str) -> Answer:
        responses.append(client.get(path))
        return _client_answer(responses[-1])

    def post(path: str, form: dict) -> Answer:
        responses.append(client.post(path, data=form))
        return _client_answer(responses[-1])

    complete(get, post, _client_answer(responses[0]), where_of(client.application), email)
    return responses[-1]


def enrol(user) -> tuple[str, list[str]]:
    """Set up a second factor for `user` through the service, as the enrolment page does;
    PHONE learns its secret. Returns (secret, recovery codes); committed."""
    from flask import current_app

    from bladi_cases.extensions import db
    from bladi_cases.services.auth import second_factor

    secret = second_factor.begin_enrolment(user)
    PHONE.add(where_of(current_app), user.email, secret)
    codes = second_factor.confirm_enrolment(user, PHONE.code(where_of(current_app), user.email))
    db.session.commit()
    return secret, codes


# --- urllib against a real server (load tests) ---------------------------------------------

def complete_over_http(opener: urllib.request.OpenerDirector, base: str, location: str,
                       email: str) -> Answer:
    """`complete` for an opener that does not follow redirects (tests/load_support.py)."""

    def send(path: str, form: dict | None) -> Answer:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with opener.open(base + path, data, timeout=30) as response:
                return Answer(response.status, "", response.read().decode())
        except urllib.error.HTTPError as answer:
            return Answer(answer.code, answer.headers.get("Location", ""),
                          answer.read().decode(errors="replace"))

    return complete(lambda path: send(path, None), send, Answer(302, location, ""), base, email)


# --- Chromium (browser journeys) ---------------------------------------------------------------

def complete_in_browser(page, base: str, email: str, words, audit=None) -> None:
    """After the login form was sent: pass the code page or the enrolment, in the page's
    language (`words`), each page checked by `audit` when given."""
    page.wait_for_load_state("load")
    path = urlsplit(page.url).path
    if path == CODE_PAGE:
        if audit:
            audit.check("second factor: code")
        page.get_by_label(words("Code"), exact=True).fill(PHONE.code(base, email))
        page.get_by_role("button", name=words("Log in")).click()
    elif path == ENROL_PAGE:
        if audit:
            audit.check("second factor: set up")
        PHONE.add(base, email, page.locator("#totp-secret").inner_text())
        page.get_by_label(words("Code from the app")).fill(PHONE.code(base, email))
        page.get_by_role("button", name=words("Confirm")).click()
        page.wait_for_load_state("load")
        if audit:
            audit.check("second factor: recovery codes")
        page.get_by_role("button", name=words("I have saved them: continue")).click()

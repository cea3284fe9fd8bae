"""Many requests at once against a real server: which GET pages and API endpoints a demo
user may open, many threads asking for them together, and what came back (status, time).

The server and its demo database come from browser_support.py (`demo_instance`,
`gunicorn`). Used by tests/test_concurrency.py and bench/concurrency.py.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import random
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bladi_cases.models import (
    Activity,
    ActivitySession,
    Beneficiary,
    Case,
    CaseGoal,
    CaseNote,
    CaseTransfer,
    Enrolment,
    GroupEvent,
    Job,
    Outcome,
    QuarterlyReport,
    Referral,
    ServiceProvider,
    Survey,
    SurveyVersion,
    User,
)
from bladi_cases.policy import PERMISSIONS, PUBLIC, route_permission, scoped

from .browser_support import CLUB
from .second_factor_support import complete_over_http

WORKER = ("worker@demo.bladi.tn", "Olive-Tree-4821")
DONOR = ("donor@demo.bladi.tn", "Carthage-Sun-5560")
# Not pages of the app's data: files, and a link that needs a one-time code.
NOT_PAGES = {"static", "auth.reset_password"}
# The pages a field worker uses all day (with the searches and every /api/v1 GET): they
# must be among the URLs asked for, and answer 200. The rest follow from the routes.
CORE_ENDPOINTS = ("main.home", "beneficiaries.index", "beneficiaries.show", "activities.index",
                  "activities.show", "activities.new_session", "field.page")
# The field app's own downloads, asked for in parallel when it goes online (field.js).
FIELD_DOWNLOADS = ("/api/v1/activities", "/api/v1/surveys", "/api/v1/cases")


# --- what to ask for ------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    """One URL (a path and query) and the endpoint it reaches."""

    endpoint: str
    path: str

    @property
    def core(self) -> bool:
        """One of the pages a field worker uses all day, or the field app's API."""
        return self.endpoint in CORE_ENDPOINTS or self.path.startswith("/api/v1/")


def _first(session: Session, query: sa.Select):
    return session.scalars(query.limit(1)).first()


def _arguments(session: Session, user: User) -> dict[str, Callable[[], object]]:
    """How to fill each URL argument with a record `user` may see in the demo data, chosen
    by a rule (the club of 30 meeting today, one of its members, a case and a note of the
    user's own), never by the date. A lookup gives None when the demo has no such record."""
    def seen(model, *where, order=None):
        return lambda: _first(session, scoped(model, user).where(*where).order_by(
            order if order is not None else model.id))

    def uuid_of(lookup):
        def get():
            row = lookup()
            return None if row is None else row.uuid
        return get

    club = seen(Activity, Activity.name == CLUB)
    own_case = seen(Case, Case.workers.any(User.id == user.id))
    return {
        "activity_id": uuid_of(club),
        "beneficiary_id": uuid_of(seen(Beneficiary, Beneficiary.enrolments.any(
            Enrolment.activity.has(Activity.name == CLUB)))),
        "enrolment_id": uuid_of(seen(Enrolment, Enrolment.activity.has(Activity.name == CLUB))),
        "session_id": uuid_of(seen(ActivitySession,
                                   ActivitySession.activity.has(Activity.organization_id
                                                                == user.organization_id))),
        "event_id": uuid_of(seen(GroupEvent)),
        "case_id": uuid_of(own_case),
        "goal_id": uuid_of(seen(CaseGoal, CaseGoal.case.has(Case.workers.any(
            User.id == user.id)))),
        "note_id": uuid_of(seen(CaseNote, CaseNote.author_id == user.id)),
        "referral_id": uuid_of(seen(Referral)),
        "outcome_id": uuid_of(seen(Outcome)),
        "provider_id": uuid_of(seen(ServiceProvider)),
        "transfer_id": uuid_of(seen(CaseTransfer)),
        "survey_id": uuid_of(seen(Survey)),
        "version_id": uuid_of(seen(SurveyVersion)),
        "report_id": uuid_of(seen(QuarterlyReport)),
        "job_id": uuid_of(seen(Job)),  # the user's own background jobs, if any
        "fmt": lambda: "csv",
    }


def pages_of(app, database: Path, email: str) -> tuple[list[Page], list[str]]:
    """Every GET URL of the app that `email`'s role may open, read from the routes, with
    its arguments filled from the demo `database`; plus a name search and a code search.
    Also returns, in words, the routes left out and why."""
    engine = sa.create_engine(f"sqlite:///{database}")
    pages: list[Page] = []
    left_out: list[str] = []
    try:
        with Session(engine) as session, app.app_context():
            user = session.scalars(sa.select(User).where(User.email == email)).one()
            granted = PERMISSIONS[user.role] | {PUBLIC}
            arguments = _arguments(session, user)
            for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint, r.rule)):
                if "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
                    continue
                if route_permission(rule.endpoint) not in granted:
                    continue
                values = dict(rule.defaults or {})
                for name in sorted(rule.arguments - set(values)):
                    if name not in arguments:
                        raise AssertionError(f"{rule.rule}: say how to fill <{name}> here")
                    values[name] = arguments[name]()
                missing = sorted(name for name, value in values.items()
                                 if value is None and name not in (rule.defaults or {}))
                if missing:
                    left_out.append(f"{rule.rule}: the demo data has no {', '.join(missing)}")
                    continue
                pages.append(Page(rule.endpoint, rule.build(values, append_unknown=False)[1]))
            youth = session.scalars(scoped(Beneficiary, user).order_by(Beneficiary.id)
                                    .limit(1)).one()
            for query in ({"q": youth.code}, {"q": "مح"}, {"q": "Mo"}):
                pages.append(Page("beneficiaries.index",
                                  "/beneficiaries/?" + urllib.parse.urlencode(query)))
    finally:
        engine.dispose()
    return pages, left_out


# --- asking ---------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer in itself (302 to the login page is not a 200)."""

    def redirect_request(self, *args, **kwargs):
        return None


def _opener(*handlers) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect, *handlers)


def log_in(base: str, email: str, password: str, user_agent: str | None = None) -> str:
    """The Cookie header of a new session of `email`, logged in through the login form (and
    the second factor where the role asks for one), by a browser saying `user_agent` (the
    default: urllib's own). The session is bound to it (Flask-Login's "basic" protection):
    a client that sends the cookie with another User-Agent gets a new cookie every time."""
    jar = http.cookiejar.CookieJar()
    opener = _opener(urllib.request.HTTPCookieProcessor(jar))
    if user_agent is not None:
        opener.addheaders = [("User-Agent", user_agent)]
    form = opener.open(base + "/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": token,
                                   "next": ""}).encode()
    try:
        opener.open(base + "/login", data, timeout=30)
    except urllib.error.HTTPError as answer:
        last = complete_over_http(opener, base, answer.headers.get("Location", ""), email)
        assert answer.code == 302 and last.status == 302 and "/login" not in last.location, \
            (answer.code, last.status, last.location)
    else:
        raise AssertionError(f"{email} was not logged in")
    # The first page after the login, as a browser opens it: the session then holds the
    # token of its forms (the menu's logout button has one), and the browser the cookie
    # carrying it. A cookie taken before would have every page make a new token and send
    # the cookie again, which no browser asks for twice.
    opener.open(base + "/", timeout=30).read()
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)


@dataclass(frozen=True)
class Answer:
    """What one request got: the HTTP status, or in words why there was none."""

    path: str
    status: int | str
    seconds: float


def ask(opener, base: str, path: str, cookie: str, timeout: float = 60) -> Answer:
    """One GET, read to the end."""
    started = time.perf_counter()
    request = urllib.request.Request(base + path, headers={"Cookie": cookie})
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
            status: int | str = response.status
    except urllib.error.HTTPError as answer:
        answer.read()
        status = answer.code
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
        status = f"no answer ({type(exc).__name__})"
    return Answer(path, status, time.perf_counter() - started)


def ask_for_file(opener, base: str, path: str, cookie: str, timeout: float = 120) -> Answer:
    """A file a background job makes (an export), as a person gets it: the link (302 to the
    job's page), its JSON status until done, then the download; the answer is the
    download's (or the first step that went wrong), timed from the first click."""
    started = time.perf_counter()
    request = urllib.request.Request(base + path, headers={"Cookie": cookie})
    try:
        opener.open(request, timeout=timeout).read()
        return Answer(path, "no redirect to a job", time.perf_counter() - started)
    except urllib.error.HTTPError as answer:
        answer.read()
        if answer.code != 302:
            return Answer(path, answer.code, time.perf_counter() - started)
        job = urllib.parse.urlsplit(answer.headers["Location"]).path
    while time.perf_counter() - started < timeout:
        try:
            with opener.open(urllib.request.Request(base + job + ".json", headers={
                    "Cookie": cookie}), timeout=timeout) as response:
                state = json.loads(response.read())
        except urllib.error.HTTPError as answer:
            return Answer(path, f"status {answer.code}", time.perf_counter() - started)
        if state["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    done = ask(opener, base, job + "/download", cookie, timeout)
    return Answer(path, done.status, time.perf_counter() - started)


def together(paths: list[str], base: str, cookie: str, threads: int = 12, rounds: int = 10,
             seed: int = 1) -> list[Answer]:
    """`threads` threads start at once; each asks for every path `rounds` times, in its
    own shuffled order. Returns every answer."""
    barrier = threading.Barrier(threads)
    answers: list[Answer] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        opener = _opener()
        order = [p for p in paths for _round in range(rounds)]
        random.Random(seed * 1000 + index).shuffle(order)
        barrier.wait()
        mine = [ask(opener, base, path, cookie) for path in order]
        with lock:
            answers.extend(mine)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answers


def alone(paths: list[str], base: str, cookie: str) -> dict[str, int | str]:
    """Each path asked once, one after the other: what it answers with nobody else around."""
    opener = _opener()
    return {path: ask(opener, base, path, cookie).status for path in paths}


@contextmanager
def in_background(job: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    """Run `job(stop)` in a thread while the block runs; then set `stop` and wait for it."""
    stop = threading.Event()
    thread = threading.Thread(target=job, args=(stop,))
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join()


def hold_write_lock(database: Path, seconds: float, stop: threading.Event,
                    held: list[float], pause: float = 1.0) -> None:
    """Another program writing to the database file: a write transaction kept open for
    `seconds`, then committed, again after `pause` seconds, until `stop` (its hold times go
    in `held`)."""
    connection = sqlite3.connect(database, timeout=60, isolation_level=None)
    try:
        while not stop.is_set():
            connection.execute("BEGIN IMMEDIATE")
            started = time.perf_counter()
            connection.execute("UPDATE organization SET code = code WHERE id = "
                               "(SELECT min(id) FROM organization)")
            time.sleep(seconds)
            connection.execute("COMMIT")
            held.append(time.perf_counter() - started)
            stop.wait(pause)
    finally:
        connection.close()


# --- what came back -------------------------------------------------------------------------

def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def unexpected(answers: list[Answer], expected: dict[str, int | str]) -> list[Answer]:
    """The answers whose status differs from what their path answers alone."""
    return [a for a in answers if a.status != expected[a.path]]


def summary(answers: list[Answer], expected: dict[str, int | str]) -> dict:
    """Requests, answers other than expected (by status), p50/p99/max latency in ms."""
    wrong = unexpected(answers, expected)
    times = [a.seconds * 1000 for a in answers]
    return {"requests": len(answers), "errors": len(wrong),
            "by_status": dict(Counter(str(a.status) for a in wrong)),
            "p50_ms": round(percentile(times, 0.50)), "p99_ms": round(percentile(times, 0.99)),
            "max_ms": round(max(times, default=0))}

"""Two app nodes on one PostgreSQL and one Redis, as a deployment with a load balancer runs
them: two gunicorn instances on different ports, each with an instance folder of its own
(nothing may rely on a node's disk or memory), and one RQ worker (`flask jobs worker`).

Shown from outside, over HTTP: a login on one node works on the other; failed passwords on
both count towards one lockout; a job started on one is followed, and its file downloaded,
on the other; many stale dashboards on both at once start one figures refresh.

Runs in the PostgreSQL pass of `make test` (TEST_DATABASE_URL set), on a scratch database
of that server; Redis at BLADI_TEST_NODES_REDIS_URL (db 11 of the local one by default).
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bladi_cases.config import RATE_LIMITS, TESTING_RATE_LIMIT
from bladi_cases.privacy.crypto import new_key as new_data_key
from bladi_cases.services.reports.indicators import Period

from . import load_support as load
from .browser_support import ROOT, gunicorn
from .conftest import redis_or_skip

pytestmark = [pytest.mark.server, pytest.mark.postgres]

REDIS_URL = os.environ.get("BLADI_TEST_NODES_REDIS_URL", "redis://127.0.0.1:6379/11")
MANAGER = ("manager@demo.bladi.tn", "Sahara-Wind-7305")
REVIEWER = ("reviewer@demo.bladi.tn", "Medina-Gate-1944")
WORKER = load.WORKER


def _server_or_skip() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or ""
    if not url.startswith("postgresql"):
        pytest.skip("runs in the PostgreSQL pass (TEST_DATABASE_URL=postgresql://...)")
    redis_or_skip(REDIS_URL)
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


NODES: dict = {}  # what the tests need beyond the URLs: the job workers


class Workers:
    """The `flask jobs worker` processes of the test (each one RQ SimpleWorker)."""

    def __init__(self, flask: list[str], env: dict, log: Path):
        self.flask, self.env, self.log = flask, env, log.open("ab")
        self.running: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        process = subprocess.Popen([*self.flask, "jobs", "worker"], cwd=ROOT, env=self.env,
                                   stdout=self.log, stderr=self.log)
        self.running.append(process)
        return process

    def run(self, *arguments: str) -> str:
        """Another command of the app, with the nodes' settings."""
        return subprocess.run([*self.flask, *arguments], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def stop_all(self) -> None:
        for process in self.running:
            process.terminate()  # RQ's warm shutdown; killed if it waits on Redis too long
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running = []


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """(node A's URL, node B's URL, the database URL): a scratch database seeded as `make
    run` does, two gunicorns and one job worker on it, sharing Redis."""
    server = make_url(_server_or_skip())
    name = f"bladi_nodes_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database = server.set(database=name).render_as_string(hide_password=False)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    shared = {"DATABASE_URL": database, "REDIS_URL": REDIS_URL, "BLADI_JOB_QUEUE": "rq",
              "SECRET_KEY": secrets.token_urlsafe(48), "BLADI_DATA_KEY": new_data_key(),
              "BLADI_2FA_ROLES": "", "BLADI_DASHBOARD_CACHE_SECONDS": "600",
              "BLADI_JOB_DEAD_SECONDS": "4",
              **dict.fromkeys(RATE_LIMITS, TESTING_RATE_LIMIT)}
    folders = [tmp_path_factory.mktemp(f"node-{n}") for n in ("a", "b", "worker")]
    env = {**os.environ, "BLADI_ENV": "development", "BLADI_INSTANCE_PATH": str(folders[2]),
           **shared}
    env.pop("TEST_DATABASE_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    for command in ([*flask, "db", "upgrade"], [*flask, "seed", "demo", "--beneficiaries", "60"]):
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    workers = Workers(flask, env, folders[2] / "worker.log")
    workers.start()
    try:
        with ExitStack() as stack:
            bases = [stack.enter_context(gunicorn(folder, "--workers", "2", env={
                **shared, "DATABASE_URL": database})) for folder in folders[:2]]
            NODES["workers"] = workers
            yield bases[0], bases[1], database
    finally:
        workers.stop_all()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Browser:
    """One person's cookies, sent to whichever node: what a browser behind a load balancer
    does (the session cookie follows the person, not the node)."""

    def __init__(self, cookie: str):
        self.cookies = dict(part.split("=", 1) for part in cookie.split("; ") if part)

    def _keep(self, headers) -> None:
        for value in headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]

    def open(self, base: str, path: str, data: bytes | None = None,
             content_type: str | None = None,
             extra: dict | None = None) -> tuple[int, str, dict]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   **(extra or {})}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(base + path, data=data, headers=headers)
        try:
            with load._opener().open(request, timeout=60) as response:
                self._keep(response.headers)
                return response.status, response.read().decode("utf-8", "replace"), \
                    dict(response.headers)
        except urllib.error.HTTPError as answer:
            self._keep(answer.headers)
            return answer.code, answer.read().decode("utf-8", "replace"), dict(answer.headers)

    def get(self, base: str, path: str) -> tuple[int, str, dict]:
        return self.open(base, path)

    def post_form(self, base: str, path: str, fields: dict, files: dict | None = None,
                  form_page: str | None = None) -> tuple[int, str]:
        """A form as a browser sends it, its CSRF token read from the page first."""
        _status, page, _headers = self.get(base, form_page or path)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        boundary = secrets.token_hex(8)
        body = io.BytesIO()
        for key, value in {**fields, "csrf_token": token}.items():
            body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"'
                       f"\r\n\r\n{value}\r\n".encode())
        for key, (filename, data) in (files or {}).items():
            body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; '
                       f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode())
            body.write(data + b"\r\n")
        body.write(f"--{boundary}--\r\n".encode())
        status, _page, headers = self.open(base, path, body.getvalue(),
                                           f"multipart/form-data; boundary={boundary}")
        return status, headers.get("Location", "")


def _login_attempt(base: str, email: str, password: str) -> int:
    """One password typed into the login form: 302 when let in, 200 when turned away."""
    jar = urllib.request.HTTPCookieProcessor()
    opener = load._opener(jar)
    form = opener.open(base + "/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"email": email, "password": password,
                                   "csrf_token": token, "next": ""}).encode()
    try:
        with opener.open(base + "/login", data, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as answer:
        return answer.code


def test_a_login_on_one_node_works_on_the_other(nodes):
    a, b, _database = nodes
    person = Browser(load.log_in(a, *WORKER))
    for base in (a, b):
        status, page, _headers = person.get(base, "/beneficiaries/")
        assert status == 200 and "/login" not in page[:200], base
    # Logging out on B ends the session everywhere (it lives in the database): a copy of
    # the cookie taken before no longer opens anything on A.
    person.get(b, "/")
    copy = Browser("")
    copy.cookies = dict(person.cookies)
    status, _location = person.post_form(b, "/logout", {}, form_page="/")
    assert status == 302
    status, _page, headers = copy.get(a, "/beneficiaries/")
    assert status == 302 and "/login" in headers.get("Location", "")


def test_failed_passwords_on_both_nodes_count_towards_one_lockout(nodes):
    a, b, _database = nodes
    email, password = "worker.acec@demo.bladi.tn", "Kasbah-Door-6610"
    for base in (a, b, a, b, a):  # five failures, split across the nodes
        assert _login_attempt(base, email, "not-the-password") != 302
    assert _login_attempt(b, email, password) != 302, "locked on B by failures on A and B"
    assert _login_attempt(a, email, password) != 302, "and on A"


def _sheet(count: int) -> bytes:
    header = ("First name (Arabic),Last name (Arabic),Sex,Date of birth,Governorate,Setting,"
              "Consent given by,Consent method,Consent covers\r\n")
    rows = "".join(f"رانيا{n},العقدين{n},female,2002-05-1{n % 9},TN-61,youth_centre,self,"
                   "signed_form,participation\r\n" for n in range(count))
    return (header + rows).encode("utf-8-sig")


def _wait_for(base: str, job: str, person: Browser, seconds: float = 240) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        status, body, _headers = person.get(base, job + ".json")
        assert status == 200, (status, body[:300])
        state = json.loads(body)
        if state["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return state
        time.sleep(0.3)


def test_a_job_started_on_one_node_is_followed_and_downloaded_on_the_other(nodes):
    a, b, database = nodes
    manager = Browser(load.log_in(a, *MANAGER))
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        before = conn.scalar(sa.text("SELECT count(*) FROM beneficiary"))
    status, location = manager.post_form(a, "/beneficiaries/import", {},
                                         {"upload": ("nodes.csv", _sheet(400))})
    assert status == 302 and "/jobs/" in location, (status, location)
    job = urllib.parse.urlsplit(location).path
    # The same file sent to the other node while the first import is not finished: refused.
    again, _location = manager.post_form(b, "/beneficiaries/import", {},
                                         {"upload": ("again.csv", _sheet(400))})
    state = _wait_for(b, job, manager)
    assert state["status"] == "done", state
    assert again in (409, 302), again  # 302 only if the first had already finished
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM beneficiary")) == before + 400
        ran_by = conn.scalar(sa.text("SELECT count(*) FROM job WHERE kind = "
                                     "'beneficiaries.import' AND status = 'done'"))
    assert ran_by >= 1
    # A file made by a job: asked on B, downloaded on A.
    donor = Browser(load.log_in(b, *load.DONOR))
    year = Period.containing(date.today()).fiscal_year
    status, _body, headers = donor.get(b, f"/reports/exports/tracking-{year}.csv")
    assert status == 302
    export = urllib.parse.urlsplit(headers["Location"]).path
    assert _wait_for(a, export, donor)["download"] is True
    status, body, headers = donor.get(a, export + "/download")
    assert status == 200 and "attachment" in headers.get("Content-Disposition", "")
    # Nobody else's, on either node.
    for base in (a, b):
        assert manager.get(base, export + "/download")[0] == 404
    engine.dispose()


def test_stale_dashboards_on_both_nodes_start_one_figures_refresh(nodes):
    a, b, database = nodes
    reviewer = Browser(load.log_in(a, *REVIEWER))
    year = Period.containing(date.today()).fiscal_year
    path = f"/reports/?fy={year}"
    assert reviewer.get(a, path)[0] == 200  # makes the year's first snapshot
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM job WHERE kind = 'figures.refresh'"))
        conn.execute(sa.text("UPDATE figures_snapshot SET computed_at = computed_at - "
                             "interval '20 minutes' WHERE fiscal_year = :y"), {"y": year})
    barrier = threading.Barrier(16)
    statuses = []

    def view(base):
        barrier.wait()
        statuses.append(reviewer.get(base, path)[0])

    threads = [threading.Thread(target=view, args=(base,)) for base in [a, b] * 8]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 16
    deadline = time.monotonic() + 90
    while True:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status FROM job WHERE kind = "
                                        "'figures.refresh'")).scalars().all()
        if rows and all(s not in ("queued", "running") for s in rows):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)
    assert rows == ["done"], f"one refresh for 16 stale views on two nodes, not {rows}"
    with engine.connect() as conn:
        fresh = conn.scalar(sa.text("SELECT count(*) FROM figures_snapshot WHERE fiscal_year "
                                    "= :y AND computed_at > now() at time zone 'utc' - "
                                    "interval '5 minutes'"), {"y": year})
    assert fresh == 1
    engine.dispose()
    # The views after it read the fresh snapshot: no other refresh is asked for.
    assert reviewer.get(b, path)[0] == 200
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM job WHERE kind = "
                                   "'figures.refresh'")) == 1
    engine.dispose()


def test_registrations_on_both_nodes_at_once_are_all_counted(nodes):
    """Eight phones sync three new youth each at the same moment, half through each node:
    every one is stored once, and the CSO's count that the database keeps
    (`beneficiary_count`, its row locked by each registration until it commits) equals a
    real count afterwards."""
    a, b, database = nodes
    cookie = load.log_in(a, *WORKER)
    status, body, _headers = Browser(cookie).get(a, "/api/v1/me")
    assert status == 200
    token = json.loads(body)["csrf_token"]
    firsts = ["سلمى", "مريم", "آمنة", "نور", "هالة", "ريم"]
    lasts = ["الحمروني", "الجزيري", "القاسمي", "التونسي"]
    youth = [{"uuid": str(uuid.uuid4()), "type": "registration", "data": {
        "first_name_ar": first, "last_name_ar": last, "sex": "female",
        "birth_date": (date(date.today().year - 20, 3, 1) + timedelta(days=n)).isoformat(),
        "governorate_code": "TN-61", "setting_kind": "youth_centre",
        "consent_given_by": "self", "consent_method": "signed_form",
        "consent_scopes": ["participation"], "first_contact_date": date.today().isoformat()}}
        for n, (first, last) in enumerate((f, la) for f in firsts for la in lasts)]
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)

    def counts():
        with engine.connect() as conn:
            kept = dict(conn.execute(sa.text(
                "SELECT organization_id, live FROM beneficiary_count WHERE live > 0")).all())
            real = dict(conn.execute(sa.text(
                "SELECT organization_id, count(*) FROM beneficiary WHERE erased_at IS NULL "
                "GROUP BY organization_id")).all())
        return kept, real

    kept, real = counts()
    assert kept == real
    answers: list = []
    start = threading.Barrier(8)

    def phone(n: int) -> None:
        batch = json.dumps({"records": youth[3 * n:3 * n + 3]}).encode()
        start.wait()
        answers.append(Browser(cookie).open(
            (a, b)[n % 2], "/api/v1/sync", batch, "application/json",
            {"X-CSRFToken": token}))

    threads = [threading.Thread(target=phone, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert [status for status, _body, _headers in answers] == [200] * 8, answers
        results = [r for _status, body, _headers in answers for r in json.loads(body)["results"]]
        assert sorted(r["status"] for r in results) == ["stored"] * 24, results
        after, real_after = counts()
        assert after == real_after
        assert sum(after.values()) == sum(kept.values()) + 24
    finally:
        engine.dispose()


def test_nothing_was_kept_on_a_nodes_disk(nodes, tmp_path_factory):
    """The nodes' instance folders hold no upload, job state or figures: all of it is in
    PostgreSQL and Redis (the logs aside)."""
    base = Path(tmp_path_factory.getbasetemp())
    kept = [p for folder in base.glob("node-[ab]*") for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith(".log") and p.name != "secrets.json"]
    assert kept == [], kept


def test_a_job_whose_worker_is_killed_runs_again_and_writes_once(nodes):
    """kill -9 of the worker while it writes an import: nothing of it is kept; the sweep
    queues it again (no heartbeat for BLADI_JOB_DEAD_SECONDS), another worker runs it, and
    every row is written once."""
    import redis

    a, b, database = nodes
    workers: Workers = NODES["workers"]
    workers.stop_all()  # the test decides which worker takes the job
    manager = Browser(load.log_in(a, *MANAGER))
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    count = "SELECT count(*) FROM beneficiary"
    with engine.connect() as conn:
        before = conn.scalar(sa.text(count))
    rows = 10_000
    sheet = _sheet(rows).replace("رانيا".encode(), "سيرين".encode())
    status, location = manager.post_form(a, "/beneficiaries/import", {},
                                         {"upload": ("killed.csv", sheet)})
    assert status == 302
    job = urllib.parse.urlsplit(location).path
    key = f"bladi:job:{job.rsplit('/', 1)[1]}"
    progress = redis.Redis.from_url(REDIS_URL)
    doomed = workers.start()
    deadline, killed_at = time.monotonic() + 120, None
    while time.monotonic() < deadline and killed_at is None:
        raw = progress.get(key)
        state = json.loads(raw) if raw else {}
        if state.get("stage") == "written" and 0 < state.get("done", 0) < rows:
            doomed.kill()  # SIGKILL: no warm shutdown, no rollback sent by the worker
            doomed.wait()
            killed_at = state["done"]
        time.sleep(0.02)
    assert killed_at is not None, "the worker was not caught while writing"
    workers.running.remove(doomed)
    with engine.connect() as conn:
        assert conn.scalar(sa.text(count)) == before, "rows written before the kill: none kept"
        assert conn.scalar(sa.text("SELECT status FROM job WHERE active_key IS NOT NULL")) \
            == "running", "the row still says running: only the missing heartbeat tells"
    workers.start()
    deadline = time.monotonic() + 60
    while "retried: 1" not in workers.run("jobs", "sweep"):
        assert time.monotonic() < deadline, "the sweep never retried the job"
        time.sleep(1)
    state = _wait_for(b, job, manager, seconds=120)
    assert state["status"] == "done", state
    with engine.connect() as conn:
        assert conn.scalar(sa.text(count)) == before + rows, "every row once"
        attempts = conn.scalar(sa.text("SELECT attempts FROM job WHERE kind = "
                                       "'beneficiaries.import' ORDER BY id DESC LIMIT 1"))
    assert attempts == 2
    engine.dispose()

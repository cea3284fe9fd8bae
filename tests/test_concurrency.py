"""The embedded database under concurrency.

End to end: a real gunicorn (4 sync workers, loopback only) serves a copy of the SQLite demo
database (browser_support.py builds it once); one field worker asks for every page and API
GET they may open, 12 threads at once, and every answer must be what that URL answers
alone: 200 for each page they use all day (12 threads x 10 requests of each), the same for
every other page of their role (12 x 2 of each). Then again while another program holds the
write lock, and while the donor downloads the exports.

In process, on a SQLite file with its own app: when the write lock is taken and released.
A read request holds no write lock while it renders and survives a write committed
meanwhile; a write request takes the lock when it begins; exports and the figures refresh
compute without the write lock.

SQLite only: the PostgreSQL run (TEST_DATABASE_URL set) skips this module, which is about
the embedded database and never uses TEST_DATABASE_URL (the server always runs on SQLite).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import before_render_template

from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import (
    AuditEntry,
    FiguresSnapshot,
    Organization,
    Survey,
    SurveyResponse,
    User,
)
from bladi_cases.services.audit import Action
from bladi_cases.services.reports.indicators import Period

from . import load_support as load
from .browser_support import demo_instance, gunicorn
from .conftest import get_file, login

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")),
                       reason="SKIPPED: about the embedded SQLite database; the SQLite run "
                              "covers it"),
]

THREADS, ROUNDS = 12, 10
HOLD_SECONDS = 2.0  # another program's write transaction: well under the 5 s busy timeout


@pytest.fixture(autouse=True)
def _transaction():
    """This module runs on its own demo databases: the session's test database and its
    per-test transaction (conftest) are left alone."""
    yield


# --- end to end: gunicorn ------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """gunicorn with 4 sync workers on a fresh copy of the demo instance: (base URL, the
    database file)."""
    instance = demo_instance(tmp_path_factory, "concurrency")
    with gunicorn(instance, "--workers", "4", "--timeout", "60") as base:
        yield base, instance / "bladi.db"


@pytest.fixture(scope="module")
def worker_pages(served):
    """Every GET URL the demo field worker may open (load_support.pages_of), what each
    answers alone, and the worker's session cookie."""
    base, database = served
    app = create_app({"BLADI_ENV": "testing", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    pages, left_out = load.pages_of(app, database, load.WORKER[0])
    cookie = load.log_in(base, *load.WORKER)
    alone = load.alone([p.path for p in pages], base, cookie)
    print(f"\n{len(pages)} URLs; left out: {left_out or 'none'}")
    return pages, alone, cookie


def _log_tail(database: Path, lines: int = 40) -> str:
    log = database.with_name("gunicorn.log").read_text(encoding="utf-8", errors="replace")
    return "\n".join(log.splitlines()[-lines:])


def _check(answers: list[load.Answer], expected: dict, database: Path) -> dict:
    summary = load.summary(answers, expected)
    print(json.dumps(summary))
    wrong = load.unexpected(answers, expected)
    assert not wrong, (
        f"{len(wrong)} of {len(answers)} answers differ from the URL's answer alone: "
        f"{Counter((a.path, a.status) for a in wrong).most_common(8)}\n"
        f"server log:\n{_log_tail(database)}")
    return summary


def test_each_url_answers_alone_and_the_core_pages_are_among_them(worker_pages):
    pages, alone, _cookie = worker_pages
    broken = {path: status for path, status in alone.items()
              if not isinstance(status, int) or status >= 500}
    assert not broken, f"answers of 500 or none, with nobody else around: {broken}"
    core = [p for p in pages if p.core]
    assert set(load.CORE_ENDPOINTS) <= {p.endpoint for p in core}
    assert {p.path for p in core} >= set(load.FIELD_DOWNLOADS)
    assert sum("?q=" in p.path for p in core) >= 2, "a name search and a code search"
    assert [p.path for p in core if alone[p.path] != 200] == []
    assert sum(status == 200 for status in alone.values()) >= 30


def test_the_pages_a_field_worker_uses_all_day_answer_200_with_12_threads_at_once(
        served, worker_pages):
    """Home, the youth list and searches, a youth, the activities, the club, its attendance
    page, the field app and every /api/v1 GET: 12 threads x 10 requests of each."""
    base, database = served
    pages, alone, cookie = worker_pages
    paths = [p.path for p in pages if p.core]
    answers = load.together(paths, base, cookie, THREADS, ROUNDS)
    _check(answers, alone, database)
    assert Counter(a.path for a in answers if a.status == 200) == {
        path: THREADS * ROUNDS for path in paths}


def test_every_other_page_they_may_open_answers_as_alone_with_12_threads_at_once(
        served, worker_pages):
    """The other GET pages of their role (forms, the case, the survey, the providers...),
    fewer times each (12 threads x 2): each answers what it answers alone."""
    base, database = served
    pages, alone, cookie = worker_pages
    paths = [p.path for p in pages if not p.core]
    answers = load.together(paths, base, cookie, THREADS, 2, seed=3)
    assert len(answers) == THREADS * 2 * len(paths)
    _check(answers, alone, database)


def test_the_field_apps_three_downloads_in_parallel_succeed_every_time(served, worker_pages):
    base, database = served
    _pages, alone, cookie = worker_pages
    answers = []
    for run in range(10):
        answers += load.together(list(load.FIELD_DOWNLOADS), base, cookie, 3, 1, seed=run)
    _check(answers, alone, database)


def test_pages_answer_while_another_program_holds_the_write_lock(served, worker_pages):
    """Another program's write transactions of 2 s (under the 5 s busy timeout), one a
    second apart, while 12 threads load every page of the day twice."""
    base, database = served
    pages, alone, cookie = worker_pages
    held: list[float] = []
    answers: list[load.Answer] = []
    with load.in_background(
            lambda stop: load.hold_write_lock(database, HOLD_SECONDS, stop, held)):
        # Rounds until the other program has held the lock twice: a round of the pages
        # can end inside one hold now that they are fast (one hold ends, 1 s passes, the
        # next begins: at least one page of the later rounds meets a held lock).
        for round_ in range(20):
            answers += load.together([p.path for p in pages if p.core], base, cookie,
                                     THREADS, 2, seed=5 + round_)
            if len(held) >= 2:
                break
    assert len(held) >= 2, "the other program never held the lock during the load"
    _check(answers, alone, database)


def test_pages_answer_while_the_donor_downloads_every_export(served, worker_pages):
    base, database = served
    pages, alone, cookie = worker_pages
    donor = load.log_in(base, *load.DONOR)
    year = Period.containing(date.today()).fiscal_year
    exports = [f"/reports/exports/tracking-{year}.xlsx", f"/reports/exports/tracking-{year}.csv",
               f"/reports/exports/microdata-{year}.csv"]
    downloads: list[load.Answer] = []

    def download(stop):
        opener = load._opener()
        while not stop.is_set():
            downloads.extend(load.ask_for_file(opener, base, path, donor) for path in exports)

    with load.in_background(download):
        answers = load.together([p.path for p in pages if p.core], base, cookie, THREADS, 2,
                                seed=9)
    assert len(downloads) >= len(exports)
    _check(downloads, dict.fromkeys(exports, 200), database)
    _check(answers, alone, database)


# --- in process: when the write lock is held -----------------------------------------------

def write_lock_is_free(database: Path) -> bool:
    """Whether another connection could take the write lock right now (without waiting)."""
    probe = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def write_elsewhere(database: Path) -> bool:
    """Another program writes and commits, waiting for the lock 0.2 s at most; whether it
    could."""
    other = sqlite3.connect(database, timeout=0.2, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE organization SET code = code WHERE id = "
                      "(SELECT min(id) FROM organization)")
        other.execute("COMMIT")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


@pytest.fixture
def local(tmp_path_factory):
    """An app of its own on a fresh copy of the demo database file (its data key), with
    the dashboards' snapshot in use as in production: (app, database file)."""
    instance = demo_instance(tmp_path_factory, "concurrency-local")
    keys = json.loads((instance / "secrets.json").read_text(encoding="utf-8"))
    app = create_app({
        "BLADI_ENV": "testing", "TESTING": True, "WTF_CSRF_ENABLED": False,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'bladi.db'}",
        "SERVER_NAME": "bladi.test", "BLADI_DATA_KEY": keys["BLADI_DATA_KEY"],
        "BLADI_DASHBOARD_CACHE_SECONDS": 300})
    yield app, instance / "bladi.db"
    with app.app_context():
        db.engine.dispose()
    shutil.rmtree(instance, ignore_errors=True)


def _client_of(app, email: str):
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == email)).one()
        client = app.test_client()
        login(client, user)
        db.session.remove()
    return client


def _entries(app, action: str) -> int:
    with app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
            AuditEntry.action == action))
        db.session.remove()
    return count


@pytest.fixture
def while_rendering(local):
    """Call a function of the database file while each template of the local app renders;
    returns the list its results go in."""
    app, database = local
    seen: list = []

    receivers = []

    def connect(check):
        def on_render(_sender, **_extra):
            seen.append(check(database))
        before_render_template.connect(on_render, app, weak=False)
        receivers.append(on_render)
        return seen

    yield connect
    for receiver in receivers:
        before_render_template.disconnect(receiver, app)


def test_a_read_request_holds_no_write_lock_while_it_renders(local, while_rendering):
    app, _database = local
    free = while_rendering(write_lock_is_free)
    client = _client_of(app, load.WORKER[0])
    before = _entries(app, Action.BENEFICIARIES_LISTED)
    assert client.get("/beneficiaries/").status_code == 200
    assert free and all(free), "the list held the write lock while rendering"
    assert _entries(app, Action.BENEFICIARIES_LISTED) == before + 1, "audited all the same"


def test_a_read_request_survives_writes_committed_after_its_first_read(local,
                                                                      while_rendering):
    """The list reads (the user, first), another program commits, the list reads on and
    renders while another commit lands, then it writes its audit entry: a transaction that
    began by reading would fail here at once ("database is locked", no waiting)."""
    app, database = local
    written = while_rendering(write_elsewhere)
    app.before_request(lambda: written.append(write_elsewhere(database)))  # user loaded
    client = _client_of(app, load.WORKER[0])
    before = _entries(app, Action.BENEFICIARIES_LISTED)
    response = client.get("/beneficiaries/")
    assert len(written) == 2 and all(written), "the other program could not write meanwhile"
    assert response.status_code == 200, "its audit entry failed after the other's commits"
    assert _entries(app, Action.BENEFICIARIES_LISTED) == before + 1


def test_logging_in_checks_the_password_holding_no_write_lock(local, monkeypatch):
    """Logging in reads the account, checks the password (argon2, slow on purpose), then
    writes: the read's transaction ends before the check (`reading_first`), so another
    program may commit meanwhile, and the write begins a transaction of its own, which
    waits for the lock instead of failing. (Holding the lock through the check, 40 logins
    at once on 4 workers made some wait past the busy timeout: tests/test_auth_limits.py.)"""
    from bladi_cases.services.auth import login as auth

    app, database = local
    check = auth._check_password
    others: list[bool] = []

    def check_while_another_writes(*args):
        others.append(write_elsewhere(database))
        return check(*args)

    monkeypatch.setattr(auth, "_check_password", check_while_another_writes)
    response = app.test_client().post("/login", data={"email": load.WORKER[0],
                                                      "password": load.WORKER[1]})
    assert others == [True], "the login held the write lock while checking the password"
    assert response.status_code == 302 and "/login" not in response.location


def test_exports_and_the_figures_refresh_compute_without_the_write_lock(local, monkeypatch):
    from bladi_cases.services.reports import exports, release
    from bladi_cases.services.surveys import surveys

    app, database = local
    free: list[tuple[str, bool]] = []

    def probing(module, name):
        original = getattr(module, name)

        def probe(*args, **kwargs):
            free.append((name, write_lock_is_free(database)))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, probe)

    probing(release, "year_figures")        # the year's figures (dashboards, tracking table)
    probing(release, "build")               # the release and its audit
    probing(exports, "age_band")            # each microdata row
    probing(surveys, "export_rows")         # the survey responses export
    year = Period.containing(date.today()).fiscal_year
    donor = _client_of(app, load.DONOR[0])
    before = _entries(app, Action.EXPORT_DOWNLOADED)
    for path in (f"/reports/exports/tracking-{year}.xlsx", f"/reports/exports/tracking-{year}.csv",
                 f"/reports/exports/microdata-{year}.csv"):
        response = get_file(donor, path)
        assert response.status_code == 200, path
        response.get_data()
        response.close()
    assert _entries(app, Action.EXPORT_DOWNLOADED) == before + 3
    with app.app_context():
        stored = db.session.scalars(sa.select(FiguresSnapshot.fiscal_year)).all()
        survey = db.session.scalars(sa.select(Survey.uuid).join(
            SurveyResponse, SurveyResponse.survey_id == Survey.id).join(
            Organization, Organization.id == SurveyResponse.organization_id).where(
            Organization.code == "BA")).first()
        db.session.remove()
    assert year in stored, "the figures computed for the export were kept"
    assert survey is not None, "the demo has no survey answered at Bedhret Amal"
    worker = _client_of(app, load.WORKER[0])
    assert get_file(worker, f"/surveys/{survey}/responses.csv").status_code == 200
    result = app.test_cli_runner().invoke(args=["reports", "refresh", "--fy", str(year)])
    assert result.exit_code == 0, result.output
    names = {name for name, _free in free}
    assert {"year_figures", "build", "age_band", "export_rows"} <= names, names
    held = sorted({name for name, was_free in free if not was_free})
    assert not held, f"computed while holding the write lock: {held}"


def test_a_write_that_cannot_have_the_lock_fails_as_sqlalchemys_error_and_leaves_no_trace(
        local):
    """The transaction's BEGIN goes to the driver itself (`_sqlite_begin`): when another
    program holds the write lock past the busy timeout, it fails as SQLAlchemy's
    OperationalError ("database is locked"), the session rolls back cleanly, and the
    next write transaction works."""
    from bladi_cases import transactions

    app, database = local
    holder = sqlite3.connect(database, timeout=0, isolation_level=None)
    with app.app_context():
        try:  # (the app waits its busy timeout, 5 s, then gives up)
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(sa.exc.OperationalError, match="database is locked"), \
                    transactions.write_transaction():
                db.session.execute(sa.update(Organization).values(code=Organization.code))
            db.session.rollback()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        with transactions.write_transaction():
            db.session.execute(sa.update(Organization).values(code=Organization.code))
            db.session.commit()
        assert write_lock_is_free(database)
        db.session.remove()

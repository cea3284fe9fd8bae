"""Background jobs (services/jobs.py): progress and status for the person who asked only, a
file that expires, all-or-nothing work, a second import of the same file refused, retries
after a worker died that never write twice, the periodic sweep, and the same jobs run by a
real RQ worker on Redis."""

from __future__ import annotations

import io
import os
import threading
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, Beneficiary, Job, JobStatus, Role
from bladi_cases.models.common import utcnow
from bladi_cases.services import jobs
from bladi_cases.services.beneficiaries import imports as importer

from .conftest import follow_job, login, redis_or_skip, text_of

HEADER = ("First name (Arabic),Last name (Arabic),Sex,Date of birth,Governorate,Setting,"
          "Consent given by,Consent method,Consent covers\r\n")
REDIS_URL = os.environ.get("BLADI_TEST_JOBS_REDIS_URL", "redis://127.0.0.1:6379/12")


def _sheet(count: int, first: int = 0) -> bytes:
    """Adults who consent for themselves, with names nobody else has."""
    rows = "".join(f"سلمى{n},التجريبي{n},female,2001-0{1 + n % 9}-1{n % 9},TN-61,"
                   f"youth_centre,self,signed_form,participation\r\n"
                   for n in range(first, first + count))
    return (HEADER + rows).encode("utf-8-sig")


def _count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary))


def _upload(client, data: bytes, name: str = "youth.csv"):
    return client.post("/beneficiaries/import", data={"upload": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


@pytest.fixture
def manager(client, make_user):
    user = make_user(Role.CSO_MANAGER, "BA", preferred_language="en")
    login(client, user)
    client.set_cookie("lang", "en", domain="bladi.test")
    return user


@pytest.fixture
def queue_only(app):
    """Jobs are queued and wait (as for a busy worker) until the test runs them."""
    started: list[str] = []
    original = jobs.dispatch
    jobs.dispatch = started.append
    try:
        yield started
    finally:
        jobs.dispatch = original


def _job(user) -> Job:
    return db.session.scalars(sa.select(Job).where(Job.user_id == user.id)
                              .order_by(Job.id.desc())).first()


# --- What the person sees --------------------------------------------------------------------

def test_a_queued_job_shows_a_progress_bar_that_follows_it_without_javascript(
        client, manager, queue_only):
    started = _upload(client, _sheet(3))
    assert started.status_code == 302 and "/jobs/" in started.headers["Location"]
    page = client.get(started.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<progress" in html
    assert '<noscript><meta http-equiv="refresh"' in html, "reloads itself without JS"
    state = client.get(started.headers["Location"] + ".json").get_json()
    assert state["status"] == "queued" and state["percent"] == 0 and not state["download"]
    assert _job(manager).status == JobStatus.QUEUED
    # The worker gets to it: the same page now says it is done, and no longer reloads.
    jobs.perform(queue_only[0])
    html = client.get(started.headers["Location"]).get_data(as_text=True)
    assert 'data-status="done"' in html and "http-equiv" not in html


def test_a_queued_import_is_cancelled_by_the_person_who_asked_only(
        app, client, manager, make_user, queue_only):
    """A job waiting for a worker ends at once when its owner cancels it (a form, no
    script): the worker then skips it, nothing is imported, and the same file can be
    uploaded again; another person gets 404, and a second cancel says it has ended."""
    before = _count()
    started = _upload(client, _sheet(3))
    location = started.headers["Location"]
    html = client.get(location).get_data(as_text=True)
    assert "Cancel this job" in html and f'action="{location}/cancel"' in html
    other = app.test_client()
    login(other, make_user(Role.CSO_MANAGER, "BA"))
    assert other.post(location + "/cancel").status_code == 404
    assert _job(manager).status == JobStatus.QUEUED

    answer = client.post(location + "/cancel")
    assert answer.status_code == 302 and answer.headers["Location"].endswith(location)
    page = text_of(client.get(location))
    assert "Cancelled at your request: nothing was saved." in page, page[-400:]
    assert client.get(location + ".json").get_json()["status"] == "cancelled"
    assert jobs.perform(queue_only[0]) == "skipped"
    assert _count() == before
    assert _upload(client, _sheet(3)).status_code == 302, "the same file: not 'already running'"
    assert "already ended" in text_of(client.post(location + "/cancel", follow_redirects=True))
    assert _job(manager).status == JobStatus.QUEUED, "the new upload's job is untouched"


def test_a_running_import_stops_at_its_next_step_and_writes_nothing(client, manager,
                                                                   queue_only):
    """The owner cancels while a worker runs the import (here, from the job's first
    progress report): the page says it is stopping, the job ends at its next report, and
    none of its rows is written."""
    before = _count()
    location = _upload(client, _sheet(40)).headers["Location"]
    seen = []
    real = jobs.Progress.__call__

    def cancel_while_running(progress, stage, done, total):
        if not seen:
            seen.append(text_of(client.post(location + "/cancel", follow_redirects=True)))
        return real(progress, stage, done, total)

    jobs.Progress.__call__ = cancel_while_running
    try:
        assert jobs.perform(queue_only[0]) == JobStatus.CANCELLED
    finally:
        jobs.Progress.__call__ = real
    assert "Stopping: unless it finishes first" in seen[0], seen[0][-400:]
    assert _count() == before
    state = client.get(location + ".json").get_json()
    assert state["status"] == "cancelled" and not state["cancellable"]
    assert "Cancelled at your request" in state["problems"][0]


def test_a_cancelled_job_whose_worker_died_ends_cancelled_not_run_again(client, manager,
                                                                        queue_only):
    before = _count()
    location = _upload(client, _sheet(5)).headers["Location"]
    job = _job(manager)
    assert jobs._claim(str(job.uuid))
    assert "Stopping" in text_of(client.post(location + "/cancel", follow_redirects=True))
    # ... and its worker died before its next report: no heartbeat since.
    jobs._store().put(str(job.uuid), {"stage": "checked", "done": 2, "total": 5,
                                      "at": time.time() - 120})
    queue_only.clear()
    counts = jobs.sweep()
    assert counts["cancelled"] == 1 and counts["retried"] == 0 and queue_only == []
    db.session.refresh(job)
    assert job.status == JobStatus.CANCELLED and _count() == before
    assert jobs._store().get(f"{job.uuid}.cancel") is None, "no flag left behind"


def test_a_key_rotation_cannot_be_stopped_once_it_runs(app, client, make_user):
    """A rotation commits batch by batch: while it runs, cancelling is refused with a
    message, and a queued one may still be cancelled."""
    admin = make_user(Role.ADMIN, preferred_language="en")
    login(client, admin)
    job = jobs.start("keys.rotate", admin)
    db.session.commit()
    job.status = JobStatus.RUNNING
    db.session.commit()
    page = text_of(client.post(f"/jobs/{job.uuid}/cancel", follow_redirects=True))
    assert "cannot be stopped while it runs" in page, page[-400:]
    assert "Cancel this job" not in page
    job.status = JobStatus.QUEUED
    db.session.commit()
    client.post(f"/jobs/{job.uuid}/cancel")
    db.session.expire_all()
    assert db.session.get(Job, job.id).status == JobStatus.CANCELLED


def test_progress_reported_while_running_is_what_the_status_says(app, client, manager):
    job = jobs.start("beneficiaries.import", manager, data=_sheet(1), data_name="a.csv")
    db.session.commit()
    job.status = JobStatus.RUNNING
    db.session.commit()
    jobs.Progress(job)("checked", 1500, 6000)
    state = client.get(f"/jobs/{job.uuid}.json").get_json()
    assert (state["status"], state["stage"], state["done"], state["total"], state["percent"]) \
        == ("running", "checked", 1500, 6000, 25)
    page = text_of(client.get(f"/jobs/{job.uuid}"))
    assert "1,500" in page and "6,000" in page, page[-400:]


def test_a_job_is_seen_by_the_person_who_asked_only(app, client, manager, make_user,
                                                     queue_only):
    follow = _upload(client, _sheet(2))
    location = follow.headers["Location"]
    jobs.perform(queue_only[0])
    colleague = make_user(Role.CSO_MANAGER, "BA")  # same CSO, same role: still not theirs
    other = app.test_client()
    login(other, colleague)
    for suffix in ("", ".json", "/download"):
        assert other.get(location + suffix).status_code == 404, suffix
    assert str(_job(manager).uuid) not in other.get("/jobs/").get_data(as_text=True)
    assert str(_job(manager).uuid) in client.get("/jobs/").get_data(as_text=True)


def test_an_export_downloads_for_its_owner_until_it_expires(app, client, make_user):
    donor = make_user(Role.DONOR, preferred_language="en")
    login(client, donor)
    client.set_cookie("lang", "en", domain="bladi.test")
    asked = client.get(f"/reports/exports/tracking-{app.config['BLADI_AWARD_FIRST_FY']}.csv")
    job_page = asked.headers["Location"]
    assert client.get(job_page + ".json").get_json()["download"] is True
    file = client.get(job_page + "/download")
    assert file.status_code == 200 and file.data.startswith(b"\xef\xbb\xbf")
    assert "attachment" in file.headers["Content-Disposition"]
    job = _job(donor)
    job.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    counts = jobs.sweep()
    assert counts["expired"] >= 1
    db.session.refresh(job)
    assert job.result_enc is None, "the file is deleted, not just hidden"
    gone = client.get(job_page + "/download")
    assert gone.status_code == 410 and "expired" in text_of(gone)
    assert client.get(job_page + ".json").get_json()["expired"] is True


# --- All or nothing, in the person's language --------------------------------------------

def test_a_job_failing_while_writing_leaves_nothing_and_says_so_in_arabic(
        app, client, make_user, monkeypatch):
    manager = make_user(Role.CSO_MANAGER, "BA", preferred_language="ar")
    login(client, manager)
    client.set_cookie("lang", "ar", domain="bladi.test")
    before = _count()
    real = importer.import_rows

    def dies_halfway(actor, org, check, skip, progress=None):
        half = importer.ImportCheck(check.rows[:5], {})
        real(actor, org, half, set(), progress=progress)  # five youth written...
        raise RuntimeError("the disk is full")            # ...then the worker fails

    monkeypatch.setattr(importer, "import_rows", dies_halfway)
    page = follow_job(client, _upload(client, _sheet(10)))
    assert _count() == before, "the five rows written before the failure are rolled back"
    html = page.get_data(as_text=True)
    assert 'data-status="failed"' in html
    assert "لم يُحفظ أي شيء" in html or "لم يتم حفظ" in html, text_of(page)[-500:]
    job = _job(manager)
    assert job.active_key is None and job.input_enc is None, "the file is not kept"


def test_the_same_file_cannot_be_imported_twice_at_once(client, manager, queue_only):
    data = _sheet(4)
    assert _upload(client, data).status_code == 302
    again = _upload(client, data, "the-same.csv")
    assert again.status_code == 409
    assert "already being imported" in text_of(again)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(
        Job.user_id == manager.id)) == 1
    other = _upload(client, _sheet(4, first=50))  # another file: fine
    assert other.status_code == 302
    for key in list(queue_only):
        jobs.perform(key)
    # Once it ended, the same file may be sent again (its rows are then duplicates).
    assert _upload(client, data).status_code == 302


def test_the_unique_key_stops_a_second_job_even_when_both_checked_first(app, manager):
    """Two nodes that both looked before either wrote: the database refuses the second."""
    data = _sheet(1)
    key = importer.file_key(manager.organization, data)
    first = Job(kind="beneficiaries.import", user_id=manager.id, params={}, active_key=key,
                status=JobStatus.QUEUED, language="en", attempts=0)
    db.session.add(first)
    db.session.commit()
    with pytest.raises(jobs.JobRefused):
        jobs._add(Job(kind="beneficiaries.import", user_id=manager.id, params={},
                      active_key=key, status=JobStatus.QUEUED, language="en", attempts=0))
    db.session.rollback()


# --- Retries and idempotence ---------------------------------------------------------------

def test_a_job_done_is_not_done_again(client, manager, queue_only):
    before = _count()
    _upload(client, _sheet(6))
    key = queue_only[0]
    assert jobs.perform(key) == JobStatus.DONE
    assert jobs.perform(key) == "skipped", "a retry that comes late writes nothing"
    assert _count() == before + 6


def test_a_job_whose_worker_died_is_run_again_once_and_writes_once(client, manager,
                                                                   queue_only):
    before = _count()
    _upload(client, _sheet(5))
    job = _job(manager)
    # A worker claimed it, then died (killed, the machine lost): no heartbeat since.
    assert jobs._claim(str(job.uuid))
    jobs._store().put(str(job.uuid), {"stage": "checked", "done": 2, "total": 5,
                                      "at": time.time() - 120})
    queue_only.clear()
    counts = jobs.sweep()
    assert counts["retried"] == 1 and queue_only == [str(job.uuid)]
    assert jobs.perform(queue_only[0]) == JobStatus.DONE
    db.session.refresh(job)
    assert job.attempts == 2 and _count() == before + 5


def test_a_worker_taken_for_dead_that_finishes_late_writes_nothing(client, manager,
                                                                     queue_only):
    """Only the run of the latest attempt may end a job: a first worker that was only
    stalled (the sweep gave its job to a second one) and then finishes writes nothing and
    leaves the second run's progress alone; the second writes once."""
    from bladi_cases.transactions import job_work

    before = _count()
    _upload(client, _sheet(5))
    key = str(_job(manager).uuid)
    first = jobs._claim(key)
    jobs._store().put(key, {"stage": "checked", "done": 2, "total": 5,
                            "at": time.time() - 120})
    queue_only.clear()
    assert jobs.sweep()["retried"] == 1
    second = jobs._claim(key)  # another worker takes it again
    assert (first, second) == (1, 2)
    jobs._store().put(key, {"stage": "checked", "done": 1, "total": 5, "at": time.time()})
    with job_work():
        assert jobs._perform_claimed(key, first) == "skipped"
    assert _count() == before and _job(manager).status == JobStatus.RUNNING
    assert jobs._store().get(key) is not None, "the second run's progress is left alone"
    with job_work():
        assert jobs._perform_claimed(key, second) == JobStatus.DONE
    assert _count() == before + 5


def test_a_job_that_keeps_dying_fails_with_a_message_after_its_attempts(client, manager,
                                                                        queue_only):
    _upload(client, _sheet(2))
    job = _job(manager)
    for _attempt in range(jobs.KINDS[job.kind].max_attempts):
        job.status = JobStatus.QUEUED
        db.session.commit()
        assert jobs._claim(str(job.uuid))
        jobs._store().put(str(job.uuid), {"at": time.time() - 300})
        jobs.sweep()
        db.session.refresh(job)
    assert job.status == JobStatus.FAILED
    assert "stopped 3 times" in text_of(jobs_page := _client_page(client, job))
    assert jobs_page.status_code == 200


def _client_page(client, job):
    return client.get(f"/jobs/{job.uuid}")


def test_a_live_job_is_left_alone_by_the_sweep(client, manager, queue_only):
    _upload(client, _sheet(2))
    job = _job(manager)
    assert jobs._claim(str(job.uuid))
    jobs._store().put(str(job.uuid), {"stage": "checked", "done": 1, "total": 2,
                                      "at": time.time()})
    assert jobs.sweep()["retried"] == 0
    db.session.refresh(job)
    assert job.status == JobStatus.RUNNING


def test_the_sweep_deletes_ended_login_sessions(app, make_user):
    from bladi_cases.models import LoginSession
    from bladi_cases.services.auth import sessions

    user = make_user(Role.FIELD_WORKER)
    sessions.start(user, "old phone")
    sessions.start(user, "this phone")
    db.session.commit()
    old, live = db.session.scalars(sa.select(LoginSession).where(
        LoginSession.user_id == user.id).order_by(LoginSession.id)).all()
    old.revoked_at = utcnow() - timedelta(days=2)
    db.session.commit()
    assert jobs.sweep()["sessions"] >= 1
    left = db.session.scalars(sa.select(LoginSession.id).where(
        LoginSession.user_id == user.id)).all()
    assert left == [live.id]


# --- One at a time across processes --------------------------------------------------------

def test_only_one_holder_of_a_lock_at_a_time(app):
    held = threading.Event()
    release = threading.Event()
    seen = []

    def first():
        with app.app_context(), jobs.only_one("test-lock", 60) as mine:
            seen.append(("first", mine))
            held.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    with jobs.only_one("test-lock", 60) as mine:
        seen.append(("second", mine))
    release.set()
    thread.join()
    with jobs.only_one("test-lock", 60) as mine:
        seen.append(("after", mine))
    assert seen == [("first", True), ("second", False), ("after", True)]


# --- Maintenance ------------------------------------------------------------------------

def test_an_administrator_backs_up_and_rotates_from_the_maintenance_page(
        app, client, make_user, tmp_path):
    app.config["BLADI_BACKUP_DIR"] = str(tmp_path)
    try:
        admin = make_user(Role.ADMIN)
        login(client, admin)
        assert client.get("/admin/maintenance").status_code == 200
        page = follow_job(client, client.post("/admin/maintenance", data={"action": "backup"}))
        assert 'data-status="done"' in page.get_data(as_text=True), text_of(page)[-500:]
        assert list(tmp_path.glob("bladi-*.tar")), "the backup file is in the folder"
        page = follow_job(client, client.post("/admin/maintenance", data={"action": "rotate"}))
        assert 'data-status="done"' in page.get_data(as_text=True), text_of(page)[-500:]
        rotated = db.session.scalars(sa.select(AuditEntry).where(
            AuditEntry.action == "keys_rotated")).one()
        assert rotated.actor_id == admin.id, "the administrator who asked for it"
        assert client.post("/admin/maintenance", data={"action": "nothing"}).status_code == 400
    finally:
        app.config["BLADI_BACKUP_DIR"] = ""


def test_sqlite_planner_statistics_are_refreshed_periodically(app, make_beneficiary):
    """The periodic task (as a worker runs it, `jobs.periodic`) gathers the statistics of
    every table on SQLite, from nothing; PostgreSQL's autovacuum does it there."""
    unknown = app.test_cli_runner().invoke(args=["jobs", "run", "nothing"])
    assert unknown.exit_code != 0 and "statistics" in unknown.output
    if db.engine.dialect.name != "sqlite":
        assert jobs.periodic("statistics") is False
        return
    make_beneficiary("BA")
    db.session.execute(sa.text("ANALYZE"))  # sqlite_stat1 exists
    db.session.execute(sa.text("DELETE FROM sqlite_stat1"))
    db.session.commit()
    # As cron runs it on a machine without Redis.
    result = app.test_cli_runner().invoke(args=["jobs", "run", "statistics"])
    assert result.exit_code == 0 and "statistics: True" in result.output, result.output
    analysed = set(db.session.scalars(sa.text("SELECT DISTINCT tbl FROM sqlite_stat1")))
    assert {"beneficiary", "consent", "beneficiary_name_index", "governorate",
            "audit_entry"} <= analysed, analysed


def test_the_nightly_backup_keeps_the_newest_and_never_touches_other_files(app, tmp_path):
    """After a new backup, the folder keeps BLADI_BACKUP_KEEP of the app's own backups, the
    newest by the time in their names (the files' dates here say the opposite, as after a
    copy); a file of another name, and a folder, stay."""
    from bladi_cases.services import backups

    old = [tmp_path / f"bladi-2026010{day}-030000-{day:06x}.tar" for day in range(1, 5)]
    for age, path in enumerate(old):
        path.write_bytes(b"an old backup")
        two_days_ago = time.time() - (2 + age) * 86400  # the oldest name, the newest date
        os.utime(path, (two_days_ago, two_days_ago))
    others = [tmp_path / "bladi-by-hand.tar", tmp_path / "notes.txt"]
    for path in others:
        path.write_text("kept")
    (tmp_path / "bladi-20250101-000000-abcdef.tar").mkdir()  # a folder with a backup's name
    others.append(tmp_path / "bladi-20260230-000000-abcdef.tar")  # 30 February: no date
    others[-1].write_text("kept")
    app.config.update(BLADI_BACKUP_DIR=str(tmp_path), BLADI_BACKUP_KEEP=3)
    try:
        assert backups.nightly_backup() is True
        kept = sorted(p.name for p in tmp_path.glob("bladi-2*.tar")
                      if p.is_file() and p not in others)
        assert len(kept) == 3 and kept[:2] == [old[2].name, old[3].name], kept
        assert all(path.exists() for path in others)
        assert (tmp_path / "bladi-20250101-000000-abcdef.tar").is_dir()
        assert backups.nightly_backup() is False, "one a night: the new one is recent"
        app.config["BLADI_BACKUP_KEEP"] = 0
        assert backups.prune_backups(tmp_path, 0) == [], "0 keeps everything"
    finally:
        app.config.update(BLADI_BACKUP_DIR="", BLADI_BACKUP_KEEP=14)


def test_a_backup_name_is_read_back_as_the_time_it_was_written_for(tmp_path):
    """The name the backup job writes is the one the prune and the nightly check read, with
    its time (in UTC, whatever zone the time was given in)."""
    from datetime import UTC, datetime, timezone

    from bladi_cases.services import backups

    tunis = timezone(timedelta(hours=1))
    made = datetime(2026, 12, 1, 0, 30, 5, tzinfo=tunis)  # 30 November, 23:30:05 UTC
    name = backups.own_backup_name(made)
    assert name.startswith("bladi-20261130-233005-") and name.endswith(".tar"), name
    (tmp_path / name).write_bytes(b"a backup")
    assert backups._own_backups(tmp_path) == [(made.astimezone(UTC), tmp_path / name)]


# --- On Redis, with a real RQ worker ----------------------------------------------------------

def _redis_or_skip():
    return redis_or_skip(REDIS_URL)


def test_an_import_runs_on_an_rq_worker_and_reports_progress_in_redis(app, client, manager):
    from rq import SimpleWorker

    connection = _redis_or_skip()
    connection.flushdb()
    saved = app.config["BLADI_JOB_QUEUE"], app.config.get("REDIS_URL")
    app.config.update(BLADI_JOB_QUEUE="rq", REDIS_URL=REDIS_URL)
    try:
        before = _count()
        started = _upload(client, _sheet(1200))
        location = started.headers["Location"]
        assert client.get(location + ".json").get_json()["status"] == "queued"
        assert connection.llen("rq:queue:bladi") == 1, "queued in Redis, not run here"
        reported = []
        real = jobs.Progress.__call__

        def spy(self, stage, done, total):
            reported.append((stage, done, total, connection.get(f"bladi:job:{self.key}")))
            real(self, stage, done, total)

        jobs.Progress.__call__ = spy
        try:
            SimpleWorker([jobs.QUEUE_NAME], connection=connection).work(burst=True)
        finally:
            jobs.Progress.__call__ = real
        db.session.expire_all()
        assert _count() == before + 1200
        assert ("checked", 1200, 1200) in [r[:3] for r in reported]
        assert ("written", 1200, 1200) in [r[:3] for r in reported]
        assert reported[-1][3] is not None, "progress lives in Redis, seen by every node"
        assert client.get(location + ".json").get_json()["status"] == "done"
        assert connection.get(f"bladi:job:{location.rsplit('/', 1)[1]}") is None
    finally:
        app.config.update(BLADI_JOB_QUEUE=saved[0], REDIS_URL=saved[1] or "")
        connection.flushdb()


def test_the_scheduler_enqueues_the_periodic_work_that_a_worker_then_runs(app, tmp_path):
    """`flask jobs scheduler` (RQ's CronScheduler) puts every periodic task on the queue;
    a worker runs them (here: the sweep, the figures refresh, the nightly backup, SQLite's
    planner statistics)."""
    import subprocess
    import sys

    from rq import Queue, SimpleWorker

    connection = _redis_or_skip()
    connection.flushdb()
    env = {**os.environ, "REDIS_URL": REDIS_URL, "BLADI_ENV": "development",
           "BLADI_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    env.pop("TEST_DATABASE_URL", None)
    scheduler = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "jobs",
                                  "scheduler"], cwd=jobs_root(), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue = Queue(jobs.QUEUE_NAME, connection=connection)
    try:
        deadline = time.monotonic() + 30
        while len(queue) < len(jobs.PERIODIC) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=10)
    queued = sorted(job.args[0] for job in queue.jobs)
    assert queued == sorted(jobs.PERIODIC) == ["backup", "figures", "statistics", "sweep"]
    assert all(job.func_name == "bladi_cases.services.jobs.periodic" for job in queue.jobs)
    saved = app.config["BLADI_JOB_QUEUE"], app.config.get("REDIS_URL")
    app.config.update(BLADI_JOB_QUEUE="rq", REDIS_URL=REDIS_URL)
    try:
        SimpleWorker([jobs.QUEUE_NAME], connection=connection).work(burst=True)
    finally:
        app.config.update(BLADI_JOB_QUEUE=saved[0], REDIS_URL=saved[1] or "")
    from rq.registry import FailedJobRegistry

    assert FailedJobRegistry(jobs.QUEUE_NAME, connection=connection).count == 0
    connection.flushdb()


def jobs_root():
    """The project folder (where wsgi.py is)."""
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def test_a_stage_without_a_title_is_refused_where_it_is_reported(app):
    """Every stage a job reports has a title on its page (JobStage): an unknown one fails
    the job's first report, never shows blank."""
    from bladi_cases.models import JobStage
    from bladi_cases.services.jobs import Progress

    progress = Progress(Job(uuid=uuid.uuid4()))  # what it reports to: the job's key
    progress(JobStage.CHECKED, 1, 2)
    assert progress.state["stage"] == "checked"
    with pytest.raises(ValueError):
        progress("sorted", 1, 2)

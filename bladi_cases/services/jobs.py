"""Background jobs: long work runs in a worker, and the person who asked watches it progress.

A feature declares a kind of job next to its code with `@job_kind(...)`: a function that
gets the Job row and a `Progress` and returns an `Outcome` (messages, an import's possible
duplicates, a file to download, and the writes to make). The worker runs it in three steps:

1. claim the row (queued -> running) in a transaction of its own, so two workers, or a
   retry of a job that is already running, never run it twice;
2. the kind's function reads and computes, reporting progress (`Progress`, kept in Redis or
   a file: the job's own transaction cannot show anything before it commits);
3. its writes and the job's new status are committed together (`write_transaction`), so an
   import that was written is never written again, and one that failed left nothing: its
   error is shown in the language of the person who asked.

Where the work runs (BLADI_JOB_QUEUE): "rq", a queue on Redis at REDIS_URL that `flask jobs
worker` processes on any node; "thread", a thread of the web process (one machine without
Redis: `make run`); "inline", at once after the request's commit (the tests). The code that
runs is the same. `flask jobs scheduler` (RQ's CronScheduler) runs the periodic work:
`sweep` (retry jobs whose worker died, expire downloads and waiting uploads, delete old
login sessions) and the figures refresh.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, current_app, g, has_app_context
from flask_babel import force_locale
from flask_babel import gettext as _

from ..extensions import db
from ..i18n import BABEL_LOCALES
from ..models import Job, JobStage, JobStatus, LoginSession
from ..models.common import refresh_statistics, utcnow
from ..models.jobs import ENDED
from ..transactions import after_render, in_read_request, in_request, job_work, write_transaction

QUEUE_NAME = "bladi"
# A running job whose worker has not said it is alive for BLADI_JOB_DEAD_SECONDS (60) is
# taken to be dead; the worker beats every sixth of that while the job runs, whatever the
# job does.
def dead_after() -> float:
    """Seconds without a heartbeat after which a running job's worker is taken for dead."""
    return float(current_app.config.get("BLADI_JOB_DEAD_SECONDS", 60))
# How long a finished job's file can be downloaded; a finished job's row is kept for a
# month (what ran, when, for whom), then deleted.
RESULT_HOURS = 24
KEEP_ROWS = timedelta(days=30)
# An import waiting for its duplicates to be decided keeps the uploaded file this long.
WAITING_HOURS = 2


class JobRefused(Exception):  # noqa: N818 (carries the message to show)
    """A job that cannot start (the same file is already being imported): the message."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class JobCancelled(Exception):  # noqa: N818 (how a running job learns it was cancelled)
    """Raised by `Progress` at a job's next report once the person who asked cancelled it
    (`cancel`): everything the job did is rolled back, as for a failure."""


class JobFailed(Exception):  # noqa: N818 (carries the messages to show)
    """Raised by a job's function for a failure the person must read (a refused file): its
    messages, already in their language. Everything the job did is rolled back."""

    def __init__(self, messages: list[str], status: int = 422):
        super().__init__("; ".join(messages))
        self.messages = messages
        self.status = status


@dataclass
class Outcome:
    """What a job's function returns: what to show, what to keep, and what to write."""

    message: str = ""
    data: dict = field(default_factory=dict)
    waiting: bool = False  # the person has to decide before the job goes on (resume)
    result: bytes | None = None
    result_name: str | None = None
    result_mimetype: str | None = None
    # The job's writes, run in one write transaction with the job's new status; may set
    # `message` (how many rows were written).
    write: Callable[[Outcome], None] | None = None


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its name, its title for people, and the function that does it."""

    name: str
    title: object
    run: Callable[[Job, Progress], Outcome]
    max_attempts: int = 3
    decide: str | None = None  # the endpoint where a waiting job's decision is made
    back: str | None = None    # where the person goes once it is finished
    back_label: object = ""
    again: str | None = None   # where to start again after a failure (a corrected file)
    again_label: object = ""
    # Whether the person may stop it while it runs: only a job whose work is all or
    # nothing (it writes after its last progress report) can be rolled back as a whole.
    stoppable: bool = True


KINDS: dict[str, JobKind] = {}


def job_kind(name: str, title, max_attempts: int = 3, decide: str | None = None,
             back: str | None = None, back_label="", again: str | None = None,
             again_label="", stoppable: bool = True):
    """Declare a kind of job (a decorator on its function, beside the feature's code)."""

    def declare(run: Callable[[Job, Progress], Outcome]):
        if name in KINDS and KINDS[name].run.__qualname__ != run.__qualname__:
            raise RuntimeError(f"two kinds of job are called {name}")
        KINDS[name] = JobKind(name, title, run, max_attempts, decide, back, back_label,
                              again, again_label, stoppable)
        return run

    return declare


# --- Progress: outside the database transaction, shared by every node ------------------

class _FileStore:
    """Progress in small JSON files beside the database (one machine without Redis)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def put(self, key: str, value: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.json"
        temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(value))
        os.replace(temporary, path)  # readers see the old or the new, never half

    def get(self, key: str) -> dict | None:
        try:
            return json.loads((self.folder / f"{key}.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"{key}.json").unlink()


class _RedisStore:
    """Progress in Redis, seen by every node; a day at most."""

    def __init__(self, client):
        self.client = client

    def put(self, key: str, value: dict) -> None:
        self.client.set(f"bladi:job:{key}", json.dumps(value), ex=86400)

    def get(self, key: str) -> dict | None:
        raw = self.client.get(f"bladi:job:{key}")
        return json.loads(raw) if raw else None

    def delete(self, key: str) -> None:
        self.client.delete(f"bladi:job:{key}")


def redis_client():
    """The Redis client of REDIS_URL (one per app), or None without it."""
    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    clients = current_app.extensions.setdefault("bladi_redis", {})
    if url not in clients:
        from redis import Redis

        clients[url] = Redis.from_url(url)
    return clients[url]


def _store():
    client = redis_client()
    if client is not None:
        return _RedisStore(client)
    return _FileStore(Path(current_app.instance_path) / "jobs")


class Progress:
    """Reports how far a job is: `progress(stage, done, total)`; the page reads it."""

    def __init__(self, job: Job):
        self.key = str(job.uuid)
        self.state = {"stage": "", "done": 0, "total": 0, "at": time.time()}

    def __call__(self, stage: JobStage, done: int, total: int) -> None:
        # JobStage(...) refuses a stage without a title (ValueError), here, not on the page.
        self.state = {"stage": JobStage(stage).value, "done": int(done), "total": int(total),
                      "at": time.time()}
        store = _store()
        store.put(self.key, self.state)
        # Each report is where a job stops when it was cancelled (from any node: the
        # request is in the same store as the progress).
        if store.get(_cancel_key(self.key)) is not None:
            raise JobCancelled(self.key)

    def beat(self) -> None:
        """Say the job's worker is alive (the heartbeat thread does, six times per
        `dead_after()`)."""
        self.state = {**self.state, "at": time.time()}
        _store().put(self.key, self.state)


def _cancel_key(key: str) -> str:
    return f"{key}.cancel"


def live_progress(job: Job) -> dict | None:
    """The last progress a running job reported: stage, done, total, at."""
    return _store().get(str(job.uuid))


# --- Starting a job -------------------------------------------------------------------

def _encrypt_bytes(data: bytes) -> bytes:
    from .beneficiaries.registry import cipher

    return cipher().encrypt(base64.b64encode(data).decode("ascii"))


def _decrypt_bytes(token: bytes | None) -> bytes | None:
    from .beneficiaries.registry import cipher

    return None if token is None else base64.b64decode(cipher().decrypt(token))


def input_of(job: Job) -> bytes | None:
    """The uploaded file a job works on."""
    return _decrypt_bytes(job.input_enc)


def result_of(job: Job) -> bytes | None:
    """The file a finished job produced (None once it expired)."""
    return _decrypt_bytes(job.result_enc)


def outcome_of(job: Job) -> dict:
    """What the job's page shows: {"message", "problems", "data"}."""
    from .beneficiaries.registry import cipher

    if job.outcome_enc is None:
        return {}
    return json.loads(cipher().decrypt(job.outcome_enc))


def _set_outcome(job: Job, value: dict) -> None:
    from .beneficiaries.registry import cipher

    job.outcome_enc = cipher().encrypt(json.dumps(value))


def start(kind: str, actor, params: dict | None = None, *, data: bytes | None = None,
          data_name: str | None = None, active_key: str | None = None,
          language: str | None = None) -> Job:
    """Queue a job (flushed; it starts once the transaction commits). `active_key` makes a
    second job with the same key refused while the first one is not finished."""
    if kind not in KINDS:
        raise KeyError(kind)
    if active_key is not None and db.session.scalar(
            sa.select(Job.id).where(Job.active_key == active_key)) is not None:
        raise JobRefused(_already_running())
    if language is None:
        from ..i18n import ui_language

        language = ui_language() if in_request() else "en"
    job = Job(uuid=uuid.uuid4(), kind=kind, user_id=getattr(actor, "id", None),
              organization_id=getattr(actor, "organization_id", None), language=language,
              status=JobStatus.QUEUED, params=params or {}, active_key=active_key,
              input_name=data_name, attempts=0)
    if data is not None:
        job.input_enc = _encrypt_bytes(data)
    if in_read_request():
        # A download link (GET) asks for the job: written once the page is built, with the
        # read request's other such writes (transactions.after_render).
        after_render(lambda: _add(job, quietly=True))
    else:
        _add(job)
    return job


def _already_running() -> str:
    return _("This file is already being imported. Wait for that import to finish, or open "
             "it from your list of jobs.")


def _add(job: Job, quietly: bool = False) -> None:
    db.session.flush()  # what the request added before: outside the savepoint below
    try:
        with db.session.begin_nested():
            db.session.add(job)
            db.session.flush()
    except sa.exc.IntegrityError as exc:  # another node started the same file meanwhile
        if job in db.session:
            db.session.expunge(job)
        if quietly:
            return
        raise JobRefused(_already_running()) from exc
    _after_commit(job)


def _after_commit(job: Job) -> None:
    """Hand the job to its runner once the request's transaction commits (the worker must
    find the row); outside a request, the caller commits, then calls `dispatch`."""
    if in_request():
        g.setdefault("_bladi_jobs", []).append(str(job.uuid))
    else:
        db.session.info.setdefault("bladi_jobs", []).append(str(job.uuid))


def dispatch_committed() -> None:
    """Outside a request (the command line, a job starting another): once committed, hand
    the jobs started in this session to their runner."""
    for key in db.session.info.pop("bladi_jobs", []):
        dispatch(key)


def dispatch_pending() -> None:
    """Called by the request's commit: hand the jobs started by the request to their runner."""
    for key in g.pop("_bladi_jobs", []):
        dispatch(key)


def forget_pending() -> None:
    """Called when the request rolls back: its jobs were never saved."""
    g.pop("_bladi_jobs", None)


def mode() -> str:
    """Where jobs run: rq, thread or inline (see the module's docstring)."""
    return current_app.config["BLADI_JOB_QUEUE"]


def dispatch(key: str) -> None:
    """Run a committed queued job (by its public id) where the configuration says."""
    app = current_app._get_current_object()
    how = mode()
    if how == "rq":
        from rq import Queue

        attempt = db.session.scalar(sa.select(Job.attempts).where(Job.uuid == _uuid(key)))
        Queue(QUEUE_NAME, connection=redis_client()).enqueue(
            "bladi_cases.services.jobs.perform", key, job_id=f"bladi-{key}-{attempt or 0}",
            job_timeout=6 * 3600, result_ttl=3600, failure_ttl=7 * 86400)
    elif how == "thread":
        threading.Thread(target=_perform_with, args=(app, key), daemon=True,
                         name=f"bladi-job-{key[:8]}").start()
    else:
        _perform_with(app, key)


def _uuid(key: str) -> uuid.UUID:
    return uuid.UUID(str(key))


# --- Running a job ----------------------------------------------------------------------

_WORKER_APP: Flask | None = None


def perform(key: str) -> str:
    """The worker's entry point (RQ calls it by name): run one job by its public id."""
    global _WORKER_APP
    if has_app_context():  # `flask jobs worker`: the command's app
        try:
            return _perform(key)
        finally:
            db.session.rollback()  # the next job starts from a clean transaction
    if _WORKER_APP is None:
        from .. import create_app

        _WORKER_APP = create_app()
    return _perform_with(_WORKER_APP, key)


def _perform_with(app: Flask, key: str) -> str:
    if has_app_context() and mode() == "inline":
        # Right after the request, whose transaction has ended: in its app context (a new
        # one would end the request's database session when it is torn down).
        return _perform(key)
    with app.app_context():
        try:
            if mode() == "thread":  # no scheduler on such a machine: tidy up on the way
                with contextlib.suppress(Exception):
                    sweep()
            return _perform(key)
        finally:
            db.session.remove()


def _claim(key: str) -> int | None:
    """queued -> running, in a short transaction of its own: this run's attempt number (its
    fencing token: only the run of the latest attempt may end the job); None if another
    worker has it or it is not queued (done, failed, waiting: a retry that comes late does
    nothing)."""
    db.session.commit()
    with write_transaction():
        claimed = db.session.execute(
            sa.update(Job).where(Job.uuid == _uuid(key), Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, attempts=Job.attempts + 1,
                    started_at=utcnow())).rowcount
        attempt = db.session.scalar(sa.select(Job.attempts).where(Job.uuid == _uuid(key))) \
            if claimed == 1 else None
        db.session.commit()
    return attempt


@contextlib.contextmanager
def _heartbeat(progress: Progress) -> Iterator[None]:
    """Beat while the job runs, from a thread of its own, so a job
    busy in one long step (a pg_dump) is not taken for dead."""
    app = current_app._get_current_object()
    stop = threading.Event()
    every = dead_after() / 6

    def beat():
        with app.app_context():
            while not stop.wait(every):
                with contextlib.suppress(Exception):  # a missed beat is retried next time
                    progress.beat()

    progress.beat()
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 1)


def _perform(key: str) -> str:
    with job_work():
        attempt = _claim(key)
        return _perform_claimed(key, attempt) if attempt else "skipped"


def _current(key: str, attempt: int | None) -> sa.Select:
    """The job row, if it is still this run's: running, at this attempt (a worker the sweep
    took for dead, whose job runs again elsewhere, must not end it), locked until commit."""
    query = sa.select(Job).where(Job.uuid == _uuid(key))
    if attempt is not None:
        query = query.where(Job.status == JobStatus.RUNNING, Job.attempts == attempt)
    return query.with_for_update()


def _perform_claimed(key: str, attempt: int | None = None) -> str:
    job = db.session.scalars(sa.select(Job).where(Job.uuid == _uuid(key))).one()
    kind = KINDS[job.kind]
    progress = Progress(job)
    locale = BABEL_LOCALES.get(job.language, "en_GB")
    ours = True  # False once the job turns out to be another run's: leave its progress be
    with force_locale(locale), _heartbeat(progress):
        try:
            outcome = kind.run(job, progress)
            db.session.commit()  # ends the reading; the writes get a transaction of their own
            with write_transaction():
                job = db.session.scalars(_current(key, attempt)).first()
                if job is None:  # not this run's any more: write nothing
                    db.session.rollback()
                    ours = False
                    return "skipped"
                if outcome.write is not None:
                    outcome.write(outcome)
                _finish(job, outcome)
                db.session.commit()
            return job.status
        except JobCancelled:
            db.session.rollback()
            ours = _end(key, JobStatus.CANCELLED, [_cancelled_message()], attempt)
            return JobStatus.CANCELLED if ours else "skipped"
        except JobFailed as failed:
            db.session.rollback()
            ours = _end(key, JobStatus.FAILED, failed.messages, attempt)
            return JobStatus.FAILED if ours else "skipped"
        except Exception:
            db.session.rollback()
            current_app.logger.exception("job %s (%s) failed", key, kind.name)
            ours = _end(key, JobStatus.FAILED, [_(
                "Something went wrong and nothing was saved. Try again; if it happens again, "
                "tell your administrator.")], attempt)
            return JobStatus.FAILED if ours else "skipped"
        finally:
            if ours:
                _store().delete(key)
                _store().delete(_cancel_key(key))


def _finish(job: Job, outcome: Outcome) -> None:
    now = utcnow()
    job.status = JobStatus.WAITING if outcome.waiting else JobStatus.DONE
    _set_outcome(job, {"message": outcome.message, "problems": [], "data": outcome.data})
    if outcome.waiting:
        job.expires_at = now + timedelta(hours=WAITING_HOURS)
        return
    job.finished_at = now
    job.active_key = None
    job.input_enc = None
    job.expires_at = now + timedelta(hours=RESULT_HOURS)
    if outcome.result is not None:
        job.result_enc = _encrypt_bytes(outcome.result)
        job.result_name = outcome.result_name
        job.result_mimetype = outcome.result_mimetype


def _end(key: str, status: JobStatus, messages: list[str], attempt: int | None = None) -> bool:
    """End a job as failed or cancelled, with what to tell the person, in a transaction of
    its own: its uploaded file goes, the row stays a while for the person's list. From a
    run (`attempt`): only if the job is still that run's. False when it was not."""
    with write_transaction():
        job = db.session.scalars(_current(key, attempt)).first()
        if job is not None:
            _ended(job, status, messages)
        db.session.commit()
    return job is not None


def _ended(job: Job, status: JobStatus, messages: list[str]) -> None:
    now = utcnow()
    job.status, job.finished_at, job.active_key, job.input_enc = status, now, None, None
    job.expires_at = now + timedelta(hours=RESULT_HOURS)
    _set_outcome(job, {"message": "", "problems": messages, "data": {}})


def _stoppable(job: Job) -> bool:
    """Whether a running job of this kind may be stopped (`JobKind.stoppable`)."""
    kind = KINDS.get(job.kind)
    return kind is not None and kind.stoppable


def _cancelled_message() -> str:
    return _("Cancelled at your request: nothing was saved.")


def cancel(job: Job) -> JobStatus:
    """The person who asked for a job stops it (their request; the view checked it is
    theirs). A job waiting for a worker or for their decision ends at once; a running one
    at its next progress report, its work rolled back (`JobCancelled`). Returns the job's
    status now: cancelled, or still running until that report. A job that has ended (or
    that a worker finished meanwhile) is refused with a message."""
    status = JobStatus(job.status)
    if status in (JobStatus.QUEUED, JobStatus.WAITING):
        # Conditional: a worker claiming it at this moment, or the person's decision in
        # another tab, wins or loses as a whole; the rest of the ending as any job's.
        changed = db.session.execute(sa.update(Job).where(
            Job.id == job.id, Job.status == status).values(status=JobStatus.CANCELLED)
            .execution_options(synchronize_session=False)).rowcount
        db.session.refresh(job)
        if changed:
            _ended(job, JobStatus.CANCELLED, [_cancelled_message()])
            db.session.flush()
            return JobStatus.CANCELLED
        status = JobStatus(job.status)
    if status == JobStatus.RUNNING:
        if not _stoppable(job):
            raise JobRefused(_("This job cannot be stopped while it runs (what it has done "
                               "so far is kept). Wait for it to finish."))
        key = _cancel_key(str(job.uuid))
        _store().put(key, {"at": time.time()})
        # The worker may have ended the run (done, failed, waiting for a decision) since
        # the read above: a flag left behind would stop a later run of the same job (one
        # resumed after the person's decision). Read the status again (PostgreSQL: the
        # latest committed; SQLite: a POST holds the write lock, so nothing moved) and take
        # the flag back if the run is over.
        if db.session.scalar(sa.select(Job.status).where(Job.id == job.id)) \
                != JobStatus.RUNNING:
            _store().delete(key)
            db.session.refresh(job)
            raise JobRefused(_("This job has already ended: there is nothing to cancel."))
        return JobStatus.RUNNING
    raise JobRefused(_("This job has already ended: there is nothing to cancel."))


def resume(job: Job, params: dict) -> Job:
    """A waiting job goes on with the person's decisions (flushed; runs after the commit).
    Conditional: a cancel of the same job at the same moment (another tab) wins or loses
    as a whole."""
    moved = db.session.execute(sa.update(Job).where(
        Job.id == job.id, Job.status == JobStatus.WAITING).values(
        params={**job.params, **params}, status=JobStatus.QUEUED, expires_at=None)
        .execution_options(synchronize_session=False)).rowcount
    db.session.refresh(job)
    if not moved:
        raise JobRefused(_("This job is not waiting for a decision any more."))
    _store().delete(_cancel_key(str(job.uuid)))  # none should be left; never one for this run
    _after_commit(job)
    return job


def forget_files(organization_id: int) -> int:
    """Delete every file a CSO's jobs keep (uploads, results, what their pages show): an
    erasure's, since any of them may name the erased youth. Imports not yet finished fail
    (their file is gone). Returns how many jobs lost something."""
    now = utcnow()
    unfinished = db.session.scalars(sa.select(Job).where(
        Job.organization_id == organization_id,
        Job.status.in_((JobStatus.QUEUED, JobStatus.WAITING)))).all()
    for job in unfinished:
        job.status, job.finished_at, job.active_key = JobStatus.FAILED, now, None
        job.expires_at = now
    changed = db.session.execute(sa.update(Job).where(
        Job.organization_id == organization_id, sa.or_(
            Job.input_enc.is_not(None), Job.result_enc.is_not(None),
            Job.outcome_enc.is_not(None))).values(
        input_enc=None, result_enc=None, outcome_enc=None)).rowcount
    for job in unfinished:  # what their page says instead
        _set_outcome(job, {"message": "", "problems": [_(
            "A young person's data was erased meanwhile, and this job's file with it. "
            "Start again.")], "data": {}})
    db.session.flush()
    return changed


# --- What the page shows ----------------------------------------------------------------

def status_of(job: Job) -> dict:
    """The job's state as the status endpoint gives it (JSON-ready)."""
    live = live_progress(job) if job.status == JobStatus.RUNNING else None
    done, total, stage = (live or {}).get("done", 0), (live or {}).get("total", 0), \
        (live or {}).get("stage", "")
    if job.status in (*ENDED, JobStatus.WAITING):
        percent = 100
    else:
        percent = int(100 * done / total) if total else 0
    outcome = outcome_of(job) if job.status != JobStatus.RUNNING else {}
    stopping = job.status == JobStatus.RUNNING and \
        _store().get(_cancel_key(str(job.uuid))) is not None
    return {"id": str(job.uuid), "kind": job.kind, "status": job.status,
            # Whether the person may cancel it now (`cancel`), and whether they did and it
            # is stopping at its next report.
            "cancellable": not stopping and (job.status in (JobStatus.QUEUED, JobStatus.WAITING)
                                              or (job.status == JobStatus.RUNNING
                                                  and _stoppable(job))),
            "stopping": stopping,
            "status_label": str(JobStatus.label_of(job.status)), "stage": stage,
            "stage_label": str(JobStage.label_of(stage or None)), "done": done,
            "total": total,
            "percent": percent, "message": outcome.get("message", ""),
            "problems": outcome.get("problems", []),
            "back_args": outcome.get("data", {}).get("back_args", {}),
            "download": job.status == JobStatus.DONE and job.result_enc is not None,
            "expired": job.status == JobStatus.DONE and job.result_name is not None
            and job.result_enc is None}


def finished_recently(user, limit: int = 10) -> list[Job]:
    """The user's latest jobs, newest first (the jobs list)."""
    from ..policy import scoped

    return list(db.session.scalars(scoped(Job, user).order_by(Job.id.desc()).limit(limit)))


# --- The periodic work ------------------------------------------------------------------

# name -> seconds between runs, declared with `every` beside each task's code.
PERIODIC: dict[str, int] = {}
_PERIODIC_RUN: dict[str, Callable[[], object]] = {}


def every(seconds: int, name: str | None = None):
    """Declare a periodic task (a decorator): `flask jobs scheduler` enqueues it every
    `seconds`; `periodic(name)` runs it on a worker."""

    def declare(run: Callable[[], object]):
        key = name or f"{run.__module__}.{run.__qualname__}"
        PERIODIC[key] = seconds
        _PERIODIC_RUN[key] = run
        return run

    return declare


def periodic(name: str):
    """Run one periodic task on a worker (the scheduler enqueues this by name)."""
    if not has_app_context():
        global _WORKER_APP
        if _WORKER_APP is None:
            from .. import create_app

            _WORKER_APP = create_app()
        with _WORKER_APP.app_context():
            try:
                return _PERIODIC_RUN[name]()
            finally:
                db.session.remove()
    try:
        return _PERIODIC_RUN[name]()
    finally:
        db.session.rollback()

@every(6 * 3600, "statistics")
def planner_statistics() -> bool:
    """Every six hours, on SQLite: the query planner's statistics of every table brought up
    to date (`refresh_statistics`). SQLite never gathers them by itself (PostgreSQL's
    autovacuum does: nothing to do there), and statistics of a table that has grown ten
    times since tell the planner to read a whole CSO where an index reads a few rows."""
    if db.engine.dialect.name != "sqlite":
        return False
    with only_one("statistics", 3600) as mine:
        if not mine:
            return False
        refresh_statistics(db.session)
        db.session.commit()
        return True


@every(60, "sweep")
def sweep() -> dict:
    """Retry jobs whose worker died (up to their kind's attempts), expire waiting uploads
    and finished downloads, delete old job rows and ended login sessions. Safe to run on
    every node at once: each change is a conditional UPDATE that only one of them makes."""
    now = utcnow()
    counts = {"retried": 0, "failed": 0, "cancelled": 0, "expired": 0, "deleted": 0,
              "sessions": 0}
    db.session.commit()
    running = db.session.execute(sa.select(Job.uuid, Job.kind, Job.attempts, Job.started_at)
                                 .where(Job.status == JobStatus.RUNNING)).all()
    db.session.commit()
    for key, kind, attempts, started_at in running:
        live = _store().get(str(key))
        last = live["at"] if live else (started_at or now).timestamp()
        if time.time() - last < dead_after():
            continue
        limit = KINDS[kind].max_attempts if kind in KINDS else 1
        db.session.commit()
        if _store().get(_cancel_key(str(key))) is not None:
            # Its worker died after the person cancelled it: cancelled, not run again.
            with _in_language_of(key):
                _end(str(key), JobStatus.CANCELLED, [_cancelled_message()])
            _store().delete(_cancel_key(str(key)))
            counts["cancelled"] += 1
        elif attempts < limit:
            with write_transaction():
                moved = db.session.execute(sa.update(Job).where(
                    Job.uuid == key, Job.status == JobStatus.RUNNING)
                    .values(status=JobStatus.QUEUED)).rowcount
                db.session.commit()
            if moved:
                counts["retried"] += 1
                dispatch(str(key))
        else:
            with _in_language_of(key):
                _end(str(key), JobStatus.FAILED, [_(
                    "The job stopped %(n)d times before it could finish, and nothing was "
                    "saved. Try again later; if it happens again, tell your administrator.",
                    n=attempts)])
            counts["failed"] += 1
    db.session.commit()
    with write_transaction():
        waiting = db.session.scalars(sa.select(Job).where(
            Job.status == JobStatus.WAITING, Job.expires_at < now)).all()
        for job in waiting:
            with force_locale(BABEL_LOCALES.get(job.language, "en_GB")):
                message = _("This upload waited too long for a decision and was deleted. "
                            "Upload the file again.")
            _ended(job, JobStatus.FAILED, [message])
            counts["expired"] += 1
        counts["expired"] += db.session.execute(sa.update(Job).where(
            Job.status.in_(ENDED), Job.expires_at < now,
            sa.or_(Job.result_enc.is_not(None), Job.input_enc.is_not(None)))
            .values(result_enc=None, input_enc=None)).rowcount
        counts["deleted"] = db.session.execute(sa.delete(Job).where(
            Job.status.in_(ENDED), Job.created_at < now - KEEP_ROWS)).rowcount
        counts["sessions"] = _delete_old_login_sessions(now)
        db.session.commit()
    return counts


@contextlib.contextmanager
def _in_language_of(key) -> Iterator[None]:
    """Messages written for a job's person, in their language (read in a short
    transaction, ended before the job's own write transaction)."""
    language = db.session.scalar(sa.select(Job.language).where(Job.uuid == key))
    db.session.commit()
    with force_locale(BABEL_LOCALES.get(language, "en_GB")):
        yield


def _delete_old_login_sessions(now) -> int:
    """Login sessions revoked, or past their absolute lifetime, for a day: nothing uses them
    any more (the sessions page lists live ones only)."""
    from .auth.sessions import lifetime

    limit = now - timedelta(days=1)
    return db.session.execute(sa.delete(LoginSession).where(sa.or_(
        LoginSession.revoked_at < limit,
        LoginSession.created_at < limit - lifetime()))).rowcount


@contextlib.contextmanager
def only_one(name: str, seconds: int) -> Iterator[bool]:
    """Across every node: True for the one caller that holds the lock called `name`, False
    for the others while it is held. A Redis lock (expiring after `seconds`, should its
    holder die) with REDIS_URL; a PostgreSQL advisory lock without it; on SQLite (one
    machine), a lock file."""
    client = redis_client()
    if client is not None:
        lock = client.lock(f"bladi:lock:{name}", timeout=seconds, blocking=False)
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                with contextlib.suppress(Exception):  # expired meanwhile: nothing to free
                    lock.release()
        return
    if db.engine.dialect.name == "postgresql":
        import zlib

        number = zlib.crc32(f"bladi:{name}".encode())
        with db.engine.connect() as connection:
            acquired = connection.scalar(sa.text("SELECT pg_try_advisory_lock(:n)"),
                                         {"n": number})
            try:
                yield bool(acquired)
            finally:
                if acquired:
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:n)"), {"n": number})
                connection.commit()
        return
    import fcntl

    folder = Path(current_app.instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""Which transactions write, and when: short write transactions on the embedded database.

SQLite (WAL) lets any number of readers work beside one writer, but a transaction that
begins by reading and then writes fails at once ("database is locked", no waiting) when
another writer committed since its first read. So:

- a write request (POST...) begins with the write lock (BEGIN IMMEDIATE), waiting for
  the writer before it up to the busy timeout;
- a read request (GET) reads in a deferred transaction, and what it writes (its audit
  entries, a figures snapshot it computed) waits until its page is built (`after_render`),
  then goes in a short write transaction of its own (`commit_request`);
- the command line and work done after a response compute first, then write inside
  `write_transaction()`;
- a write request with slow work between its read and its write (the login's password
  check) ends the reading transaction first (`reading_first`), so its write begins a short
  write transaction of its own instead of holding the lock through the slow work.

On PostgreSQL the BEGIN is the driver's own; the order of work is the same, except that a
read request's writes that wait for the disk join its own transaction (`commit_request`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sqlalchemy as sa
from flask import g, has_request_context, request

from .extensions import db

# PostgreSQL: this transaction's commit does not wait for its WAL to reach the disk.
_NO_WAIT = sa.text("SET LOCAL synchronous_commit = off")

# Requests that change nothing but what `after_render` writes.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Set while a transaction that will write begins (see write_transaction).
_WILL_WRITE: ContextVar[bool] = ContextVar("bladi_will_write", default=False)
# Set while a write request reads before slow work (see reading_first).
_READING_FIRST: ContextVar[bool] = ContextVar("bladi_reading_first", default=False)
# Set while a read request's bookkeeping that need not wait for the disk is written (see
# commit_request).
_BOOKKEEPING: ContextVar[bool] = ContextVar("bladi_bookkeeping", default=False)
# Set while a background job runs (services/jobs.py): not the request's work, even when it
# runs right after a request in the same thread (the tests' inline jobs).
_IN_JOB: ContextVar[bool] = ContextVar("bladi_in_job", default=False)


def in_request() -> bool:
    """True while a request is being answered (not while a job runs after it)."""
    return has_request_context() and not _IN_JOB.get()


def in_read_request() -> bool:
    """True while a read request (GET, HEAD, OPTIONS) is being answered."""
    return in_request() and request.method in READ_METHODS


@contextmanager
def job_work() -> Iterator[None]:
    """A background job's work: its transactions are its own, whatever request may be
    around it."""
    token = _IN_JOB.set(True)
    try:
        yield
    finally:
        _IN_JOB.reset(token)


def begins_writing() -> bool:
    """Whether a transaction beginning now will write: in a write request, or inside
    `write_transaction()`, unless in `reading_first()`. SQLite's BEGIN hook asks this
    (bladi_cases/__init__.py)."""
    if _READING_FIRST.get():
        return False
    return _WILL_WRITE.get() or (in_request() and request.method not in READ_METHODS)


def waits_for_disk() -> bool:
    """Whether the transaction beginning now is committed only once on disk: every one but
    a read request's bookkeeping that asked not to (`after_render`). SQLite's BEGIN hook
    asks this."""
    return not _BOOKKEEPING.get()


@contextmanager
def write_transaction() -> Iterator[None]:
    """A block whose transaction will write: on SQLite it begins with the write lock,
    waiting up to the busy timeout for another writer, instead of failing at its first
    write. Keep it short: compute before, in a read transaction already ended, then write
    and commit inside."""
    if db.session().in_transaction():
        raise RuntimeError("end the read transaction before a write transaction")
    token = _WILL_WRITE.set(True)
    try:
        yield
    finally:
        _WILL_WRITE.reset(token)


@contextmanager
def reading_first() -> Iterator[None]:
    """A write request's block that only reads, before slow work that needs no database
    (checking a password hash): its transaction begins without the write lock and is ended
    with the block, so on SQLite nobody waits for that lock during the slow work, and what
    the request writes next begins a short write transaction of its own. Ending it commits
    (it wrote nothing of its own) and expires the rows loaded: read what you need inside."""
    token = _READING_FIRST.set(True)
    try:
        yield
    finally:
        _READING_FIRST.reset(token)
    db.session.commit()


def after_render(write: Callable[[], object], waits_for_disk: bool = True) -> None:
    """In a read request: call `write` (which adds or flushes rows) once the response is
    built, with the request's other such writes (`commit_request`: on SQLite in a short
    write transaction of their own; on PostgreSQL in the page's own transaction, unless
    all of them are bookkeeping). If they cannot be written, the response is an error page
    instead.

    `waits_for_disk=False` for bookkeeping that can be lost in a machine crash without harm
    (a login session's last request, a figures snapshot that is recomputed): when every
    write of the request is such, the commit does not wait for the disk. Audit entries
    always wait: each view of a youth's identity must stay on record."""
    if not in_read_request():
        raise RuntimeError("after_render is for read requests; write now instead")
    g.setdefault("_bladi_after_render", []).append((write, waits_for_disk))


def commit_request() -> None:
    """The request's commit, with what a read request set aside with `after_render`
    (called by `commit_once` in bladi_cases/__init__.py): on SQLite the request's
    transaction is committed, then those writes in one short write transaction; on
    PostgreSQL see below.

    When none of it asks to wait for the disk (`after_render`), the commit does not
    (PostgreSQL `synchronous_commit = off`, SQLite `synchronous = NORMAL` in WAL mode): a
    crash of the machine, never of the application, in the fraction of a second after can
    lose it; it cannot corrupt the database, and the next transaction that waits for the
    disk takes it along.

    On PostgreSQL, writes that wait for the disk (a youth page's audit entry) go in the
    page's own transaction instead, committed once: two round trips fewer on every such
    page (COMMIT, BEGIN). What makes SQLite write apart does not hold there: a read
    transaction takes no lock a writer waits for, and one that goes on to write never
    fails for having read first. Bookkeeping alone keeps a transaction of its own there
    too, so that only what the request set aside is committed without waiting."""
    writes = g.pop("_bladi_after_render", [])
    relaxed = not any(wait for _write, wait in writes)
    if writes and not relaxed and db.engine.dialect.name == "postgresql":
        for write, _wait in writes:
            write()
        db.session.commit()
        return
    db.session.commit()
    if not writes:
        return
    token = _BOOKKEEPING.set(relaxed)
    try:
        with write_transaction():
            if relaxed and db.engine.dialect.name == "postgresql":
                db.session.execute(_NO_WAIT)
            for write, _wait in writes:
                write()
            db.session.commit()
    finally:
        _BOOKKEEPING.reset(token)

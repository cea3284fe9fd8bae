"""Logging in: the password check with its failure counter and lockout, and the one-time
reset codes a manager hands over."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm.attributes import set_committed_value

from ...extensions import db
from ...models import PasswordReset, User
from ...models.common import utcnow
from ...transactions import reading_first
from ..audit import Action, record
from .passwords import (
    _DUMMY_HASH,
    _check_password,
    _hasher,
    hash_password,
    normalize_email,
    set_password,
)

GENERIC_LOGIN_ERROR = _l(
    "Email or password is incorrect, or the account is locked for a while after "
    "repeated failures."
)


def authenticate(email: str, password: str) -> User | None:
    """The user for these credentials, or None; counts failures and locks after too many.

    Unknown email, wrong password, locked or deactivated account all return None, and the
    caller shows one generic message, so nobody can learn which accounts exist.
    """
    # The hash check is slow on purpose (argon2): nothing holds a lock while it runs.
    with reading_first():
        user = db.session.scalars(
            db.select(User).where(User.email == normalize_email(email))).first()
        if user is not None:
            password_hash, active, locked = user.password_hash, user.active, is_locked(user)
    if user is None:
        _check_password(_DUMMY_HASH, password)
        record(Action.LOGIN_FAILED, detail={"reason": "unknown_email"})
        return None
    if locked:
        _check_password(_DUMMY_HASH, password)
        record(Action.LOGIN_FAILED, actor=user, obj=user, detail={"reason": "locked"})
        return None
    if not _check_password(password_hash, password) or not active:
        reason = "inactive" if active is False else "bad_password"
        # Locked by a parallel attempt while this password was checked: not counted.
        if not count_failure(user):
            reason = "locked"
        record(Action.LOGIN_FAILED, actor=user, obj=user, detail={"reason": reason})
        return None
    # (Hashed again with today's parameters, if they changed, before the write begins.)
    rehashed = hash_password(password) if _hasher.check_needs_rehash(password_hash) else None
    # Locked by parallel attempts while this password was checked: the right password does
    # not open a locked account. (The failures are cleared once every factor has passed,
    # by `clear_failures`.)
    if is_locked(user):
        record(Action.LOGIN_FAILED, actor=user, obj=user, detail={"reason": "locked"})
        return None
    if rehashed:
        user.password_hash = rehashed
    user.last_login_at = utcnow()
    record(Action.LOGIN, actor=user, obj=user)
    return user


# The failure counter and the lock live in the account's row, and every change to them is
# ONE statement that reads and writes the row at once (UPDATE ... WHERE ... RETURNING):
# PostgreSQL makes a second such statement on the row wait for the first one's commit and
# then re-reads the row, and SQLite runs one writer at a time, so 40 wrong passwords sent in
# parallel, to any number of processes on any number of machines sharing the database, count
# one after the other and the lock takes effect at the 5th. The database rather than Redis:
# it is already shared by every process, the counter and the lock commit or roll back with
# the audit entries that tell of them, and the app keeps needing nothing else to run. The
# rate limits (blueprints/limits.py), which only slow guessing, are what lives in Redis.

def _unlocked(now):
    """The SQL condition of an account not locked at `now`."""
    return sa.or_(User.locked_until.is_(None), User.locked_until <= now)


def is_locked(user: User) -> bool:
    """Whether the account is locked now (as the database has it, not as loaded earlier)."""
    now = utcnow()
    locked_until = db.session.scalar(
        sa.select(User.locked_until).where(User.id == user.id))
    set_committed_value(user, "locked_until", locked_until)
    return locked_until is not None and locked_until > now


def count_failure(user: User) -> bool:
    """Count one failed attempt at an account (a wrong password or a wrong second-factor
    code); enough of them within the window lock it for a while. False when the account
    was locked already (by an attempt in parallel): such an attempt is not counted.

    Strangers can lock an account, so a lock is short (BLADI_LOCKOUT_MINUTES), and after
    one the failures do not lock the account again for BLADI_LOCKOUT_REARM_HOURS: the rate
    limits per address and per account slow the guessing meanwhile, and nobody can keep a
    worker out all day by locking their account again every quarter of an hour."""
    now = utcnow()
    cfg = current_app.config
    window_start = now - timedelta(minutes=cfg["BLADI_LOGIN_WINDOW_MINUTES"])
    rearmed_before = now - timedelta(hours=cfg["BLADI_LOCKOUT_REARM_HOURS"])
    new_window = sa.or_(User.first_failed_login_at.is_(None),
                        User.first_failed_login_at < window_start)
    counted = sa.case((new_window, 1), else_=User.failed_login_count + 1)
    locks = sa.and_(counted >= cfg["BLADI_LOGIN_MAX_FAILURES"],
                    sa.or_(User.locked_until.is_(None), User.locked_until <= rearmed_before))
    row = db.session.execute(
        sa.update(User).where(User.id == user.id, _unlocked(now)).values(
            failed_login_count=sa.case((locks, 0), else_=counted),
            first_failed_login_at=sa.case((locks, sa.null()), (new_window, now),
                                          else_=User.first_failed_login_at),
            locked_until=sa.case(
                (locks, now + timedelta(minutes=cfg["BLADI_LOCKOUT_MINUTES"])),
                else_=User.locked_until))
        .returning(User.failed_login_count, User.first_failed_login_at, User.locked_until)
        .execution_options(synchronize_session=False)).first()
    if row is None:
        is_locked(user)
        return False
    for name, value in zip(("failed_login_count", "first_failed_login_at", "locked_until"),
                           row, strict=True):
        set_committed_value(user, name, value)
    if row.locked_until is not None and row.locked_until > now:
        record(Action.LOCKOUT, actor=user, obj=user)
    return True


def clear_failures(user: User) -> None:
    """Once every factor of a login has passed: the failures so far stop counting, unless a
    lock was set meanwhile (it stays, with its time). Not at the password already: whoever
    knows the password could otherwise clear the count of wrong second-factor codes by
    typing it again. The time of the last lock stays, so the failures that follow do not
    lock the account again too soon."""
    row = db.session.execute(
        sa.update(User).where(User.id == user.id, _unlocked(utcnow()))
        .values(failed_login_count=0, first_failed_login_at=None)
        .returning(User.id).execution_options(synchronize_session=False)).first()
    if row is not None:
        set_committed_value(user, "failed_login_count", 0)
        set_committed_value(user, "first_failed_login_at", None)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_reset(user: User, issued_by: User) -> str:
    """Create a one-time reset code for `user`; returns the code (only its hash is kept).

    Earlier unused codes of the same user stop working: only the newest one is valid.
    """
    now = utcnow()
    for old in db.session.scalars(
        db.select(PasswordReset).where(PasswordReset.user_id == user.id,
                                       PasswordReset.used_at.is_(None))
    ):
        old.used_at = now
    token = secrets.token_urlsafe(24)
    db.session.add(PasswordReset(
        user_id=user.id, token_hash=_token_hash(token), created_by_id=issued_by.id,
        created_at=now,
        expires_at=now + timedelta(hours=current_app.config["BLADI_RESET_HOURS"]),
    ))
    record(Action.PASSWORD_RESET_ISSUED, actor=issued_by, obj=user)
    return token


def find_reset(token: str) -> PasswordReset | None:
    """The unused, unexpired reset matching a code, or None."""
    if not token or len(token) > 100:
        return None
    reset = db.session.scalars(
        db.select(PasswordReset).where(PasswordReset.token_hash == _token_hash(token))
    ).first()
    if reset is None or reset.used_at is not None or reset.expires_at < utcnow():
        return None
    if not reset.user.active:
        return None
    return reset


def use_reset(reset: PasswordReset, new_password: str) -> User:
    """Set the password chosen through a reset code and spend the code."""
    set_password(reset.user, new_password)
    reset.used_at = utcnow()
    record(Action.PASSWORD_RESET_USED, actor=reset.user, obj=reset.user)
    return reset.user

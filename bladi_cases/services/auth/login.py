"""Logging in: the password check with its failure counter and lockout, and the one-time
reset codes a manager hands over."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l

from ...extensions import db
from ...models import PasswordReset, User
from ...models.common import utcnow
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
    now = utcnow()
    user = db.session.scalars(db.select(User).where(User.email == normalize_email(email))).first()
    if user is None:
        _check_password(_DUMMY_HASH, password)
        record(Action.LOGIN_FAILED, detail={"reason": "unknown_email"})
        return None
    if user.locked_until and user.locked_until > now:
        _check_password(_DUMMY_HASH, password)
        record(Action.LOGIN_FAILED, actor=user, obj=user, detail={"reason": "locked"})
        return None
    if not _check_password(user.password_hash, password) or not user.active:
        reason = "inactive" if user.active is False else "bad_password"
        count_failure(user)
        record(Action.LOGIN_FAILED, actor=user, obj=user, detail={"reason": reason})
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_login_count = 0
    user.first_failed_login_at = None
    user.locked_until = None
    user.last_login_at = now
    record(Action.LOGIN, actor=user, obj=user)
    return user


def count_failure(user: User) -> None:
    """Count one failed attempt at an account (a wrong password or a wrong second-factor
    code); enough of them within the window lock it for a while."""
    now = utcnow()
    cfg = current_app.config
    window = timedelta(minutes=cfg["BLADI_LOGIN_WINDOW_MINUTES"])
    if user.first_failed_login_at is None or now - user.first_failed_login_at > window:
        user.first_failed_login_at = now
        user.failed_login_count = 1
    else:
        user.failed_login_count += 1
    if user.failed_login_count >= cfg["BLADI_LOGIN_MAX_FAILURES"]:
        user.locked_until = now + timedelta(minutes=cfg["BLADI_LOCKOUT_MINUTES"])
        user.failed_login_count = 0
        user.first_failed_login_at = None
        record(Action.LOCKOUT, actor=user, obj=user)


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

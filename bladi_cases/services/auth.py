"""Accounts' security: passwords, login with lockout, sessions, one-time reset codes."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..extensions import db
from ..models import PasswordReset, User
from ..models.auth import new_session_nonce
from ..models.common import utcnow
from . import ValidationError
from .audit import Action, record

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost one argon2 check and
# response time does not reveal which emails have accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))

GENERIC_LOGIN_ERROR = _l(
    "Email or password is incorrect, or the account is locked for a while after "
    "repeated failures."
)


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively: store and look them up lower-cased."""
    return unicodedata.normalize("NFKC", (email or "").strip()).casefold()


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def password_problems(password: str, *, email: str = "", display_name: str = "") -> list[str]:
    """What is wrong with a proposed password, as messages in the user's language."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(_("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH))
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(_("Use at most %(n)d characters.", n=MAX_PASSWORD_LENGTH))
    lowered = password.casefold()
    personal = [normalize_email(email), normalize_email(email).split("@")[0]]
    personal += [part.casefold() for part in (display_name or "").split() if len(part) >= 3]
    personal.append((display_name or "").casefold().replace(" ", ""))
    if any(p and len(p) >= 3 and p in lowered for p in personal):
        problems.append(_("The password must not contain your name or email."))
    if len(set(password)) < 4:
        problems.append(_("The password is too simple: use more different characters."))
    return problems


def _check_password(user_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(user_hash, password)
    except (VerificationError, InvalidHashError):
        return False


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
        _register_failure(user, now)
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


def _register_failure(user: User, now) -> None:
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


def set_password(user: User, new_password: str) -> None:
    """Validate and store a new password; every existing session of the user ends."""
    problems = password_problems(new_password, email=user.email, display_name=user.display_name)
    if problems:
        raise ValidationError({"new_password": problems})
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    user.session_nonce = new_session_nonce()
    user.locked_until = None
    user.failed_login_count = 0
    db.session.flush()


def change_own_password(user: User, current_password: str, new_password: str) -> None:
    """A logged-in user changes their password (the current one is asked again)."""
    if not _check_password(user.password_hash, current_password):
        raise ValidationError.one("current_password", _("The current password is wrong."))
    set_password(user, new_password)
    record(Action.PASSWORD_CHANGED, actor=user, obj=user)


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

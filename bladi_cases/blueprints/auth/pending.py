"""A login waiting for its second factor: who passed the password, where they were going,
and what is left to do, kept in the Flask session for a few minutes only. Nobody is logged
in until `finish_login` (views.py) runs."""

from __future__ import annotations

import time
import uuid

from flask import redirect, session, url_for

from ...extensions import db
from ...models import User
from ...services.auth import normalize_email
from ...services.auth.second_factor import Stage

PENDING_KEY = "_bladi_pending_login"
# Long enough to install an authenticator app and scan a code; the password was checked.
PENDING_SECONDS = 10 * 60


def hold(user: User, next_url: str | None, stage: Stage):
    """After the password: remember that `user` must now pass `stage`, and send them to
    its page (the code, or the enrolment)."""
    session.clear()  # whatever this browser held before (no fixation)
    session[PENDING_KEY] = {"user": str(user.uuid), "email": user.email,
                            "nonce": user.session_nonce, "next": next_url or "",
                            "stage": str(stage),
                            "until": int(time.time()) + PENDING_SECONDS}
    return redirect(url_for("auth.login_code" if stage == Stage.CODE else "auth.login_enrol"))


def advance(stage: str) -> None:
    """The pending login moves on to `stage` (e.g. the recovery codes were shown)."""
    held = session.get(PENDING_KEY)
    if held:
        session[PENDING_KEY] = {**held, "stage": stage}


def pending(stage: str) -> tuple[User, str] | None:
    """The user waiting at `stage`, and where they were going; None when nobody is, when
    it took too long, or when the account changed since the password (a new nonce: a
    password reset, a deactivation, a reset of the factor)."""
    held = session.get(PENDING_KEY)
    if not held or held.get("stage") != stage or held.get("until", 0) < time.time():
        return None
    user = db.session.scalars(db.select(User).where(
        User.uuid == _uuid(held.get("user")))).first()
    if user is None or not user.active or user.session_nonce != held.get("nonce"):
        return None
    return user, held.get("next") or ""


def account_key() -> str:
    """The rate limits' key of the pending account, the one the login form counted its
    password attempts under (blueprints/limits.py)."""
    return "account:" + normalize_email((session.get(PENDING_KEY) or {}).get("email", ""))


def drop() -> None:
    """Forget the pending login."""
    session.pop(PENDING_KEY, None)


def _uuid(raw) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None

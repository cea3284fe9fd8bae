"""Login sessions that end on the server. Each login on a device is a `LoginSession` row;
the device's cookie carries a random token (only its hash is stored). A request counts as
logged in only while that row is live: not revoked (logout, "log out everywhere", a
password change, a deactivation), not idle longer than BLADI_IDLE_MINUTES, and not older
than BLADI_SESSION_HOURS. So ending a session ends every copy of its cookie, wherever it
was copied to."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from ...extensions import db
from ...models import User
from ...models.auth import LoginSession, new_session_nonce
from ...models.common import utcnow
from ...transactions import after_render, in_read_request
from ..audit import Action, record

# Where the Flask session keeps this device's token.
TOKEN_KEY = "_bladi_login"
# last_seen_at is written at most this often: a write on every request would make every
# page, even a read, take SQLite's write lock. The idle timeout is late by as much.
TOUCH_EVERY = timedelta(minutes=1)
_USER_AGENT_LENGTH = 200  # the column's size
_MAX_TOKEN = 100


def token_hash(token: str) -> str:
    """What is stored of a session token: its SHA-256 (the token is random, no salt needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start(user: User, user_agent: str | None) -> str:
    """Open a login session of `user` on this device; returns the token for its cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(LoginSession(user_id=user.id, token_hash=token_hash(token), created_at=now,
                                last_seen_at=now,
                                user_agent=(user_agent or "")[:_USER_AGENT_LENGTH]))
    db.session.flush()
    return token


def idle_limit(user: User) -> timedelta:
    """How long a session of this user may go without a request (BLADI_IDLE_MINUTES)."""
    cfg = current_app.config
    minutes = cfg["BLADI_IDLE_MINUTES_BY_ROLE"].get(user.role, cfg["BLADI_IDLE_MINUTES"])
    return timedelta(minutes=minutes)


def lifetime() -> timedelta:
    """How long a session may last, however active (BLADI_SESSION_HOURS)."""
    return timedelta(hours=current_app.config["BLADI_SESSION_HOURS"])


def _expired(row: LoginSession, user: User, now: datetime) -> bool:
    return now - row.last_seen_at > idle_limit(user) or now - row.created_at > lifetime()


def _write(write: Callable[[], object]) -> None:
    """Now in a write request; once the page is built in a read request (transactions.py),
    without waiting for the disk: a login's last request lost in a machine crash only
    moves its idle timeout earlier."""
    if in_read_request():
        after_render(write, waits_for_disk=False)
    else:
        write()


def _revoke_rows(*criteria, now: datetime) -> None:
    db.session.execute(sa.update(LoginSession).where(
        LoginSession.revoked_at.is_(None), *criteria).values(revoked_at=now))


def check(user: User, token: str | None) -> LoginSession | None:
    """The live login session of `user` that this token opens, or None (then the request is
    anonymous). An expired one is revoked on the way; a live one has its last_seen_at moved
    on, at most once per TOUCH_EVERY."""
    if not token or len(token) > _MAX_TOKEN:
        return None
    row = db.session.scalars(sa.select(LoginSession).where(
        LoginSession.token_hash == token_hash(token))).first()
    return check_row(user, row)


# Every request's lookup (`load`), built once: its SQL is the same for every request, and
# building it and its cache key each time cost a quarter of the lookup. The user's CSO
# comes with them: every page's header names it. A request without a token binds NULL as
# the token's hash, which matches no session.
_LOAD = (sa.select(User, LoginSession)
         .outerjoin(LoginSession, sa.and_(LoginSession.user_id == User.id,
                                          LoginSession.token_hash == sa.bindparam("token")))
         .where(User.uuid == sa.bindparam("public_id"))
         .options(joinedload(User.organization)).limit(1))


def load(public_id, token: str | None) -> tuple[User, LoginSession | None] | None:
    """The user of this public id and the login session of this token, if it is theirs,
    in one query (every request asks): None without such a user. Pass both to
    `check_row`."""
    hashed = token_hash(token) if token and len(token) <= _MAX_TOKEN else None
    found = db.session.execute(_LOAD, {"public_id": public_id, "token": hashed}).first()
    return None if found is None else (found[0], found[1])


def check_row(user: User, row: LoginSession | None) -> LoginSession | None:
    """`check` once the row of the token is loaded (see `load`)."""
    if row is None or row.user_id != user.id or row.revoked_at is not None:
        return None
    now, row_id = utcnow(), row.id
    if _expired(row, user, now):
        _write(lambda: _revoke_rows(LoginSession.id == row_id, now=now))
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        # Conditional, so two requests of the same minute write once between them.
        _write(lambda: db.session.execute(sa.update(LoginSession).where(
            LoginSession.id == row_id, LoginSession.last_seen_at <= now - TOUCH_EVERY,
        ).values(last_seen_at=now)))
    return row


def end_current(token: str | None) -> None:
    """Logout: the session of this token ends, for every copy of its cookie."""
    if token and len(token) <= _MAX_TOKEN:
        _revoke_rows(LoginSession.token_hash == token_hash(token), now=utcnow())
        db.session.flush()


def end_one(user: User, login_session_id: int | None) -> bool:
    """End one of the user's own sessions (from the sessions page); False when it is not
    theirs or already over."""
    row = db.session.get(LoginSession, login_session_id) if login_session_id else None
    if row is None or row.user_id != user.id or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    db.session.flush()
    record(Action.LOGIN_SESSION_ENDED, actor=user, obj=user,
           detail={"device": device_summary(row.user_agent)})
    return True


def end_every_session(user: User) -> None:
    """Every session of the user ends: a new nonce (no cookie of theirs is accepted any more)
    and every row revoked (the sessions page lists none of them). Password changes,
    deactivations and role changes call this."""
    user.session_nonce = new_session_nonce()
    _revoke_rows(LoginSession.user_id == user.id, now=utcnow())
    db.session.flush()


def log_out_everywhere(user: User) -> None:
    """The user ends all their sessions, this one included."""
    end_every_session(user)
    record(Action.LOGOUT_EVERYWHERE, actor=user, obj=user)


@dataclass(frozen=True)
class SessionShown:
    """One live session as the sessions page shows it."""

    id: int
    device: str
    started: datetime
    last_seen: datetime
    current: bool


def live_sessions(user: User, token: str | None) -> list[SessionShown]:
    """The user's live sessions, most recently used first; `token` marks this device's."""
    now = utcnow()
    rows = db.session.scalars(sa.select(LoginSession).where(
        LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None),
        LoginSession.created_at >= now - lifetime(),
        LoginSession.last_seen_at >= now - idle_limit(user),
    ).order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc()))
    mine = token_hash(token) if token else None
    return [SessionShown(row.id, device_summary(row.user_agent), row.created_at,
                         row.last_seen_at, row.token_hash == mine) for row in rows]


# Most specific first: Edge and Opera say "Chrome", Chrome says "Safari", Android "Linux".
_BROWSERS = (("Edg", "Edge"), ("OPR", "Opera"), ("SamsungBrowser", "Samsung Internet"),
             ("Firefox", "Firefox"), ("FxiOS", "Firefox"), ("CriOS", "Chrome"),
             ("Chrome", "Chrome"), ("Safari", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
            ("CrOS", "ChromeOS"), ("Windows", "Windows"), ("Mac OS X", "macOS"),
            ("Linux", "Linux"))


def device_summary(user_agent: str | None) -> str:
    """A short, readable name of the device a session is on, e.g. "Chrome · Android"."""
    agent = user_agent or ""
    browser = next((name for key, name in _BROWSERS if f"{key}/" in agent), None)
    system = next((name for key, name in _SYSTEMS if key in agent), None)
    found = [part for part in (browser, system) if part]
    return " · ".join(found) if found else _("Unknown device")

"""Accounts' security, one module per concern: `passwords` (hashing, the policy, changes),
`login` (the password check, failures and lockout, reset codes), `second_factor` (TOTP
codes from a phone app, recovery codes, resets) and `sessions` (login
sessions that end: logout, idle timeout, lifetime, "log out everywhere"). The names callers use
are here, so `from ..services import auth` reaches them all."""

# second_factor: TOTP and recovery codes (second_factor.check_code, ...); sessions: login
# sessions that end (sessions.start, sessions.check, ...).
from . import second_factor, sessions
from .login import (
    GENERIC_LOGIN_ERROR,
    authenticate,
    clear_failures,
    count_failure,
    find_reset,
    issue_reset,
    use_reset,
)
from .passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    change_own_password,
    hash_password,
    normalize_email,
    password_problems,
    set_password,
)
from .sessions import end_every_session

__all__ = [
    "end_every_session", "sessions", "second_factor",
    "GENERIC_LOGIN_ERROR", "MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "authenticate",
    "change_own_password", "clear_failures", "count_failure", "find_reset", "hash_password",
    "issue_reset", "normalize_email", "password_problems", "set_password", "use_reset",
]

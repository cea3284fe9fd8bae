"""Accounts' security, one module per concern: `passwords` (hashing, the policy, changes)
and `login` (the password check, failures and lockout, reset codes). The names callers use
are here, so `from ..services import auth` reaches them all."""

from .login import (
    GENERIC_LOGIN_ERROR,
    authenticate,
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

__all__ = [
    "GENERIC_LOGIN_ERROR", "MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "authenticate",
    "change_own_password", "count_failure", "find_reset", "hash_password", "issue_reset",
    "normalize_email", "password_problems", "set_password", "use_reset",
]

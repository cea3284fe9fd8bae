"""Rate limits: which requests are counted, by what key, against which setting.

Flask-Limiter counts (`limiter` in extensions.py): in Redis at REDIS_URL, shared by every
process and machine, or in each process's memory when it is unset. A request over a limit
is answered 429 with a message in the user's language and a Retry-After header (errors.py).

Login and reset count only the attempts turned away, so an office whose staff all share one
address is not slowed by its own successful logins. The lockout of one account is another
mechanism, in the database: `count_failure` in services/auth/login.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Blueprint, current_app, request
from flask_login import current_user

from ..extensions import limiter
from ..services.auth import normalize_email
from ..services.files import is_download

# Methods that change something: the API's writes (its reads are not limited).
WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


def _setting(name: str) -> Callable[[], str]:
    """The limit, read from the settings at each request (so a test may lower it)."""
    return lambda: current_app.config[name]


def client_address() -> str:
    """The key of the address a request comes from (the proxy's X-Forwarded-For once
    ProxyFix trusts it; see the README's deployment section)."""
    return "address:" + (request.remote_addr or "unknown")


def submitted_account() -> str:
    """The key of the account a login form names: its email as the login looks it up."""
    return "account:" + normalize_email(request.form.get("email", ""))[:254]


def reset_code() -> str:
    """The key of the reset code in the URL: it stands for one account (a newer code
    replaces the older), and only its hash is kept, in the storage as in the database."""
    token = (request.view_args or {}).get("token", "")
    return "reset:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


def signed_in_user() -> str:
    """The key of the logged-in user (of the address for anyone else)."""
    if current_user.is_authenticated:
        return f"user:{current_user.uuid}"
    return client_address()


def turned_away(response) -> bool:
    """An attempt that failed: the form came back (200, 422) or the code was unknown (404).
    A redirect is a success; a 429 was never tried."""
    return response.status_code in (200, 404, 422)


def _attempt_limits(account_key: Callable[[], str], view):
    """Login attempts turned away, per address and per account, whichever step they fail
    at (the password, the second factor): one pair of counters for both."""
    view = limiter.shared_limit(_setting("BLADI_RATELIMIT_LOGIN_IP"), scope="login-address",
                                key_func=client_address, methods=["POST"],
                                deduct_when=turned_away)(view)
    return limiter.shared_limit(_setting("BLADI_RATELIMIT_LOGIN_ACCOUNT"),
                                scope="login-account", key_func=account_key,
                                methods=["POST"], deduct_when=turned_away)(view)


def login_limits(view):
    """Passwords turned away, per address and per account (the email typed)."""
    return _attempt_limits(submitted_account, view)


def second_step_limits(account_key: Callable[[], str]) -> Callable:
    """Codes turned away at a login's second step (the second factor), counted with the
    login attempts, in the same counters: per address, and per account, which
    `account_key` names as `submitted_account` does (the password already named it)."""
    return lambda view: _attempt_limits(account_key, view)


def reset_limits(view):
    """Reset-code pages turned away (unknown code, refused new password), per address and
    per code."""
    view = limiter.shared_limit(_setting("BLADI_RATELIMIT_RESET_IP"), scope="reset-address",
                                key_func=client_address, deduct_when=turned_away)(view)
    return limiter.shared_limit(_setting("BLADI_RATELIMIT_RESET_ACCOUNT"),
                                scope="reset-account", key_func=reset_code,
                                deduct_when=turned_away)(view)


def export_limit(view):
    """Files built from the records (reports, survey responses, a youth's record), per
    user, all of them together; the pages around them (a form, a redirect) are free."""
    return limiter.shared_limit(_setting("BLADI_RATELIMIT_EXPORTS"), scope="exports",
                                key_func=signed_in_user, deduct_when=is_download)(view)


def limit_api_writes(blueprint: Blueprint) -> None:
    """Every write of the field app's API (the sync), per user, all of them together."""
    limiter.shared_limit(_setting("BLADI_RATELIMIT_SYNC"), scope="api-writes",
                         key_func=signed_in_user, methods=WRITE_METHODS)(blueprint)

"""Settings: read once from environment variables, with every default in one place.

`BLADI_ENV` picks the behaviour when a secret is missing:
- production (default): refuse to start without SECRET_KEY and BLADI_DATA_KEY, with a
  SECRET_KEY shorter than 32 bytes, or with a BLADI_DATA_KEY that does not parse;
- development: generate the missing keys once into instance/ and keep them there;
- testing: throwaway keys for the test process.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

from .privacy.crypto import DataKeyError, parse_keys
from .privacy.crypto import new_key as new_data_key

ENVIRONMENTS = ("production", "development", "testing")
SECRETS_FILE = "secrets.json"
# A shorter session key can be guessed offline from one signed cookie.
MIN_SECRET_KEY_BYTES = 32


class ConfigError(RuntimeError):
    """Raised when the settings are incomplete or wrong; the app must not start."""


def _instance_secrets(instance_path: Path) -> dict[str, str]:
    """Load (or create once) the development keys kept in instance/secrets.json."""
    path = instance_path / SECRETS_FILE
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
    else:
        stored = {}
    changed = False
    if not stored.get("SECRET_KEY"):
        stored["SECRET_KEY"] = secrets.token_urlsafe(48)
        changed = True
    if not stored.get("BLADI_DATA_KEY"):
        stored["BLADI_DATA_KEY"] = new_data_key()
        changed = True
    if changed:
        instance_path.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2), encoding="utf-8")
        path.chmod(0o600)
    return stored


def _int(environ, name: str, default: int, minimum: int | None = None) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _random_page_cost(environ) -> float | None:
    """BLADI_PG_RANDOM_PAGE_COST: what the app's PostgreSQL connections plan a random page
    read at (1.1 unless set; "server" keeps the server's own, None). PostgreSQL's default
    of 4 assumes spinning disks, and made it read all of a CSO's case notes (3,000) to find
    a worker's 40 cases' notes (1.4 ms instead of 0.3), where the data is on SSD or in
    memory, as PostgreSQL's documentation advises for both. Applied to each
    new connection in bladi_cases/__init__.py (init_database)."""
    raw = (environ.get("BLADI_PG_RANDOM_PAGE_COST") or "1.1").strip()
    if raw == "server":
        return None
    try:
        cost = float(raw)
    except ValueError:
        cost = 0.0
    if not 0 < cost <= 100:
        raise ConfigError("BLADI_PG_RANDOM_PAGE_COST must be a number above 0 (at most 100) "
                          f"or \"server\", got {raw!r}")
    return cost


# The roles of models/auth.py (this module imports nothing of ours that touches the
# database); tests/test_auth_sessions.py checks the two lists agree.
ROLE_NAMES = ("field_worker", "cso_manager", "reviewer", "donor", "admin")


def _idle_minutes(environ, name: str, default: int) -> tuple[int, dict[str, int]]:
    """An idle timeout in minutes, with optional per-role overrides: "30" or
    "30,field_worker=60" (every role not named gets the first number)."""
    raw = (environ.get(name) or "").strip()
    first, *overrides = [part.strip() for part in raw.split(",")] if raw else [""]
    minutes = _int({name: first}, name, default, minimum=1)
    by_role: dict[str, int] = {}
    for override in overrides:
        role, _, value = (part.strip() for part in override.partition("="))
        if role not in ROLE_NAMES or not value:
            raise ConfigError(f"{name}: write role=minutes with a role among "
                              f"{', '.join(ROLE_NAMES)}, got {override!r}")
        by_role[role] = _int({name: value}, name, default, minimum=1)
    return minutes, by_role


def _roles(environ, name: str, default: tuple[str, ...]) -> frozenset[str]:
    """A set of roles named by a comma-separated list ("admin, reviewer"); unset: the
    default; set but empty: no role."""
    raw = environ.get(name)
    if raw is None:
        return frozenset(default)
    roles = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(roles - set(ROLE_NAMES))
    if unknown:
        raise ConfigError(f"{name}: {', '.join(map(repr, unknown))} is not a role "
                          f"({', '.join(ROLE_NAMES)})")
    return roles


def _second_factor_roles(environ) -> dict[str, frozenset[str]]:
    """Which roles must use a second factor, and which may choose to."""
    required = _roles(environ, "BLADI_2FA_ROLES", ("admin", "reviewer", "donor", "cso_manager"))
    optional = _roles(environ, "BLADI_2FA_OPTIONAL_ROLES", ("field_worker",))
    if required & optional:
        raise ConfigError("BLADI_2FA_ROLES and BLADI_2FA_OPTIONAL_ROLES both name "
                          + ", ".join(sorted(required & optional)))
    return {"BLADI_2FA_ROLES": required, "BLADI_2FA_OPTIONAL_ROLES": optional}


# The rate limits (bladi_cases/blueprints/limits.py): each a list of "N per minute/hour/day",
# counted per key. Login and reset count the attempts turned away; the limit per account is
# above the one per address, so one address alone never blocks an account.
RATE_LIMITS = {
    "BLADI_RATELIMIT_LOGIN_IP": "10 per minute; 50 per hour",
    "BLADI_RATELIMIT_LOGIN_ACCOUNT": "20 per minute; 100 per hour",
    "BLADI_RATELIMIT_RESET_IP": "10 per minute; 50 per hour",
    "BLADI_RATELIMIT_RESET_ACCOUNT": "10 per hour",
    "BLADI_RATELIMIT_SYNC": "30 per minute; 500 per hour",
    "BLADI_RATELIMIT_EXPORTS": "10 per minute; 100 per hour",
}
# The test suite's requests all come from one address, one after the other: its limits stay
# on but out of reach (the tests of the limits set their own).
TESTING_RATE_LIMIT = "10000 per minute"


def _rate_limits(environ, env: str) -> dict:
    """The rate limits and where they are counted: Redis at REDIS_URL, shared by every
    process and machine, or each process's memory when unset (one machine, `make run`)."""
    from limits import parse_many

    settings = {}
    for name, default in RATE_LIMITS.items():
        value = environ.get(name) or (TESTING_RATE_LIMIT if env == "testing" else default)
        try:
            parse_many(value)
        except ValueError as exc:
            raise ConfigError(f"{name} must read like \"10 per minute; 50 per hour\", "
                              f"got {value!r}") from exc
        settings[name] = value
    redis_url = environ.get("REDIS_URL", "").strip()
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "redis+unix://")):
        # (the URL itself is not repeated: it may hold a password)
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or redis+unix://")
    settings["REDIS_URL"] = redis_url
    settings["RATELIMIT_STORAGE_URI"] = redis_url or "memory://"
    settings["BLADI_JOB_QUEUE"] = _job_queue(environ, env, redis_url)
    return settings


JOB_QUEUES = ("rq", "thread", "inline")


def _job_queue(environ, env: str, redis_url: str) -> str:
    """Where background jobs run (services/jobs.py): on RQ workers when Redis is configured,
    else in a thread of the web process, or at once after the request in the tests."""
    chosen = environ.get("BLADI_JOB_QUEUE", "").strip().lower()
    if not chosen:
        chosen = "inline" if env == "testing" else ("rq" if redis_url else "thread")
    if chosen not in JOB_QUEUES:
        raise ConfigError(f"BLADI_JOB_QUEUE must be one of {', '.join(JOB_QUEUES)}, "
                          f"got {chosen!r}")
    if chosen == "rq" and not redis_url:
        raise ConfigError("BLADI_JOB_QUEUE=rq needs REDIS_URL (the queue is in Redis)")
    return chosen


def load_settings(environ: dict | os._Environ, instance_path: Path) -> dict:
    """Build the Flask config mapping from the environment; raise ConfigError if unusable."""
    env = environ.get("BLADI_ENV", "production").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"BLADI_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")

    secret_key = environ.get("SECRET_KEY", "")
    data_key = environ.get("BLADI_DATA_KEY", "")
    if env == "development" and not (secret_key and data_key):
        stored = _instance_secrets(instance_path)
        secret_key = secret_key or stored["SECRET_KEY"]
        data_key = data_key or stored["BLADI_DATA_KEY"]
    elif env == "testing":
        secret_key = secret_key or secrets.token_urlsafe(32)
        data_key = data_key or new_data_key()
    if env == "production" and secret_key and len(secret_key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigError(
            f"SECRET_KEY is too short: it signs sessions and CSRF tokens, and must be at least "
            f"{MIN_SECRET_KEY_BYTES} bytes of random text (e.g. the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`).")
    if data_key:
        try:
            parse_keys(data_key)
        except DataKeyError as exc:
            raise ConfigError(f"BLADI_DATA_KEY is not usable: {exc}") from exc
    missing = [name for name, value in (("SECRET_KEY", secret_key),
                                        ("BLADI_DATA_KEY", data_key)) if not value]
    if missing:
        raise ConfigError(
            "Missing required setting(s): " + ", ".join(missing)
            + ". Set them in the environment (generate a data key with "
            "`flask --app wsgi keys generate`), or use BLADI_ENV=development."
        )

    default_db = "sqlite:///" + str(instance_path / "bladi.db")
    database_url = environ.get("DATABASE_URL") or default_db
    # Heroku-style URLs name the old driver; psycopg 3 is what we ship.
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]

    # Cookies only over HTTPS in production; development serves plain HTTP on 127.0.0.1.
    secure_cookies = env == "production" and environ.get("BLADI_INSECURE_COOKIES") != "1"
    session_hours = _int(environ, "BLADI_SESSION_HOURS", 12, minimum=1)
    idle_minutes, idle_by_role = _idle_minutes(environ, "BLADI_IDLE_MINUTES", 30)
    return {
        "BLADI_ENV": env,
        "DEBUG": env == "development" and environ.get("FLASK_DEBUG") == "1",
        "TESTING": env == "testing",
        "SECRET_KEY": secret_key,
        "BLADI_DATA_KEY": data_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "BLADI_PG_RANDOM_PAGE_COST": _random_page_cost(environ),
        # Spreadsheet imports are capped at 5 MB; leave room for the multipart envelope.
        "MAX_CONTENT_LENGTH": _int(environ, "BLADI_MAX_UPLOAD_BYTES", 6 * 1024 * 1024),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure_cookies,
        # Flask-Login's "remember me" cookie is never set (duration 0); if it ever is, it
        # gets the same protection as the session cookie.
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        # A login ends on the server after this long, however active (services/auth/sessions.py);
        # the cookie expires with it.
        "BLADI_SESSION_HOURS": session_hours,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=session_hours),
        # The cookie is set when the session changes (the login, a language or form token),
        # not again on every answer: each page saves signing and sending it. The cookie's
        # own expiry is then reckoned from that change; what ends a login is the server's
        # check of its login session (BLADI_SESSION_HOURS, the idle time below).
        "SESSION_REFRESH_EACH_REQUEST": False,
        # ... and after this long without a request (every role sees identities or figures).
        "BLADI_IDLE_MINUTES": idle_minutes,
        "BLADI_IDLE_MINUTES_BY_ROLE": idle_by_role,
        "REMEMBER_COOKIE_DURATION": timedelta(seconds=0),
        "WTF_CSRF_TIME_LIMIT": None,  # the session lifetime already bounds a token
        "BABEL_DEFAULT_LOCALE": "ar_TN",
        "BABEL_DEFAULT_TIMEZONE": environ.get("BLADI_TIMEZONE", "Africa/Tunis"),
        "BLADI_LOGIN_MAX_FAILURES": _int(environ, "BLADI_LOGIN_MAX_FAILURES", 5),
        "BLADI_LOGIN_WINDOW_MINUTES": _int(environ, "BLADI_LOGIN_WINDOW_MINUTES", 15),
        # Short: strangers can lock an account (services/auth/login.py, count_failure).
        "BLADI_LOCKOUT_MINUTES": _int(environ, "BLADI_LOCKOUT_MINUTES", 15, minimum=1),
        # After a lock, failures lock the account again only this much later.
        "BLADI_LOCKOUT_REARM_HOURS": _int(environ, "BLADI_LOCKOUT_REARM_HOURS", 24, minimum=0),
        **_rate_limits(environ, env),
        "BLADI_RESET_HOURS": _int(environ, "BLADI_RESET_HOURS", 24),
        # Second factor (TOTP): required for these roles, a choice for those.
        **_second_factor_roles(environ),
        "BLADI_PAGE_SIZE": _int(environ, "BLADI_PAGE_SIZE", 25),
        # A running job whose worker gave no sign of life for this long is run again.
        "BLADI_JOB_DEAD_SECONDS": _int(environ, "BLADI_JOB_DEAD_SECONDS", 60, minimum=3),
        # Where the maintenance page's and the nightly backups go (nightly only when set).
        "BLADI_BACKUP_DIR": environ.get("BLADI_BACKUP_DIR", "").strip(),
        # How many of the app's own backups the folder keeps, the oldest deleted after each
        # new one (0: all). Two weeks of nightly backups by default.
        "BLADI_BACKUP_KEEP": _int(environ, "BLADI_BACKUP_KEEP", 14, minimum=0),
        # Counts of 1..k-1 never leave a CSO (tables for reviewers and the donor).
        "BLADI_SMALL_CELL_K": _int(environ, "BLADI_SMALL_CELL_K", 5),
        # The year's figures snapshot is recomputed when older than this (0: every view).
        "BLADI_DASHBOARD_CACHE_SECONDS": _int(environ, "BLADI_DASHBOARD_CACHE_SECONDS",
                                              0 if env == "testing" else 300),
        # The award's first US fiscal year: where life-of-award totals start.
        "BLADI_AWARD_FIRST_FY": _int(environ, "BLADI_AWARD_FIRST_FY", 2025),
        # SQLite only: how long a write waits for another writer's lock before it fails.
        "BLADI_SQLITE_BUSY_SECONDS": _int(environ, "BLADI_SQLITE_BUSY_SECONDS", 5, minimum=0),
        # How many reverse proxies in front of the app set X-Forwarded-For and
        # X-Forwarded-Proto (werkzeug's ProxyFix trusts that many hops; 0: none, the
        # headers are ignored). HTTPS behind the proxy, hence HSTS, depends on it.
        "BLADI_PROXY_HOPS": _int(environ, "BLADI_PROXY_HOPS", 0, minimum=0),
    }

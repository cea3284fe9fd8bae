"""Settings: read once from environment variables, with every default in one place.

`BLADI_ENV` picks the behaviour when a secret is missing:
- production (default): refuse to start without SECRET_KEY and BLADI_DATA_KEY;
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
    return {
        "BLADI_ENV": env,
        "DEBUG": env == "development" and environ.get("FLASK_DEBUG") == "1",
        "TESTING": env == "testing",
        "SECRET_KEY": secret_key,
        "BLADI_DATA_KEY": data_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
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
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=_int(environ, "BLADI_SESSION_HOURS", 12)),
        "REMEMBER_COOKIE_DURATION": timedelta(seconds=0),
        "WTF_CSRF_TIME_LIMIT": None,  # the session lifetime already bounds a token
        "BABEL_DEFAULT_LOCALE": "ar_TN",
        "BABEL_DEFAULT_TIMEZONE": environ.get("BLADI_TIMEZONE", "Africa/Tunis"),
        "BLADI_LOGIN_MAX_FAILURES": _int(environ, "BLADI_LOGIN_MAX_FAILURES", 5),
        "BLADI_LOGIN_WINDOW_MINUTES": _int(environ, "BLADI_LOGIN_WINDOW_MINUTES", 15),
        "BLADI_LOCKOUT_MINUTES": _int(environ, "BLADI_LOCKOUT_MINUTES", 15),
        "BLADI_RESET_HOURS": _int(environ, "BLADI_RESET_HOURS", 24),
        "BLADI_PAGE_SIZE": _int(environ, "BLADI_PAGE_SIZE", 25),
        # Counts of 1..k-1 never leave a CSO (tables for reviewers and the donor).
        "BLADI_SMALL_CELL_K": _int(environ, "BLADI_SMALL_CELL_K", 5),
        # The year's figures snapshot is recomputed when older than this (0: every view).
        "BLADI_DASHBOARD_CACHE_SECONDS": _int(environ, "BLADI_DASHBOARD_CACHE_SECONDS",
                                              0 if env == "testing" else 300),
        # The award's first US fiscal year: where life-of-award totals start.
        "BLADI_AWARD_FIRST_FY": _int(environ, "BLADI_AWARD_FIRST_FY", 2025),
        # SQLite only: how long a write waits for another writer's lock before it fails.
        "BLADI_SQLITE_BUSY_SECONDS": _int(environ, "BLADI_SQLITE_BUSY_SECONDS", 5, minimum=0),
    }

"""BLADI Cases: the application factory. Nothing happens at import time."""

from __future__ import annotations

import gc
import os
import sqlite3
import sys
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa
from flask import Flask, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import ConfigError, load_settings
from .extensions import babel, csrf, db, limiter, login_manager, migrate
from .transactions import begins_writing, commit_request, waits_for_disk

ROOT = Path(__file__).resolve().parent.parent


def create_app(config_override: dict | None = None) -> Flask:
    """Build the Flask app: settings, extensions, policy, languages, routes, commands."""
    app = Flask(__name__, static_folder=None, instance_relative_config=True)
    init_config(app, config_override)
    init_database(app)
    init_login(app)
    init_i18n(app)
    init_policy(app)
    init_limits(app)
    init_blueprints(app)
    init_errors(app)
    init_headers(app)
    from .assets import init_assets

    init_assets(app)
    from .cli import init_cli

    init_cli(app)
    return app


def freeze_startup_objects() -> None:
    """Once the app is built, in a process that serves or works (wsgi.py: gunicorn, the
    command line, the job workers): what is loaded by then (modules, mappers, templates,
    catalogues) lives as long as the process, so it is moved out of the cyclic garbage
    collector's way (`gc.freeze`, after one collection so that no garbage is kept). Each
    full collection then walks only what requests and jobs allocate: the year's figures,
    which allocate enough to trigger several, took 0.1 s less on 100,000 youth."""
    gc.collect()
    gc.freeze()


def init_config(app: Flask, override: dict | None) -> None:
    """Load settings from the environment (see config.py), then apply test overrides."""
    instance = Path(os.environ.get("BLADI_INSTANCE_PATH") or app.instance_path)
    app.instance_path = str(instance)
    environ = dict(os.environ)
    if override and "BLADI_ENV" in override:
        environ["BLADI_ENV"] = override["BLADI_ENV"]
    if environ.get("BLADI_ENV", "production") != "testing" and not os.environ.get("DATABASE_URL"):
        instance.mkdir(parents=True, exist_ok=True)
    try:
        settings = load_settings(environ, instance)
    except ConfigError:
        # `flask keys generate` is how an operator gets the missing key: let it run.
        if not _is_keys_command():
            raise
        settings = load_settings({**environ, "BLADI_ENV": "testing"}, instance)
    app.config.from_mapping(settings)
    if override:
        app.config.update(override)


def _is_keys_command() -> bool:
    """True when the process is `flask ... keys generate`, which needs no secrets."""
    args = sys.argv[1:]
    return Path(sys.argv[0]).name == "flask" and "keys" in args and "generate" in args


def _sqlite_pragmas(busy_timeout_seconds: int):
    """The connect hook of a SQLite engine: WAL (readers never wait for the writer, nor the
    writer for readers), foreign keys, and how long a writer waits for another's lock."""

    def on_connect(dbapi_connection, record) -> None:
        # pysqlite opens transactions lazily and commits SAVEPOINTs on its own; hand that job
        # to SQLAlchemy (isolation_level=None + explicit BEGIN) so nested transactions behave.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        # Every commit waits for the disk, but a read page's bookkeeping (_sqlite_begin).
        cursor.execute("PRAGMA synchronous=FULL")
        record.info["synchronous"] = "FULL"
        cursor.close()

    return on_connect


def _postgres_planner(random_page_cost: float):
    """The connect hook of a PostgreSQL engine: the planner's cost of a random page read
    (BLADI_PG_RANDOM_PAGE_COST) for the connection's whole life."""

    def on_connect(dbapi_connection, _record) -> None:
        # A session setting, not a transaction's: psycopg opens none for SET in autocommit.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute(f"SET random_page_cost = {random_page_cost}")
        finally:
            dbapi_connection.autocommit = autocommit

    return on_connect


def _sqlite_begin(conn) -> None:
    # A connection asked for AUTOCOMMIT (VACUUM in a migration) must get no transaction.
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    # A write transaction takes the write lock at BEGIN, waiting up to the busy timeout.
    # Begun deferred, it would read first and fail at its first write, without waiting,
    # whenever another writer committed since its first read (WAL keeps its snapshot).
    # Set before BEGIN (SQLite refuses inside a transaction), and for reads too (one that
    # turns out to write must not inherit the bookkeeping's setting): in WAL mode, NORMAL
    # commits without syncing the log, FULL syncs it, with what came before.
    # Both go straight to the driver: through SQLAlchemy's execution (a result object, the
    # cursor events) each cost 30 to 60 µs, twice on every page that shows a youth.
    # A failure is raised as SQLAlchemy's own ("database is locked": OperationalError).
    raw = conn.connection.driver_connection

    def run(statement: str) -> None:
        try:
            raw.execute(statement)
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from None

    synchronous = "FULL" if waits_for_disk() else "NORMAL"
    if conn.info.get("synchronous") != synchronous:
        run(f"PRAGMA synchronous={synchronous}")
        conn.info["synchronous"] = synchronous
    # Reads stay deferred: they never wait, and hold no lock a writer waits for.
    run("BEGIN IMMEDIATE" if begins_writing() else "BEGIN")


def init_database(app: Flask) -> None:
    """Bind SQLAlchemy and Alembic; commit once per request, roll back on any error."""
    from . import models  # noqa: F401  (register every table on the metadata)
    from .services import jobs

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    with app.app_context():
        engine: Engine = db.engine
        cost = app.config.get("BLADI_PG_RANDOM_PAGE_COST")
        if engine.dialect.name == "postgresql" and cost \
                and not getattr(engine, "_bladi_planner", False):
            # Each new connection's planner (config.py says why), set on the connection so
            # that options the URL gives the server (a statement_timeout...) stay.
            event.listen(engine, "connect", _postgres_planner(float(cost)))
            engine._bladi_planner = True
        if engine.dialect.name == "sqlite" and not getattr(engine, "_bladi_hooked", False):
            event.listen(engine, "connect",
                         _sqlite_pragmas(app.config["BLADI_SQLITE_BUSY_SECONDS"]))
            event.listen(engine, "begin", _sqlite_begin)
            engine._bladi_hooked = True

    @app.after_request
    def commit_once(response):
        # The one commit of the request: services only flush.
        if response.status_code >= 400:
            db.session.rollback()
            jobs.forget_pending()
            return response
        # With a read request's own writes (its audit entries...), now that the page is
        # built: on SQLite in one short write transaction of their own, so no reader holds
        # the write lock while rendering (transactions.py).
        commit_request()
        # The jobs it started exist now: a worker can find them.
        jobs.dispatch_pending()
        return response

    @app.teardown_request
    def rollback_on_error(exc):
        if exc is not None:
            db.session.rollback()


def init_login(app: Flask) -> None:
    """Flask-Login: sessions carry the user's public id and nonce (see User.get_id), and the
    token of a live login session on the server (services/auth/sessions.py)."""
    from flask import session

    from .services.auth import sessions

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(identity: str):
        public_id, _, nonce = (identity or "").partition(".")
        try:
            import uuid

            key = uuid.UUID(public_id)
        except ValueError:
            return None
        # The user and the login session of the cookie's token: one query per request.
        found = sessions.load(key, session.get(sessions.TOKEN_KEY))
        if found is None:
            return None
        user, row = found
        # A changed nonce (password change, deactivation, role change) ends the session.
        if not user.active or user.session_nonce != nonce:
            return None
        # Logged out, ended from another device, idle too long, too old: anonymous.
        if sessions.check_row(user, row) is None:
            return None
        return user


def init_i18n(app: Flask) -> None:
    """Flask-Babel with the catalogs in translations/, and the template helpers.

    Every titled enum is a template global under `enums`, by class name, so a template
    writes `{{ enums.Sex.label_of(b.sex) }}` or loops over `enums.Sex.choices()`."""
    from flask import request

    from .i18n import WTFORMS_MESSAGES, select_locale, template_helpers
    from .models import titled_enums

    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(ROOT / "translations")
    babel.init_app(app, locale_selector=select_locale)
    # The templates' gettext straight to the app's domain (extensions.AppBabel), whose
    # catalogue is found once per request: Flask-Babel's own callables look the domain up
    # again on each {% trans %} (a page has 40 or more).
    def catalogue():
        return babel.domain_instance.get_translations()

    app.jinja_env.install_gettext_callables(
        gettext=lambda s: catalogue().ugettext(s),
        ngettext=lambda s, p, n: catalogue().ungettext(s, p, n),
        pgettext=lambda c, s: catalogue().upgettext(c, s),
        npgettext=lambda c, s, p, n: catalogue().unpgettext(c, s, p, n),
        newstyle=True)

    @app.before_request
    def wtforms_messages():
        # Where Flask-WTF looks first (flask_wtf.i18n): WTForms' messages read once.
        request.wtforms_translations = WTFORMS_MESSAGES
    app.context_processor(template_helpers)
    app.jinja_env.globals["enums"] = SimpleNamespace(**titled_enums())


def init_policy(app: Flask) -> None:
    """CSRF on every form, and the route permission check before every request."""
    from .menu import main_nav
    from .policy import Perm, can, enforce_route_permission, may
    from .privacy.suppression import published

    csrf.init_app(app)
    app.before_request(enforce_route_permission)
    app.jinja_env.globals.update(can=can, may=may, Perm=Perm, main_nav=main_nav)
    # How a figure that leaves the CSO reads ("…", "12"): one function, also in templates.
    app.jinja_env.filters["published"] = published


def init_limits(app: Flask) -> None:
    """Rate limits (Flask-Limiter), counted in Redis when REDIS_URL is set, else in this
    process's memory; which requests they limit: blueprints/limits.py."""
    limiter.init_app(app)


def init_blueprints(app: Flask) -> None:
    """Register each feature's blueprint."""
    from .blueprints.activities import bp as activities_bp
    from .blueprints.admin import bp as admin_bp
    from .blueprints.audit import bp as audit_bp
    from .blueprints.auth import bp as auth_bp
    from .blueprints.beneficiaries import bp as beneficiaries_bp
    from .blueprints.cases import bp as cases_bp
    from .blueprints.field import bp as field_bp
    from .blueprints.jobs import bp as jobs_bp
    from .blueprints.main import bp as main_bp
    from .blueprints.reports import bp as reports_bp
    from .blueprints.surveys import bp as surveys_bp

    for blueprint in (main_bp, auth_bp, admin_bp, audit_bp, beneficiaries_bp, activities_bp,
                      cases_bp, surveys_bp, reports_bp, field_bp, jobs_bp):
        app.register_blueprint(blueprint)


def init_errors(app: Flask) -> None:
    """Error pages in the user's language; never a traceback outside debug."""
    from .errors import register_error_handlers

    register_error_handlers(app)


# Browsers keep to HTTPS for a year once they have seen this over HTTPS (at least 180 days
# is what scanners ask for); sent over HTTPS only, where a browser heeds it.
HSTS = "max-age=31536000; includeSubDomains"


def init_headers(app: Flask) -> None:
    """Security headers on every response; no caching of pages that may hold personal data.

    Behind BLADI_PROXY_HOPS trusted reverse proxies, werkzeug's ProxyFix takes the client's
    address and scheme from X-Forwarded-For and X-Forwarded-Proto, so a request the proxy
    received over HTTPS is `request.is_secure` (and gets HSTS) although the proxy talks
    plain HTTP to gunicorn. With 0 (the default) those headers, which a client can forge,
    are ignored."""
    hops = app.config.get("BLADI_PROXY_HOPS", 0)
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        )
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.endpoint != "static":
            headers.setdefault("Cache-Control", "no-store")
        return response

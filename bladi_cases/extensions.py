"""Flask extensions, created unbound here and bound to the app in create_app."""

from flask import Flask, current_app, g, request
from flask_babel import Babel, Domain
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from werkzeug.utils import cached_property

# A naming convention makes constraint names stable, so migrations can drop and
# alter them by name on every database (SQLite batch mode needs this).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class AppLimiter(Limiter):
    """Flask-Limiter, counting in the storage of the app that serves the request.

    Flask-Limiter keeps one storage per extension object, and this object is shared by
    every app of the process; the tests build several apps (each with its own REDIS_URL or
    none), which would otherwise all count in the storage of the app built last."""

    def init_app(self, app: Flask) -> None:
        """Bind to `app`, with a storage of its own (RATELIMIT_STORAGE_URI, see config.py)."""
        super().init_app(app)
        app.extensions["bladi_rate_limiter"] = self._limiter

    @property
    def limiter(self):
        """The counting strategy over the current app's storage (or the fallback in
        memory while Redis cannot be reached)."""
        if self._storage_dead and self._fallback_limiter is not None:
            return self._fallback_limiter
        return current_app.extensions["bladi_rate_limiter"]

    @property
    def storage(self):
        """The current app's storage: Redis, or this process's memory."""
        return current_app.extensions["bladi_rate_limiter"].storage


def _client_address() -> str:
    return request.remote_addr or "unknown"


class Base(DeclarativeBase):
    """Declarative base of every model, carrying the constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _RequestDomain(Domain):
    """Flask-Babel's message domain, finding the request's catalogue once per request.

    Flask-Babel looks the locale and its catalogue up again on every call (about 6 µs), and
    a page of 25 rows translates a few hundred strings (each enum label is one): the
    catalogue is kept beside the locale it was found for, so a locale changed in the
    request (`flask_babel.refresh`) finds its own."""

    def get_translations(self):
        state = _babel_state()
        if state is not None:
            memo = state.__dict__.get("bladi_translations")
            if memo is not None and memo[0] is state.__dict__.get("babel_locale"):
                return memo[1]
        translations = super().get_translations()
        state = _babel_state()
        if state is not None and state.__dict__.get("babel_locale") is not None:
            state.bladi_translations = (state.babel_locale, translations)
        return translations


def _babel_state():
    """Flask-Babel's state of the current app context (its locale...), or None: `g`
    resolved once (each use of the proxy resolves it again, about 0.5 µs)."""
    try:
        return g._get_current_object().__dict__.get("_flask_babel")
    except RuntimeError:  # outside an app context
        return None


class AppBabel(Babel):
    """Flask-Babel, with the catalogue found once per request (`_RequestDomain`)."""

    @cached_property
    def domain_instance(self):
        """The message domain of the app's catalogues."""
        return _RequestDomain(domain=self.domain)


db = SQLAlchemy(model_class=Base)
migrate = Migrate(compare_type=True, render_as_batch=True)
login_manager = LoginManager()
babel = AppBabel()
csrf = CSRFProtect()
# Which requests are limited and by what key: blueprints/limits.py. A moving window (no burst
# at a window's edge); when Redis cannot be reached, each process counts in its own memory
# rather than refuse every request or let every request through.
limiter = AppLimiter(key_func=_client_address, strategy="moving-window", key_prefix="bladi",
                     in_memory_fallback_enabled=True)

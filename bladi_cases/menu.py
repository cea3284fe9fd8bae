"""The main menu of every page, rendered once per role, language and page rather than on
every request."""

from __future__ import annotations

from flask import current_app, request
from flask_babel import get_locale
from flask_login import current_user
from markupsafe import Markup

from .fragments import kept_fragment


def main_nav() -> Markup:
    """The `<nav>` of base.html (templates/_nav.html) for the current request.

    It depends only on the role (its permissions), the language, the page's endpoint (the
    link marked current) and where the app is mounted, so it is rendered once per such key
    in each process (`kept_fragment`): about a dozen permission checks, URLs and
    translations, 0.3 ms of every page otherwise."""
    key = (current_user.role, str(get_locale()), request.endpoint, request.script_root)
    return kept_fragment("menu", key, _render)


def _render() -> str:
    # A fragment of the page, not a page: rendered without Flask's template signals (which
    # announce the page itself, once).
    context: dict = {}
    current_app.update_template_context(context)
    return current_app.jinja_env.get_template("_nav.html").render(context)

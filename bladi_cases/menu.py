"""The main menu of every page, rendered once per role, language and page rather than on
every request."""

from __future__ import annotations

from flask import current_app, request
from flask_babel import get_locale
from flask_login import current_user
from markupsafe import Markup

# Distinct menus kept per process: 5 roles x 3 languages x the endpoints a role opens is a
# few hundred; past this (a script walking odd endpoints) the cache starts again.
MENU_LIMIT = 2048


def main_nav() -> Markup:
    """The `<nav>` of base.html (templates/_nav.html) for the current request.

    It depends only on the role (its permissions), the language, the page's endpoint (the
    link marked current) and where the app is mounted, so it is rendered once per such key
    in each process: about a dozen permission checks, URLs and translations, 0.3 ms of
    every page otherwise."""
    key = (current_user.role, str(get_locale()), request.endpoint, request.script_root)
    menus = current_app.extensions.setdefault("bladi_menus", {})
    html = menus.get(key)
    if html is None:
        if len(menus) >= MENU_LIMIT:
            menus.clear()
        # A fragment of the page, not a page: rendered without Flask's template signals
        # (which announce the page itself, once).
        context: dict = {}
        current_app.update_template_context(context)
        html = menus[key] = Markup(current_app.jinja_env.get_template("_nav.html")
                                   .render(context))
    return html

"""Views of the field app's page, service worker and manifest. The page holds no youth
data: the phone fetches what it needs from the JSON API while online and keeps it in
IndexedDB for the logged-in worker."""

from __future__ import annotations

import hashlib
import json

from flask import current_app, make_response, render_template, request, url_for
from flask_babel import gettext as _

from ...fragments import kept_fragment
from ...i18n import text_direction, ui_language
from ...policy import Perm, public, requires
from ..beneficiaries.forms import RegistrationForm
from ..beneficiaries.views import prepare_form, registration_choices
from . import bp

# Files the service worker keeps for the app to start with no connection.
SHELL = ("css/app.css", "js/app.js", "js/offline.js", "js/xpath.min.js", "js/field.js",
         "img/icon.svg")


@bp.get("/field")
@requires(Perm.ACTIVITIES)
def page():
    """The field app: today's attendance, registration, surveys and case notes, entered
    with or without a connection, and the queue of what waits to be sent."""
    # The content holds no user's data: it follows from the language, the form's choices
    # and starting values that come from the database (the other fields' choices are
    # enums, their labels the language's) and the links' root, so it is rendered once for
    # each of these; the form itself is built only then.
    choices = registration_choices()
    key = (ui_language(), choices, request.script_root)

    def render() -> str:
        form = prepare_form(RegistrationForm(), with_site=True, choices=choices)
        states = {"waiting": _("Waiting"), "sending": _("Sending"), "conflict": _("Conflict"),
                  "rejected": _("Rejected")}
        types = {"session": _("Attendance"), "registration": _("Registration"),
                 "survey_response": _("Survey"), "case_note": _("Case note"),
                 "follow_up": _("Follow-up")}
        return render_template("field/_content.html", form=form, states=states, types=types)

    content = kept_fragment("field", key, render)
    return render_template("field/field.html", content=content)


@bp.get("/sw.js")
@public
def service_worker():
    """The service worker, from the site's root so it may serve every page. Its cache name
    follows the shell's versions: a new release replaces the old cache."""
    assets = current_app.extensions["bladi_assets"]
    urls = [url_for("static", filename=assets.fingerprinted(name)) for name in SHELL]
    version = hashlib.sha256(json.dumps(urls).encode()).hexdigest()[:12]
    body = render_template("field/sw.js", urls=urls, version=version,
                           field=url_for(".page"))
    response = make_response(body)
    response.headers["Content-Type"] = "application/javascript; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/manifest.webmanifest")
@public
def manifest():
    """What a phone needs to install the app on its home screen."""
    assets = current_app.extensions["bladi_assets"]
    body = {
        "name": "BLADI Cases", "short_name": "BLADI",
        "description": _("Case records and attendance for the BLADI program."),
        "start_url": url_for(".page"), "scope": "/", "display": "standalone",
        "lang": ui_language(), "dir": text_direction(),
        "background_color": "#ffffff", "theme_color": "#1f5f8b",
        "icons": [{"src": url_for("static", filename=assets.fingerprinted("img/icon.svg")),
                   "sizes": "any", "type": "image/svg+xml", "purpose": "any"}],
    }
    response = make_response(json.dumps(body, ensure_ascii=False))
    response.headers["Content-Type"] = "application/manifest+json; charset=utf-8"
    return response

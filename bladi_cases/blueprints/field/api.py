"""Views of the field app's JSON API (`field.api`, /api/v1): thin, each one service call
and a JSON answer."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import current_app, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from ...errors import render_error
from ...i18n import ui_language
from ...policy import Perm, public, requires
from ...services import inputs
from ...services.field import data as field_data
from ...services.field import sync as sync_service
from . import api_bp as bp
from .openapi import build_spec, documented


def _user():
    return current_user._get_current_object()


@bp.get("/me")
@requires(Perm.HOME)
@documented("Who is logged in, and a fresh CSRF token", "Me")
def me():
    """The user, their organisation, a CSRF token for POST requests, the server's time."""
    user, lang = _user(), ui_language()
    org = user.organization
    return jsonify(
        user={"id": str(user.uuid), "name": user.display_name, "role": user.role,
              "language": lang},
        organization={"code": org.code, "name": org.name(lang)} if org else None,
        csrf_token=generate_csrf(), server_time=datetime.now(UTC).isoformat())


@bp.get("/activities")
@requires(Perm.ACTIVITIES)
@documented("The worker's activities and their rosters", "Activities")
def activities():
    """Active activities (a worker's own; all the CSO's for a manager) with today's roster;
    names only on the user's own activities (the read is audited)."""
    return jsonify(activities=field_data.activities(_user(), date.today()))


@bp.get("/sessions/today")
@requires(Perm.ACTIVITIES)
@documented("Today's planned sessions", "SessionsToday")
def sessions_today():
    """The sessions planned today (as on the home page) and whether each is recorded."""
    today = date.today()
    return jsonify(date=today.isoformat(), sessions=field_data.sessions_today(_user(), today))


@bp.get("/surveys")
@requires(Perm.SURVEYS_FILL)
@documented("The survey versions to fill", "Surveys")
def surveys():
    """The current published version of each survey the user may fill."""
    return jsonify(surveys=field_data.fillable_surveys(_user(), ui_language()))


@bp.get("/registration-options")
@requires(Perm.BENEFICIARIES)
@documented("The choices of the registration form", "RegistrationOptions")
def registration_options():
    """Sites, governorates and every choice and rule of the registration form."""
    return jsonify(field_data.registration_options(_user(), ui_language()))


@bp.get("/cases")
@requires(Perm.CASES)
@documented("The worker's open cases and follow-ups", "Cases")
def cases():
    """Open cases (a worker's own; all the CSO's for a manager) with the notes' follow-ups
    not done; the youth's name only on the user's own cases (audited)."""
    return jsonify(cases=field_data.open_cases(_user()))


@bp.post("/sync")
@requires(Perm.SYNC)
@documented("Send records made offline", "SyncResponse", request="SyncRequest",
            errors=(400, 401, 403, 413, 429))
def sync():
    """Store each record once, in order, each in its own savepoint; one result per record,
    in the same order. Sending the same batch again is safe."""
    if (request.content_length or 0) > inputs.MAX_JSON_BYTES:  # refused before reading it
        return render_error(413, message=_("Send at most %(mb)d MB at a time.",
                                           mb=inputs.MAX_JSON_BYTES // inputs.MB))
    try:
        body = inputs.parse_json(request.get_data())
    except inputs.InputRefused as refused:
        return render_error(refused.status, message=refused.messages[0])
    records = body.get("records") if isinstance(body, dict) and request.is_json else None
    if not isinstance(records, list):
        return render_error(400, message=_("Send a JSON object with a list of records."))
    if len(records) > sync_service.MAX_RECORDS:
        return render_error(413, message=_("Send at most %(n)d records at a time.",
                                           n=sync_service.MAX_RECORDS))
    outcomes = sync_service.sync_batch(_user(), records)
    return jsonify(results=[outcome.as_json() for outcome in outcomes])


@bp.get("/openapi.json")
@public
@documented("This document", "OpenAPIDocument", errors=())
def openapi():
    """The OpenAPI 3 document of this API, generated from the code."""
    return jsonify(build_spec(current_app))

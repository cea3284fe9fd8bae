"""Activities: clubs and workshops, their sessions and attendance, group events."""

from flask import Blueprint

bp = Blueprint("activities", __name__, url_prefix="/activities")

from . import events, views  # noqa: E402,F401

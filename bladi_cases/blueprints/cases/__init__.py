"""Case management: case files, notes, referrals, outcomes, follow-ups, transfers."""

from flask import Blueprint

bp = Blueprint("cases", __name__, url_prefix="/cases")

from . import directory, views  # noqa: E402,F401

"""Background jobs as their owner sees them: progress, outcome, the file to download."""

from flask import Blueprint

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

from . import views  # noqa: E402,F401

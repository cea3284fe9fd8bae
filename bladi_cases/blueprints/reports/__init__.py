"""Upward reporting: dashboards, quarterly reports and their review, targets, exports."""

from flask import Blueprint

bp = Blueprint("reports", __name__, url_prefix="/reports")

from . import exports, views  # noqa: E402,F401

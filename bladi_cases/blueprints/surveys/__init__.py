"""Surveys: definitions (XLSForm import/export, versions), filling on a phone, responses."""

from flask import Blueprint

bp = Blueprint("surveys", __name__, url_prefix="/surveys")

from . import fill, views  # noqa: E402,F401

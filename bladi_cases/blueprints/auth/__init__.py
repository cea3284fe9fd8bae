"""Login, logout, own password, one-time reset codes."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import views  # noqa: E402,F401

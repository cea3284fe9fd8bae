"""Login (with its second factor), logout, own password, one-time reset codes."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import second_factor, views  # noqa: E402,F401

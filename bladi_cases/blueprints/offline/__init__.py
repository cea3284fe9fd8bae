"""The field worker's offline app: the installable web app's manifest and service worker,
and the one page that works without a connection (entries queue on the phone)."""

from flask import Blueprint

bp = Blueprint("offline", __name__)

from . import views  # noqa: E402,F401

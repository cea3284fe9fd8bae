"""The field worker's offline app: the one page that works without a connection (entries
queue on the phone), the installable web app's manifest and service worker, and, nested
as `field.api` under /api/v1, the JSON API the phone downloads from and syncs to.

The API uses the session-cookie login and CSRF header of the web pages; its errors are JSON
{"error": code, "message": text}."""

from flask import Blueprint

bp = Blueprint("field", __name__)
api_bp = Blueprint("api", __name__, url_prefix="/api/v1")

from ..limits import limit_api_writes  # noqa: E402
from . import api, views  # noqa: E402,F401

limit_api_writes(api_bp)

bp.register_blueprint(api_bp)

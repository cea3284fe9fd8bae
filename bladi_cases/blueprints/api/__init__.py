"""The JSON API of the offline field app (/api/v1): what a phone downloads, and the
retry-safe batch sync of what it recorded offline. Session-cookie login and CSRF header,
as the web pages; errors as JSON {"error": code, "message": text}."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import views  # noqa: E402,F401

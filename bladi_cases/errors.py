"""Error pages, in the user's language, without tracebacks."""

from __future__ import annotations

import math
import time

from flask import Flask, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import limiter


def _messages() -> dict[int, tuple[str, str]]:
    return {
        400: (_("Bad request"), _("The request could not be understood.")),
        401: (_("Not logged in"), _("Log in to continue.")),
        403: (_("Not allowed"), _("Your account does not have access to this page.")),
        404: (_("Page not found"),
              _("This page does not exist, or you do not have access to it.")),
        405: (_("Not allowed"), _("This action cannot be done this way.")),
        409: (_("Conflict"), _("This was already saved with other content.")),
        413: (_("File too large"),
              _("What you sent is too large. Files up to 5 MB are accepted.")),
        422: (_("Not accepted"), _("Some values are not accepted.")),
        429: (_("Too many requests"), _("Please wait a moment and try again.")),
        500: (_("Something went wrong"),
              _("The error was recorded. Please try again; if it persists, tell your "
                "administrator.")),
    }


# Machine-readable error codes of the JSON API ({"error": code, "message": text}).
API_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                   405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                   422: "unprocessable", 429: "too_many_requests", 500: "server_error"}


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def render_error(code: int, title: str | None = None, message: str | None = None,
                 api_code: str | None = None):
    """Render the error page for an HTTP status code (JSON under /api/)."""
    default_title, default_message = _messages().get(code, _messages()[500])
    title, message = title or default_title, message or default_message
    if request.path.startswith("/api/"):
        return jsonify(error=api_code or API_ERROR_CODES.get(code, "error"),
                       message=message), code
    if _wants_json():
        return jsonify(error=title, message=message), code
    return render_template("errors/error.html", code=code, title=title, message=message), code


def _retry_after() -> int:
    """Seconds until the limit just exceeded lets a request through again (at least 1)."""
    breached = limiter.current_limit
    if breached is None:
        return 60
    return max(1, math.ceil(breached.reset_at - time.time()))


def register_error_handlers(app: Flask) -> None:
    """Attach the handlers: CSRF failures, HTTP errors, and unexpected exceptions."""

    @app.errorhandler(CSRFError)
    def csrf_failed(_error):
        return render_error(
            400, _("The form has expired"),
            _("For your security the form could not be accepted. Reload the page and "
              "try again."), api_code="csrf_failed")

    @app.errorhandler(RateLimitExceeded)
    def too_many_requests(_error):
        # Says when to try again, in words and in Retry-After (the field app waits as long).
        seconds = _retry_after()
        # (Flask-Limiter's reset time carries one spare second: "1 minute" for 61 seconds.)
        minutes = max(1, math.ceil((seconds - 1) / 60))
        response = make_response(render_error(429, message=ngettext(
            "Too many requests in a short time. Try again in %(num)d minute.",
            "Too many requests in a short time. Try again in %(num)d minutes.", minutes)))
        response.headers["Retry-After"] = str(seconds)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        return render_error(error.code)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        app.logger.exception("Unhandled error on %s", request.path)
        if app.debug:
            raise error
        try:
            return render_error(500)
        except Exception:  # the error page itself failed: answer plainly
            return InternalServerError().get_response()

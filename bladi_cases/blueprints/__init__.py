"""Feature blueprints, and small helpers their views share."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, url_for


def safe_next(target: str | None, default_endpoint: str = "main.home") -> str:
    """A redirect target that stays on this site (no open redirects)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") \
                and not target.startswith("//") and "\\" not in target:
            return target
    return url_for(default_endpoint)


def page_number(raw: str | None) -> int:
    """A 1-based page number from a query string value; bad values give page 1."""
    try:
        return max(1, min(int(raw or 1), 100_000))
    except ValueError:
        return 1


def flash_refusal(failure) -> None:
    """Show a service's ValidationError as one message (for the small POST forms that
    redirect back instead of re-rendering)."""
    flash(" ".join(str(m) for msgs in failure.errors.values() for m in msgs), "error")


def run_action(done: str, action, *args) -> bool:
    """Call one service action; flash `done` or the refusal (rolled back). True if done."""
    from ..extensions import db
    from ..services import ValidationError

    try:
        action(*args)
    except ValidationError as failure:
        db.session.rollback()
        flash_refusal(failure)
        return False
    flash(done, "success")
    return True

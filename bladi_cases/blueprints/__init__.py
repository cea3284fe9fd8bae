"""Feature blueprints, and small helpers their views share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from flask import current_app, flash, render_template, url_for
from flask_wtf import FlaskForm
from wtforms.csrf.core import CSRFTokenField

from ..extensions import db
from ..services import ValidationError, apply_errors

T = TypeVar("T")


class Form(FlaskForm):
    """The app's forms: Flask-WTF's, with a hidden CSRF input that has no id. WTForms gives
    it the id "csrf_token" in every form, so a page of several forms (a youth's record, a
    case) repeated that id: invalid HTML, and a page's ids must each name one element (a
    label or an error names its input by id). The route walk checks every page for it."""

    class Meta:
        def render_field(self, field, render_kw):
            """Render `field`; the CSRF input without an id (False leaves it out)."""
            if isinstance(field, CSRFTokenField):
                render_kw = {"id": False, **render_kw}
            return super().render_field(field, render_kw)


def safe_next(target: str | None, default_endpoint: str = "main.home") -> str:
    """A redirect target that stays on this site (no open redirects)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") \
                and not target.startswith("//") and "\\" not in target:
            return target
    return url_for(default_endpoint)


def page_size() -> int:
    """Rows per page of a list (BLADI_PAGE_SIZE)."""
    return current_app.config["BLADI_PAGE_SIZE"]


def page_number(raw: str | None) -> int:
    """A 1-based page number from a query string value; bad values give page 1."""
    try:
        return max(1, min(int(raw or 1), 100_000))
    except ValueError:
        return 1


def flash_refusal(failure: ValidationError) -> None:
    """Show a service's ValidationError as one message (for the small POST forms that
    redirect back instead of re-rendering)."""
    flash(" ".join(str(m) for msgs in failure.errors.values() for m in msgs), "error")


def attempt(call: Callable[[], T]) -> tuple[T | None, ValidationError | None]:
    """Call one service action: (its result, None), or (None, the refusal) after rolling
    back whatever it flushed, so a refused change is never half-saved, whatever status
    the page then answers."""
    try:
        return call(), None
    except ValidationError as failure:
        db.session.rollback()
        return None, failure


@dataclass
class Done:
    """A service action that went through, and what it returned."""

    value: object = None


def form_action(form: FlaskForm, call: Callable[[], object]) -> Done | None:
    """The form-handling step of a view: when the form was posted and passes its own
    checks, call the one service action. A refusal is rolled back and its messages go on
    the form's fields (the page then answers 422: see `form_page`). None when nothing
    went through."""
    if not form.validate_on_submit():
        return None
    value, failure = attempt(call)
    if failure is not None:
        apply_errors(form, failure)
        return None
    return Done(value)


def form_page(template: str, form: FlaskForm, status: int | None = None, **context):
    """Render a form's page: 422 when the form carries errors (its own or a service's),
    else 200 (or `status`)."""
    if status is None:
        status = 422 if form.errors or form.form_errors else 200
    return render_template(template, form=form, **context), status


def run_action(done: str, action: Callable, *args, **kwargs) -> bool:
    """Call one service action for a small POST form that redirects back; flash `done` or
    the refusal (rolled back). True if done."""
    _value, failure = attempt(lambda: action(*args, **kwargs))
    if failure is not None:
        flash_refusal(failure)
        return False
    flash(done, "success")
    return True

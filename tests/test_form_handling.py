"""The one form-handling step of the views (blueprints.form_action, run_action, attempt): a
service's refusal is rolled back, whatever it had flushed, and the page answers 422."""

from __future__ import annotations

from flask import get_flashed_messages
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired

from bladi_cases.blueprints import attempt, form_action, form_page, run_action
from bladi_cases.extensions import db
from bladi_cases.models import User
from bladi_cases.services import ValidationError


class _NameForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired()])


def _rename_then_refuse(user: User):
    """A service that flushes a change, then refuses (as a rule checked late would)."""

    def action():
        user.display_name = "half-saved"
        db.session.flush()
        raise ValidationError.one("name", "Refused by the service.")

    return action


def _stored_name(user_id: int) -> str:
    db.session.expire_all()
    return db.session.get(User, user_id).display_name


def test_a_refusal_is_rolled_back_and_lands_on_the_field(app, make_user):
    user = make_user()
    with app.test_request_context("/", method="POST", data={"name": "x"}):
        form = _NameForm(meta={"csrf": False})
        assert form_action(form, _rename_then_refuse(user)) is None
        assert form.name.errors == ["Refused by the service."]
        _html, status = form_page("errors/error.html", form, code=422, title="", message="")
        assert status == 422
    assert _stored_name(user.id) != "half-saved"


def test_a_small_post_form_flashes_the_refusal_and_keeps_nothing(app, make_user):
    user = make_user()
    with app.test_request_context("/", method="POST"):
        assert run_action("Done.", _rename_then_refuse(user)) is False
        assert get_flashed_messages(with_categories=True) == [
            ("error", "Refused by the service.")]
    assert _stored_name(user.id) != "half-saved"


def test_an_invalid_form_never_calls_the_service(app):
    calls = []
    with app.test_request_context("/", method="POST", data={"name": ""}):
        form = _NameForm(meta={"csrf": False})
        assert form_action(form, lambda: calls.append(1)) is None
        assert calls == [] and form.name.errors
        assert form_page("errors/error.html", form, code=422, title="", message="")[1] == 422


def test_what_goes_through_is_returned(app):
    with app.test_request_context("/", method="POST", data={"name": "Amal"}):
        form = _NameForm(meta={"csrf": False})
        done = form_action(form, lambda: form.name.data.upper())
        assert done and done.value == "AMAL"
        assert form_page("errors/error.html", form, code=200, title="", message="")[1] == 200
        assert attempt(lambda: 7) == (7, None)

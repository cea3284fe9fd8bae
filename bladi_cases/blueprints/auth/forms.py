"""Forms of the auth blueprint."""

from flask_babel import lazy_gettext as _l
from wtforms import EmailField, HiddenField, IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length
from wtforms.widgets import HiddenInput

from .. import Form


class LoginForm(Form):
    """Email and password."""

    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)],
                       render_kw={"autocomplete": "username", "dir": "ltr"})
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)],
                             render_kw={"autocomplete": "current-password"})
    next = HiddenField()



class ResetPasswordForm(Form):
    """A new password typed twice (choosing one through a one-time code)."""

    new_password = PasswordField(
        _l("New password"), validators=[DataRequired()],
        description=_l("At least 12 characters. A few uncommon words are easy to remember and "
                       "hard to guess; not your name, your email or a common password."),
        render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), EqualTo("new_password", message=_l("The passwords differ."))],
        render_kw={"autocomplete": "new-password"})


class ChangePasswordForm(ResetPasswordForm):
    """The current password, then the new one twice."""

    current_password = PasswordField(_l("Current password"), validators=[DataRequired()],
                                     render_kw={"autocomplete": "current-password"})


class EndSessionForm(Form):
    """Which of one's login sessions to end (a button on the sessions page)."""

    login_session = IntegerField(widget=HiddenInput(), validators=[DataRequired()])


_CODE_INPUT = {"autocomplete": "one-time-code", "dir": "ltr", "autocapitalize": "off",
               "spellcheck": "false"}


class SecondFactorForm(Form):
    """The code of the second factor at a login: from the app, or a recovery code."""

    code = StringField(
        _l("Code"), validators=[DataRequired(), Length(max=40)],
        description=_l("The 6-digit code your app shows now, or one of your recovery codes."),
        render_kw=_CODE_INPUT)


class AppCodeForm(Form):
    """A code from the app: confirming an enrolment, or asking for new recovery codes."""

    code = StringField(
        _l("Code from the app"), validators=[DataRequired(), Length(max=20)],
        description=_l("6 digits; a new one every 30 seconds."),
        render_kw={**_CODE_INPUT, "inputmode": "numeric"})


class ButtonForm(Form):
    """An empty form: a POST button with its CSRF token."""

"""Views of the auth blueprint."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from ...policy import Perm, public, requires
from ...services import auth as auth_service
from ...services.audit import Action, record
from .. import form_action, form_page, safe_next
from . import bp
from .forms import ChangePasswordForm, LoginForm, ResetPasswordForm


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """Log in with email and password; one generic message for every failure."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = auth_service.authenticate(form.email.data, form.password.data)
        if user is not None:
            return finish_login(user, form.next.data)
        form.form_errors.append(str(auth_service.GENERIC_LOGIN_ERROR))
    return render_template("auth/login.html", form=form)


def finish_login(user, next_url: str | None):
    """The one place a login session starts, once every factor has passed: a fresh
    session (no fixation), then on to where the user was going."""
    session.clear()
    login_user(user)
    session.permanent = True
    return redirect(safe_next(next_url))


@bp.post("/logout")
@requires(Perm.ACCOUNT)
def logout():
    """Log out (a POST, so a link elsewhere cannot log anyone out)."""
    record(Action.LOGOUT, actor=current_user, obj=current_user)
    logout_user()
    session.clear()
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@requires(Perm.ACCOUNT)
def change_password():
    """Change one's own password; other sessions of the account end."""
    form = ChangePasswordForm()
    if form_action(form, lambda: auth_service.change_own_password(
            current_user, form.current_password.data, form.new_password.data)):
        # Re-issue this session with the new nonce (the real user, not the proxy).
        login_user(current_user._get_current_object())
        flash(_("Your password was changed. Other sessions were logged out."), "success")
        return redirect(url_for("main.home"))
    return form_page("auth/change_password.html", form)


@bp.route("/reset/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str):
    """Choose a new password with the one-time code a manager handed over."""
    reset = auth_service.find_reset(token)
    if reset is None:
        abort(404)
    form = ResetPasswordForm()
    if form_action(form, lambda: auth_service.use_reset(reset, form.new_password.data)):
        logout_user()
        flash(_("Your password is set. You can log in now."), "success")
        return redirect(url_for("auth.login"))
    return form_page("auth/reset_password.html", form, account=reset.user)

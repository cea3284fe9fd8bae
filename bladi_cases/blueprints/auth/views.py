"""Views of the auth blueprint."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from ...policy import Perm, public, requires
from ...services import auth as auth_service
from ...services.audit import Action, record
from .. import form_action, form_page, safe_next
from ..limits import login_limits, reset_limits
from . import bp, pending
from .forms import ChangePasswordForm, EndSessionForm, LoginForm, ResetPasswordForm


@bp.route("/login", methods=["GET", "POST"])
@public
@login_limits
def login():
    """Log in with email and password; one generic message for every failure. Then the
    second factor where the account has one or its role requires one (second_factor.py)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = auth_service.authenticate(form.email.data, form.password.data)
        if user is not None:
            stage = auth_service.second_factor.after_password(user)
            if stage is None:
                return finish_login(user, form.next.data)
            return pending.hold(user, form.next.data, stage)
        form.form_errors.append(str(auth_service.GENERIC_LOGIN_ERROR))
    return render_template("auth/login.html", form=form)


def finish_login(user, next_url: str | None):
    """The one place a login session starts, once every factor has passed: a fresh
    session (no fixation), then on to where the user was going."""
    auth_service.clear_failures(user)
    session.clear()
    _open_login_session(user)
    return redirect(safe_next(next_url))


def _open_login_session(user) -> None:
    """Log `user` in on this device: a LoginSession row on the server, its token in the
    cookie (a fresh login, or this device's own session again after a password change)."""
    token = auth_service.sessions.start(user, request.user_agent.string)
    login_user(user)
    session[auth_service.sessions.TOKEN_KEY] = token
    session.permanent = True


@bp.post("/logout")
@requires(Perm.ACCOUNT)
def logout():
    """Log out (a POST, so a link elsewhere cannot log anyone out)."""
    record(Action.LOGOUT, actor=current_user, obj=current_user)
    # Ends on the server, so a copy of this cookie taken before is refused too.
    auth_service.sessions.end_current(session.get(auth_service.sessions.TOKEN_KEY))
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
        # Every session ended with the change: this device gets a new one (with the new
        # nonce; the real user, not the proxy).
        _open_login_session(current_user._get_current_object())
        flash(_("Your password was changed. Other sessions were logged out."), "success")
        return redirect(url_for("main.home"))
    return form_page("auth/change_password.html", form)


@bp.route("/reset/<token>", methods=["GET", "POST"])
@public
@reset_limits
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


@bp.get("/account/sessions")
@requires(Perm.ACCOUNT)
def login_sessions():
    """The user's live login sessions (device, started, last seen), to end any of them."""
    token = session.get(auth_service.sessions.TOKEN_KEY)
    return render_template(
        "auth/sessions.html",
        login_sessions=auth_service.sessions.live_sessions(current_user, token),
        idle_minutes=int(auth_service.sessions.idle_limit(current_user).total_seconds() // 60),
        lifetime_hours=int(auth_service.sessions.lifetime().total_seconds() // 3600))


@bp.post("/account/sessions/end")
@requires(Perm.ACCOUNT)
def end_login_session():
    """End one of one's own sessions: every copy of that device's cookie stops working."""
    form = EndSessionForm()
    if form.validate_on_submit() and auth_service.sessions.end_one(
            current_user, form.login_session.data):
        flash(_("The session was ended."), "success")
    else:
        flash(_("This session had already ended."), "info")
    return redirect(url_for(".login_sessions"))


@bp.post("/account/sessions/end-all")
@requires(Perm.ACCOUNT)
def log_out_everywhere():
    """End every session of one's account, this one too (a lost phone, a shared computer)."""
    auth_service.sessions.log_out_everywhere(current_user._get_current_object())
    logout_user()
    session.clear()
    flash(_("You are logged out on every device."), "info")
    return redirect(url_for("auth.login"))

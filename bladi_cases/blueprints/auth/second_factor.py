"""Views of the second factor: at a login, the code page and the enrolment (QR code, the
secret as text, a first code, the recovery codes shown once); on the account page, setting
one up by choice and renewing the recovery codes."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from ...policy import Perm, public, requires
from ...services.auth import second_factor
from .. import attempt, flash_refusal, form_action, form_page
from ..limits import second_step_limits
from . import bp, pending
from .forms import AppCodeForm, ButtonForm, SecondFactorForm
from .views import finish_login

# The pending login's last stage: enrolled, recovery codes shown, one click from logged in.
ENROLLED = "enrolled"


def _start_again():
    pending.drop()
    flash(_("Log in again: the page waited too long, or the account changed."), "info")
    return redirect(url_for("auth.login"))


def _enrolment_page(form, user, secret: str, action: str):
    # The SVG is segno's own drawing of the address: paths, no text of ours, safe to embed.
    qr = Markup(second_factor.qr_svg(second_factor.provisioning_uri(user, secret)))
    return form_page("auth/enrol.html", form, action=action, email=user.email, qr=qr,
                     secret=second_factor.grouped(secret))


@bp.route("/login/code", methods=["GET", "POST"])
@public
@second_step_limits(pending.account_key)
def login_code():
    """The second step of a login: the code the app shows, or a recovery code. A wrong
    code counts toward the lockout (answered 200 so that the count is kept) and the rate
    limits of the login attempts."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    held = pending.pending(second_factor.Stage.CODE)
    if held is None:
        return _start_again()
    user, next_url = held
    form = SecondFactorForm()
    if form.validate_on_submit():
        method = second_factor.check_code(user, form.code.data)
        if method is not None:
            response = finish_login(user, next_url)
            if method == "recovery_code":
                flash(_("You used a recovery code: %(n)d left. You can get new ones on the "
                        "Second factor page.", n=second_factor.recovery_codes_left(user)),
                      "info")
            return response
        form.code.errors.append(_(
            "This code is wrong or was already used, or the account is locked for a while "
            "after repeated failures."))
    return render_template("auth/second_factor.html", form=form)


@bp.route("/login/enrol", methods=["GET", "POST"])
@public
def login_enrol():
    """Set up the second factor the role requires, before the first login completes."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    held = pending.pending(second_factor.Stage.ENROL)
    secret = held and second_factor.pending_secret(held[0])
    if not secret:
        return _start_again()
    user = held[0]
    form = AppCodeForm()
    done = form_action(form, lambda: second_factor.confirm_enrolment(user, form.code.data))
    if done:
        pending.advance(ENROLLED)
        return render_template("auth/recovery_codes.html", codes=done.value,
                               finish=ButtonForm())
    return _enrolment_page(form, user, secret, url_for("auth.login_enrol"))


@bp.post("/login/enrol/done")
@public
def login_enrolled():
    """The recovery codes are written down: the login completes."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    held = pending.pending(ENROLLED)
    if held is None:
        return _start_again()
    if not ButtonForm().validate_on_submit():
        abort(400)
    return finish_login(*held)


# --- the account page ----------------------------------------------------------------------

def _account_page(form: AppCodeForm, status: int = 200):
    user = current_user._get_current_object()
    enrolled = second_factor.is_enrolled(user)
    return render_template(
        "auth/account_second_factor.html", form=form, start=ButtonForm(), enrolled=enrolled,
        may_enrol=second_factor.may_enrol(user),
        left=second_factor.recovery_codes_left(user) if enrolled else 0), status


@bp.get("/account/second-factor")
@requires(Perm.ACCOUNT)
def account_second_factor():
    """The user's second factor: set one up (where the role lets them choose), or get new
    recovery codes."""
    return _account_page(AppCodeForm())


@bp.post("/account/second-factor/start")
@requires(Perm.ACCOUNT)
def account_enrol_start():
    """Start setting up a second factor by choice: a new secret, then its page."""
    if not ButtonForm().validate_on_submit():
        abort(400)
    _secret, failure = attempt(
        lambda: second_factor.begin_enrolment(current_user._get_current_object()))
    if failure is not None:
        flash_refusal(failure)
        return redirect(url_for("auth.account_second_factor"))
    return redirect(url_for("auth.account_enrol"))


@bp.route("/account/second-factor/enrol", methods=["GET", "POST"])
@requires(Perm.ACCOUNT)
def account_enrol():
    """Scan the QR code (or type the secret), confirm with a first code, then the recovery
    codes, shown once."""
    user = current_user._get_current_object()
    secret = second_factor.pending_secret(user)
    if not secret:
        return redirect(url_for("auth.account_second_factor"))
    form = AppCodeForm()
    done = form_action(form, lambda: second_factor.confirm_enrolment(user, form.code.data))
    if done:
        flash(_("Your second factor is set up: you will type a code at each login."),
              "success")
        return render_template("auth/recovery_codes.html", codes=done.value, finish=None)
    return _enrolment_page(form, user, secret, url_for("auth.account_enrol"))


@bp.post("/account/second-factor/recovery-codes")
@requires(Perm.ACCOUNT)
def renew_recovery_codes():
    """New recovery codes for a current code from the app; the old ones stop working. A
    wrong code counts toward the lockout (answered 200 so that the count is kept)."""
    form = AppCodeForm()
    if not form.validate_on_submit():
        return _account_page(form, 422)
    codes = second_factor.renew_recovery_codes(current_user._get_current_object(),
                                               form.code.data)
    if codes is None:
        form.code.errors.append(_("This code is wrong or was already used."))
        return _account_page(form)
    return render_template("auth/recovery_codes.html", codes=codes, finish=None)

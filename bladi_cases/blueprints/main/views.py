"""Views of the main blueprint: the role's home page, language choice, /healthz."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from flask import (
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from ...extensions import db
from ...fragments import url_maker
from ...i18n import COOKIE_NAME, LANGUAGES
from ...models.cases import NoteKind, OutcomeKind, ReferralStatus, ServiceType
from ...policy import Perm, public, requires
from ...services.admin import acknowledge_notices, set_preferred_language
from ...services.main import home_page
from .. import safe_next
from . import bp

# Follow-ups listed on the home page before "Show all".
DUE_ON_HOME = 30


@bp.get("/")
@requires(Perm.HOME)
def home():
    """A home page suited to the user's role."""
    today = date.today()
    # The most urgent follow-ups first; the whole list on asking (a phone on 3G need not
    # download hundreds of a manager's follow-ups to see what is due today).
    page = home_page(current_user, today,
                     None if request.args.get("due") == "all" else DUE_ON_HOME)
    context = page.context()
    if page.due is not None:
        context["due"] = _due_rows(page.due, today)
    return render_template("main/home.html", **context)


@dataclass(frozen=True, slots=True)
class _DueRow:
    """What one follow-up of the home page shows, ready to print (cases/_due.html)."""

    css: str  # overdue, due-today or ""
    when: str  # "Overdue", "Today" or the date
    href: str
    code: str
    kind: str  # goal (its text printed apart) or another kind (DueItem.kind)
    what: str  # the line's text: the kind's title and the value's ("Goal" for a goal)
    text: str  # a goal's text ("Erased" when it has none); "" for the other kinds


def _due_rows(items, today: date) -> list[_DueRow]:
    """The follow-ups' lines: each label translated once per page, each date formatted once,
    the case links made from one url_for (a page of 30 asked gettext for each row's
    labels, and Jinja for a dozen expressions per row)."""
    if not items:
        return []
    # Markup: the template's {% trans %} printed translations unescaped, and the enums'
    # lazy titles too (an unknown stored value is printed as it is, escaped).
    overdue, due_today = Markup(_("Overdue")), Markup(_("Today"))
    whens: dict[date, str] = {}
    whats: dict[tuple, Markup] = {}
    rows = []
    for item in items:
        due = item.due
        if due < today:
            css, when = "overdue", overdue
        elif due == today:
            css, when = "due-today", due_today
        else:
            css, when = "", whens.get(due) or whens.setdefault(due, format_date(due))
        key = (item.kind, item.value, item.status)
        what = whats.get(key)
        if what is None:
            what = whats[key] = _due_what(*key)
        text = (item.text or Markup(_("Erased"))) if item.kind == "goal" else ""
        rows.append(_DueRow(css, when, _CASE_URL(case_id=item.case_uuid), item.youth_code,
                            item.kind, what, text))
    return rows


# Each follow-up's link to its case, from one url_for per process (`url_maker`).
_CASE_URL = url_maker("cases.show", "case_id")

# The title of each kind of follow-up (translated when shown) and the enum of its value.
_DUE_KINDS = {"note": (_l("Follow up a note"), NoteKind),
              "referral": (_l("Referral"), ServiceType),
              "check_3m": (_l("3-month check"), OutcomeKind),
              "check_6m": (_l("6-month check"), OutcomeKind)}


def _due_what(kind: str, value: str | None, status: str | None) -> Markup:
    """A follow-up's line text ("Referral: Health (Proposed)"); a goal's title alone."""
    if kind == "goal":
        return Markup(_("Goal"))
    title, enum = _DUE_KINDS[kind]
    what = Markup(f"{title}: {enum.printed(value)}")
    if kind == "referral":
        what = Markup(f"{what} ({ReferralStatus.printed(status)})")
    return what


@bp.post("/account/notices/seen")
@requires(Perm.ACCOUNT)
def notices_seen():
    """The user has read the notices on their home page: they are not shown again."""
    acknowledge_notices(current_user)
    return redirect(url_for("main.home"))


@bp.post("/language")
@public
def set_language():
    """Switch the UI language: remembered in a cookie, and on the account if logged in."""
    lang = request.form.get("lang", "")
    response = make_response(redirect(safe_next(request.form.get("next"))))
    if lang in LANGUAGES:
        response.set_cookie(COOKIE_NAME, lang, max_age=365 * 24 * 3600, samesite="Lax",
                            httponly=True, secure=current_app.config["SESSION_COOKIE_SECURE"])
        if current_user.is_authenticated:
            set_preferred_language(current_user, lang)
    return response


@bp.get("/healthz")
@public
def healthz():
    """Machine-readable health: is the database reachable?"""
    try:
        db.session.execute(sa.text("SELECT 1"))
        return jsonify(status="ok", database="ok")
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="error", database="unreachable"), 503

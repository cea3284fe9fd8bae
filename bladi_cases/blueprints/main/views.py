"""Views of the main blueprint: the role's home page, language choice, /healthz."""

from __future__ import annotations

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
from flask_login import current_user
from sqlalchemy.orm import joinedload

from ...extensions import db
from ...i18n import COOKIE_NAME, LANGUAGES
from ...models import Beneficiary, Organization, OrgKind, Role, Site, User
from ...policy import Perm, public, requires, scoped
from ...services.activities.activities import today_items
from ...services.admin import acknowledge_notices, notices_for, set_preferred_language
from ...services.cases.cases import due_page
from .. import safe_next
from . import bp

# Follow-ups listed on the home page before "Show all".
DUE_ON_HOME = 30


@bp.get("/")
@requires(Perm.HOME)
def home():
    """A home page suited to the user's role."""
    user = current_user
    context = {}
    if user.is_cso_staff:
        context["sites"] = db.session.scalars(scoped(Site, user).order_by(Site.name).options(
            joinedload(Site.governorate))).all()
        context["items"] = today_items(user, date.today())
        # The most urgent first; the whole list on asking (a phone on 3G need not download
        # hundreds of a manager's follow-ups to see what is due today).
        context["due"], context["due_total"] = due_page(
            user, date.today(), None if request.args.get("due") == "all" else DUE_ON_HOME)
        context["today"] = date.today()
        # A plain count, no subquery of whole rows: the database counts entries of an index
        # holding erased_at (ix_beneficiary_org_live or ix_beneficiary_org_id), not records
        # (count(*): SQLite then reads no id from each entry, a third less CPU).
        context["youth_count"] = db.session.scalar(scoped(Beneficiary, user).where(
            Beneficiary.erased_at.is_(None)).with_only_columns(sa.func.count()))
        if user.role == Role.CSO_MANAGER:
            context["notices"] = notices_for(user)
            context["staff_count"] = db.session.scalar(
                sa.select(sa.func.count()).select_from(
                    scoped(User, user).where(User.active.is_(True)).subquery()))
    elif user.role in (Role.REVIEWER, Role.DONOR, Role.ADMIN):
        context["csos"] = db.session.execute(
            scoped(Organization, user).add_columns(sa.func.count(Site.id))
            .where(Organization.kind == OrgKind.FUNDED_CSO)
            .outerjoin(Organization.sites)
            .group_by(Organization.id).order_by(Organization.code)
        ).all()
    return render_template("main/home.html", **context)


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

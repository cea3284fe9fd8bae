"""Views of the audit blueprint."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import render_template, request
from flask_babel import to_utc
from flask_login import current_user

from ...extensions import db
from ...i18n import ui_language
from ...models import AuditEntry, Organization, Role, User
from ...policy import Perm, requires, scoped
from ...services.audit import ALL_ACTIONS
from .. import page_number
from . import bp
from .forms import AuditFilterForm


@bp.get("/")
@requires(Perm.AUDIT_VIEW)
def entries():
    """The audit log, newest first, filtered; a CSO manager sees their CSO's entries only."""
    form = AuditFilterForm(request.args)
    form.action.choices = [("", "—")] + [(a, a) for a in ALL_ACTIONS]
    orgs = db.session.scalars(scoped(Organization, current_user).order_by(Organization.code))
    form.organization.choices = [("", "—")] + [(o.code, o.code) for o in orgs]
    query = scoped(AuditEntry, current_user).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if form.validate():
        if form.action.data:
            query = query.where(AuditEntry.action == form.action.data)
        if form.organization.data and current_user.role == Role.ADMIN:
            query = query.where(AuditEntry.organization.has(code=form.organization.data))
        if form.actor.data:
            query = query.where(AuditEntry.actor.has(
                User.email.contains(form.actor.data.strip().casefold(), autoescape=True)))
        # Dates are typed in local time (Tunis); the log stores UTC.
        if form.date_from.data:
            query = query.where(
                AuditEntry.at >= to_utc(datetime.combine(form.date_from.data, time())))
        if form.date_to.data:
            query = query.where(AuditEntry.at < to_utc(
                datetime.combine(form.date_to.data + timedelta(days=1), time())))
    page = db.paginate(query, page=page_number(request.args.get("page")), per_page=50,
                       error_out=False)
    return render_template("audit/entries.html", form=form, page=page, lang=ui_language(),
                           show_org_filter=current_user.role == Role.ADMIN,
                           filters={k: v for k, v in request.args.items() if k != "page"})

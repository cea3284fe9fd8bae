"""Group events: participants counted by sex and age band, no identities."""

from __future__ import annotations

from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...extensions import db
from ...models import GroupEvent, Sex, Site
from ...models.activities import GroupAgeBand
from ...policy import Perm, get_or_404, requires, scoped
from ...services.activities import activities as service
from .. import form_action, form_page, page_number, page_size
from . import bp
from .forms import GroupEventForm


@bp.get("/events")
@requires(Perm.ACTIVITIES)
def events():
    """The CSO's group events, newest first."""
    page = db.paginate(scoped(GroupEvent, current_user).order_by(GroupEvent.date.desc()),
                       page=page_number(request.args.get("page")), per_page=page_size(),
                       error_out=False)
    return render_template("activities/events.html", page=page)


@bp.route("/events/new", methods=["GET", "POST"])
@requires(Perm.ACTIVITIES)
def new_event():
    """Record a group event with counts by sex and age band."""
    sites = db.session.scalars(scoped(Site, current_user).order_by(Site.name)).all()
    form = GroupEventForm()
    form.site.choices = [("", "—")] + [(str(s.uuid), s.name) for s in sites]
    if request.method == "GET":
        form.date.data = date.today()
        form.duration_minutes.data = 120
    counts = {(sex, band): request.form.get(f"count-{sex}-{band}", "")
              for sex in Sex for band in GroupAgeBand}
    site = next((s for s in sites if str(s.uuid) == form.site.data), None)
    if form_action(form, lambda: service.record_group_event(
            current_user, current_user.organization, dict(form.data, site=site), counts)):
        flash(_("Event saved."), "success")
        return redirect(url_for(".events"))
    return form_page("activities/event_form.html", form, counts=counts)


@bp.get("/events/<uuid:event_id>")
@requires(Perm.ACTIVITIES)
def event(event_id):
    """One group event and its counts."""
    record = get_or_404(GroupEvent, event_id, current_user)
    cells = {(c.sex, c.age_band): c.count for c in record.counts}
    return render_template("activities/event.html", event=record, cells=cells)

"""Views of the activities blueprint: activities, the attendance form, today's sessions."""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass
from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.orm import joinedload

from ...extensions import db
from ...fragments import url_maker
from ...i18n import date_formatter, number_formatter
from ...models import (
    Activity,
    ActivitySession,
    AttendanceStatus,
    Beneficiary,
    Role,
    Site,
    User,
)
from ...models.activities import WEEKDAY_LABELS
from ...policy import Perm, get_or_404, requires, scoped
from ...services import ValidationError
from ...services.activities import activities as service
from ...services.activities import participation
from ...services.beneficiaries.registry import NAME_FIELDS, reveal_many
from ...services.retries import RetryConflict
from .. import form_action, form_page, run_action, safe_next
from . import bp
from .forms import ActivityForm, QuickAddForm, SessionForm


def _visible(name: str, model, public_id: uuid.UUID, action: str = "view", *options):
    """`get_or_404` for the pages opened all day, with the rows they name loaded by the
    same statement (`options`), kept as `activities.<name>`."""
    return get_or_404(model, public_id, current_user._get_current_object(), action, *options,
                      kept_as=f"activities.{name}")


def _sites():
    return db.session.scalars(scoped(Site, current_user).where(Site.active.is_(True))
                              .order_by(Site.name)).all()


def _staff():
    return db.session.scalars(scoped(User, current_user).where(
        User.active.is_(True), User.role.in_([Role.FIELD_WORKER, Role.CSO_MANAGER]))
        .order_by(User.display_name)).all()


@bp.get("/")
@requires(Perm.ACTIVITIES)
def index():
    """The CSO's activities, active first."""
    activities = db.session.scalars(scoped(Activity, current_user).order_by(
        Activity.active.desc(), Activity.name).options(joinedload(Activity.site))).all()
    return render_template("activities/index.html", activities=activities)


@bp.get("/today")
@requires(Perm.ACTIVITIES)
def today():
    """The facilitator's sessions of the day: open one to take attendance."""
    return render_template("activities/today.html", today=date.today(),
                           items=service.today_items(current_user, date.today()))


def _activity_form(activity=None):
    form = ActivityForm(obj=activity)
    form.site.choices = [(str(s.uuid), s.name) for s in _sites()]
    form.facilitators.choices = [(u.id, u.display_name) for u in _staff()]
    if request.method == "GET" and activity is not None:
        form.site.data = str(activity.site.uuid)
        form.facilitators.data = [u.id for u in activity.facilitators]
        form.weekdays.data = activity.weekday_numbers
    return form


def _activity_values(form) -> dict:
    values = dict(form.data)
    values["site"] = next((s for s in _sites() if str(s.uuid) == form.site.data), None)
    chosen = set(form.facilitators.data or [])
    values["facilitators"] = [u for u in _staff() if u.id in chosen]
    return values


@bp.route("/new", methods=["GET", "POST"])
@requires(Perm.ACTIVITIES_MANAGE)
def new():
    """Create an activity."""
    form = _activity_form()
    done = form_action(form, lambda: service.create_activity(
        current_user, current_user.organization, _activity_values(form)))
    if done:
        flash(_("Activity saved."), "success")
        return redirect(url_for(".show", activity_id=done.value.uuid))
    return form_page("activities/form.html", form, activity=None)


# Declared for CSO staff so another CSO's activity answers 404; get_or_404(..., "edit")
# then requires the manager's permission.
@bp.route("/<uuid:activity_id>/edit", methods=["GET", "POST"])
@requires(Perm.ACTIVITIES)
def edit(activity_id):
    """Edit an activity."""
    activity = get_or_404(Activity, activity_id, current_user, "edit")
    form = _activity_form(activity)
    if form_action(form, lambda: service.update_activity(current_user, activity,
                                                         _activity_values(form))):
        flash(_("Activity saved."), "success")
        return redirect(url_for(".show", activity_id=activity.uuid))
    return form_page("activities/form.html", form, activity=activity)


def _month(raw: str | None) -> date:
    """The calendar's month (?month=2026-11); this month for anything else, also for a
    year outside 1900-2100, whose previous or next month would not be a date."""
    try:
        year, month = (int(p) for p in (raw or "").split("-"))
        if 1900 <= year <= 2100:
            return date(year, month, 1)
    except ValueError:
        pass
    return date.today().replace(day=1)


@bp.get("/<uuid:activity_id>")
@requires(Perm.ACTIVITIES)
def show(activity_id):
    """An activity: figures, calendar of sessions (weeks start on Monday), roster."""
    activity = _visible("activity", Activity, activity_id, "view", joinedload(Activity.site))
    figures = participation.for_activity(activity)
    names = reveal_many(list(figures.beneficiaries.values()), current_user, purpose="roster",
                        fields=NAME_FIELDS)
    month = _month(request.args.get("month"))
    previous = (month.replace(day=1) - date.resolution).replace(day=1)
    following = (month.replace(day=28) + 4 * date.resolution).replace(day=1)
    return render_template(
        "activities/show.html", activity=activity, figures=figures,
        lines=_roster_lines(figures, names), weeks=_calendar(month, figures.sessions),
        month=month, previous=previous, following=following,
        weekday_labels=WEEKDAY_LABELS,
        quick_add=QuickAddForm(next=request.full_path))


# The calendar's and the roster's links, from one url_for per process (`url_maker`).
_SESSION_URL = url_maker("activities.session", "session_id")
_YOUTH_URL = url_maker("beneficiaries.show", "beneficiary_id")


def _calendar(month: date, sessions) -> list[list[tuple]]:
    """The month's weeks, Monday first; each day as (its number, outside the month, the
    link to the session held that day or None, the date spelled out when there is one)."""
    held = {s.date: s.uuid for s in sessions
            if (s.date.year, s.date.month) == (month.year, month.month)}
    spelled = date_formatter()  # flask_babel.format_date, looked up once, not per day
    return [[(day.day, day.month != month.month, _SESSION_URL(session_id=held[day]) if day in held
              else None, spelled(day) if day in held else None)
             for day in week]
            for week in calendar.Calendar(firstweekday=0).monthdatescalendar(
                month.year, month.month)]


@dataclass(frozen=True, slots=True)
class _RosterLine:
    """One participant of an activity, ready to print."""

    href: str | None  # None: transferred to another CSO since
    code: str
    name: str
    enrolled_now: bool
    stopped_coming: bool
    attended: int
    held: int
    hours: str
    percent: int | None
    completed: bool


def _roster_lines(figures, names: dict) -> list[_RosterLine]:
    """The participants' lines: links from one url_for, hours formatted once per value."""
    decimal = number_formatter()  # flask_babel.format_decimal, the locale looked up once
    hours: dict[float, str] = {}
    lines = []
    for row in figures.rows:
        youth = figures.beneficiaries.get(row.beneficiary_id)
        who = names.get(row.beneficiary_id)
        rate, spent = row.rate, row.hours
        if spent not in hours:
            hours[spent] = decimal(spent)
        lines.append(_RosterLine(
            _YOUTH_URL(beneficiary_id=youth.uuid) if youth else None, youth.code if youth else "",
            who.full_name if who else "", row.enrolled_now, row.stopped_coming,
            row.attended, row.held, hours[spent],
            None if rate is None else int(round(rate * 100, 0)), row.completed))
    return lines


@bp.post("/<uuid:activity_id>/enrol")
@requires(Perm.ACTIVITIES)
def enrol(activity_id):
    """Quick-add a youth already registered in the CSO, by code."""
    activity = get_or_404(Activity, activity_id, current_user)
    form = QuickAddForm()
    back = safe_next(form.next.data) if form.next.data else url_for(
        ".show", activity_id=activity.uuid)
    if not form.validate_on_submit():
        flash(_("Type the code of a young person."), "error")
        return redirect(back)
    code = form.code.data.strip().upper()
    youth = db.session.scalars(scoped(Beneficiary, current_user).where(
        Beneficiary.code == code, Beneficiary.erased_at.is_(None))).first()

    def enrol():
        if youth is None:
            raise ValidationError.one("code", _("No young person of your CSO has this code."))
        service.enrol_in_activity(current_user, youth, activity,
                                  form.start_date.data or date.today())

    run_action(_("%(code)s added to the activity.", code=code), enrol)
    return redirect(back)


def _roster(activity, day: date) -> list:
    """The activity's roster on a day: rows of `service.rosters`."""
    return service.rosters([activity], day)[activity.id]


def _attendance(roster, form_data, default: str, all_present: bool) -> dict[int, str]:
    """Statuses posted for the roster (att-<uuid>), defaulting for the ones not sent. A
    youth who may not be marked (consent withdrawn) has no default: only a mark actually
    posted for them (a page opened before the withdrawal) reaches the service, which
    refuses it with a message."""
    marks = {}
    unmarkable = service.unmarkable_rows(roster)
    for youth in roster:
        posted = form_data.get(f"att-{youth.uuid}")
        if youth.id in unmarkable and (posted is None or all_present):
            continue
        marks[youth.id] = "present" if all_present else (posted or default)
    return marks


@dataclass(frozen=True, slots=True)
class _AttendanceLine:
    """One youth of the attendance form, ready to print."""

    code: str
    name: str
    marked: str | None  # the status recorded or posted, if any
    radios: Markup | None  # None: may not be marked (consent to take part withdrawn)


def _attendance_lines(roster, names: dict, marks: dict, default: str) -> list[_AttendanceLine]:
    """The form's lines. Each youth's radios (name att-<uuid>, one per status, the current
    one checked) are made here, not by a template loop: thirty values escaped per youth
    cost more than the rest of the page. The labels are translated once and print
    unescaped, as the lazy titles do; the values and the UUIDs need no escaping."""
    statuses = [(value, str(label)) for value, label in AttendanceStatus.choices()]
    unmarkable = service.unmarkable_rows(roster)
    lines = []
    for youth in roster:
        who = names.get(youth.id)
        radios = None
        if youth.id not in unmarkable:
            key, current = str(youth.uuid), marks.get(youth.id, default)
            radios = Markup("\n        " + "".join(
                f'\n          <input type="radio" id="att-{key}-{value}" name="att-{key}" '
                f'value="{value}"{" checked" if value == current else ""}>\n          '
                f'<label for="att-{key}-{value}" class="st-{value}">{label}</label>\n        '
                for value, label in statuses))
        lines.append(_AttendanceLine(youth.code, who.full_name if who else "",
                                     marks.get(youth.id), radios))
    return lines


def _session_page(activity, form, day, session=None, marks=None, status=None, roster=None):
    """The attendance form: a recorded session's as saved (its roster and marks read in
    one statement), or the roster already read by the view (`roster`) with `marks`."""
    if marks is None and session is not None:  # a recorded session as it was saved
        roster, marks = service.roster_with_marks(session)
    elif roster is None:
        roster = _roster(activity, day)
    names = reveal_many(roster, current_user, purpose="attendance", fields=NAME_FIELDS)
    default = "present" if activity.present_by_default else "absent"
    return form_page(
        "activities/session.html", form, status, activity=activity, session=session,
        lines=_attendance_lines(roster, names, marks or {}, default),
        # Youth are added from the form of a new session only.
        quick_add=None if session else QuickAddForm(next=request.full_path, start_date=day))


@bp.route("/<uuid:activity_id>/sessions/new", methods=["GET", "POST"])
@requires(Perm.ACTIVITIES)
def new_session(activity_id):
    """Take attendance: one screen, one save; a retried save is stored once."""
    activity = _visible("activity", Activity, activity_id, "view", joinedload(Activity.site))
    form = SessionForm()
    if request.method == "GET":
        form.session_uuid.data = str(uuid.uuid4())
        form.date.data = _day(request.args.get("date"))
        form.duration_minutes.data = activity.default_duration_minutes
    day = form.date.data or date.today()
    roster = _roster(activity, day)
    default = "present" if activity.present_by_default else "absent"
    all_present = "all_present" in request.form
    marks = _attendance(roster, request.form, default, all_present)
    if request.method == "POST" and not all_present:
        try:
            done = form_action(form, lambda: service.record_session(
                current_user, activity, dict(form.data, facilitator_id=current_user.id), marks,
                form.session_uuid.data))
        except RetryConflict:
            form.form_errors.append(_("This session was already saved with other content. "
                                      "Open it from the activity to correct it."))
            return _session_page(activity, form, day, marks=marks, status=409, roster=roster)
        if done:
            _session, created = done.value
            flash(_("Attendance saved.") if created else _("This session was already saved."),
                  "success")
            return redirect(url_for(".show", activity_id=activity.uuid))
    return _session_page(activity, form, day, marks=marks if request.method == "POST" else None,
                         roster=roster)


def _day(raw: str | None) -> date:
    try:
        return date.fromisoformat(raw) if raw else date.today()
    except ValueError:
        return date.today()


@bp.route("/sessions/<uuid:session_id>", methods=["GET", "POST"])
@requires(Perm.ACTIVITIES)
def session(session_id):
    """A recorded session: see and correct its attendance."""
    record = _visible("session", ActivitySession, session_id, "edit",
                      joinedload(ActivitySession.activity).joinedload(Activity.site))
    activity = record.activity
    form = SessionForm(obj=record)
    if request.method == "POST" and form.validate_on_submit():
        roster = _roster(activity, form.date.data or record.date)
        marks = _attendance(roster, request.form, "absent", "all_present" in request.form)
        if "all_present" in request.form:
            return _session_page(activity, form, record.date, record, marks)
        if form_action(form, lambda: service.update_session(current_user, record, dict(
                form.data, facilitator_id=record.facilitator_id), marks)):
            flash(_("Attendance saved."), "success")
            return redirect(url_for(".show", activity_id=activity.uuid))
        return _session_page(activity, form, record.date, record, marks)
    return _session_page(activity, form, record.date, record)

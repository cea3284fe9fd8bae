"""Activities and their sessions: rules, retry-safe session recording, attendance."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from ...extensions import db
from ...models import (
    Activity,
    ActivityKind,
    ActivitySession,
    Attendance,
    AttendanceStatus,
    Beneficiary,
    CompletionRule,
    Consent,
    ConsentScope,
    Enrolment,
    GroupEvent,
    GroupEventCount,
    Organization,
    Sex,
    Site,
    User,
)
from ...models.activities import GroupAgeBand, activity_facilitator
from ...policy import ScopeOf, kept_statement, scoped
from .. import ValidationError
from ..audit import Action, record
from ..beneficiaries.registry import enrol, revealable_columns
from ..retries import prior_record

MAX_DURATION = 12 * 60


def _choice(value, enum, field: str, errors: dict):
    if value not in {m.value for m in enum}:
        errors.setdefault(field, []).append(_("Choose a value from the list."))
    return value


def _int_between(value, low: int, high: int, field: str, errors: dict, required=True):
    if value in (None, ""):
        if required:
            errors.setdefault(field, []).append(_("This field is required."))
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        errors.setdefault(field, []).append(_("Enter a whole number."))
        return None
    if not low <= number <= high:
        errors.setdefault(field, []).append(
            _("Enter a number between %(low)d and %(high)d.", low=low, high=high))
    return number


# --- Activities --------------------------------------------------------------------------

def _activity_values(org: Organization, values: dict) -> dict:
    errors: dict[str, list[str]] = {}
    name = (values.get("name") or "").strip()
    if not name or len(name) > 120:
        errors["name"] = [_("Enter a name of 1 to 120 characters.")]
    _choice(values.get("kind"), ActivityKind, "kind", errors)
    site = values.get("site")
    if not isinstance(site, Site) or org not in site.organizations:
        errors["site"] = [_("Unknown site: choose one of your CSO's sites.")]
    start, end = values.get("planned_start"), values.get("planned_end")
    if not isinstance(start, date):
        errors["planned_start"] = [_("Give a valid date.")]
    elif isinstance(end, date) and end < start:
        errors["planned_end"] = [_("The end is before the start.")]
    _choice(values.get("completion_rule"), CompletionRule, "completion_rule", errors)
    high = 100 if values.get("completion_rule") == CompletionRule.PERCENT else 2000
    clean = {
        "name": name, "kind": values.get("kind"), "site_id": getattr(site, "id", None),
        "planned_start": start, "planned_end": end if isinstance(end, date) else None,
        "planned_sessions": _int_between(values.get("planned_sessions"), 1, 1000,
                                         "planned_sessions", errors, required=False),
        "default_duration_minutes": _int_between(values.get("default_duration_minutes"), 1,
                                                 MAX_DURATION, "default_duration_minutes",
                                                 errors),
        "completion_rule": values.get("completion_rule"),
        "completion_threshold": _int_between(values.get("completion_threshold"), 1, high,
                                             "completion_threshold", errors),
        "present_by_default": bool(values.get("present_by_default")),
        "weekdays": ",".join(str(d) for d in sorted({int(d) for d in values.get("weekdays") or []
                                                     if str(d).isdigit() and 0 <= int(d) <= 6})),
        "active": bool(values.get("active", True)),
    }
    facilitators = values.get("facilitators") or []
    if any(f.organization_id != org.id or not f.is_cso_staff for f in facilitators):
        errors["facilitators"] = [_("Facilitators are staff of your CSO.")]
    if errors:
        raise ValidationError(errors)
    clean["facilitators"] = list(facilitators)
    return clean


def create_activity(actor: User, org: Organization, values: dict) -> Activity:
    """Create an activity of the CSO at one of its sites."""
    clean = _activity_values(org, values)
    activity = Activity(organization_id=org.id, **clean)
    db.session.add(activity)
    db.session.flush()
    record(Action.ACTIVITY_CREATED, actor=actor, obj=activity)
    return activity


def update_activity(actor: User, activity: Activity, values: dict) -> Activity:
    """Edit an activity; its sessions and attendance are kept."""
    clean = _activity_values(activity_org(activity), values)
    for name, value in clean.items():
        setattr(activity, name, value)
    db.session.flush()
    record(Action.ACTIVITY_UPDATED, actor=actor, obj=activity)
    return activity


def activity_org(activity: Activity) -> Organization:
    """The CSO that owns an activity."""
    return db.session.get(Organization, activity.organization_id)


def _enrolled_on(query: sa.Select, activity_ids, on) -> sa.Select:
    """`query` limited to the youth of each activity's CSO enrolled in it on a day, not
    erased. A youth since transferred to another CSO is not on it, even for a day before
    the transfer: their attendance stays as it was recorded."""
    return (query.select_from(Enrolment)
            .join(Beneficiary, Beneficiary.id == Enrolment.beneficiary_id)
            .join(Activity, Activity.id == Enrolment.activity_id)
            .where(Enrolment.activity_id.in_(activity_ids), Enrolment.start_date <= on,
                   sa.or_(Enrolment.end_date.is_(None), Enrolment.end_date >= on),
                   Beneficiary.organization_id == Activity.organization_id,
                   Beneficiary.erased_at.is_(None)))


# What `unmarkable_rows` reads of a youth: the newest consent's scopes and withdrawal
# (`Beneficiary.newest_consent`) and whether the record was erased.
_CONSENT_COLUMNS = (Beneficiary.newest_consent(Consent.scopes).label("consent_scopes"),
                    Beneficiary.newest_consent(Consent.withdrawn_on).label(
                        "consent_withdrawn_on"),
                    Beneficiary.erased_at)


# Statements a page runs on every request are built once, here, with parameters: building
# one and computing its cache key costs more than running it (0.3-0.6 ms for a roster's).
# What a roster shows, what `reveal_many` decrypts (the name) and what `unmarkable_rows`
# reads, as Core rows: a page lists them, no object is needed.
ROSTER_COLUMNS = (*revealable_columns(), Beneficiary.uuid, *_CONSENT_COLUMNS)
_ROSTERS = (_enrolled_on(sa.select(Enrolment.activity_id, *ROSTER_COLUMNS),
                         sa.bindparam("activity_ids", expanding=True), sa.bindparam("on"))
            .order_by(Beneficiary.sequence))


def run_core(statement, params: dict) -> sa.CursorResult:
    """Run a Core statement (rows, no objects) as `db.session.execute` does, the session
    flushed first, but straight on its connection: the ORM's layer costs more than the
    run of a small statement (about 0.05 ms a statement)."""
    if db.session.autoflush:
        db.session.flush()
    return db.session.connection().execute(statement, params)


def rosters(activities: list[Activity], on: date) -> dict[int, list[sa.Row]]:
    """Each activity's roster on a day: the youth of the activity's CSO enrolled in it
    that day (not erased), in code order, each once; in one statement for all the
    activities: Core rows of ROSTER_COLUMNS, by activity id."""
    found: dict[int, list[sa.Row]] = {a.id: [] for a in activities}
    if not found:
        return found
    return _listed(run_core(_ROSTERS, {"activity_ids": list(found), "on": on}), found)


def _listed(rows, found: dict[int, list[sa.Row]]) -> dict[int, list[sa.Row]]:
    seen: set[tuple[int, int]] = set()  # two enrolments on one day list the youth once
    for youth in rows:
        if (youth.activity_id, youth.id) not in seen:
            seen.add((youth.activity_id, youth.id))
            found[youth.activity_id].append(youth)
    return found


# A recorded session's roster with the status recorded for each youth on it: the
# attendance form of the session in one statement.
_ROSTER_MARKS = (_ROSTERS.add_columns(Attendance.status.label("marked"))
                 .outerjoin(Attendance, sa.and_(
                     Attendance.session_id == sa.bindparam("session_id"),
                     Attendance.beneficiary_id == Beneficiary.id)))


def roster_with_marks(session: ActivitySession) -> tuple[list[sa.Row], dict[int, str]]:
    """The roster of the session's activity on its date (`rosters`), and the statuses
    recorded at the session for the youth on it, by youth id (one statement)."""
    roster = _listed(run_core(_ROSTER_MARKS, {
        "activity_ids": [session.activity_id], "on": session.date,
        "session_id": session.id}), {session.activity_id: []})[session.activity_id]
    return roster, {youth.id: youth.marked for youth in roster if youth.marked is not None}


def unmarkable_rows(youth: list[sa.Row]) -> set[int]:
    """Ids of the youth whose attendance may not be recorded: no valid consent to take
    part in activities (withdrawn, or a newer consent that leaves it out), or erased.
    From rows with `_CONSENT_COLUMNS` (those of `rosters`), as `Beneficiary.allows`
    reads a loaded youth."""
    return {b.id for b in youth if not Beneficiary.consent_allows(
        b.consent_withdrawn_on, b.consent_scopes, ConsentScope.PARTICIPATION, b.erased_at)}


def _refuse_without_consent(attendance: dict[int, str],
                            stored: dict[int, str] | None = None) -> None:
    """New attendance needs a valid consent to take part; a mark refused names the youth
    by code. A stored mark sent again unchanged is not new (correcting a session recorded
    before the withdrawal keeps it as it was)."""
    changed = [b for b, status in attendance.items() if (stored or {}).get(b) != status]
    if not changed:
        return
    youth = run_core(sa.select(Beneficiary.id, Beneficiary.code, *_CONSENT_COLUMNS).where(
        Beneficiary.id.in_(changed)), {}).all()
    refused = sorted(b.code for b in youth if b.id in unmarkable_rows(youth))
    if refused:
        raise ValidationError.one("", _(
            "No valid consent to take part in activities for %(codes)s: attendance cannot "
            "be recorded for them.", codes=", ".join(refused)))


def enrol_in_activity(actor: User, beneficiary: Beneficiary, activity: Activity,
                      start: date) -> Enrolment:
    """Enrol a youth of the CSO in an activity (consent to take part is checked)."""
    if beneficiary.organization_id != activity.organization_id:
        raise ValidationError.one("code", _("No young person of your CSO has this code."))
    if any(e.activity_id == activity.id and (e.end_date is None or e.end_date >= start)
           for e in beneficiary.enrolments):
        raise ValidationError.one("code", _("This young person is already in the activity."))
    enrolment = enrol(actor, beneficiary, activity.site, start)
    enrolment.activity_id = activity.id
    db.session.flush()
    return enrolment


# --- Sessions ----------------------------------------------------------------------------

def content_hash(values: dict, attendance: dict[int, str]) -> str:
    """A digest of what a session says, to tell a retry (same) from a conflict (different)."""
    canonical = {
        "date": values["date"].isoformat(),
        "start_time": values["start_time"].strftime("%H:%M") if values.get("start_time")
        else None,
        "duration": values["duration_minutes"], "topic": values.get("topic") or "",
        "notes": values.get("notes") or "", "facilitator": values.get("facilitator_id"),
        "attendance": sorted((str(k), v) for k, v in attendance.items()),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def _overlaps(activity: Activity, day: date, start: time | None, minutes: int,
              exclude_id: int | None) -> bool:
    others = db.session.scalars(sa.select(ActivitySession).where(
        ActivitySession.activity_id == activity.id, ActivitySession.date == day,
        ActivitySession.id != (exclude_id or 0))).all()
    for other in others:
        if start is None or other.start_time is None:
            return True  # without times, two sessions of one activity on one day clash
        begin = datetime.combine(day, start)
        other_begin = datetime.combine(day, other.start_time)
        if begin < other_begin + timedelta(minutes=other.duration_minutes) and \
                other_begin < begin + timedelta(minutes=minutes):
            return True
    return False


def _check_session(activity: Activity, values: dict, attendance: dict[int, str],
                   today: date, exclude_id: int | None = None) -> dict:
    errors: dict[str, list[str]] = {}
    day = values.get("date")
    if not isinstance(day, date):
        errors["date"] = [_("Give a valid date.")]
    elif day > today + timedelta(days=1):
        errors["date"] = [_("A session cannot be recorded more than one day ahead.")]
    elif day < activity.planned_start:
        errors["date"] = [_("The activity starts on %(day)s.",
                            day=activity.planned_start.strftime("%d/%m/%Y"))]
    minutes = _int_between(values.get("duration_minutes"), 1, MAX_DURATION,
                           "duration_minutes", errors)
    topic = (values.get("topic") or "").strip() or None
    notes = (values.get("notes") or "").strip() or None
    if topic and len(topic) > 200:
        errors["topic"] = [_("At most %(n)d characters.", n=200)]
    if notes and len(notes) > 1000:
        errors["notes"] = [_("At most %(n)d characters.", n=1000)]
    if not errors and _overlaps(activity, day, values.get("start_time"), minutes, exclude_id):
        errors["start_time"] = [_("Another session of this activity overlaps this one.")]
    if "date" not in errors:
        enrolled = {b.id for b in rosters([activity], day)[activity.id]}
        strangers = [b for b in attendance if b not in enrolled]
        if strangers:
            errors.setdefault("", []).append(
                _("Attendance was given for a young person not enrolled on that date."))
        if any(s not in {a.value for a in AttendanceStatus} for s in attendance.values()):
            errors.setdefault("", []).append(_("Choose present, absent or excused."))
    if errors:
        raise ValidationError(errors)
    return {"date": day, "start_time": values.get("start_time"), "duration_minutes": minutes,
            "topic": topic, "notes": notes, "facilitator_id": values.get("facilitator_id")}


def record_session(actor: User, activity: Activity, values: dict, attendance: dict[int, str],
                   session_uuid: str | uuid.UUID | None = None, today: date | None = None
                   ) -> tuple[ActivitySession, bool]:
    """Store a session and its attendance once. Returns (session, created).

    The same UUID with the same content is the same session (created=False: a retry);
    the same UUID with other content raises RetryConflict and changes nothing.
    """
    today = today or date.today()

    def same(stored: ActivitySession) -> bool:
        # A retry must not clash with itself: the stored copy is left out of the overlap check.
        again = _check_session(activity, values, attendance, today, exclude_id=stored.id)
        return stored.activity_id == activity.id and \
            stored.content_hash == content_hash(again, attendance)

    key = _parse_uuid(session_uuid)
    existing = prior_record(ActivitySession, key, actor, same) if session_uuid else None
    if existing is not None:
        return existing, False
    clean = _check_session(activity, values, attendance, today)
    _refuse_without_consent(attendance)
    digest = content_hash(clean, attendance)
    session = ActivitySession(uuid=key, organization_id=activity.organization_id,
                              activity_id=activity.id, content_hash=digest,
                              created_by_id=getattr(actor, "id", None), **clean)
    session.attendance = [Attendance(beneficiary_id=b, organization_id=activity.organization_id,
                                     status=s) for b, s in attendance.items()]
    db.session.add(session)
    db.session.flush()
    record(Action.SESSION_RECORDED, actor=actor, obj=session,
           detail={"activity": str(activity.uuid), "youth": len(attendance)})
    return session, True


def update_session(actor: User, session: ActivitySession, values: dict,
                   attendance: dict[int, str], today: date | None = None) -> ActivitySession:
    """Correct a recorded session and its attendance."""
    today = today or date.today()
    clean = _check_session(session.activity, values, attendance, today, exclude_id=session.id)
    _refuse_without_consent(attendance, {a.beneficiary_id: a.status for a in session.attendance})
    for name, value in clean.items():
        setattr(session, name, value)
    session.content_hash = content_hash(clean, attendance)
    by_youth = {a.beneficiary_id: a for a in session.attendance}
    for beneficiary_id, status in attendance.items():
        if beneficiary_id in by_youth:
            by_youth[beneficiary_id].status = status
        else:
            session.attendance.append(Attendance(beneficiary_id=beneficiary_id, status=status,
                                                 organization_id=session.organization_id))
    db.session.flush()
    record(Action.SESSION_UPDATED, actor=actor, obj=session)
    return session


def _parse_uuid(value) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)) if value else uuid.uuid4()
    except ValueError:
        raise ValidationError.one("", _("The form is damaged: reload the page.")) from None


def today_items(user: User, today: date) -> list[tuple[Activity, ActivitySession | None]]:
    """The user's activities meeting today (by weekday or by a session dated today), their
    site loaded with them (the lists show it). Both statements kept per user and day
    (`policy.kept_statement`): building them cost more than running them."""
    activities = kept_with_mine("activities.today", user, lambda who: scoped(Activity, who).where(
        Activity.active.is_(True), Activity.planned_start <= today,
        sa.or_(Activity.planned_end.is_(None), Activity.planned_end >= today))
        .options(joinedload(Activity.site)).order_by(Activity.name), today)
    sessions = {s.activity_id: s for s in db.session.scalars(kept_statement(
        "activities.today_sessions", user,
        lambda who: scoped(ActivitySession, who).where(ActivitySession.date == today), today))}
    items = []
    for activity, mine in activities:
        if activity.id in sessions or (mine and today.weekday() in activity.weekday_numbers):
            items.append((activity, sessions.get(activity.id)))
    return items


# Whether an activity is the user's: they facilitate it, or it has no facilitator (then it
# belongs to every worker). Built once: made again at each request it cost more than the
# query it is part of.
_MINE = sa.or_(
    sa.exists().where(activity_facilitator.c.activity_id == Activity.id,
                      activity_facilitator.c.user_id == sa.bindparam("mine_user_id")),
    ~sa.exists().where(activity_facilitator.c.activity_id == Activity.id)).label("mine")


def kept_with_mine(name: str, user: User, build: Callable[[ScopeOf], sa.Select], *more
                   ) -> list[sa.Row]:
    """Run a query of activities (`build(scope)`): (activity, whether it is the user's) for
    each. The query and its column are built once per user and kept (for the pages opened
    all day: `policy.kept_statement`, with `more`)."""
    statement = kept_statement(name, user, lambda who: build(who).add_columns(_MINE), *more)
    return db.session.execute(statement, {"mine_user_id": user.id}).all()


# --- Group events ------------------------------------------------------------------------

def record_group_event(actor: User, org: Organization, values: dict,
                       counts: dict[tuple[str, str], object], today: date | None = None
                       ) -> GroupEvent:
    """A group event with participants counted by sex and age band (no identities)."""
    today = today or date.today()
    errors: dict[str, list[str]] = {}
    title = (values.get("title") or "").strip()
    if not title or len(title) > 200:
        errors["title"] = [_("Enter a name of 1 to 200 characters.")]
    _choice(values.get("kind"), ActivityKind, "kind", errors)
    day = values.get("date")
    if not isinstance(day, date) or day > today + timedelta(days=1):
        errors["date"] = [_("Give a date that is not in the future.")]
    minutes = _int_between(values.get("duration_minutes"), 1, MAX_DURATION,
                           "duration_minutes", errors)
    site = values.get("site")
    if site is not None and org not in site.organizations:
        errors["site"] = [_("Unknown site: choose one of your CSO's sites.")]
    clean_counts = {}
    for (sex, band), raw in counts.items():
        if sex not in {s.value for s in Sex} or band not in {b.value for b in GroupAgeBand}:
            continue
        number = _int_between(raw or 0, 0, 100_000, f"count-{sex}-{band}", errors)
        if number:
            clean_counts[(sex, band)] = number
    if any(k.startswith("count-") for k in errors):
        errors.setdefault("", []).append(_("Counts are whole numbers, zero or more."))
    elif not clean_counts and "duration_minutes" not in errors:
        errors.setdefault("", []).append(_("Count at least one participant."))
    if errors:
        raise ValidationError(errors)
    event = GroupEvent(organization_id=org.id, site_id=getattr(site, "id", None), title=title,
                       kind=values["kind"], date=day, duration_minutes=minutes,
                       place=(values.get("place") or "").strip()[:200] or None,
                       created_by_id=getattr(actor, "id", None))
    event.counts = [GroupEventCount(sex=s, age_band=b, count=n)
                    for (s, b), n in sorted(clean_counts.items())]
    db.session.add(event)
    db.session.flush()
    record(Action.GROUP_EVENT_RECORDED, actor=actor, obj=event)
    return event

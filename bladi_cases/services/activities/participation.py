"""Participation figures: per youth (sessions, hours, rate, completion) and per activity
(sessions held, average attendance, youth who stopped coming). Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from ...extensions import db
from ...models import (
    Activity,
    ActivitySession,
    Attendance,
    AttendanceStatus,
    Beneficiary,
    CompletionRule,
    Enrolment,
)
from ..beneficiaries.registry import revealable_columns
from .activities import run_core

STOPPED_AFTER = 3  # absent from this many of the last held sessions: follow up


@dataclass
class Participation:
    """One youth in one activity."""

    activity: Activity
    beneficiary_id: int
    held: int = 0          # sessions held while the youth was enrolled
    attended: int = 0
    minutes: int = 0
    recent: list[str] = field(default_factory=list)  # statuses, newest first
    enrolled_now: bool = False

    @property
    def hours(self) -> float:
        """Hours of presence."""
        return round(self.minutes / 60, 1)

    @property
    def rate(self) -> float | None:
        """Share of held sessions attended (0-1), None before any session."""
        return self.attended / self.held if self.held else None

    @property
    def completed(self) -> bool:
        """Whether the activity's completion rule is met."""
        if self.activity.completion_rule == CompletionRule.HOURS:
            return self.minutes >= self.activity.completion_threshold * 60
        return self.rate is not None and self.rate * 100 >= self.activity.completion_threshold

    @property
    def stopped_coming(self) -> bool:
        """Still enrolled but absent from each of the last STOPPED_AFTER sessions."""
        last = self.recent[:STOPPED_AFTER]
        return (self.enrolled_now and len(last) == STOPPED_AFTER
                and all(s == AttendanceStatus.ABSENT for s in last))


def _inside(day: date, windows) -> bool:
    return any(start <= day and (end is None or day <= end) for start, end in windows)


def _summarise(activity: Activity, beneficiary_id: int, windows, sessions, statuses,
               today: date) -> Participation:
    """sessions: [(id, date, minutes, ...)] newest first; statuses: {session_id: status}."""
    row = Participation(activity, beneficiary_id,
                        enrolled_now=_inside(today, windows))
    if len(windows) == 1:  # the usual case: one enrolment, one date range
        start, end = windows[0]
        sessions = [s for s in sessions if start <= s[1] and (end is None or s[1] <= end)]
    else:
        sessions = [s for s in sessions if _inside(s[1], windows)]
    for session in sessions:
        row.held += 1
        status = statuses.get(session[0])
        row.recent.append(status or "")
        if status == AttendanceStatus.PRESENT:
            row.attended += 1
            row.minutes += session[2]
    return row


# The sessions of a youth's activities since the first of their enrolments, each with the
# youth's mark (or None), the activity's object beside them: one statement for all the
# activities (not three per activity), built once with parameters. An activity without a
# session since then still has its row (session columns None).
_YOUTH_SESSIONS = (
    sa.select(Activity, ActivitySession.id, ActivitySession.date,
              ActivitySession.duration_minutes, Attendance.status)
    .outerjoin(ActivitySession, sa.and_(ActivitySession.activity_id == Activity.id,
                                        ActivitySession.date >= sa.bindparam("first")))
    .outerjoin(Attendance, sa.and_(Attendance.session_id == ActivitySession.id,
                                   Attendance.beneficiary_id == sa.bindparam("beneficiary_id")))
    .where(Activity.id.in_(sa.bindparam("activity_ids", expanding=True)))
    .order_by(Activity.id, ActivitySession.date.desc(), ActivitySession.id.desc()))


def for_beneficiary(beneficiary: Beneficiary, today: date | None = None) -> list[Participation]:
    """The youth's participation in each activity they were enrolled in."""
    today = today or date.today()
    enrolments = [e for e in beneficiary.enrolments if e.activity_id is not None]
    if not enrolments:
        return []
    windows = {}
    for e in enrolments:
        windows.setdefault(e.activity_id, []).append((e.start_date, e.end_date))
    rows = db.session.execute(_YOUTH_SESSIONS, {
        "first": min(e.start_date for e in enrolments), "beneficiary_id": beneficiary.id,
        "activity_ids": sorted(windows)}).all()
    firsts = {activity_id: min(start for start, _end in spans)
              for activity_id, spans in windows.items()}
    by_activity: dict[int, tuple[Activity, list, dict]] = {}
    for activity, session_id, day, minutes, status in rows:
        _activity, sessions, statuses = by_activity.setdefault(activity.id, (activity, [], {}))
        if session_id is not None and day >= firsts[activity.id]:
            sessions.append((session_id, day, minutes))
            if status is not None:
                statuses[session_id] = status
    return [_summarise(activity, beneficiary.id, windows[activity_id], sessions, statuses,
                       today)
            for activity_id, (activity, sessions, statuses) in sorted(by_activity.items())]


@dataclass
class ActivityFigures:
    """An activity's roster with participation, and its totals."""

    activity: Activity
    rows: list[Participation]
    sessions_held: int
    average_attendance: float | None  # mean share of marked youth present, per session
    # The CSO's own youth (a row without one was transferred), as Core rows: id, uuid,
    # code, organization_id, sequence and the name's columns (what `reveal_many` reads).
    beneficiaries: dict[int, sa.Row]
    # (id, date, duration_minutes, uuid) of each session held, newest first.
    sessions: list[sa.Row] = field(default_factory=list)


_YOUTH_COLUMNS = (*revealable_columns(), Beneficiary.uuid, Beneficiary.sequence)
# Built once with parameters: building a statement and its cache key at each request costs
# more than running it. Only the activity's own CSO's youth: one transferred since then
# keeps their row (their attendance is this CSO's work) but neither their record nor
# their new code.
_ENROLLED = (sa.select(Enrolment.beneficiary_id, Enrolment.start_date, Enrolment.end_date,
                       *_YOUTH_COLUMNS)
             .outerjoin(Beneficiary, sa.and_(
                 Beneficiary.id == Enrolment.beneficiary_id,
                 Beneficiary.organization_id == sa.bindparam("organization_id")))
             .where(Enrolment.activity_id == sa.bindparam("activity_id")))
_HELD = (sa.select(ActivitySession.id, ActivitySession.date, ActivitySession.duration_minutes,
                   ActivitySession.uuid)
         .where(ActivitySession.activity_id == sa.bindparam("activity_id"))
         .order_by(ActivitySession.date.desc(), ActivitySession.id.desc()))
_MARKED = (sa.select(Attendance.session_id, Attendance.beneficiary_id, Attendance.status)
           .join(ActivitySession, ActivitySession.id == Attendance.session_id)
           .where(ActivitySession.activity_id == sa.bindparam("activity_id")))


def for_activity(activity: Activity, today: date | None = None) -> ActivityFigures:
    """Everyone ever enrolled in the activity, with participation; current ones first.
    Three statements, Core rows: the enrolments with their youth, the sessions, the marks."""
    today = today or date.today()
    params = {"activity_id": activity.id, "organization_id": activity.organization_id}
    windows: dict[int, list[tuple[date, date | None]]] = {}
    beneficiaries: dict[int, sa.Row] = {}
    for enrolled in run_core(_ENROLLED, params):
        windows.setdefault(enrolled.beneficiary_id, []).append(
            (enrolled.start_date, enrolled.end_date))
        if enrolled.id is not None:
            beneficiaries[enrolled.id] = enrolled
    # The first statement flushed the session: the others need not again.
    connection = db.session.connection()
    sessions = connection.execute(_HELD, params).all()
    by_youth: dict[int, dict[int, str]] = {}
    marked: dict[int, int] = {}   # marks per session
    present: dict[int, int] = {}  # of which present
    is_present = AttendanceStatus.PRESENT
    # Core rows, not ORM ones: thousands of tuples, fetched at once (not row by row).
    for session_id, beneficiary_id, status in connection.execute(_MARKED, params).all():
        statuses = by_youth.get(beneficiary_id)
        if statuses is None:
            statuses = by_youth[beneficiary_id] = {}
        statuses[session_id] = status
        marked[session_id] = marked.get(session_id, 0) + 1
        if status == is_present:
            present[session_id] = present.get(session_id, 0) + 1
    beneficiaries = dict(sorted(beneficiaries.items()))  # the audit entry names them by id
    rows = []
    for beneficiary_id in sorted(windows):
        row = _summarise(activity, beneficiary_id, windows[beneficiary_id], sessions,
                         by_youth.get(beneficiary_id, {}), today)
        row.enrolled_now = row.enrolled_now and beneficiary_id in beneficiaries
        rows.append(row)
    rows.sort(key=lambda r: (not r.enrolled_now, r.beneficiary_id not in beneficiaries,
                             getattr(beneficiaries.get(r.beneficiary_id), "sequence", 0)))
    shares = [present.get(session_id, 0) / n for session_id, n in marked.items()]
    return ActivityFigures(activity, rows, len(sessions),
                           sum(shares) / len(shares) if shares else None, beneficiaries,
                           sessions)

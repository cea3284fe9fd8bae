"""Case management: opening and moving cases through their statuses, needs, plan goals,
encrypted notes with their history, referrals, outcomes and follow-ups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from uuid import UUID

import sqlalchemy as sa
from flask_babel import gettext as _

from ...extensions import db
from ...models import (
    Beneficiary,
    Case,
    CaseEvent,
    CaseGoal,
    CaseNeed,
    CaseNote,
    CaseNoteVersion,
    Outcome,
    Referral,
    Role,
    ServiceProvider,
    User,
)
from ...models.cases import (
    CaseStatus,
    ClosureReason,
    GoalStatus,
    Need,
    NoteKind,
    OutcomeKind,
    ReferralStatus,
    ServiceType,
    case_worker,
)
from ...policy import ScopeOf, kept_statement, scoped
from .. import ValidationError
from ..audit import Action, record
from ..beneficiaries.registry import TimelineEvent, cipher, decrypt_field

NOTE_MAX = 5000
OPEN_STATUSES = (CaseStatus.OPEN, CaseStatus.ACTIVE, CaseStatus.ON_HOLD)
# Allowed status moves; closing needs a reason, reopening goes back to "open".
TRANSITIONS = {
    CaseStatus.OPEN: {CaseStatus.ACTIVE, CaseStatus.ON_HOLD, CaseStatus.CLOSED},
    CaseStatus.ACTIVE: {CaseStatus.ON_HOLD, CaseStatus.CLOSED},
    CaseStatus.ON_HOLD: {CaseStatus.ACTIVE, CaseStatus.CLOSED},
    CaseStatus.CLOSED: {CaseStatus.OPEN},
}


def _fail(field: str, message) -> None:
    raise ValidationError.one(field, message)


def _not_future(day, field: str, today: date) -> date:
    if not isinstance(day, date):
        _fail(field, _("Give a valid date."))
    if day > today:
        _fail(field, _("This date is in the future."))
    return day


def _due(day, field: str, today: date) -> date | None:
    """A follow-up date: optional, and not already past when it is set."""
    if day in (None, ""):
        return None
    if not isinstance(day, date):
        _fail(field, _("Give a valid date."))
    if day < today:
        _fail(field, _("A follow-up date cannot be in the past."))
    return day


def _event(case: Case, actor, kind: str, before, after, reason=None, on=None) -> None:
    db.session.add(CaseEvent(case=case, organization_id=case.organization_id, kind=kind,
                             from_value=before, to_value=after, reason=reason,
                             on_date=on or date.today(), by_id=getattr(actor, "id", None)))


def _refuse_if_erased(case: Case) -> None:
    """No new free text about a youth whose data was erased: it would name them again."""
    if case.beneficiary.erased_at is not None:
        _fail("", _("This record was erased; it cannot be changed."))


def can_see_risk(user: User, case: Case) -> bool:
    """The risk level is for the case's assigned workers and the CSO manager only."""
    return user.role == Role.CSO_MANAGER or user in case.workers


def _set_needs(case: Case, needs: dict[str, int], risk: str | None) -> None:
    if any(n not in {v.value for v in Need} for n in needs) or any(
            p not in (1, 2, 3) for p in needs.values()):
        _fail("needs", _("Choose needs from the list, with a priority of 1 to 3."))
    if risk not in (None, "", "low", "medium", "high"):
        _fail("risk_level", _("Choose a value from the list."))
    case.needs = [CaseNeed(need=n, priority=p, organization_id=case.organization_id)
                  for n, p in sorted(needs.items())]
    case.risk_level = risk or None


def open_case(actor: User, beneficiary: Beneficiary, values: dict,
              today: date | None = None) -> Case:
    """Open a case for a youth of the CSO (one case at a time)."""
    today = today or date.today()
    if beneficiary.erased_at is not None:
        _fail("", _("This record was erased; it cannot be changed."))
    current = db.session.scalar(sa.select(sa.func.count()).select_from(Case).where(
        Case.beneficiary_id == beneficiary.id, Case.status.in_(OPEN_STATUSES)))
    if current:
        _fail("", _("This young person already has an open case."))
    opened = _not_future(values.get("opened_on") or today, "opened_on", today)
    workers = values.get("workers") or []
    if any(w.organization_id != beneficiary.organization_id for w in workers):
        _fail("workers", _("Assign staff of your CSO."))
    case = Case(organization_id=beneficiary.organization_id, beneficiary=beneficiary,
                status=CaseStatus.OPEN, opened_on=opened, opened_by_id=actor.id,
                workers=list(workers))
    _set_needs(case, values.get("needs") or {}, values.get("risk_level"))
    db.session.add(case)
    _event(case, actor, "status", None, CaseStatus.OPEN, on=opened)
    db.session.flush()
    record(Action.CASE_OPENED, actor=actor, obj=case, detail={"youth": beneficiary.code})
    return case


def update_assessment(actor: User, case: Case, needs: dict[str, int], risk: str | None,
                      workers: list[User]) -> Case:
    """Change the needs, risk level and assigned workers."""
    if any(w.organization_id != case.organization_id for w in workers):
        _fail("workers", _("Assign staff of your CSO."))
    _set_needs(case, needs, risk)
    case.workers = list(workers)
    db.session.flush()
    record(Action.CASE_UPDATED, actor=actor, obj=case)
    return case


def change_status(actor: User, case: Case, status: str, reason: str | None,
                  today: date | None = None) -> Case:
    """Move a case to another status; every change is kept in its history."""
    if status not in TRANSITIONS.get(case.status, set()):
        _fail("status", _("This status cannot follow the current one."))
    if status == CaseStatus.CLOSED and reason not in {r.value for r in ClosureReason}:
        _fail("reason", _("Give the reason for closing the case."))
    before = case.status
    case.status = status
    case.closure_reason = reason if status == CaseStatus.CLOSED else None
    _event(case, actor, "status", before, status,
           reason if status == CaseStatus.CLOSED else None, today)
    db.session.flush()
    record(Action.CASE_STATUS_CHANGED, actor=actor, obj=case,
           detail={"from": before, "to": status})
    return case


# --- Plan, notes -------------------------------------------------------------------------

def add_goal(actor: User, case: Case, values: dict, today: date | None = None) -> CaseGoal:
    """Add a goal to the case plan (its description encrypted)."""
    today = today or date.today()
    _refuse_if_erased(case)
    description = (values.get("description") or "").strip()
    if not description or len(description) > 300:
        _fail("description", _("Describe the goal in 1 to 300 characters."))
    responsible = values.get("responsible")
    if responsible is not None and responsible.organization_id != case.organization_id:
        _fail("responsible", _("Assign staff of your CSO."))
    goal = CaseGoal(case=case, organization_id=case.organization_id,
                    description_enc=cipher().encrypt(description),
                    target_date=_due(values.get("target_date"), "target_date", today),
                    responsible_id=getattr(responsible, "id", None))
    db.session.add(goal)
    db.session.flush()
    record(Action.CASE_UPDATED, actor=actor, obj=case, detail={"goal": "added"})
    return goal


def set_goal_status(actor: User, goal: CaseGoal, status: str) -> CaseGoal:
    """Mark a goal planned, in progress, achieved or dropped."""
    if status not in {s.value for s in GoalStatus}:
        _fail("status", _("Choose a value from the list."))
    goal.status = status
    db.session.flush()
    record(Action.CASE_UPDATED, actor=actor, obj=goal.case, detail={"goal": status})
    return goal


def add_note(actor: User, case: Case, values: dict, today: date | None = None,
             note_uuid=None) -> CaseNote:
    """Write a note (encrypted); it may be confidential and set a follow-up date.

    `note_uuid` is the public id a phone gave the note (see services/sync.py)."""
    today = today or date.today()
    _refuse_if_erased(case)
    text = (values.get("text") or "").strip()
    if not text or len(text) > NOTE_MAX:
        _fail("text", _("Write the note (at most %(n)d characters).", n=NOTE_MAX))
    if values.get("kind") not in {k.value for k in NoteKind}:
        _fail("kind", _("Choose a value from the list."))
    note = CaseNote(case=case, organization_id=case.organization_id, author_id=actor.id,
                    note_date=_not_future(values.get("note_date") or today, "note_date", today),
                    kind=values["kind"], text_enc=cipher().encrypt(text),
                    confidential=bool(values.get("confidential")),
                    due_date=_due(values.get("due_date"), "due_date", today))
    if note_uuid is not None:
        note.uuid = note_uuid
    db.session.add(note)
    db.session.flush()
    record(Action.CASE_NOTE_ADDED, actor=actor, obj=case,
           detail={"confidential": note.confidential})
    return note


def text_of(row, attribute: str) -> str:
    """The decrypted free text of a case row the caller loaded through the policy: a note or
    an earlier version of it (`text_enc`), a goal (`description_enc`), a referral's outcome
    (`outcome_enc`), a transfer's consent note (`consent_note_enc`). "" when none was written
    or it was erased; a value that does not decrypt raises UndecryptableValueError."""
    return decrypt_field(row, attribute) or ""


def note_text(note: CaseNote) -> str:
    """The decrypted text of a note (callers have loaded it through the policy)."""
    return text_of(note, "text_enc")


def edit_note(actor: User, note: CaseNote, text: str) -> CaseNote:
    """Change a note's text; the previous text is kept in its history."""
    _refuse_if_erased(note.case)
    if note.author_id != actor.id and actor.role != Role.CSO_MANAGER:
        _fail("text", _("Only the author or the CSO manager can edit a note."))
    text = (text or "").strip()
    if not text or len(text) > NOTE_MAX:
        _fail("text", _("Write the note (at most %(n)d characters).", n=NOTE_MAX))
    note.versions.append(CaseNoteVersion(organization_id=note.organization_id,
                                         text_enc=note.text_enc, edited_by_id=actor.id))
    note.text_enc = cipher().encrypt(text)
    db.session.flush()
    record(Action.CASE_NOTE_EDITED, actor=actor, obj=note.case)
    return note


def mark_done(actor: User, note: CaseNote, today: date | None = None) -> CaseNote:
    """Close a note's follow-up."""
    note.done_on = today or date.today()
    db.session.flush()
    return note


# --- Referrals, outcomes, providers ------------------------------------------------------

def save_provider(actor: User, org_id: int, values: dict,
                  provider: ServiceProvider | None = None) -> ServiceProvider:
    """Add or edit a service provider of the CSO's directory."""
    name = (values.get("name") or "").strip()
    if not name or len(name) > 200:
        _fail("name", _("Enter a name of 1 to 200 characters."))
    if values.get("service_type") not in {t.value for t in ServiceType}:
        _fail("service_type", _("Choose a value from the list."))
    if not values.get("governorate_code"):
        _fail("governorate_code", _("Choose a governorate from the list."))
    provider = provider or ServiceProvider(organization_id=org_id)
    for key in ("name", "service_type", "governorate_code"):
        setattr(provider, key, values[key].strip() if key == "name" else values[key])
    provider.phone = (values.get("phone") or "").strip()[:30] or None
    provider.address = (values.get("address") or "").strip()[:200] or None
    provider.active = bool(values.get("active", True))
    db.session.add(provider)
    db.session.flush()
    return provider


def add_referral(actor: User, case: Case, values: dict, today: date | None = None) -> Referral:
    """Refer the youth to a service (a provider of the CSO's directory, or just a type)."""
    today = today or date.today()
    provider = values.get("provider")
    service_type = values.get("service_type") or getattr(provider, "service_type", None)
    if service_type not in {t.value for t in ServiceType}:
        _fail("service_type", _("Choose a value from the list."))
    if provider is not None and provider.organization_id != case.organization_id:
        _fail("provider", _("Choose a provider of your CSO's directory."))
    referral = Referral(case=case, organization_id=case.organization_id,
                        service_type=service_type, provider_id=getattr(provider, "id", None),
                        proposed_on=_not_future(values.get("proposed_on") or today,
                                                "proposed_on", today),
                        due_date=_due(values.get("due_date"), "due_date", today))
    db.session.add(referral)
    db.session.flush()
    record(Action.REFERRAL_ADDED, actor=actor, obj=case, detail={"service": service_type})
    return referral


def update_referral(actor: User, referral: Referral, status: str, on,
                    outcome: str | None, today: date | None = None) -> Referral:
    """Move a referral on: made, accepted, completed, declined or no-show, with its date
    (and what came of it, encrypted)."""
    today = today or date.today()
    outcome = (outcome or "").strip()[:300]
    if outcome:
        _refuse_if_erased(referral.case)
    if status not in {s.value for s in ReferralStatus}:
        _fail("status", _("Choose a value from the list."))
    day = _not_future(on or today, "on", today)
    if status == ReferralStatus.MADE:
        if day < referral.proposed_on:
            _fail("on", _("A referral cannot be made before it was proposed."))
        referral.made_on = day
    elif status in (ReferralStatus.ACCEPTED, ReferralStatus.COMPLETED):
        if referral.made_on is None:
            _fail("status", _("Record first that the referral was made."))
        if day < referral.made_on:
            _fail("on", _("A referral cannot be completed before it was made."))
        if status == ReferralStatus.COMPLETED:
            referral.closed_on = day
    else:
        referral.closed_on = max(day, referral.made_on or referral.proposed_on)
    referral.status = status
    if outcome:
        referral.outcome_enc = cipher().encrypt(outcome)
    db.session.flush()
    record(Action.REFERRAL_UPDATED, actor=actor, obj=referral.case, detail={"status": status})
    return referral


def add_outcome(actor: User, case: Case, values: dict, today: date | None = None) -> Outcome:
    """Record a result (job, training completed, back to school, own business...)."""
    today = today or date.today()
    if values.get("kind") not in {k.value for k in OutcomeKind}:
        _fail("kind", _("Choose a value from the list."))
    day = _not_future(values.get("on_date"), "on_date", today)
    if day < case.beneficiary.first_contact_date:
        _fail("on_date", _("The outcome is dated before the first contact with the youth."))
    outcome = Outcome(case=case, organization_id=case.organization_id, kind=values["kind"],
                      on_date=day, sector=(values.get("sector") or "").strip()[:100] or None,
                      formal=values.get("formal"), full_time=values.get("full_time"))
    db.session.add(outcome)
    db.session.flush()
    record(Action.OUTCOME_ADDED, actor=actor, obj=case, detail={"kind": outcome.kind})
    return outcome


def record_check(actor: User, outcome: Outcome, months: int, still: bool) -> Outcome:
    """The 3- or 6-month follow-up of an outcome: is it still true?"""
    if months not in (3, 6):
        _fail("months", _("Choose a value from the list."))
    setattr(outcome, f"check_{months}m", bool(still))
    db.session.flush()
    record(Action.OUTCOME_CHECKED, actor=actor, obj=outcome.case, detail={"months": months})
    return outcome


# --- Follow-ups --------------------------------------------------------------------------

@dataclass
class DueItem:
    """Something a worker must do by a date, with the case it belongs to (its public id and
    its youth's code: what the list shows and links to)."""

    due: date
    kind: str  # note, goal, referral, check_3m, check_6m
    case_uuid: UUID
    youth_code: str
    value: str | None = None  # a note's or an outcome's kind, a referral's service type
    status: str | None = None  # a referral's status
    text: str = ""  # a goal's description, decrypted


def by_case(model, ids) -> sa.ColumnElement[bool]:
    """`model.case_id IN ids`, written so that each database finds the rows through the
    case index. SQLite without statistics of the table (a new database, until the periodic
    ANALYZE) would read all the CSO's rows through the organization index: there it is the
    ids of the rows found by case. PostgreSQL plans the plain form well, and read the whole
    table for that detour (2 ms a page at 6,000 notes). (`policy.kept_statement` keeps a
    statement per database.)"""
    if db.engine.dialect.name == "sqlite":
        return model.id.in_(sa.select(model.id).where(model.case_id.in_(ids)).correlate(None))
    return model.case_id.in_(ids)


def own_case_ids(user: User) -> sa.Select:
    """The ids of the cases `user` is assigned to, read from the assignments alone (the
    same rows as `Case.workers.any(...)`, without a join per case file of the CSO)."""
    return sa.select(case_worker.c.case_id).where(case_worker.c.user_id == user.id)


def _due_part(model, user: User, due_cases: sa.CTE, part: int, due, value=None,
              status=None, enc=None, checks=(None, None)) -> sa.Select:
    """One kind of follow-up as rows of the same columns (a UNION ALL of the kinds): its
    case's public id and youth code from `due_cases`, no object loaded. With statistics
    (PostgreSQL; SQLite after its periodic ANALYZE) each kind is found through its case
    index from the few cases; SQLite without them reads the CSO's rows of the kind through
    the organization index (as before the cases were joined), notes apart (the scope's
    condition on their case leads it to the case index)."""
    def column(value, type_):
        return sa.type_coerce(value, type_) if value is not None else sa.cast(sa.null(), type_)
    return (scoped(model, user).with_only_columns(
        sa.literal_column(str(part), sa.Integer).label("part"), due.label("due"),
        due_cases.c.uuid, due_cases.c.code, model.id, column(value, sa.String).label("value"),
        column(status, sa.String).label("status"),
        column(enc, sa.LargeBinary).label("description_enc"),
        column(checks[0], sa.Boolean).label("check_3m"),
        column(checks[1], sa.Boolean).label("check_6m"))
        .join_from(model, due_cases, model.case_id == due_cases.c.id))


def _due_statement(user: User, until: date) -> sa.CompoundSelect:
    """The follow-ups' one statement (a UNION ALL of the four kinds), kept per user and
    horizon (`policy.kept_statement`): building it costs more than running it."""
    return kept_statement("cases.due", user, lambda who: _build_due_statement(who, until), until)


def _build_due_statement(user: ScopeOf, until: date) -> sa.CompoundSelect:
    """The statement of `_due_statement`; the rows are read each time."""
    cases = scoped(Case, user).where(Case.status.in_(OPEN_STATUSES))
    if user.role != Role.CSO_MANAGER:
        cases = cases.where(Case.id.in_(own_case_ids(user)))
    # The cases once, with what a line shows of them (their public id, their youth's code),
    # and each kind joined to them: PostgreSQL planned the four kinds' scopes of the cases
    # anew in each part (2.4 ms a page), and joining the case and its youth in each part
    # read all the CSO's case files four times (seq scans, 4 ms a page at 2,857 cases).
    # Not correlated: the parts' own scopes read case_file too.
    case_ids = cases.with_only_columns(Case.id, Case.uuid, Beneficiary.code).join(
        Beneficiary, Beneficiary.id == Case.beneficiary_id).correlate(None).cte("due_case")
    if db.engine.dialect.name == "sqlite":
        # SQLite copies a CTE used four times into a table of its own, whose size it cannot
        # know, and then builds a Bloom filter of each kind's rows to join them: it reads
        # every goal, referral and outcome of the CSO on every view (4.9 ms at 14,000 case
        # files, growing with the CSO). Written into each part, the worker's few cases
        # lead to their rows through the case indexes (0.5 ms).
        case_ids = case_ids.prefix_with("NOT MATERIALIZED")
    return sa.union_all(
        _due_part(CaseNote, user, case_ids, 0, CaseNote.due_date, CaseNote.kind)
        .where(CaseNote.due_date <= until, CaseNote.done_on.is_(None)),
        _due_part(CaseGoal, user, case_ids, 1, CaseGoal.target_date,
                  enc=CaseGoal.description_enc)
        .where(CaseGoal.target_date <= until,
               CaseGoal.status.in_((GoalStatus.PLANNED, GoalStatus.IN_PROGRESS))),
        _due_part(Referral, user, case_ids, 2, Referral.due_date, Referral.service_type,
                  Referral.status)
        .where(Referral.due_date <= until,
               Referral.status.in_((ReferralStatus.PROPOSED, ReferralStatus.MADE,
                                    ReferralStatus.ACCEPTED))),
        _due_part(Outcome, user, case_ids, 3, Outcome.on_date, Outcome.kind,
                  checks=(Outcome.check_3m, Outcome.check_6m))
        .where(sa.or_(Outcome.check_3m.is_(None), Outcome.check_6m.is_(None))))


def due_items(user: User, today: date, horizon_days: int = 7) -> list[DueItem]:
    """Follow-ups of the user's open cases (all the CSO's for a manager), oldest first,
    up to `horizon_days` ahead: overdue, then today, then soon. One statement."""
    return due_page(user, today, None, horizon_days)[0]


def due_page(user: User, today: date, limit: int | None,
             horizon_days: int = 7) -> tuple[list[DueItem], int]:
    """The first `limit` follow-ups of `due_items` (all when None) and how many there are.
    Only the goals listed are decrypted (a manager may have hundreds due)."""
    until = today + timedelta(days=horizon_days)
    found: list[tuple[DueItem, sa.Row | None]] = []  # a goal's row: its text, encrypted
    # All the rows at once, their columns by position (fetchall, no name lookups).
    for row in db.session.execute(_due_statement(user, until)).all():
        part, on, case_uuid, code, _id, value, status, _enc, check_3m, check_6m = row
        if part == 0:
            found.append((DueItem(on, "note", case_uuid, code, value), None))
        elif part == 1:
            found.append((DueItem(on, "goal", case_uuid, code), row))
        elif part == 2:
            found.append((DueItem(on, "referral", case_uuid, code, value, status), None))
        else:
            for months, checked in ((3, check_3m), (6, check_6m)):
                due = Outcome.due_after(on, months)
                if checked is None and due <= until:
                    found.append((DueItem(due, f"check_{months}m", case_uuid, code, value),
                                  None))
                    break
    found.sort(key=lambda pair: (pair[0].due, pair[0].kind))
    shown = found if limit is None else found[:limit]
    c = cipher() if any(goal is not None for _item, goal in shown) else None
    for item, goal in shown:
        if goal is not None:
            item.text = decrypt_field(goal, "description_enc", c, CaseGoal.__tablename__) or ""
    return [item for item, _goal in shown], len(found)


def _build_events_statement(user: ScopeOf):
    """`case_events`' union, the case ids an expanding parameter (built once per user)."""
    ids = sa.bindparam("case_ids", expanding=True)
    parts = [
        sa.select(CaseEvent.case_id, sa.literal(0).label("part"), -CaseEvent.id,
                  CaseEvent.on_date, CaseEvent.to_value)
        .where(CaseEvent.case_id.in_(ids), CaseEvent.kind == "status"),
        scoped(CaseNote, user).with_only_columns(
            CaseNote.case_id, sa.literal(1), CaseNote.id, CaseNote.note_date, CaseNote.kind)
        .where(by_case(CaseNote, ids)),
        sa.select(Referral.case_id, sa.literal(2), -Referral.id, Referral.proposed_on,
                  Referral.service_type).where(Referral.case_id.in_(ids)),
        sa.select(Outcome.case_id, sa.literal(3), Outcome.id, Outcome.on_date, Outcome.kind)
        .where(Outcome.case_id.in_(ids))]
    return sa.union_all(*parts)


def case_events(cases: list[Case], user: User) -> list:
    """Timeline events of a youth's cases that `user` may read (confidential notes only for
    their author and the manager): opening and status changes, notes, referrals, outcomes.

    One query for all the cases (not four per case), of the date and the one value a
    timeline line shows: the detail of a note is {"kind"}, of a referral {"service_type"},
    of an outcome {"kind"}. In the order of `cases`, then status changes (newest first),
    notes (oldest first), referrals (newest first), outcomes (latest date first)."""
    if not cases:
        return []
    ids = [case.id for case in cases]
    rows = db.session.execute(kept_statement(
        "cases.events", user, _build_events_statement),
        {"case_ids": ids}).all()
    position = {case_id: index for index, case_id in enumerate(ids)}
    # Outcomes: the latest date first (their order_by); the others by their id column.
    rows.sort(key=lambda r: (position[r[0]], r[1], -r[3].toordinal() if r[1] == 3 else r[2]))
    events = []
    for _case_id, part, _order, on, value in rows:
        if part == 0:
            events.append(TimelineEvent(on, "case", {"status": value}))
        elif part == 1:
            events.append(TimelineEvent(on, "note", {"note": {"kind": value}}))
        elif part == 2:
            events.append(TimelineEvent(on, "referral", {"referral": {"service_type": value}}))
        else:
            events.append(TimelineEvent(on, "outcome", {"outcome": {"kind": value}}))
    return events

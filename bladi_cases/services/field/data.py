"""What the offline field app downloads before going out: the worker's activities with
their rosters, today's sessions, the surveys to fill, the registration form's choices and
the worker's open cases. Names are decrypted only for the worker's own activities and
cases, and each such read is written to the audit log (one entry per list)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload

from ...extensions import db
from ...models import (
    Activity,
    Beneficiary,
    Case,
    CaseNote,
    ConsentGiver,
    ConsentMethod,
    ConsentScope,
    Governorate,
    Role,
    SchoolStatus,
    Sex,
    Site,
    SiteKind,
    Survey,
    TitledEnum,
    User,
    Wave,
)
from ...models.cases import NoteKind
from ...policy import scoped
from ..activities.activities import roster, today_items, unmarkable
from ..beneficiaries.registry import NAME_FIELDS, reveal_many
from ..beneficiaries.validation import ADULT_AGE, MAX_AGE, MIN_AGE
from ..cases.cases import OPEN_STATUSES, own_case_ids
from ..surveys.surveys import works_offline


def _choices(enum: type[TitledEnum]) -> list[dict]:
    return [{"value": value, "label": str(label)} for value, label in enum.choices()]


def _is_mine(activity: Activity, user: User) -> bool:
    # As on the home page: an activity without facilitators belongs to every worker.
    return user in activity.facilitators or not activity.facilitators


def _markable(youth: list[Beneficiary]) -> list[Beneficiary]:
    # The phone marks everyone on its roster: a youth who may not be marked (consent to
    # take part withdrawn) is left off, or each session sent with them would be refused.
    refused = unmarkable(youth)
    return [b for b in youth if b.id not in refused]


def activities(user: User, today: date) -> list[dict]:
    """Active activities: a worker's own, all the CSO's for a manager; rosters of the
    user's own activities with names (audited), the others' with codes only."""
    rows = db.session.scalars(scoped(Activity, user).where(Activity.active.is_(True))
                              .order_by(Activity.name)).all()
    if user.role != Role.CSO_MANAGER:
        rows = [a for a in rows if _is_mine(a, user)]
    rosters = {a.id: _markable(roster(a, today)) for a in rows}
    named = {b.id: b for a in rows if _is_mine(a, user) for b in rosters[a.id]}
    identities = reveal_many(list(named.values()), user, purpose="offline_roster",
                             fields=NAME_FIELDS)
    return [{
        "id": str(a.uuid), "name": a.name, "kind": a.kind, "site": a.site.name,
        "default_duration_minutes": a.default_duration_minutes,
        "weekdays": a.weekday_numbers,
        "roster": [{"id": str(b.uuid), "code": b.code,
                    "name": identities[b.id].full_name if b.id in identities else None}
                   for b in rosters[a.id]],
    } for a in rows]


def sessions_today(user: User, today: date) -> list[dict]:
    """Today's planned sessions, as the home page lists them, and whether each is recorded."""
    return [{"activity": str(activity.uuid), "activity_name": activity.name,
             "date": today.isoformat(), "recorded": session is not None,
             "session": str(session.uuid) if session is not None else None}
            for activity, session in today_items(user, today)]


def fillable_surveys(user: User, lang: str) -> list[dict]:
    """The current published version of each survey the user may fill offline. A survey
    using what the field app does not render (calculations, defaults, time, range...) is
    left out: it is filled online, on the survey pages (see `works_offline`)."""
    surveys = db.session.scalars(scoped(Survey, user).order_by(Survey.code)).all()
    return [{"id": str(s.current.uuid), "survey": s.code, "title": s.title_in(lang),
             "number": s.current.number, "definition": s.current.definition}
            for s in surveys
            if s.current is not None and works_offline(s.current.definition)]


def registration_options(user: User, lang: str) -> dict:
    """The choices and rules of the registration form."""
    sites = db.session.scalars(scoped(Site, user).where(Site.active.is_(True))
                               .order_by(Site.name)).all()
    governorates = db.session.scalars(sa.select(Governorate).order_by(Governorate.iso_code))
    return {
        "sites": [{"id": str(s.uuid), "name": s.name, "kind": s.kind} for s in sites],
        "governorates": [{"code": g.iso_code, "name": g.name(lang)} for g in governorates],
        "default_governorate": user.organization.governorate_code if user.organization
        else None,
        "sex": _choices(Sex),
        "setting_kinds": _choices(SiteKind),
        "school_statuses": _choices(SchoolStatus),
        "consent_given_by": _choices(ConsentGiver),
        "consent_methods": _choices(ConsentMethod),
        "consent_scopes": _choices(ConsentScope),
        "waves": _choices(Wave),
        "note_kinds": _choices(NoteKind),
        "required": ["sex", "birth_date", "governorate_code", "setting_kind"],
        "name_required": [["first_name_ar", "last_name_ar"],
                          ["first_name_latin", "last_name_latin"]],
        "min_age": MIN_AGE, "max_age": MAX_AGE, "adult_age": ADULT_AGE,
    }


def open_cases(user: User) -> list[dict]:
    """The user's open cases (a manager: all the CSO's) with their notes' follow-ups not
    done yet; the youth's name only on the cases the user is assigned to (audited)."""
    query = scoped(Case, user).where(Case.status.in_(OPEN_STATUSES)).order_by(Case.opened_on)
    if user.role != Role.CSO_MANAGER:
        query = query.where(Case.id.in_(own_case_ids(user)))
    # Each case's youth and workers come with the cases, not in two queries per case.
    cases = db.session.scalars(query.options(joinedload(Case.beneficiary),
                                             selectinload(Case.workers))).all()
    notes: dict[int, list[CaseNote]] = {}
    if cases:
        for note in db.session.scalars(scoped(CaseNote, user).where(
                CaseNote.case_id.in_([c.id for c in cases]), CaseNote.due_date.is_not(None),
                CaseNote.done_on.is_(None)).order_by(CaseNote.due_date, CaseNote.id)):
            notes.setdefault(note.case_id, []).append(note)
    own: dict[int, Beneficiary] = {c.beneficiary.id: c.beneficiary for c in cases
                                   if user in c.workers}
    identities = reveal_many(list(own.values()), user, purpose="offline_cases",
                             fields=NAME_FIELDS)
    return [{
        "id": str(c.uuid), "youth_id": str(c.beneficiary.uuid),
        "youth_code": c.beneficiary.code,
        "youth_name": identities[c.beneficiary_id].full_name
        if c.beneficiary_id in identities else None,
        "follow_ups_due": [{"id": str(n.uuid), "due_date": n.due_date.isoformat()}
                           for n in notes.get(c.id, [])],
    } for c in cases]

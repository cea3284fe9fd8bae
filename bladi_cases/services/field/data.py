"""What the offline field app downloads before going out: the worker's activities with
their rosters, today's sessions, the surveys to fill, the registration form's choices and
the worker's open cases. Names are decrypted only for the worker's own activities and
cases, and each such read is written to the audit log (one entry per list)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from ...extensions import db
from ...models import (
    Activity,
    Beneficiary,
    Case,
    CaseNote,
    ConsentGiver,
    ConsentMethod,
    ConsentScope,
    Role,
    SchoolStatus,
    Sex,
    Site,
    SiteKind,
    Survey,
    SurveyVersion,
    TitledEnum,
    User,
    Wave,
)
from ...models.cases import NoteKind, case_worker
from ...policy import ScopeOf, kept_statement, scoped
from ..activities.activities import kept_with_mine, rosters, today_items, unmarkable_rows
from ..admin import governorate_choices
from ..beneficiaries.registry import NAME_FIELDS, reveal_many, revealable_columns
from ..beneficiaries.validation import ADULT_AGE, MAX_AGE, MIN_AGE
from ..cases.cases import OPEN_STATUSES, by_case, own_case_ids
from ..surveys.surveys import works_offline


def _choices(enum: type[TitledEnum]) -> list[dict]:
    return [{"value": value, "label": str(label)} for value, label in enum.choices()]


# What the field app shows of an activity, as Core rows: no object is needed.
_ACTIVITY_COLUMNS = (Activity.id, Activity.uuid, Activity.name, Activity.kind,
                     Activity.default_duration_minutes, Activity.weekdays,
                     Site.name.label("site_name"))


def activities(user: User, today: date) -> list[dict]:
    """Active activities: a worker's own, all the CSO's for a manager; rosters of the
    user's own activities with names (audited), the others' with codes only. The phone
    marks everyone on its roster: a youth who may not be marked (consent to take part
    withdrawn) is left off, or each session sent with them would be refused."""
    found = kept_with_mine("field.activities", user, lambda who: scoped(Activity, who)
                           .with_only_columns(*_ACTIVITY_COLUMNS)
                           .outerjoin(Site, Site.id == Activity.site_id)
                           .where(Activity.active.is_(True)).order_by(Activity.name))
    mine = {a.id for a in found if a.mine}
    rows = [a for a in found if user.role == Role.CSO_MANAGER or a.id in mine]
    everyone = rosters(rows, today)  # all the rosters in one statement
    refused = unmarkable_rows([b for youth in everyone.values() for b in youth])
    named = {b.id: b for a in rows if a.id in mine for b in everyone[a.id]
             if b.id not in refused}
    identities = reveal_many(list(named.values()), user, purpose="offline_roster",
                             fields=NAME_FIELDS)
    return [{
        "id": str(a.uuid), "name": a.name, "kind": a.kind, "site": a.site_name,
        "default_duration_minutes": a.default_duration_minutes,
        "weekdays": Activity.weekday_numbers.fget(a),  # it reads `weekdays` alone
        "roster": [{"id": str(b.uuid), "code": b.code,
                    "name": identities[b.id].full_name if b.id in identities else None}
                   for b in everyone[a.id] if b.id not in refused],
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
    rows = db.session.execute(kept_statement("field.surveys", user, _current_versions)).all()
    return [{"id": str(version.uuid), "survey": survey.code, "title": survey.title_in(lang),
             "number": version.number, "definition": version.definition}
            for survey, version in rows if works_offline(version.definition)]


def _current_versions(user: ScopeOf) -> sa.Select:
    """Each survey the user may see with its current version (`Survey.current`: the newest
    published), in one statement: `Survey.current` read each survey's versions in a
    statement of its own, and all of them, drafts and old definitions too."""
    # A version is visible with its survey (policy: `_survey_version_scope`).
    return (scoped(Survey, user).add_columns(SurveyVersion)
            .join(SurveyVersion, sa.and_(SurveyVersion.survey_id == Survey.id,
                                         SurveyVersion.number == Survey.current_number))
            .order_by(Survey.code))


def registration_options(user: User, lang: str) -> dict:
    """The choices and rules of the registration form."""
    sites = db.session.scalars(scoped(Site, user).where(Site.active.is_(True))
                               .order_by(Site.name)).all()
    return {
        "sites": [{"id": str(s.uuid), "name": s.name, "kind": s.kind} for s in sites],
        "governorates": [{"code": code, "name": name}
                         for code, name in governorate_choices(lang)],
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


def _cases_statements(user: User) -> tuple[sa.Select, sa.Select]:
    """The two statements of `open_cases`, kept per user (`policy.kept_statement`):
    building them costs more CPU than running them. The notes' statement takes the case
    ids as the parameter `case_ids`."""
    return kept_statement("field.cases", user, _build_cases_statements)


def _build_cases_statements(user: ScopeOf) -> tuple[sa.Select, sa.Select]:
    """The statements of `_cases_statements`."""
    query = scoped(Case, user).where(Case.status.in_(OPEN_STATUSES)).order_by(Case.opened_on)
    if user.role != Role.CSO_MANAGER:
        query = query.where(Case.id.in_(own_case_ids(user)))
    assigned = sa.exists().where(case_worker.c.case_id == Case.id,
                                 case_worker.c.user_id == user.id)
    cases = query.join(Case.beneficiary).with_only_columns(
        Case.id.label("case_id"), Case.uuid.label("case_uuid"), *revealable_columns(),
        Beneficiary.uuid, assigned.label("mine"))
    notes = scoped(CaseNote, user).with_only_columns(
        CaseNote.case_id, CaseNote.uuid, CaseNote.due_date).where(
        by_case(CaseNote, sa.bindparam("case_ids", expanding=True)),
        CaseNote.due_date.is_not(None),
        CaseNote.done_on.is_(None)).order_by(CaseNote.due_date, CaseNote.id)
    return cases, notes


def open_cases(user: User) -> list[dict]:
    """The user's open cases (a manager: all the CSO's) with their notes' follow-ups not
    done yet; the youth's name only on the cases the user is assigned to (audited).

    Two statements of Core rows, only the columns sent: the cases with their youth's code
    and encrypted name fields and whether the user is assigned (no workers loaded), then
    the follow-ups."""
    cases_statement, notes_statement = _cases_statements(user)
    cases = db.session.execute(cases_statement).all()
    notes: dict[int, list] = {}
    if cases:
        for note in db.session.execute(notes_statement,
                                       {"case_ids": [c.case_id for c in cases]}):
            notes.setdefault(note.case_id, []).append(note)
    own = {c.id: c for c in cases if c.mine}
    identities = reveal_many(list(own.values()), user, purpose="offline_cases",
                             fields=NAME_FIELDS)
    return [{
        "id": str(c.case_uuid), "youth_id": str(c.uuid),
        "youth_code": c.code,
        "youth_name": identities[c.id].full_name if c.id in identities else None,
        "follow_ups_due": [{"id": str(n.uuid), "due_date": n.due_date.isoformat()}
                           for n in notes.get(c.case_id, [])],
    } for c in cases]

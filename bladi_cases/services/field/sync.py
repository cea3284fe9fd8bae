"""Records made offline on a phone, sent in batches: each one stored once, whatever the
retries. Every record carries the UUID the phone gave it; the same UUID with the same
content is the same record ("already_stored"), with other content a "conflict".

Each record is written inside its own SAVEPOINT: a refused one leaves nothing half-written
and does not undo the others. Records are taken in order, so a youth registered earlier in
a batch can be named (by the UUID the phone gave them) by a later session, survey or note.
Like every service this one flushes; the request commits once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from flask import current_app
from flask_babel import gettext as _

from ...extensions import db
from ...i18n import ui_language
from ...models import Activity, Beneficiary, Case, CaseNote, Site, SurveyVersion, User
from ...policy import Perm, can, scoped
from .. import ValidationError
from ..activities import activities as activity_service
from ..audit import Action, record
from ..beneficiaries import registry as beneficiary_service
from ..beneficiaries.validation import validate_registration
from ..cases import cases as case_service
from ..retries import RetryConflict, prior_record
from ..surveys import surveys as survey_service

MAX_RECORDS = 100
STORED, ALREADY_STORED, CONFLICT, REJECTED = "stored", "already_stored", "conflict", "rejected"
# What a registration record's data may hold: the registration form's fields.
REGISTRATION_FIELDS = (
    "first_name_ar", "last_name_ar", "first_name_latin", "last_name_latin", "sex",
    "birth_date", "governorate_code", "setting_kind", "phone", "delegation", "school_status",
    "disability", "address", "first_contact_date", "consent_given_by", "guardian_name",
    "guardian_relationship", "guardian_phone", "consent_authority", "consent_method",
    "consent_date", "consent_scopes", "site", "activity", "confirmed_new")
_PLAIN_FIELDS = ("sex", "governorate_code", "setting_kind", "school_status", "delegation",
                 "disability")


@dataclass
class Outcome:
    """What became of one record, as the API reports it."""

    uuid: str | None
    status: str
    reason: str | None = None
    field_errors: dict[str, list[str]] | None = None
    id: str | None = None

    def as_json(self) -> dict:
        """The record's entry in the response's `results`."""
        return {"uuid": self.uuid, "status": self.status, "reason": self.reason,
                "field_errors": self.field_errors, "id": self.id}


class _Refusal(Exception):  # noqa: N818 (an outcome, raised to leave the savepoint)
    def __init__(self, status: str, reason: str, field_errors: dict | None = None):
        super().__init__(reason)
        self.status, self.reason, self.field_errors = status, reason, field_errors


def _reject(reason: str, field_name: str | None = None):
    raise _Refusal(REJECTED, reason, {field_name: [reason]} if field_name else None)


def _conflict(reason: str):
    raise _Refusal(CONFLICT, reason)


def sync_batch(actor: User, records: list) -> list[Outcome]:
    """Store each record of a batch in order, each in its own savepoint."""
    return [process_record(actor, raw) for raw in records]


def process_record(actor: User, raw) -> Outcome:
    """Store one record inside a savepoint; any refusal rolls back exactly that record."""
    record_uuid = raw.get("uuid") if isinstance(raw, dict) else None
    shown_uuid = record_uuid if isinstance(record_uuid, str) else None
    savepoint = db.session.begin_nested()
    kind = None
    try:
        key, kind, data = _parse_envelope(actor, raw)
        status, public_id = RECORD_KINDS[kind].store(actor, key, data)
    except RetryConflict:
        savepoint.rollback()
        return Outcome(shown_uuid, CONFLICT, RECORD_KINDS[kind].conflict())
    except _Refusal as refusal:
        savepoint.rollback()
        return Outcome(shown_uuid, refusal.status, refusal.reason, refusal.field_errors)
    except ValidationError as failure:
        savepoint.rollback()
        errors = {name or "record": [str(m) for m in messages]
                  for name, messages in failure.errors.items()}
        reason = " ".join(m for messages in errors.values() for m in messages)
        return Outcome(shown_uuid, REJECTED, reason, errors)
    except Exception:  # a record must never fail the whole batch: log it, refuse it
        savepoint.rollback()
        current_app.logger.exception("Sync record %s could not be stored", shown_uuid)
        return Outcome(shown_uuid, REJECTED, _("This record could not be stored."))
    savepoint.commit()
    return Outcome(shown_uuid, status, None, None, public_id)


# --- Parsing -----------------------------------------------------------------------------

def _parse_envelope(actor: User, raw) -> tuple[uuid.UUID, str, dict]:
    if not isinstance(raw, dict):
        _reject(_("A record must be an object with uuid, type and data."))
    key = _uuid(raw.get("uuid"))
    if key is None:
        _reject(_("The record has no valid uuid."), "uuid")
    kind = raw.get("type")
    if kind not in RECORD_KINDS:
        _reject(_("Unknown kind of record."), "type")
    if not isinstance(raw.get("data"), dict):
        _reject(_("The record has no data."), "data")
    if not can(actor, RECORD_KINDS[kind].permission):
        _reject(_("Your account may not send this kind of record."))
    return key, kind, raw["data"]


def _uuid(value) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _date(value, field_name: str, required: bool = True) -> date | None:
    if value in (None, "") and not required:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        _reject(_("Give a date as YYYY-MM-DD."), field_name)


def _load(model, public_id, actor: User, field_name: str, reason: str):
    """A row the user may see, by the UUID the client sent; refused when not visible."""
    key = _uuid(public_id)
    row = db.session.scalars(scoped(model, actor).where(model.uuid == key)).first() \
        if key else None
    if row is None:
        _reject(reason, field_name)
    return row


# --- Sessions ----------------------------------------------------------------------------

def _session(actor: User, key: uuid.UUID, data: dict):
    activity = _load(Activity, data.get("activity"), actor, "activity",
                     _("This activity does not exist (any more) in your CSO."))
    if not activity.active:
        _reject(_("This activity is closed: nothing can be recorded for it."), "activity")
    attendance_in = data.get("attendance") or {}
    if not isinstance(attendance_in, dict):
        _reject(_("The attendance is damaged."), "attendance")
    attendance = {}
    for youth_id, status in attendance_in.items():
        if not isinstance(status, str):
            _reject(_("Choose present, absent or excused."), "attendance")
        youth = db.session.scalars(scoped(Beneficiary, actor).where(
            Beneficiary.uuid == _uuid(youth_id), Beneficiary.erased_at.is_(None))).first() \
            if _uuid(youth_id) else None
        if youth is None:
            _reject(_("A young person of this attendance is not (or no longer) registered "
                      "in your CSO."), "attendance")
        attendance[youth.id] = status
    duration = data.get("duration_minutes")
    values = {"date": _date(data.get("date"), "date"),
              "duration_minutes": activity.default_duration_minutes if duration is None
              else duration,
              "facilitator_id": actor.id}
    session, created = activity_service.record_session(actor, activity, values, attendance,
                                                       session_uuid=key)
    return (STORED if created else ALREADY_STORED), str(session.uuid)


# --- Registrations -----------------------------------------------------------------------

def _registration_values(actor: User, data: dict) -> dict:
    """The registration form's values from JSON: dates parsed, the site looked up."""
    values = {k: v for k, v in data.items()
              if k in REGISTRATION_FIELDS and k not in ("site", "activity", "confirmed_new")}
    for name, value in values.items():
        if name != "consent_scopes" and value is not None and not isinstance(value, str | bool):
            _reject(_("Choose a value from the list."), name)
    for name in ("birth_date", "first_contact_date", "consent_date"):
        raw = data.get(name)
        if raw not in (None, ""):
            values[name] = _date(raw, name)
    scopes = data.get("consent_scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        _reject(_("Tick what the consent covers."), "consent_scopes")
    disability = data.get("disability")
    values["disability"] = {"yes": True, "no": False, True: True, False: False}.get(
        disability) if disability not in (None, "") else None
    site = None
    if data.get("site"):
        key = _uuid(data.get("site"))
        site = db.session.scalars(scoped(Site, actor).where(
            Site.uuid == key, Site.active.is_(True))).first() if key else None
        site = site if site is not None else "unknown"  # validation names the problem
    values["site"] = site
    return values


def _same_registration(actor: User, existing: Beneficiary, values: dict) -> bool:
    """Whether a retried registration says what the stored record says (the stored
    identity is decrypted for the comparison, so the read is audited like any other)."""
    try:
        identity, plain, _consent = validate_registration(values, actor.organization)
    except ValidationError:
        return False
    stored = beneficiary_service.reveal(existing, actor, purpose="sync_retry_check")
    if any(getattr(stored, name) != identity.get(name)
           for name in beneficiary_service.IDENTITY_FIELDS):
        return False
    if any(getattr(existing, name) != plain[name] for name in _PLAIN_FIELDS):
        return False
    return "first_contact_date" not in values or \
        existing.first_contact_date == plain["first_contact_date"]


def _registration(actor: User, key: uuid.UUID, data: dict):
    values = _registration_values(actor, data)
    existing = prior_record(Beneficiary, key, actor,
                            same=lambda stored: _same_registration(actor, stored, values))
    if existing is not None:
        return ALREADY_STORED, str(existing.uuid)
    activity = None
    if data.get("activity"):
        activity = _load(Activity, data.get("activity"), actor, "activity",
                         _("This activity does not exist (any more) in your CSO."))
        if not activity.active:
            _reject(_("This activity is closed: nothing can be recorded for it."), "activity")
    try:
        youth = beneficiary_service.register(
            actor, actor.organization, values, confirmed_new=data.get("confirmed_new") is True,
            beneficiary_uuid=key)
    except beneficiary_service.PossibleDuplicates as found:
        _conflict(_("Possible duplicate of %(codes)s: check, then send again with "
                    "confirmed_new.", codes=", ".join(b.code for b in found.candidates)))
    if activity is not None:
        activity_service.enrol_in_activity(actor, youth, activity, youth.first_contact_date)
    return STORED, str(youth.uuid)


# --- Surveys -----------------------------------------------------------------------------

def _survey_response(actor: User, key: uuid.UUID, data: dict):
    version = _load(SurveyVersion, data.get("version"), actor, "version",
                    _("This survey version does not exist."))
    youth = None
    if data.get("youth") is not None:
        youth = _load(Beneficiary, data.get("youth"), actor, "youth",
                      _("This young person is not (or no longer) registered in your CSO."))
    wave = data.get("wave") or None
    if wave is not None and not isinstance(wave, str):
        _reject(_("Choose a wave from the list."), "wave")
    answers = data.get("answers")
    if not isinstance(answers, dict):
        _reject(_("The answers are damaged."), "answers")
    response, created = survey_service.submit(actor, version, youth, wave, answers, key,
                                               ui_language())
    return (STORED if created else ALREADY_STORED), str(response.uuid)


# --- Case notes and follow-ups -----------------------------------------------------------

def _case_note(actor: User, key: uuid.UUID, data: dict):
    case = _load(Case, data.get("case"), actor, "case",
                 _("This case does not exist (any more) in your CSO."))
    due = _date(data.get("due_date"), "due_date", required=False)
    note_date = _date(data.get("note_date"), "note_date", required=False)
    text = data.get("text")
    if not isinstance(text, str):
        _reject(_("Write the note."), "text")

    def same(stored: CaseNote) -> bool:
        return (stored.case_id == case.id and stored.kind == data.get("kind")
                and stored.confidential == bool(data.get("confidential"))
                and stored.due_date == due and case_service.note_text(stored) == text.strip()
                and (note_date is None or stored.note_date == note_date))

    existing = prior_record(CaseNote, key, actor, same)
    if existing is not None:
        return ALREADY_STORED, str(existing.uuid)
    values = {"kind": data.get("kind"), "text": text, "due_date": due,
              "note_date": note_date, "confidential": data.get("confidential") is True}
    note = case_service.add_note(actor, case, values, note_uuid=key)
    return STORED, str(note.uuid)


def _follow_up(actor: User, key: uuid.UUID, data: dict):
    note = _load(CaseNote, data.get("note"), actor, "note",
                 _("This note does not exist (any more) in your CSO."))
    done_on = _date(data.get("done_on"), "done_on")
    if done_on > date.today() or done_on < note.note_date:
        _reject(_("Give a date between the note and today."), "done_on")
    if note.done_on is not None:
        if note.done_on == done_on:
            return ALREADY_STORED, str(note.uuid)
        raise RetryConflict()
    case_service.mark_done(actor, note, today=done_on)
    record(Action.CASE_UPDATED, actor=actor, obj=note.case,
           detail={"follow_up": "done", "note": str(note.uuid)})
    return STORED, str(note.uuid)




@dataclass(frozen=True)
class RecordType:
    """One kind of record a phone sends: how it is stored, the permission it needs on top
    of the route's Perm.SYNC, and what a conflict tells the worker (lazy: in the request's
    language)."""

    store: Callable[[User, uuid.UUID, dict], tuple[str, str]]
    permission: Perm
    conflict: Callable[[], str]


RECORD_KINDS = {
    "session": RecordType(_session, Perm.ACTIVITIES,
                          lambda: _("This session was already saved with other content.")),
    "registration": RecordType(
        _registration, Perm.BENEFICIARIES,
        lambda: _("This young person was already saved with other content.")),
    "survey_response": RecordType(
        _survey_response, Perm.SURVEYS_FILL,
        lambda: _("These answers were already sent with other content.")),
    "case_note": RecordType(_case_note, Perm.CASES,
                            lambda: _("This note was already saved with other content.")),
    "follow_up": RecordType(
        _follow_up, Perm.CASES,
        lambda: _("This follow-up was already marked done on another day.")),
}
RECORD_TYPES = tuple(RECORD_KINDS)

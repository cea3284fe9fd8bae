"""Writing the audit log: one helper that every service calls."""

from __future__ import annotations

import sqlalchemy as sa
from flask import has_request_context, request

from ..extensions import db
from ..models import AuditEntry, Organization
from ..models.common import utcnow
from ..transactions import after_render, in_read_request


class Action:
    """Names of audited events (stable strings: they are stored and filtered on)."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOCKOUT = "lockout"
    LOGOUT = "logout"
    LOGOUT_EVERYWHERE = "logout_everywhere"
    LOGIN_SESSION_ENDED = "login_session_ended"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET_ISSUED = "password_reset_issued"
    PASSWORD_RESET_USED = "password_reset_used"
    # The second factor: set up, passed at a login, a recovery code spent, new recovery
    # codes, and a manager's or administrator's reset (the account enrols again).
    SECOND_FACTOR_ENROLLED = "second_factor_enrolled"
    SECOND_FACTOR_PASSED = "second_factor_passed"
    RECOVERY_CODE_USED = "recovery_code_used"
    RECOVERY_CODES_RENEWED = "recovery_codes_renewed"
    SECOND_FACTOR_RESET = "second_factor_reset"
    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"
    USER_DEACTIVATED = "user_deactivated"
    USER_ACTIVATED = "user_activated"
    # An administrator's reset of a CSO's account, with a reason, shown to its managers.
    EMERGENCY_RESET = "emergency_reset"
    ORG_CREATED = "org_created"
    ORG_UPDATED = "org_updated"
    SITE_CREATED = "site_created"
    SITE_UPDATED = "site_updated"
    ACTIVITY_CREATED = "activity_created"
    ACTIVITY_UPDATED = "activity_updated"
    SESSION_RECORDED = "session_recorded"
    SESSION_UPDATED = "session_updated"
    GROUP_EVENT_RECORDED = "group_event_recorded"
    SURVEY_IMPORTED = "survey_imported"
    SURVEY_PUBLISHED = "survey_published"
    SURVEY_SUBMITTED = "survey_submitted"
    SURVEY_EXPORTED = "survey_exported"
    TARGET_SET = "target_set"
    AGE_BANDS_SET = "age_bands_set"
    REPORT_SUBMITTED = "report_submitted"
    REPORT_REVIEWED = "report_reviewed"
    EXPORT_DOWNLOADED = "export_downloaded"
    # Reads of identifying data and changes to young people's records.
    CASE_OPENED = "case_opened"
    CASE_UPDATED = "case_updated"
    CASE_STATUS_CHANGED = "case_status_changed"
    CASE_VIEWED = "case_viewed"
    CASE_NOTE_ADDED = "case_note_added"
    CASE_NOTE_EDITED = "case_note_edited"
    REFERRAL_ADDED = "referral_added"
    REFERRAL_UPDATED = "referral_updated"
    OUTCOME_ADDED = "outcome_added"
    OUTCOME_CHECKED = "outcome_checked"
    TRANSFER_REQUESTED = "transfer_requested"
    TRANSFER_ACCEPTED = "transfer_accepted"
    TRANSFER_REJECTED = "transfer_rejected"
    ACCESS_REQUEST_EXPORTED = "access_request_exported"
    BENEFICIARIES_IMPORTED = "beneficiaries_imported"
    BENEFICIARIES_LISTED = "beneficiaries_listed"
    BENEFICIARY_CREATED = "beneficiary_created"
    BENEFICIARY_ERASED = "beneficiary_erased"
    BENEFICIARY_UPDATED = "beneficiary_updated"
    BENEFICIARY_VIEWED = "beneficiary_viewed"
    CONSENT_RECORDED = "consent_recorded"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    ENROLMENT_ENDED = "enrolment_ended"
    ENROLMENT_STARTED = "enrolment_started"
    # The system's own work on every encrypted value (by an administrator's job, or the
    # command line: no actor): each decrypts every identity, though it shows none.
    KEYS_ROTATED = "keys_rotated"
    NAMES_REINDEXED = "names_reindexed"


ALL_ACTIONS = sorted(v for k, v in vars(Action).items() if not k.startswith("_"))


# What a read request's entry is written with (`record`): every column but the id.
_WRITTEN = [column for column in AuditEntry.__table__.columns if not column.primary_key]
_INSERT = sa.insert(AuditEntry.__table__)


def record(action: str, *, actor=None, obj=None, organization_id=None,
           detail: dict | None = None) -> AuditEntry:
    """Append an audit entry for `action` by `actor` on `obj`, from the current request's IP.

    The organisation defaults to the object's own, then the actor's, so each CSO's
    manager sees the entries that concern their CSO.

    In a read request (GET) the entry is written once the page is built
    (`transactions.after_render`; on SQLite in a short transaction of its own, so a reader
    never holds the write lock while it renders), and if it cannot be written the page is
    not sent.
    Elsewhere it is flushed at once, in the transaction of the changes it describes.
    """
    # current_user is a proxy: audit the real objects behind it.
    actor = getattr(actor, "_get_current_object", lambda: actor)()
    obj = getattr(obj, "_get_current_object", lambda: obj)()
    if organization_id is None:
        organization_id = getattr(obj, "organization_id", None)
        if organization_id is None and isinstance(obj, Organization):
            organization_id = obj.id
    if organization_id is None and actor is not None:
        organization_id = actor.organization_id
    entry = AuditEntry(
        action=action,
        actor_id=getattr(actor, "id", None),
        object_type=type(obj).__name__ if obj is not None else None,
        object_id=str(getattr(obj, "uuid", None) or getattr(obj, "id", "")) if obj else None,
        organization_id=organization_id,
        ip=request.remote_addr if has_request_context() else None,
        detail=detail or None,
        at=utcnow(),  # when it happened, not when it is written
    )
    if in_read_request():
        # A row, not an object, goes in (a page of youth writes one on every view): a Core
        # insert costs a third of the unit of work's flush of one object.
        row = {column.key: getattr(entry, column.key) for column in _WRITTEN}
        after_render(lambda: db.session.execute(_INSERT, row))
        return entry
    db.session.add(entry)
    db.session.flush()
    return entry

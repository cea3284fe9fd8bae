"""Transferring a youth and their case to another funded CSO: request, accept or reject."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _

from ...extensions import db
from ...models import (
    Case,
    CaseEvent,
    CaseGoal,
    CaseNeed,
    CaseNote,
    CaseNoteVersion,
    CaseTransfer,
    Consent,
    ExitReason,
    Organization,
    Outcome,
    Referral,
    User,
)
from ...models.cases import CaseStatus, TransferStatus
from .. import ValidationError
from ..audit import Action, record
from ..beneficiaries.registry import (
    allocate_sequences,
    cipher,
    decrypt_identity_unaudited,
    write_blind_indexes,
)


def request_transfer(actor: User, case: Case, to_org: Organization | None, consent_note: str,
                     today: date | None = None) -> CaseTransfer:
    """Ask another funded CSO to take the case; the youth's consent must be recorded."""
    today = today or date.today()
    errors: dict[str, list[str]] = {}
    if to_org is None or not to_org.active or not to_org.is_funded_cso:
        errors["to_organization"] = [_("Choose an active funded CSO.")]
    elif to_org.id == case.organization_id:
        errors["to_organization"] = [_("Choose another CSO than your own.")]
    note = (consent_note or "").strip()
    if not note or len(note) > 300:
        errors["consent_note"] = [_("Record how the young person (or guardian) agreed to "
                                    "the transfer.")]
    if case.status == CaseStatus.CLOSED:
        errors.setdefault("", []).append(_("A closed case cannot be transferred."))
    pending = db.session.scalar(sa.select(sa.func.count()).select_from(CaseTransfer).where(
        CaseTransfer.case_id == case.id, CaseTransfer.status == TransferStatus.PENDING))
    if pending:
        errors.setdefault("", []).append(_("A transfer of this case is already waiting."))
    if errors:
        raise ValidationError(errors)
    transfer = CaseTransfer(case=case, from_organization_id=case.organization_id,
                            to_organization_id=to_org.id,
                            consent_note_enc=cipher().encrypt(note),
                            requested_by_id=actor.id, requested_on=today)
    db.session.add(transfer)
    db.session.flush()
    record(Action.TRANSFER_REQUESTED, actor=actor, obj=case, detail={"to": to_org.code})
    return transfer


def decide_transfer(actor: User, transfer: CaseTransfer, accept: bool,
                    today: date | None = None) -> CaseTransfer:
    """The receiving CSO's manager accepts (the youth and case move) or rejects."""
    today = today or date.today()
    if transfer.status != TransferStatus.PENDING:
        raise ValidationError.one("", _("This transfer was already answered."))
    transfer.status = TransferStatus.ACCEPTED if accept else TransferStatus.REJECTED
    transfer.decided_by_id, transfer.decided_on = actor.id, today
    case = transfer.case
    if accept:
        _move(case, transfer, actor, today)
    db.session.flush()
    record(Action.TRANSFER_ACCEPTED if accept else Action.TRANSFER_REJECTED, actor=actor,
           obj=case, organization_id=transfer.to_organization_id)
    return transfer


def _move(case: Case, transfer: CaseTransfer, actor: User, today: date) -> None:
    """The youth moves, with their consents and case files (notes that are not
    confidential, goals, needs, referrals, outcomes, history). What the sending CSO did
    with them stays its own: enrolments at its sites end on the day of the transfer and
    stay with it, like attendance, sessions and survey answers, so its figures for the
    past do not change. Confidential notes stay behind too, out of everyone's reach (see
    policy.note_with_its_case) until the case comes back."""
    source, target = transfer.from_organization_id, transfer.to_organization_id
    youth = case.beneficiary
    old_code = youth.code
    org = db.session.get(Organization, target)
    sequence = allocate_sequences(org, 1)
    identity = decrypt_identity_unaudited(youth)
    youth.organization_id, youth.sequence = target, sequence
    youth.code = f"{org.code}-{sequence:04d}"
    write_blind_indexes(youth, identity, cipher())
    db.session.execute(sa.update(Consent).where(Consent.beneficiary_id == youth.id,
                                                Consent.organization_id == source)
                       .values(organization_id=target))
    for enrolment in youth.enrolments:
        if enrolment.organization_id == source and (enrolment.end_date is None
                                                    or enrolment.end_date > today):
            enrolment.end_date = max(today, enrolment.start_date)
            enrolment.exit_reason = ExitReason.TRANSFERRED
    # Every case file of the youth in the sending CSO goes (an older, closed one too):
    # a file left behind would show the sender a youth it may no longer see.
    files = db.session.scalars(sa.select(Case).where(Case.beneficiary_id == youth.id,
                                                     Case.organization_id == source)).all()
    ids = [f.id for f in files]
    for model in (CaseGoal, CaseNeed, Referral, Outcome, CaseEvent):
        db.session.execute(sa.update(model).where(model.case_id.in_(ids))
                           .values(organization_id=target))
    shared = sa.select(CaseNote.id).where(CaseNote.case_id.in_(ids),
                                          CaseNote.confidential.is_(False))
    db.session.execute(sa.update(CaseNoteVersion).where(CaseNoteVersion.note_id.in_(shared))
                       .values(organization_id=target))
    db.session.execute(sa.update(CaseNote).where(CaseNote.id.in_(shared))
                       .values(organization_id=target))
    for moved in files:
        moved.organization_id = target
        moved.workers = []
    db.session.add(CaseEvent(case=case, organization_id=target, kind="transfer",
                             from_value=old_code, to_value=youth.code, on_date=today,
                             by_id=actor.id))
    db.session.flush()
    db.session.expire_all()

"""The rights of the young person (Tunisian law 2004-63, arts. 32-38): access to the whole
record, and erasure of the identifying data. Both need the code typed again, and are audited."""

from __future__ import annotations

from dataclasses import fields

import sqlalchemy as sa
from flask_babel import gettext as _

from ...extensions import db
from ...models import Beneficiary, BeneficiaryNameIndex
from ...models.common import encrypted_columns, utcnow
from .. import ValidationError, jobs
from ..audit import Action, record
from .registry import cipher, decrypt_field, refuse_if_erased, reveal


def youth_link(table: sa.Table) -> list[sa.ForeignKey] | None:
    """The foreign keys that lead from a table's rows to the youth they belong to (the
    shortest chain, e.g. case_note_version -> case_note -> case_file -> beneficiary); [] for
    the beneficiary table itself, None when no chain leads there."""
    target = Beneficiary.__table__
    queue, seen = [(table, [])], {table}
    while queue:
        current, path = queue.pop(0)
        if current is target:
            return path
        for key in sorted(current.foreign_keys, key=lambda k: k.parent.name):
            if key.column.table not in seen:
                seen.add(key.column.table)
                queue.append((key.column.table, [*path, key]))
    return None


def rows_of_youth(model, youth_id: int):
    """The WHERE clause selecting a model's rows that belong to one youth (along
    `youth_link`); None when the model's rows belong to no youth."""
    path = youth_link(model.__table__)
    if path is None:
        return None
    if not path:
        return model.id == youth_id
    condition = path[-1].parent == youth_id
    for key in reversed(path[:-1]):
        condition = key.parent.in_(sa.select(key.column).where(condition))
    return condition


def _erase_encrypted(beneficiary: Beneficiary) -> None:
    """NULL every encrypted value of every row that belongs to the youth: the identity,
    guardian names, case notes and their history, goals, referral outcomes, transfer
    notes, survey text answers and drafts (whatever `encrypted_column` declares)."""
    for model, names in encrypted_columns().items():
        rows = rows_of_youth(model, beneficiary.id)
        if rows is None:  # not a youth's data
            continue
        db.session.execute(sa.update(model).where(rows).values({name: None for name in names})
                           .execution_options(synchronize_session="fetch"))


def erase(actor, beneficiary: Beneficiary, typed_code: str) -> Beneficiary:
    """Destroy a youth's identifying data (crypto-shred), keeping de-identified rows.

    Every encrypted value linked to the youth (identity, guardian names, and all the free
    text written about them: notes, goals, referral outcomes, transfer notes, survey text
    answers), the blind indexes and the files kept by the CSO's jobs are overwritten with
    NULL; sex, birth year and month,
    governorate, setting, enrolment dates, statuses, scores and choice answers stay for
    aggregates.
    """
    if (typed_code or "").strip().upper() != beneficiary.code:
        raise ValidationError.one("confirm", _("Type the code %(code)s to confirm.",
                                               code=beneficiary.code))
    refuse_if_erased(beneficiary)
    _erase_encrypted(beneficiary)
    # Files of the CSO's jobs (an upload, an export) may name the youth too: gone with them.
    jobs.forget_files(beneficiary.organization_id)
    beneficiary.name_key_ar = beneficiary.name_key_latin = None
    beneficiary.delegation = None
    db.session.execute(sa.delete(BeneficiaryNameIndex)
                       .where(BeneficiaryNameIndex.beneficiary_id == beneficiary.id))
    beneficiary.erased_at = utcnow()
    db.session.flush()
    record(Action.BENEFICIARY_ERASED, actor=actor, obj=beneficiary,
           detail={"code": beneficiary.code})
    return beneficiary


def access_record(actor, beneficiary: Beneficiary, typed_code: str) -> dict:
    """Everything held on one youth, decrypted, for an access request (audited)."""
    if (typed_code or "").strip().upper() != beneficiary.code:
        raise ValidationError.one("confirm", _("Type the code %(code)s to confirm.",
                                               code=beneficiary.code))
    identity = reveal(beneficiary, actor, purpose="access_request")
    c = cipher()
    consents = [{"given_by": k.given_by, "giver_name": decrypt_field(k, "giver_name_enc", c),
                 "relationship": k.relationship_to_youth, "authority": k.authority,
                 "given_on": k.given_on, "method": k.method, "scopes": k.scopes,
                 "withdrawn_on": k.withdrawn_on} for k in beneficiary.consents]
    record(Action.ACCESS_REQUEST_EXPORTED, actor=actor, obj=beneficiary,
           detail={"code": beneficiary.code})
    return {"beneficiary": beneficiary,
            "identity": {f.name: getattr(identity, f.name) for f in fields(identity)},
            "consents": consents, "enrolments": list(beneficiary.enrolments),
            "produced_at": utcnow()}

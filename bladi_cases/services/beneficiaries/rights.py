"""The rights of the young person (Tunisian law 2004-63, arts. 32-38): access to the whole
record, and erasure of the identifying data. Both need the code typed again, and are audited."""

from __future__ import annotations

from dataclasses import fields

import sqlalchemy as sa
from flask_babel import gettext as _

from ...extensions import db
from ...models import Beneficiary, BeneficiaryNameIndex
from ...models.common import utcnow
from .. import ValidationError
from ..audit import Action, record
from .registry import IDENTITY_FIELDS, cipher, refuse_if_erased, reveal


def erase(actor, beneficiary: Beneficiary, typed_code: str) -> Beneficiary:
    """Destroy a youth's identifying data (crypto-shred), keeping de-identified rows.

    The encrypted columns, blind indexes and guardian names are overwritten with NULL;
    sex, birth year and month, governorate, setting and enrolment dates stay for aggregates.
    """
    if (typed_code or "").strip().upper() != beneficiary.code:
        raise ValidationError.one("confirm", _("Type the code %(code)s to confirm.",
                                               code=beneficiary.code))
    refuse_if_erased(beneficiary)
    for name in IDENTITY_FIELDS:
        setattr(beneficiary, f"{name}_enc", None)
    beneficiary.name_key_ar = beneficiary.name_key_latin = None
    beneficiary.delegation = None
    for consent in beneficiary.consents:
        consent.giver_name_enc = None
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
    consents = [{"given_by": k.given_by, "giver_name": c.decrypt(k.giver_name_enc),
                 "relationship": k.relationship_to_youth, "authority": k.authority,
                 "given_on": k.given_on, "method": k.method, "scopes": k.scopes,
                 "withdrawn_on": k.withdrawn_on} for k in beneficiary.consents]
    record(Action.ACCESS_REQUEST_EXPORTED, actor=actor, obj=beneficiary,
           detail={"code": beneficiary.code})
    return {"beneficiary": beneficiary,
            "identity": {f.name: getattr(identity, f.name) for f in fields(identity)},
            "consents": consents, "enrolments": list(beneficiary.enrolments),
            "produced_at": utcnow()}

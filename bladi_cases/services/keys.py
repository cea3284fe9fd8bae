"""Key rotation: re-encrypt every encrypted column under the newest key, online."""

from __future__ import annotations

import sqlalchemy as sa

from ..extensions import db
from ..models import Beneficiary, Consent
from .beneficiaries.registry import (
    IDENTITY_FIELDS,
    cipher,
    decrypt_identity_unaudited,
    write_blind_indexes,
)

# Every encrypted column, for key rotation. Later features add theirs here.
ENCRYPTED_COLUMNS = {
    Beneficiary: tuple(f"{name}_enc" for name in IDENTITY_FIELDS),
    Consent: ("giver_name_enc",),
}


def rotate_keys(batch_size: int = 500, progress=None) -> dict[str, int]:
    """Re-encrypt every encrypted field under the newest key and rebuild blind indexes.

    Runs in batches committed one by one: while it runs, both keys decrypt and searches
    look up digests under every key (FieldCipher.index_variants), so nothing stops.
    """
    c = cipher()
    counts = {}
    for model, columns in ENCRYPTED_COLUMNS.items():
        done, last_id = 0, 0
        while True:
            rows = db.session.scalars(sa.select(model).where(model.id > last_id)
                                      .order_by(model.id).limit(batch_size)).all()
            if not rows:
                break
            for row in rows:
                for column in columns:
                    setattr(row, column, c.rotate(getattr(row, column)))
                if model is Beneficiary and row.erased_at is None:
                    write_blind_indexes(row, decrypt_identity_unaudited(row), c)
            last_id = rows[-1].id
            done += len(rows)
            db.session.commit()
            if progress:
                progress(model.__tablename__, done)
        counts[model.__tablename__] = done
    return counts

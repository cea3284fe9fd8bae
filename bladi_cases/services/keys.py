"""Key rotation: re-encrypt every encrypted column under the newest key, online, then verify
that the newest key alone decrypts everything.

Which columns are encrypted is read from the models (`encrypted_columns()`, every column
declared with `encrypted_column`), never listed here: a new encrypted field is rotated and
verified the day it is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..extensions import db
from ..models import Beneficiary, JobStage, User
from ..models.common import encrypted_columns
from ..privacy import DataKeyError, FieldCipher, UndecryptableValueError
from ..transactions import write_transaction
from . import jobs
from .audit import Action, record
from .beneficiaries.registry import cipher, decrypt_identity_unaudited, write_blind_indexes

# A row another request rewrites while rotation reads it is read again, up to this often.
_RETRIES = 3
# Verification names this many values that do not decrypt, and counts the rest.
_NAMED_FAILURES = 100


@dataclass
class Verification:
    """What decrypts under the newest key alone: values per table, and those that do not."""

    values: dict[str, int] = field(default_factory=dict)
    failures: list[UndecryptableValueError] = field(default_factory=list)  # the first ones
    failed: int = 0

    @property
    def ok(self) -> bool:
        """True when every stored value decrypts under the newest key alone."""
        return self.failed == 0


def _batches(model, names: tuple[str, ...], batch_size: int):
    """(id, tokens...) of every row holding at least one token, in id order, a batch at a
    time (each batch read after the previous one was committed)."""
    columns = [getattr(model, name) for name in names]
    last_id = 0
    while True:
        rows = db.session.execute(
            sa.select(model.id, *columns)
            .where(model.id > last_id, sa.or_(*(c.is_not(None) for c in columns)))
            .order_by(model.id).limit(batch_size)).all()
        if not rows:
            return
        yield rows
        last_id = rows[-1][0]


def _rotate_row(model, names: tuple[str, ...], row, c: FieldCipher) -> int:
    """Re-encrypt one row's tokens under the newest key; returns how many were rewritten.

    The UPDATE names the tokens it read: a row that a request rewrote meanwhile (always
    under the newest key) matches nothing and is read again, so rotation never puts back
    a value older than the one the request wrote. A value no key decrypts is left as it
    is: the verification that follows names it.
    """
    for _attempt in range(_RETRIES):
        old = dict(zip(names, row[1:], strict=True))
        new = {}
        for name, token in old.items():
            if token is None:
                continue
            try:
                new[name] = c.rotate(token)
            except DataKeyError:
                continue
        if not new:
            return 0
        done = db.session.execute(
            sa.update(model).where(model.id == row[0],
                                   *(getattr(model, name) == old[name] for name in new))
            .values(new).execution_options(synchronize_session=False))
        if done.rowcount:
            return len(new)
        row = db.session.execute(sa.select(model.id, *(getattr(model, n) for n in names))
                                 .where(model.id == row[0])).first()
        if row is None:  # deleted meanwhile
            return 0
    return 0


def rotate_keys(batch_size: int = 500, progress: Callable[[str, int], None] | None = None,
                actor=None) -> dict[str, int]:
    """Re-encrypt every encrypted value under the newest key and rebuild the blind indexes;
    returns the number of values rewritten per table.

    Runs in batches committed one by one: while it runs, both keys decrypt and searches
    look up digests under every key (FieldCipher.index_variants), so nothing stops.
    """
    c = cipher()
    counts = {}
    for model, names in encrypted_columns().items():
        done = 0
        for rows in _batches(model, names, batch_size):
            done += sum(_rotate_row(model, names, row, c) for row in rows)
            db.session.commit()
            if progress:
                progress(model.__tablename__, done)
        counts[model.__tablename__] = done
    rebuild_blind_indexes(batch_size, c, actor)
    _audited(Action.KEYS_ROTATED, actor, {"rewritten": counts})
    return counts


def _audited(action: str, actor, detail: dict) -> None:
    """The audit entry of a run over every encrypted value, in a transaction of its own."""
    db.session.commit()
    with write_transaction():
        record(action, actor=actor, detail=detail)
        db.session.commit()


def rebuild_blind_indexes(batch_size: int = 500, c: FieldCipher | None = None,
                          actor=None) -> int:
    """The name digests and duplicate-check keys of every youth not erased, under the
    newest key and the current rules of `normalize_text` (after a rotation, or after an
    upgrade that changed those rules: `flask keys reindex`); batches committed one by one.
    Returns the number of youth done."""
    c = c or cipher()
    last_id = done = 0
    db.session.commit()
    while True:
        # Each batch read and rewritten in one write transaction, its rows locked
        # (PostgreSQL: FOR UPDATE; SQLite: the write lock from BEGIN): a youth edited or
        # erased while the command runs is never given digests of an older name, nor an
        # erased one its digests back.
        with write_transaction():
            youth = db.session.scalars(sa.select(Beneficiary).where(
                Beneficiary.id > last_id, Beneficiary.erased_at.is_(None))
                .order_by(Beneficiary.id).limit(batch_size).with_for_update()).all()
            for beneficiary in youth:
                write_blind_indexes(beneficiary, decrypt_identity_unaudited(beneficiary), c)
            count, last_id = len(youth), youth[-1].id if youth else last_id
            db.session.commit()
        if not count:
            _audited(Action.NAMES_REINDEXED, actor, {"youth": done})
            return done
        done += count


def verify_keys(batch_size: int = 500) -> Verification:
    """Decrypt every stored encrypted value with the newest key of BLADI_DATA_KEY alone:
    what the data would be once the older keys are removed. Reads only."""
    newest = cipher().newest_only()
    result = Verification()
    for model, names in encrypted_columns().items():
        count = 0
        for rows in _batches(model, names, batch_size):
            for row in rows:
                for name, token in zip(names, row[1:], strict=True):
                    if token is None:
                        continue
                    try:
                        newest.decrypt(token)
                        count += 1
                    except DataKeyError:
                        result.failed += 1
                        if len(result.failures) < _NAMED_FAILURES:
                            result.failures.append(
                                UndecryptableValueError(model.__tablename__, row[0], name))
        result.values[model.__tablename__] = count
    return result


# Not stoppable while it runs: it commits batch by batch (both keys read meanwhile).
@jobs.job_kind("keys.rotate", _l("Key rotation"), back="admin.maintenance",
               back_label=_l("Maintenance"), stoppable=False)
def rotation_job(job, progress) -> jobs.Outcome:
    """`rotate_keys` then `verify_keys`, as `flask keys rotate` runs them, in a worker.
    Each batch commits: a retry after a worker died re-encrypts again, which changes
    nothing (idempotent)."""
    tables = [model.__tablename__ for model in encrypted_columns()]
    counts = rotate_keys(progress=lambda table, _n: progress(
        JobStage.ROTATED, tables.index(table), len(tables)),
        actor=db.session.get(User, job.user_id) if job.user_id else None)
    progress(JobStage.ROTATED, len(tables), len(tables))
    result = verify_keys()
    if not result.ok:
        raise jobs.JobFailed([_("%(n)d encrypted values do not decrypt under the newest key "
                                "alone. Keep the old key in BLADI_DATA_KEY and run the "
                                "rotation again.", n=result.failed)])
    return jobs.Outcome(message=_("Every encrypted value (%(n)d) is now under the newest key: "
                                  "the old key can be removed from BLADI_DATA_KEY.",
                                  n=sum(result.values.values())),
                        data={"rewritten": counts})

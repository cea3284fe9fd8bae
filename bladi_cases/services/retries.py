"""Retries of records that a client names by its own UUID (the field app's sync, a form
posted twice): the one place that tells a retry from a conflict.

A phone that lost the answer sends the same record again. The same UUID with the same
content is the same record (stored once, reported "already stored"); the same UUID with
other content, or a UUID already taken by a record the sender may not see, is a conflict:
reported, never merged. Each record type says what "the same content" means for it (a
predicate next to the service that writes it); this module makes the decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from ..extensions import db
from ..policy import scoped

Row = TypeVar("Row")


class RetryConflict(Exception):  # noqa: N818 (an outcome the caller reports)
    """A client's UUID already names a stored record with other content, or a record the
    sender may not see: nothing was changed."""


def prior_record(model: type[Row], key: uuid.UUID | None, actor,
                 same: Callable[[Row], bool]) -> Row | None:
    """The record stored earlier under a client's UUID, when this is a retry of it; None
    when the UUID is new. Raises RetryConflict when the stored record says something else
    (`same` is false) or belongs to someone the actor may not see: that row is read
    through the policy, so of another CSO's record only its existence is learnt."""
    if key is None:
        return None
    row = db.session.scalars(scoped(model, actor).where(model.uuid == key)).first()
    if row is None:
        taken = db.session.scalar(sa.select(sa.func.count()).select_from(model)
                                  .where(model.uuid == key))
        if taken:
            raise RetryConflict()
        return None
    if not same(row):
        raise RetryConflict()
    return row

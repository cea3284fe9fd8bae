"""Column helpers shared by the models: UTC timestamps and public UUIDs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column


def utcnow() -> datetime:
    """Now, as a naive UTC datetime: what every timestamp column stores (portable)."""
    return datetime.now(UTC).replace(tzinfo=None)


class PublicIdMixin:
    """A random UUID used in URLs, so sequential database ids never show."""

    uuid: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, unique=True, nullable=False, default=uuid.uuid4
    )

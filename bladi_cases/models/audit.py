"""The audit log: who did what, when, to which object, from where."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .admin import Organization
from .auth import User
from .common import utcnow


class AuditEntry(db.Model):
    """One audited event. Append-only: nothing in the app updates or deletes entries."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    action: Mapped[str] = mapped_column(sa.String(40), index=True)
    object_type: Mapped[str | None] = mapped_column(sa.String(40))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    organization_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("organization.id"), index=True
    )
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    detail: Mapped[dict | None] = mapped_column(sa.JSON(none_as_null=True))

    actor: Mapped[User | None] = relationship()
    organization: Mapped[Organization | None] = relationship()

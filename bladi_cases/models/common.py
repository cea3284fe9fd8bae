"""Column helpers shared by the models: UTC timestamps and public UUIDs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column


def in_language(texts: dict | None, lang: str, default: str = "") -> str:
    """The text in `lang` of a {"ar": ..., "fr": ..., "en": ...} dict (survey labels,
    indicator names...), else English, else any non-empty one, else `default`."""
    texts = texts or {}
    return texts.get(lang) or texts.get("en") or next(
        (text for text in texts.values() if text), default)


def utcnow() -> datetime:
    """Now, as a naive UTC datetime: what every timestamp column stores (portable)."""
    return datetime.now(UTC).replace(tzinfo=None)


def check_in(column: str, values) -> str:
    """The SQL of a CHECK constraint keeping a column to an enum's values (or any strings)."""
    return f"{column} IN {tuple(getattr(v, 'value', v) for v in values)}"


class PublicIdMixin:
    """A random UUID used in URLs, so sequential database ids never show."""

    uuid: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, unique=True, nullable=False, default=uuid.uuid4
    )


def refresh_statistics(session, *tables: str) -> None:
    """Update the query planner's statistics after a bulk write (imports, demo data).

    PostgreSQL's autovacuum does this by itself eventually; SQLite never does, and without
    statistics it may scan a whole CSO instead of reading the name index.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(sa.text("PRAGMA analysis_limit=1000"))
        for table in tables:
            session.execute(sa.text(f"ANALYZE {table}"))
    elif dialect == "postgresql":
        for table in tables:
            session.execute(sa.text(f"ANALYZE {table}"))

"""Helpers shared by the models: UTC timestamps, public UUIDs, enums with titles, encrypted
columns."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import sqlalchemy as sa
from markupsafe import Markup, escape
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, MappedColumn, mapped_column

from ..extensions import db


def in_language(texts: dict | None, lang: str, default: str = "",
                fallback: str | None = None) -> str:
    """The text in `lang` of a {"ar": ..., "fr": ..., "en": ...} dict (survey labels,
    indicator names...), else in `fallback` (a survey's default_language: its forms may
    hold any language code), else English, else the first non-empty one, else `default`.
    The one place that picks a language: templates reach it as `in_language` too."""
    texts = texts or {}
    return texts.get(lang) or (texts.get(fallback) if fallback else None) \
        or texts.get("en") or next((text for text in texts.values() if text), default)


def utcnow() -> datetime:
    """Now, as a naive UTC datetime: what every timestamp column stores (portable)."""
    return datetime.now(UTC).replace(tzinfo=None)


class TitledEnum(StrEnum):
    """A string enum whose members carry their translated titles (lazy strings).

    Declare the titles in the enum body, keyed by value; a dunder name is not a member:

        class Sex(TitledEnum):
            FEMALE = "female"
            MALE = "male"
            __titles__ = {"female": _l("Female"), "male": _l("Male")}

    Columns store plain strings, so `label_of` takes a raw stored value. Templates reach
    every subclass as `enums.<ClassName>` (see `titled_enums`). A member without a title
    fails where the enum is defined; tests/test_enum_titles.py checks every title is
    translated in Arabic and French.
    """

    __titles__: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs):
        # Fail where the enum is defined, not on the first page that shows the member.
        super().__init_subclass__(**kwargs)
        values = [member.value for member in cls.__members__.values()]
        if values and (missing := [v for v in values if v not in cls.__titles__]):
            raise TypeError(f"{cls.__name__}: no title in __titles__ for {missing}")
        if values and (extra := [k for k in cls.__titles__ if k not in values]):
            raise TypeError(f"{cls.__name__}: __titles__ for values that are not members: "
                            f"{extra}")

    @property
    def label(self):
        """This member's title in the current language (do not call it `title`: str has one)."""
        return type(self).__titles__[self.value]

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        """(value, title) pairs in member order: the choices of a SelectField or a list."""
        return [(member.value, member.label) for member in cls]

    @classmethod
    def labels(cls) -> dict[str, Any]:
        """{value: title} of every member."""
        return dict(cls.choices())

    @classmethod
    def label_of(cls, value) -> Any:
        """The title of a stored value; the value itself when unknown, "" for None."""
        if value is None:
            return ""
        return cls.__titles__.get(value, value)

    @classmethod
    def printed(cls, value) -> Markup:
        """`label_of(value)` as a template prints it, for text a view puts together: the
        title translated now and unescaped (as Jinja prints the lazy titles), an unknown
        stored value escaped, "" for None."""
        title = cls.label_of(value)
        return escape(title) if isinstance(title, str) else Markup(str(title))

    @classmethod
    def labeller(cls) -> Callable[[Any], Markup]:
        """`printed`, each value translated once: for one page that labels many rows (a
        page of 25 asked gettext for each row's labels)."""
        done: dict[Any, Markup] = {}

        def label(value) -> Markup:
            found = done.get(value)
            if found is None:
                found = done[value] = cls.printed(value)
            return found

        return label


def titled_enums() -> dict[str, type[TitledEnum]]:
    """Every TitledEnum subclass by class name (the `enums` of the templates), found by
    walking the subclasses, so a new enum needs no registration. Import the models first."""
    found: dict[str, type[TitledEnum]] = {}
    pending = list(TitledEnum.__subclasses__())
    while pending:
        cls = pending.pop()
        if found.setdefault(cls.__name__, cls) is not cls:
            raise RuntimeError(f"Two titled enums are called {cls.__name__}")
        pending.extend(cls.__subclasses__())
    return dict(sorted(found.items()))


def check_in(column: str, values) -> str:
    """The SQL of a CHECK constraint keeping a column to an enum's values (or any strings)."""
    return f"{column} IN {tuple(getattr(v, 'value', v) for v in values)}"


ENCRYPTED = "encrypted"  # the `info` key of a column holding encrypted values (privacy.crypto)


def encrypted_column() -> MappedColumn:
    """A nullable column holding one Fernet token (privacy/crypto.py): what the model
    declares for every value stored encrypted. Name its attribute `..._enc`.

    Key rotation and its verification (services/keys.py), erasure
    (services/beneficiaries/rights.py) and the "no plaintext in the database" tests find
    the column through `encrypted_columns()`, so a new one needs no registration anywhere.
    """
    return mapped_column(sa.LargeBinary, nullable=True, info={ENCRYPTED: True})


def encrypted_columns() -> dict[type, tuple[str, ...]]:
    """Every mapped model with columns declared by `encrypted_column`, and their attribute
    names, read from the mappers (the models must be imported). Ordered by table name."""
    found = {}
    for mapper in sorted(db.Model.registry.mappers, key=lambda m: m.local_table.name):
        names = tuple(attr.key for attr in mapper.column_attrs
                      if any(column.info.get(ENCRYPTED) for column in attr.columns))
        if names:
            found[mapper.class_] = names
    return found


class PublicIdMixin:
    """A random UUID used in URLs, so sequential database ids never show."""

    uuid: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, unique=True, nullable=False, default=uuid.uuid4
    )


def refresh_statistics(session, *tables: str) -> None:
    """Update the query planner's statistics after a bulk write (imports, demo data) of
    these tables, or of every table when none is named (SQLite's periodic task,
    services/jobs.py `planner_statistics`).

    PostgreSQL's autovacuum does this by itself eventually; SQLite never does, and without
    statistics it may scan a whole CSO instead of reading the name index. On SQLite each
    index's statistics are read from at most 1,000 of its rows (analysis_limit): a few
    milliseconds a table, whatever its size.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(sa.text("PRAGMA analysis_limit=1000"))
        for table in tables or ("",):
            session.execute(sa.text(f"ANALYZE {table}".strip()))
    elif dialect == "postgresql":
        for table in tables:
            session.execute(sa.text(f"ANALYZE {table}"))


@compiles(sa.Table, "sqlite")
def _sqlite_table_hint(table, compiler, **kw) -> str:
    """SQLite's FROM names a table's hint (`select.with_hint(Model, "INDEXED BY ix",
    dialect_name="sqlite")`), which SQLAlchemy's SQLite compiler leaves out: the year's
    figures name the index SQLite must read the youth in (services/reports/indicators.py)."""
    text = compiler.visit_table(table, **kw)
    hints = kw.get("fromhints")
    if kw.get("asfrom") and hints and table in hints:
        text += " " + hints[table]
    return text

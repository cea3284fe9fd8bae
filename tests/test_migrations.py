"""Migrations: upgrade from empty works, and the models and the migrations agree."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from bladi_cases import create_app
from bladi_cases.extensions import db


def _diff(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, db.metadata)


def test_session_database_built_by_migrations_matches_models(app):
    """The suite's database (SQLite or PostgreSQL) was built from empty by `upgrade`."""
    with db.engine.connect() as connection:
        assert _diff(connection) == []


def test_upgrade_downgrade_upgrade_on_an_empty_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    fresh = create_app({"BLADI_ENV": "testing", "SQLALCHEMY_DATABASE_URI": url})
    with fresh.app_context():
        engine = db.engine
        upgrade()
        with engine.connect() as connection:
            assert _diff(connection) == []
        downgrade(revision="base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert {"user_account", "organization", "site", "audit_entry"} <= set(
            sa.inspect(engine).get_table_names())
        engine.dispose()

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


def test_upgrade_encrypts_the_free_text_already_stored(file_app, tmp_path):
    """0008 encrypts the goals, referral outcomes, transfer notes, survey text answers and
    drafts written before it, leaving no plaintext in the file; downgrading decrypts them."""
    import json
    import uuid

    from bladi_cases.models import (
        CaseGoal,
        CaseTransfer,
        Organization,
        Referral,
        Survey,
        SurveyDraft,
        SurveyResponse,
    )
    from bladi_cases.seed import seed_reference
    from bladi_cases.services.beneficiaries.registry import register
    from bladi_cases.services.cases.cases import open_case, text_of
    from bladi_cases.services.surveys.surveys import draft_answers, response_answers

    from .conftest import registration

    secret = "Zoubeida زبيدة"

    def insert(table: str, **values) -> None:
        names = ", ".join(values)
        db.session.execute(sa.text(f"INSERT INTO {table} ({names}) VALUES "
                                   f"({', '.join(':' + n for n in values)})"), values)

    with file_app.app_context():
        upgrade(revision="0007")
        seed_reference()  # tables 0008 leaves alone
        ba, acec = (db.session.scalars(sa.select(Organization).where(Organization.code == code))
                    .one() for code in ("BA", "ACEC"))
        youth = register(None, ba, registration(), confirmed_new=True)
        case = open_case(type("Actor", (), {"id": None})(), youth, {})
        # In SQL: the model has the columns of later migrations (the second factor, 0009).
        insert("user_account", uuid=uuid.uuid4().hex, email="w@example.tn", display_name="W",
               role="field_worker", organization_id=ba.id, active=True, password_hash="x",
               session_nonce="n", failed_login_count=0, created_at="2026-01-05")
        user_id = db.session.scalar(sa.text("SELECT id FROM user_account WHERE email = :e"),
                                    {"e": "w@example.tn"})
        version = db.session.scalars(sa.select(Survey)).first().current
        common = {"uuid": uuid.uuid4().hex, "organization_id": ba.id, "case_id": case.id}
        insert("case_goal", **common, description=f"Goal {secret}", status="planned")
        insert("referral", **{**common, "uuid": uuid.uuid4().hex}, service_type="health",
               status="proposed", proposed_on="2026-01-05", outcome=f"Outcome {secret}")
        insert("case_transfer", uuid=uuid.uuid4().hex, case_id=case.id,
               from_organization_id=ba.id, to_organization_id=acec.id, status="pending",
               consent_note=f"Consent {secret}", requested_on="2026-01-05")
        answers = {"situation": "working", "comments": f"Comment {secret}"}
        insert("survey_response", uuid=uuid.uuid4().hex, organization_id=ba.id,
               version_id=version.id, survey_id=version.survey_id, beneficiary_id=youth.id,
               wave="baseline", answers=json.dumps(answers), scores="{}", content_hash="x",
               submitted_on="2026-01-05", created_at="2026-01-05")
        insert("survey_draft", user_id=user_id, organization_id=ba.id, version_id=version.id,
               beneficiary_id=youth.id, wave="endline", response_uuid="u",
               answers=json.dumps({"comments": f"Draft {secret}"}), updated_at="2026-01-05")
        db.session.commit()
        upgrade()
        db.session.remove()
        with db.engine.connect() as connection:
            assert _diff(connection) == []
        assert text_of(db.session.scalars(sa.select(CaseGoal)).one(),
                       "description_enc") == f"Goal {secret}"
        assert text_of(db.session.scalars(sa.select(Referral)).one(),
                       "outcome_enc") == f"Outcome {secret}"
        assert text_of(db.session.scalars(sa.select(CaseTransfer)).one(),
                       "consent_note_enc") == f"Consent {secret}"
        response = db.session.scalars(sa.select(SurveyResponse)).one()
        assert response.answers == {"situation": "working"}
        assert response_answers(response) == answers
        assert draft_answers(db.session.scalars(sa.select(SurveyDraft)).one()) == {
            "comments": f"Draft {secret}"}
        db.session.remove()
        db.engine.dispose()
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("file.db*"))
        assert b"Zoubeida" not in stored and "زبيدة".encode() not in stored
        assert b"\\u0632\\u0628" not in stored  # nor JSON's escaped Arabic

        downgrade(revision="0007")
        goals = db.session.execute(sa.text("SELECT description FROM case_goal")).scalars()
        assert list(goals) == [f"Goal {secret}"]
        restored = db.session.execute(sa.text("SELECT answers FROM survey_response")).scalar()
        assert json.loads(restored) == answers
        db.session.remove()
        db.engine.dispose()


def test_0009_keeps_the_rows_that_point_at_accounts(file_app):
    """0009 adds the second factor's columns to user_account without rebuilding it: on
    SQLite a rebuild (batch mode) drops the table, and with foreign keys on that deletes
    the password resets and survey drafts that point at it (ON DELETE CASCADE)."""
    import uuid

    from bladi_cases.models import Organization
    from bladi_cases.seed import seed_reference

    with file_app.app_context():
        upgrade(revision="0008")
        seed_reference()
        ba = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
        db.session.execute(sa.text(
            "INSERT INTO user_account (uuid, email, display_name, role, organization_id, "
            "active, password_hash, session_nonce, failed_login_count, created_at) VALUES "
            "(:u, 'r@example.tn', 'R', 'field_worker', :o, true, 'x', 'n', 0, '2026-01-05')"),
            {"u": uuid.uuid4().hex, "o": ba.id})
        user_id = db.session.scalar(sa.text("SELECT id FROM user_account"))
        db.session.execute(sa.text(
            "INSERT INTO password_reset (user_id, token_hash, created_at, expires_at) VALUES "
            "(:u, 'h', '2026-01-05', '2026-01-06')"), {"u": user_id})
        db.session.commit()
        upgrade()
        assert db.session.scalar(sa.text("SELECT count(*) FROM password_reset")) == 1
        assert db.session.scalar(sa.text(
            "SELECT second_factor_required FROM user_account")) in (False, 0)
        db.session.remove()
        db.engine.dispose()

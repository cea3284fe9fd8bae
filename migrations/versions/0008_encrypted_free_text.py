"""Free text that can name a youth, encrypted at rest: goals, referral outcomes, transfer
consent notes, the text answers of survey responses and whole survey drafts.

Existing text is encrypted here, in the same transaction that drops the plaintext columns,
with the newest key of BLADI_DATA_KEY (`flask db upgrade` runs inside the app, whose
configuration refuses to start without the key). Fernet is used directly rather than the
app's privacy module, so this migration keeps working whatever that module becomes. An
empty database needs no key. When plaintext was converted, the freed space is rewritten
(SQLite: VACUUM; PostgreSQL: VACUUM FULL of the five tables) so that no copy of it remains in
the database files. Downgrading decrypts with any configured key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 07:06:29.923766

"""
import hashlib
import json
import re

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import Fernet, MultiFernet
from flask import current_app

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# (table, plaintext column, its length, encrypted column, plaintext NOT NULL)
TEXT_COLUMNS = (
    ("case_goal", "description", 300, "description_enc", True),
    ("case_transfer", "consent_note", 300, "consent_note_enc", True),
    ("referral", "outcome", 300, "outcome_enc", False),
)
TABLES = ("case_goal", "case_transfer", "referral", "survey_draft", "survey_response")


def _fernet() -> MultiFernet:
    raw = current_app.config.get("BLADI_DATA_KEY") or ""
    keys = [key for key in re.split(r"[,\s]+", raw) if key]
    if not keys:
        raise RuntimeError("BLADI_DATA_KEY is needed to encrypt the existing free text")
    return MultiFernet([Fernet(key) for key in keys])


def _encrypt_text(conn, fernet, table: str, plain: str, encrypted: str) -> int:
    rows = sa.table(table, sa.column("id", sa.Integer), sa.column(plain, sa.String),
                    sa.column(encrypted, sa.LargeBinary))
    found = conn.execute(sa.select(rows.c.id, rows.c[plain]).where(
        rows.c[plain].is_not(None), rows.c[plain] != "")).all()
    for row_id, text in found:
        conn.execute(sa.update(rows).where(rows.c.id == row_id).values(
            {encrypted: fernet().encrypt(text.encode("utf-8"))}))
    return len(found)


def _text_names(conn, version_id: int, cache: dict) -> set:
    if version_id not in cache:
        versions = sa.table("survey_version", sa.column("id", sa.Integer),
                            sa.column("definition", sa.JSON))
        definition = conn.execute(sa.select(versions.c.definition)
                                  .where(versions.c.id == version_id)).scalar_one()
        cache[version_id] = {q["name"] for q in definition.get("questions", [])
                             if q.get("type") == "text"}
    return cache[version_id]


def _split_responses(conn, fernet) -> int:
    """Move the text answers of each response into its encrypted column; the content hash
    then covers the plain answers only (as services/surveys/surveys.py computes it)."""
    responses = sa.table(
        "survey_response", sa.column("id", sa.Integer), sa.column("version_id", sa.Integer),
        sa.column("beneficiary_id", sa.Integer), sa.column("wave", sa.String),
        sa.column("answers", sa.JSON), sa.column("text_answers_enc", sa.LargeBinary),
        sa.column("content_hash", sa.String))
    cache, moved = {}, 0
    for row in conn.execute(sa.select(responses.c.id, responses.c.version_id,
                                      responses.c.beneficiary_id, responses.c.wave,
                                      responses.c.answers)).all():
        texts = _text_names(conn, row.version_id, cache)
        answers = row.answers or {}
        written = {name: value for name, value in answers.items() if name in texts}
        if not written:
            continue
        plain = {name: value for name, value in answers.items() if name not in texts}
        digest = hashlib.sha256(json.dumps([row.version_id, row.beneficiary_id, row.wave, plain],
                                           sort_keys=True).encode()).hexdigest()
        token = fernet().encrypt(json.dumps(written, ensure_ascii=False,
                                            sort_keys=True).encode("utf-8"))
        conn.execute(sa.update(responses).where(responses.c.id == row.id).values(
            answers=plain, text_answers_enc=token, content_hash=digest))
        moved += 1
    return moved


def _seal_drafts(conn, fernet) -> int:
    drafts = sa.table("survey_draft", sa.column("id", sa.Integer),
                      sa.column("answers", sa.JSON), sa.column("answers_enc", sa.LargeBinary))
    sealed = 0
    for row_id, answers in conn.execute(sa.select(drafts.c.id, drafts.c.answers)).all():
        if answers:
            conn.execute(sa.update(drafts).where(drafts.c.id == row_id).values(
                answers_enc=fernet().encrypt(json.dumps(answers, ensure_ascii=False,
                                                        sort_keys=True).encode("utf-8"))))
            sealed += 1
    return sealed


def _lazy(factory):
    """The Fernet only when a row needs it: an empty database needs no key."""
    made = []

    def get():
        if not made:
            made.append(factory())
        return made[0]
    return get


def _rewrite_freed_space() -> None:
    """Rewrite the files so the converted plaintext leaves no copy in freed pages (both
    statements refuse to run inside a transaction: the migration's is committed first)."""
    with op.get_context().autocommit_block():
        conn = op.get_bind()
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM FULL " + ", ".join(TABLES))


def upgrade():
    for table, _plain, _length, encrypted, _required in TEXT_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(encrypted, sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('survey_draft', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answers_enc', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_answers_enc', sa.LargeBinary(), nullable=True))

    conn, fernet = op.get_bind(), _lazy(_fernet)
    converted = sum(_encrypt_text(conn, fernet, table, plain, encrypted)
                    for table, plain, _length, encrypted, _required in TEXT_COLUMNS)
    converted += _split_responses(conn, fernet) + _seal_drafts(conn, fernet)

    for table, plain, _length, _encrypted, _required in TEXT_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(plain)
    with op.batch_alter_table('survey_draft', schema=None) as batch_op:
        batch_op.drop_column('answers')
    if converted:
        _rewrite_freed_space()


def _decrypt_text(conn, fernet, table: str, plain: str, encrypted: str,
                  required: bool) -> None:
    rows = sa.table(table, sa.column("id", sa.Integer), sa.column(plain, sa.String),
                    sa.column(encrypted, sa.LargeBinary))
    for row_id, token in conn.execute(sa.select(rows.c.id, rows.c[encrypted])).all():
        if token is not None:
            text = fernet().decrypt(bytes(token)).decode("utf-8")
        else:  # erased (or never written)
            text = "" if required else None
        conn.execute(sa.update(rows).where(rows.c.id == row_id).values({plain: text}))


def downgrade():
    conn, fernet = op.get_bind(), _lazy(_fernet)
    with op.batch_alter_table('survey_draft', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answers', sa.JSON(), nullable=True))
    drafts = sa.table("survey_draft", sa.column("id", sa.Integer),
                      sa.column("answers", sa.JSON), sa.column("answers_enc", sa.LargeBinary))
    for row_id, token in conn.execute(sa.select(drafts.c.id, drafts.c.answers_enc)).all():
        answers = json.loads(fernet().decrypt(bytes(token))) if token is not None else {}
        conn.execute(sa.update(drafts).where(drafts.c.id == row_id).values(answers=answers))
    with op.batch_alter_table('survey_draft', schema=None) as batch_op:
        batch_op.alter_column('answers', existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column('answers_enc')

    responses = sa.table(
        "survey_response", sa.column("id", sa.Integer), sa.column("version_id", sa.Integer),
        sa.column("beneficiary_id", sa.Integer), sa.column("wave", sa.String),
        sa.column("answers", sa.JSON), sa.column("text_answers_enc", sa.LargeBinary),
        sa.column("content_hash", sa.String))
    for row in conn.execute(sa.select(responses).where(
            responses.c.text_answers_enc.is_not(None))).all():
        answers = {**(row.answers or {}),
                   **json.loads(fernet().decrypt(bytes(row.text_answers_enc)))}
        digest = hashlib.sha256(json.dumps([row.version_id, row.beneficiary_id, row.wave,
                                            answers], sort_keys=True).encode()).hexdigest()
        conn.execute(sa.update(responses).where(responses.c.id == row.id).values(
            answers=answers, content_hash=digest))
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.drop_column('text_answers_enc')

    for table, plain, length, encrypted, required in reversed(TEXT_COLUMNS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(plain, sa.String(length=length), nullable=True))
        _decrypt_text(conn, fernet, table, plain, encrypted, required)
        with op.batch_alter_table(table, schema=None) as batch_op:
            if required:
                batch_op.alter_column(plain, existing_type=sa.String(length=length),
                                      nullable=False)
            batch_op.drop_column(encrypted)

"""The count of each CSO's youth not erased, kept by the database (beneficiary_count).

Reviewed:
- a new table, beneficiary_count (organization_id, live), one row per CSO that has had a
  youth; the application reads it and never writes it;
- triggers on beneficiary that change `live` in the writer's own transaction: an insert of
  a youth not erased adds one to its CSO; a delete of one takes one away; an update of
  organization_id or erased_at (a transfer, an erasure) takes one from the old CSO when the
  row counted there and adds one to the new CSO when it counts there. The same rules on
  both databases: SQLite's triggers hold them as SQL, PostgreSQL's call two PL/pgSQL
  functions (an insert is counted once per statement there, see below);
- the first count, from the rows already there, after the triggers exist: on PostgreSQL
  the migration's one transaction holds the trigger's lock on beneficiary until it
  commits, and on SQLite the migration holds the write lock, so no write falls between
  the count and the triggers;
- ix_beneficiary_org_live (0012) dropped: the home page's count read it, and nothing else.

Why: the home page counted one index entry per youth on every view (100,000 at 100,000
youth: the one page that grew with the CSO). Now it reads one row.

A write locks its CSO's row until it commits: two registrations of one CSO on PostgreSQL
take turns at the commit, as they already did at the CSO's code counter, and an import
holds the row while it runs. Backups copy the table with the rest (the SQLite backup API copies the file;
pg_restore loads rows before it creates triggers), so a restore needs no recount.

A later migration that rebuilds beneficiary on SQLite (a batch copy: add a check, change a
type) drops the table's triggers with it and must create them again:
tests/test_beneficiary_count.py fails if the migrated database lacks one.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 05:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

# "Counted": a youth not erased. The upsert adds a CSO's row on its first youth.
_ADD = ("INSERT INTO beneficiary_count (organization_id, live) VALUES ({org}, 1) "
        "ON CONFLICT (organization_id) DO UPDATE SET live = beneficiary_count.live + 1")
_TAKE = "UPDATE beneficiary_count SET live = live - 1 WHERE organization_id = {org}"
_MOVED = "OLD.organization_id IS NOT NEW.organization_id"

SQLITE_TRIGGERS = {
    "beneficiary_count_insert":
        "AFTER INSERT ON beneficiary WHEN NEW.erased_at IS NULL BEGIN "
        + _ADD.format(org="NEW.organization_id") + "; END",
    "beneficiary_count_delete":
        "AFTER DELETE ON beneficiary WHEN OLD.erased_at IS NULL BEGIN "
        + _TAKE.format(org="OLD.organization_id") + "; END",
    # An update: leaves the old CSO's count when it counted there and no longer does
    # (erased, or moved), joins the new one's in the mirror case.
    "beneficiary_count_update_leave":
        "AFTER UPDATE OF organization_id, erased_at ON beneficiary "
        f"WHEN OLD.erased_at IS NULL AND (NEW.erased_at IS NOT NULL OR {_MOVED}) BEGIN "
        + _TAKE.format(org="OLD.organization_id") + "; END",
    "beneficiary_count_update_join":
        "AFTER UPDATE OF organization_id, erased_at ON beneficiary "
        f"WHEN NEW.erased_at IS NULL AND (OLD.erased_at IS NOT NULL OR {_MOVED}) BEGIN "
        + _ADD.format(org="NEW.organization_id") + "; END",
}

# PostgreSQL counts an INSERT once per statement, from the rows it added: an import's
# bulk insert is a few statements of many rows, where a row trigger updated the CSO's row
# once per youth in one transaction (each update a new version of that row: 1.2 s more
# for 10,000 rows). Updates and deletes touch one youth at a time and keep a row trigger (a
# trigger on chosen columns cannot see its statement's rows).
POSTGRESQL_FUNCTIONS = {
    "beneficiary_count_added": """
BEGIN
    INSERT INTO beneficiary_count (organization_id, live)
    SELECT organization_id, count(*) FROM added WHERE erased_at IS NULL
    GROUP BY organization_id
    ON CONFLICT (organization_id) DO UPDATE SET live = beneficiary_count.live + EXCLUDED.live;
    RETURN NULL;
END""",
    "beneficiary_count_change": """
BEGIN
    -- NEW is unset on DELETE: read only where it exists.
    IF OLD.erased_at IS NULL AND (TG_OP = 'DELETE' OR NEW.erased_at IS NOT NULL
            OR OLD.organization_id IS DISTINCT FROM NEW.organization_id) THEN
        %(take_old)s;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.erased_at IS NULL AND (OLD.erased_at IS NOT NULL
                OR OLD.organization_id IS DISTINCT FROM NEW.organization_id) THEN
            %(add_new)s;
        END IF;
    END IF;
    RETURN NULL;
END""" % {"take_old": _TAKE.format(org="OLD.organization_id"),
          "add_new": _ADD.format(org="NEW.organization_id")},
}

POSTGRESQL_TRIGGERS = {
    "beneficiary_count_insert": "AFTER INSERT ON beneficiary REFERENCING NEW TABLE AS added "
                                "FOR EACH STATEMENT EXECUTE FUNCTION beneficiary_count_added()",
    "beneficiary_count_delete": "AFTER DELETE ON beneficiary FOR EACH ROW "
                                "WHEN (OLD.erased_at IS NULL) "
                                "EXECUTE FUNCTION beneficiary_count_change()",
    "beneficiary_count_update": "AFTER UPDATE OF organization_id, erased_at ON beneficiary "
                                "FOR EACH ROW EXECUTE FUNCTION beneficiary_count_change()",
}


def upgrade():
    op.create_table(
        'beneficiary_count',
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('live', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                                name=op.f('fk_beneficiary_count_organization_id_organization')),
        sa.PrimaryKeyConstraint('organization_id', name=op.f('pk_beneficiary_count')),
    )
    if op.get_bind().dialect.name == "sqlite":
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    else:
        for name, body in POSTGRESQL_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
                       f"AS $${body}$$")
        for name, body in POSTGRESQL_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    op.execute("INSERT INTO beneficiary_count (organization_id, live) "
               "SELECT organization_id, count(*) FROM beneficiary WHERE erased_at IS NULL "
               "GROUP BY organization_id")
    with op.batch_alter_table('beneficiary', schema=None) as batch_op:
        batch_op.drop_index('ix_beneficiary_org_live',
                            sqlite_where=sa.text('erased_at IS NULL'),
                            postgresql_where=sa.text('erased_at IS NULL'))


def downgrade():
    with op.batch_alter_table('beneficiary', schema=None) as batch_op:
        batch_op.create_index('ix_beneficiary_org_live', ['organization_id'], unique=False,
                              sqlite_where=sa.text('erased_at IS NULL'),
                              postgresql_where=sa.text('erased_at IS NULL'))
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    else:
        for name in POSTGRESQL_TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON beneficiary")
        for name in POSTGRESQL_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table('beneficiary_count')

"""Indexes for the pages opened all day: the count of a CSO's youth on the home page, and a
worker's own case files (their follow-ups on the home page, the field app's cases).

Reviewed: two new indexes only (and the planner's statistics of both tables refreshed);
nothing existing changes.
- beneficiary (organization_id) WHERE erased_at IS NULL: the home page counts the CSO's
  youth not erased; without it the count reads every row of the CSO (20,000 rows: 30-60 ms
  on SQLite per home page), with it the index alone. Partial, so it serves only queries
  that exclude the erased: an index on (organization_id, erased_at) was also chosen by
  SQLite for the youth list, which then sorted the whole CSO by id (4x slower).
- case_worker (user_id): a worker's case files, found from the assignments (the primary key
  starts with case_id, so a lookup by user read the whole table).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 13:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    live = sa.text('erased_at IS NULL')
    with op.batch_alter_table('beneficiary', schema=None) as batch_op:
        batch_op.create_index('ix_beneficiary_org_live', ['organization_id'], unique=False,
                              sqlite_where=live, postgresql_where=live)
    with op.batch_alter_table('case_worker', schema=None) as batch_op:
        batch_op.create_index('ix_case_worker_user_id', ['user_id'], unique=False)
    # Statistics of the new indexes at once: SQLite, holding statistics of a table but none
    # of its new index, guesses the index selective (the field app's rosters then read the
    # whole CSO through it instead of the activity's enrolments) until the next ANALYZE.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA analysis_limit=1000")
    op.execute("ANALYZE beneficiary")
    op.execute("ANALYZE case_worker")


def downgrade():
    with op.batch_alter_table('case_worker', schema=None) as batch_op:
        batch_op.drop_index('ix_case_worker_user_id')
    with op.batch_alter_table('beneficiary', schema=None) as batch_op:
        batch_op.drop_index('ix_beneficiary_org_live')

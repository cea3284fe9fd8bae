"""A job can be cancelled by the person who asked for it.

Reviewed: the job table's check of its status admits one more value, 'cancelled'; nothing
else changes, no row is rewritten (SQLite copies the table to change a check, in a batch;
PostgreSQL drops and adds the constraint). Downgrading first turns cancelled jobs into
failed ones, which is what they were shown as before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 22:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

BEFORE = ('queued', 'running', 'waiting', 'done', 'failed')
AFTER = (*BEFORE, 'cancelled')


def _check(values) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_job_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_job_status'), _check(AFTER))


def downgrade():
    op.execute(sa.text("UPDATE job SET status = 'failed' WHERE status = 'cancelled'"))
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_job_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_job_status'), _check(BEFORE))

"""Reporting: an index covering what the year's figures read of the attendance (CSO,
youth, status, session), so the one pass over millions of rows reads the index alone, in
the order it groups by, instead of the table and a sort.

Reviewed: an index only; nothing existing changes. On a large attendance table, creating
it takes a while (about a second per million rows on SQLite) and, on PostgreSQL, locks
attendance writes meanwhile: upgrade out of hours.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 13:20:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_attendance_figures', 'attendance',
                    ['organization_id', 'beneficiary_id', 'status', 'session_id'], unique=False)


def downgrade():
    op.drop_index('ix_attendance_figures', table_name='attendance')

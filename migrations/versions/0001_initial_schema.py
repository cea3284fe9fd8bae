"""Initial schema: governorates, organisations, sites, staff accounts, resets, audit log.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-29 15:55:06.696736

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():

    op.create_table('governorate',
    sa.Column('iso_code', sa.String(length=5), nullable=False),
    sa.Column('name_ar', sa.String(length=60), nullable=False),
    sa.Column('name_fr', sa.String(length=60), nullable=False),
    sa.Column('name_en', sa.String(length=60), nullable=False),
    sa.PrimaryKeyConstraint('iso_code', name=op.f('pk_governorate'))
    )
    op.create_table('organization',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name_ar', sa.String(length=200), nullable=False),
    sa.Column('name_fr', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('acronym', sa.String(length=30), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('governorate_code', sa.String(length=5), nullable=True),
    sa.Column('locality', sa.String(length=120), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('uuid', sa.Uuid(), nullable=False),
    sa.CheckConstraint("kind IN ('funded_cso', 'partner', 'donor')", name=op.f('ck_organization_kind')),
    sa.ForeignKeyConstraint(['governorate_code'], ['governorate.iso_code'], name=op.f('fk_organization_governorate_code_governorate')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization')),
    sa.UniqueConstraint('code', name=op.f('uq_organization_code')),
    sa.UniqueConstraint('uuid', name=op.f('uq_organization_uuid'))
    )
    op.create_table('site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('governorate_code', sa.String(length=5), nullable=False),
    sa.Column('locality', sa.String(length=120), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('uuid', sa.Uuid(), nullable=False),
    sa.CheckConstraint("kind IN ('rehabilitation_centre', 'youth_centre', 'school')", name=op.f('ck_site_kind')),
    sa.ForeignKeyConstraint(['governorate_code'], ['governorate.iso_code'], name=op.f('fk_site_governorate_code_governorate')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site')),
    sa.UniqueConstraint('uuid', name=op.f('uq_site_uuid'))
    )
    op.create_table('site_organization',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_site_organization_organization_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_site_organization_site_id_site'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'organization_id', name=op.f('pk_site_organization'))
    )
    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('display_name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('preferred_language', sa.String(length=5), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('session_nonce', sa.String(length=32), nullable=False),
    sa.Column('failed_login_count', sa.Integer(), nullable=False),
    sa.Column('first_failed_login_at', sa.DateTime(), nullable=True),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.Column('password_changed_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('uuid', sa.Uuid(), nullable=False),
    sa.CheckConstraint("organization_id IS NOT NULL OR role NOT IN ('field_worker', 'cso_manager')", name=op.f('ck_user_account_cso_role_needs_org')),
    sa.CheckConstraint("role IN ('field_worker', 'cso_manager', 'reviewer', 'donor', 'admin')", name=op.f('ck_user_account_role')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_user_account_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('email', name=op.f('uq_user_account_email')),
    sa.UniqueConstraint('uuid', name=op.f('uq_user_account_uuid'))
    )
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_account_organization_id'), ['organization_id'], unique=False)

    op.create_table('audit_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=True),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['user_account.id'], name=op.f('fk_audit_entry_actor_id_user_account')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_audit_entry_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entry_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_organization_id'), ['organization_id'], unique=False)

    op.create_table('password_reset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_password_reset_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_password_reset_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_reset')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_reset_token_hash'))
    )
    with op.batch_alter_table('password_reset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_reset_user_id'), ['user_id'], unique=False)




def downgrade():

    with op.batch_alter_table('password_reset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_user_id'))

    op.drop_table('password_reset')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_organization_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entry_at'))
        batch_op.drop_index(batch_op.f('ix_audit_entry_actor_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entry_action'))

    op.drop_table('audit_entry')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_account_organization_id'))

    op.drop_table('user_account')
    op.drop_table('site_organization')
    op.drop_table('site')
    op.drop_table('organization')
    op.drop_table('governorate')


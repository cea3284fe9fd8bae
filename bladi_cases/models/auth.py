"""Staff accounts, one-time password reset codes, second-factor recovery codes and the
server-side record of each login session."""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .admin import Organization
from .common import PublicIdMixin, TitledEnum, encrypted_column, utcnow


class Role(TitledEnum):
    """What a user does in the program; permissions hang off it (see policy.py)."""

    FIELD_WORKER = "field_worker"
    CSO_MANAGER = "cso_manager"
    REVIEWER = "reviewer"
    DONOR = "donor"
    ADMIN = "admin"

    __titles__ = {
        "field_worker": _l("Field worker"),
        "cso_manager": _l("CSO manager"),
        "reviewer": _l("Reviewer"),
        "donor": _l("Donor"),
        "admin": _l("Administrator"),
    }


CSO_ROLES = (Role.FIELD_WORKER, Role.CSO_MANAGER)
LANGUAGES = ("ar", "fr", "en")


def new_session_nonce() -> str:
    """A random value baked into login cookies; changing it ends every session."""
    return secrets.token_urlsafe(16)


class User(PublicIdMixin, db.Model):
    """A staff account: a CSO field worker or manager, a reviewer, the donor, an admin."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased, so the unique constraint is case-insensitive on every database.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(120))
    role: Mapped[str] = mapped_column(sa.String(20))
    organization_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("organization.id"), index=True
    )
    preferred_language: Mapped[str | None] = mapped_column(sa.String(5))
    active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    session_nonce: Mapped[str] = mapped_column(sa.String(32), default=new_session_nonce)
    failed_login_count: Mapped[int] = mapped_column(default=0)
    first_failed_login_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The second factor (TOTP, RFC 6238): the shared secret, encrypted at rest; set when
    # enrolment starts and trusted once a first code confirmed it.
    totp_secret_enc: Mapped[bytes | None] = encrypted_column()
    totp_confirmed_at: Mapped[datetime | None]
    # The last time step whose code was accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Must enrol a second factor at the next login even where the role makes it optional
    # (after an administrator's emergency reset, say).
    second_factor_required: Mapped[bool] = mapped_column(default=False)
    # When this user last acknowledged the notices shown to them (a manager: emergency
    # resets of their CSO's accounts by an administrator).
    notices_seen_at: Mapped[datetime | None]

    organization: Mapped[Organization | None] = relationship()

    __table_args__ = (
        sa.CheckConstraint(f"role IN {tuple(r.value for r in Role)}", name="role"),
        sa.CheckConstraint(
            "organization_id IS NOT NULL OR role NOT IN ('field_worker', 'cso_manager')",
            name="cso_role_needs_org",
        ),
    )

    # Flask-Login protocol -------------------------------------------------------
    @property
    def is_active(self) -> bool:
        """Deactivated accounts cannot log in and lose their sessions."""
        return bool(self.active)

    @property
    def is_authenticated(self) -> bool:
        """Every loaded User is a logged-in one (anonymous users are another class)."""
        return True

    @property
    def is_anonymous(self) -> bool:
        """Never anonymous; see is_authenticated."""
        return False

    def get_id(self) -> str:
        """Session identity: public id plus nonce, so a nonce change ends old sessions."""
        return f"{self.uuid}.{self.session_nonce}"

    @property
    def is_cso_staff(self) -> bool:
        """True for field workers and CSO managers, who belong to one funded CSO."""
        return self.role in CSO_ROLES

    @property
    def role_label(self):
        """The role's name in the current language."""
        return Role.label_of(self.role)


class PasswordReset(db.Model):
    """A one-time reset code a manager hands to a user; only its hash is stored."""

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class RecoveryCode(db.Model):
    """One single-use recovery code of a second factor; only its hash is stored."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class LoginSession(db.Model):
    """One login on one device, kept on the server so that it can end: logout, "log out
    everywhere", the idle timeout and the absolute lifetime revoke it for every copy of the
    cookie. The cookie holds a random token; only its hash is stored."""

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_agent: Mapped[str] = mapped_column(sa.String(200), default="")
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()

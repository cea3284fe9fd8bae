"""Managing organisations, sites and staff accounts."""

from __future__ import annotations

import re
import secrets
import uuid

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from ..extensions import db
from ..models import CSO_ROLES, AuditEntry, Governorate, Organization, OrgKind, Role, Site, User
from ..models.admin import localized
from ..models.common import utcnow
from ..policy import has_active_manager, scoped
from . import ValidationError
from .audit import Action, record
from .auth import (
    end_every_session,
    hash_password,
    issue_reset,
    normalize_email,
    password_problems,
    second_factor,
)
from .inputs import name_problems

ORG_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,19}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --- Reference data ----------------------------------------------------------------------

def governorate_choices(lang: str) -> tuple[tuple[str, str], ...]:
    """Tunisia's governorates as (ISO code, name in `lang`), in code order: what every form,
    list and export that offers or names them shows.

    Read once per process and language. The table is reference data the app never writes:
    `flask seed` fills it from data/governorates.csv, which changes only with a release, and
    a release restarts the app. Read on each request, it was one statement of every `/field`
    page and registration form (0.2 ms on PostgreSQL). An empty table is a database not
    seeded yet: not kept, so the next request reads it again."""
    kept = current_app.extensions.setdefault("bladi_governorates", {})
    choices = kept.get(lang)
    if choices is None:
        rows = db.session.execute(sa.select(
            Governorate.iso_code, Governorate.name_ar, Governorate.name_fr, Governorate.name_en)
            .order_by(Governorate.iso_code)).all()
        choices = tuple((row.iso_code, localized(row, "name", lang)) for row in rows)
        if choices:
            kept[lang] = choices
    return choices


# --- Staff accounts -----------------------------------------------------------------------

def _check_role_and_org(actor: User | None, role: str, org: Organization | None) -> None:
    """Who may give which role in which organisation (actor None: the command line)."""
    if role not in {r.value for r in Role}:
        raise ValidationError.one("role", _("Choose a role from the list."))
    if actor is not None and actor.role == Role.CSO_MANAGER:
        if role not in CSO_ROLES:
            raise ValidationError.one(
                "role", _("A CSO manager can only create staff of their CSO."))
        if org is None or org.id != actor.organization_id:
            raise ValidationError.one("organization", _("Choose your own organisation."))
    if role in CSO_ROLES:
        if org is None or org.kind != OrgKind.FUNDED_CSO:
            raise ValidationError.one(
                "organization", _("Field workers and CSO managers belong to a funded CSO."))
        if actor is not None and actor.role == Role.ADMIN:
            _check_first_manager(role, org)
    elif role == Role.REVIEWER and (org is None or org.kind != OrgKind.PARTNER):
        raise ValidationError.one("organization", _("Reviewers belong to a partner organisation."))
    elif role == Role.DONOR and org is not None and org.kind != OrgKind.DONOR:
        raise ValidationError.one("organization", _("Donor accounts belong to the donor."))
    elif role == Role.ADMIN and org is not None and org.kind == OrgKind.FUNDED_CSO:
        raise ValidationError.one("organization", _("Administrators do not belong to a CSO."))


def _check_first_manager(role: str, org: Organization) -> None:
    """An administrator gives a CSO role only to make the first manager of a CSO that has
    no active one: a CSO's managers manage its staff, so that nobody outside the CSO can
    make themselves an account that reads its youth."""
    if role != Role.CSO_MANAGER:
        raise ValidationError.one("role", _(
            "An administrator can only create the first manager of a CSO; its managers "
            "create the other staff accounts."))
    if has_active_manager(org.id):
        raise ValidationError.one("organization", _(
            "This CSO has an active manager: its staff accounts are created and reset by "
            "its managers."))


def _check_identity(email: str, display_name: str, exclude_id: int | None = None) -> str:
    email = normalize_email(email)
    errors: dict[str, list[str]] = {}
    if not EMAIL_RE.match(email) or len(email) > 254:
        errors["email"] = [_("Enter a valid email address.")]
    else:
        clash = db.session.scalars(db.select(User.id).where(User.email == email)).first()
        if clash is not None and clash != exclude_id:
            errors["email"] = [_("An account with this email already exists.")]
    if not display_name.strip() or len(display_name) > 120:
        errors["display_name"] = [_("Enter a name of 1 to 120 characters.")]
    elif problems := name_problems(display_name.strip()):
        errors["display_name"] = problems
    if errors:
        raise ValidationError(errors)
    return email


def create_user(actor: User | None, *, email: str, display_name: str, role: str,
                organization: Organization | None, preferred_language: str | None = None,
                password: str | None = None) -> tuple[User, str | None]:
    """Create a staff account. Returns (user, reset code).

    Without a password the account gets an unusable random one and a one-time code the
    manager hands over, since no email server is assumed.
    """
    if actor is not None and actor.role == Role.CSO_MANAGER and organization is None:
        organization = actor.organization
    email = _check_identity(email, display_name)
    _check_role_and_org(actor, role, organization)
    if password is not None:
        problems = password_problems(password, email=email, display_name=display_name)
        if problems:
            raise ValidationError({"password": problems})
    user = User(
        email=email, display_name=display_name.strip(), role=role,
        organization_id=organization.id if organization else None,
        preferred_language=preferred_language or None,
        password_hash=hash_password(password or secrets.token_urlsafe(32)),
    )
    db.session.add(user)
    db.session.flush()
    record(Action.USER_CREATED, actor=actor, obj=user, detail={"role": role})
    code = None if password is not None else issue_reset(user, actor)
    return user, code


def update_user(actor: User, user: User, *, display_name: str, email: str, role: str,
                organization: Organization | None, preferred_language: str | None) -> User:
    """Change an account's name, email, role, organisation or language."""
    if actor.role == Role.CSO_MANAGER:
        organization = actor.organization
    if actor.role == Role.ADMIN and user.is_cso_staff and has_active_manager(
            user.organization_id) and user.id != actor.id:
        raise ValidationError.one("", _(
            "This CSO has an active manager: its staff accounts are created and reset by "
            "its managers."))
    email = _check_identity(email, display_name, exclude_id=user.id)
    _check_role_and_org(actor, role, organization)
    if user.id == actor.id and role != user.role:
        raise ValidationError.one("role", _("You cannot change your own role."))
    changed = {
        name for name, new in (("email", email), ("display_name", display_name.strip()),
                               ("role", role),
                               ("organization_id", organization.id if organization else None),
                               ("preferred_language", preferred_language or None))
        if getattr(user, name) != new
    }
    user.email = email
    user.display_name = display_name.strip()
    user.role = role
    user.organization_id = organization.id if organization else None
    user.preferred_language = preferred_language or None
    if changed & {"role", "organization_id", "email"}:
        # What the account may see changed: make it log in again.
        end_every_session(user)
    db.session.flush()
    record(Action.USER_UPDATED, actor=actor, obj=user, detail={"fields": sorted(changed)})
    return user


def set_user_active(actor: User | None, user: User, active: bool) -> User:
    """Deactivate (ending every session) or reactivate an account (actor None: command line)."""
    if actor is not None and user.id == actor.id and not active:
        raise ValidationError.one("", _("You cannot deactivate your own account."))
    user.active = active
    if not active:
        end_every_session(user)
    db.session.flush()
    record(Action.USER_ACTIVATED if active else Action.USER_DEACTIVATED, actor=actor, obj=user)
    return user


MIN_REASON, MAX_REASON = 10, 500


def emergency_reset(actor: User, user: User, reason: str) -> str:
    """An administrator's reset of a CSO account, for when its managers cannot do it (a
    lost phone, a manager who left): a one-time password code, as managers issue, with a
    stated reason. The account's second factor and recovery codes are cleared and it must
    enrol its own again whatever its role; every session ends; the reset is audited and
    shown to the CSO's managers until they acknowledge it. Returns the code."""
    reason = " ".join((reason or "").split())
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        raise ValidationError.one("reason", _(
            "Say why, in %(low)d to %(high)d characters: the CSO's managers will read it.",
            low=MIN_REASON, high=MAX_REASON))
    if not user.active:
        raise ValidationError.one("", _("Reactivate the account first."))
    second_factor.reset(actor, user)
    code = issue_reset(user, actor)
    record(Action.EMERGENCY_RESET, actor=actor, obj=user, detail={"reason": reason})
    return code


def notices_for(user: User) -> list[tuple[AuditEntry, User | None]]:
    """What a CSO manager must be told on their next login: administrators' emergency
    resets of their CSO's accounts since they last acknowledged (oldest first), each with
    the account reset."""
    if user.role != Role.CSO_MANAGER:
        return []
    # Through the scoped helper: a manager's scope of the audit log is their CSO's entries.
    query = scoped(AuditEntry, user).where(AuditEntry.action == Action.EMERGENCY_RESET)
    if user.notices_seen_at is not None:
        query = query.where(AuditEntry.at > user.notices_seen_at)
    entries = list(db.session.scalars(query.order_by(AuditEntry.at, AuditEntry.id).limit(50)))
    ids = {uuid.UUID(e.object_id) for e in entries if e.object_id}
    accounts = {str(u.uuid): u for u in db.session.scalars(
        scoped(User, user).where(User.uuid.in_(ids)))} if ids else {}
    return [(entry, accounts.get(entry.object_id)) for entry in entries]


def acknowledge_notices(user: User) -> None:
    """The user has read their notices: they are not shown again."""
    user.notices_seen_at = utcnow()
    db.session.flush()


def set_preferred_language(user: User, language: str) -> None:
    """Remember a user's language choice across devices."""
    user.preferred_language = language
    db.session.flush()


# --- Organisations -----------------------------------------------------------------------

def _org_values(values: dict, exclude_id: int | None = None) -> dict:
    code = (values.get("code") or "").strip().upper()
    errors: dict[str, list[str]] = {}
    if not ORG_CODE_RE.match(code):
        errors["code"] = [_("Use 2 to 20 capital letters, digits, - or _.")]
    else:
        clash = db.session.scalars(
            db.select(Organization.id).where(Organization.code == code)).first()
        if clash is not None and clash != exclude_id:
            errors["code"] = [_("Another organisation already uses this code.")]
    if values.get("kind") not in {k.value for k in OrgKind}:
        errors["kind"] = [_("Choose a kind from the list.")]
    for name in ("name_ar", "name_fr", "name_en"):
        if not (values.get(name) or "").strip():
            errors[name] = [_("This field is required.")]
    if errors:
        raise ValidationError(errors)
    clean = {k: (v.strip() if isinstance(v, str) else v) for k, v in values.items()}
    clean["code"] = code
    clean["acronym"] = clean.get("acronym") or None
    clean["locality"] = clean.get("locality") or None
    clean["governorate_code"] = clean.get("governorate_code") or None
    return clean


ORG_FIELDS = ("code", "name_ar", "name_fr", "name_en", "acronym", "kind",
              "governorate_code", "locality", "active")


def create_organization(actor: User, values: dict) -> Organization:
    """Add an organisation after checking its code is well-formed and unused."""
    clean = _org_values(values)
    org = Organization(**{k: clean[k] for k in ORG_FIELDS if k in clean})
    db.session.add(org)
    db.session.flush()
    record(Action.ORG_CREATED, actor=actor, obj=org)
    return org


def update_organization(actor: User, org: Organization, values: dict) -> Organization:
    """Edit an organisation's names, code, kind, place or active flag."""
    clean = _org_values(values, exclude_id=org.id)
    for key in ORG_FIELDS:
        if key in clean:
            setattr(org, key, clean[key])
    db.session.flush()
    record(Action.ORG_UPDATED, actor=actor, obj=org)
    return org


# --- Sites -------------------------------------------------------------------------------

def _apply_site(site: Site, values: dict) -> None:
    orgs = values.get("organizations") or []
    errors: dict[str, list[str]] = {}
    if not (values.get("name") or "").strip():
        errors["name"] = [_("This field is required.")]
    if any(o.kind != OrgKind.FUNDED_CSO for o in orgs):
        errors["organizations"] = [_("Only funded CSOs work at sites.")]
    if errors:
        raise ValidationError(errors)
    site.name = values["name"].strip()
    site.kind = values["kind"]
    site.governorate_code = values["governorate_code"]
    site.locality = (values.get("locality") or "").strip() or None
    site.active = bool(values.get("active", True))
    site.organizations = list(orgs)


def create_site(actor: User, values: dict) -> Site:
    """Add a site and the CSOs working there."""
    site = Site()
    _apply_site(site, values)
    db.session.add(site)
    db.session.flush()
    record(Action.SITE_CREATED, actor=actor, obj=site)
    return site


def update_site(actor: User, site: Site, values: dict) -> Site:
    """Edit a site's details and the CSOs working there."""
    _apply_site(site, values)
    db.session.flush()
    record(Action.SITE_UPDATED, actor=actor, obj=site)
    return site

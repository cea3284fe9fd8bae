"""Who may do what: the permission table, route declarations, scoped queries, load-or-404.

Everything that decides access lives here, so it can be read (and tested) in one place:

- PERMISSIONS maps each role to what it may do. Anything not listed is denied.
- Each view declares its permission with @requires(...) or @public; `enforce_route_permission`
  runs before every request and denies any endpoint that declared nothing.
- `scoped(model, user)` is the ONE helper that limits a query to the rows a user may see.
  No view writes its own `WHERE organization_id = ...`.
- `get_or_404(model, public_id, user, action)` loads one row through `scoped`; a row of
  another CSO answers 404, so its existence does not leak.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from flask import abort, current_app, redirect, request, url_for
from flask_login import current_user

from .extensions import db
from .models import (
    Activity,
    ActivitySession,
    AuditEntry,
    Beneficiary,
    Case,
    CaseGoal,
    CaseNote,
    CaseTransfer,
    GroupEvent,
    Indicator,
    Job,
    ManualValue,
    Organization,
    Outcome,
    QuarterlyReport,
    Referral,
    Role,
    ServiceProvider,
    Site,
    Survey,
    SurveyDraft,
    SurveyVersion,
    Target,
    User,
)

PUBLIC = "public"


class Perm:
    """Permission names, used by the table below and by @requires on views."""

    HOME = "home.view"
    ACCOUNT = "account.self"
    USERS_MANAGE = "users.manage"
    ORGS_MANAGE = "orgs.manage"
    SITES_MANAGE = "sites.manage"
    AUDIT_VIEW = "audit.view"
    MAINTENANCE = "system.maintenance"   # key rotation and backups, as background jobs
    BENEFICIARIES = "beneficiaries.use"
    BENEFICIARIES_IMPORT = "beneficiaries.import"
    BENEFICIARY_RIGHTS = "beneficiaries.rights"
    ACTIVITIES = "activities.record"
    ACTIVITIES_MANAGE = "activities.manage"
    CASES = "cases.use"
    SURVEYS_VIEW = "surveys.view"
    SURVEYS_FILL = "surveys.fill"
    SURVEYS_AUTHOR = "surveys.author"
    SYNC = "records.sync"                # send records made offline (each type checks its own)
    REPORTS_CSO = "reports.cso"          # a CSO's own dashboard and quarterly reports
    REPORTS_REVIEW = "reports.review"    # all CSOs through the anonymiser, review, targets
    REPORTS_APPROVED = "reports.approved"  # approved figures and the donor's exports


_EVERYONE = {Perm.HOME, Perm.ACCOUNT}

# Identifying records of young people: only the staff of the CSO that serves them.
_CSO_RECORDS = {Perm.BENEFICIARIES, Perm.ACTIVITIES, Perm.CASES, Perm.SURVEYS_FILL,
                Perm.SURVEYS_VIEW, Perm.SYNC}

PERMISSIONS: dict[str, frozenset[str]] = {
    Role.FIELD_WORKER: frozenset(_EVERYONE | _CSO_RECORDS),
    Role.CSO_MANAGER: frozenset(
        _EVERYONE | _CSO_RECORDS | {Perm.USERS_MANAGE, Perm.AUDIT_VIEW,
                                    Perm.BENEFICIARIES_IMPORT, Perm.BENEFICIARY_RIGHTS,
                                    Perm.ACTIVITIES_MANAGE, Perm.SURVEYS_AUTHOR,
                                    Perm.REPORTS_CSO}),
    Role.REVIEWER: frozenset(_EVERYONE | {Perm.SURVEYS_AUTHOR, Perm.SURVEYS_VIEW,
                                          Perm.REPORTS_REVIEW, Perm.REPORTS_APPROVED}),
    Role.DONOR: frozenset(_EVERYONE | {Perm.REPORTS_APPROVED}),
    Role.ADMIN: frozenset(
        _EVERYONE | {Perm.USERS_MANAGE, Perm.ORGS_MANAGE, Perm.SITES_MANAGE, Perm.AUDIT_VIEW,
                     Perm.MAINTENANCE,
                     Perm.SURVEYS_AUTHOR, Perm.SURVEYS_VIEW, Perm.REPORTS_REVIEW,
                     Perm.REPORTS_APPROVED}
    ),
}

# Endpoints that are not our view functions (Flask's own) and what they need.
BUILTIN_ENDPOINTS = {"static": PUBLIC}


def can(user, permission: str) -> bool:
    """True when the user's role grants the permission (anonymous users get nothing)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return permission in PERMISSIONS.get(user.role, frozenset())


def requires(permission: str) -> Callable:
    """Declare the permission a view needs; enforce_route_permission checks it."""

    def mark(view):
        view.permission = permission
        return view

    return mark


def public(view):
    """Declare a view open to anyone, logged in or not (login page, health check)."""
    view.permission = PUBLIC
    return view


def route_permission(endpoint: str) -> str | None:
    """The declared permission of an endpoint, or None when it declared nothing."""
    if endpoint in BUILTIN_ENDPOINTS:
        return BUILTIN_ENDPOINTS[endpoint]
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "permission", None)


def enforce_route_permission():
    """before_request hook: deny by default, send anonymous users to the login page
    (the JSON API answers 401 instead: a script cannot follow a login form)."""
    if request.endpoint is None:  # no route matched: let the 404/405 handler answer
        return None
    permission = route_permission(request.endpoint)
    if permission is None:
        current_app.logger.error("Route %s declares no permission; denied", request.endpoint)
        abort(403)
    if permission == PUBLIC:
        return None
    if not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            abort(401)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if not can(current_user, permission):
        abort(403)
    return None


# --- Row scoping ------------------------------------------------------------------------

def _user_scope(user):
    """Admins see every account; CSO staff see their CSO's colleagues (to assign cases and
    facilitators; only managers may change them); anyone else only themselves."""
    if user.role == Role.ADMIN:
        return sa.true()
    if user.is_cso_staff:
        return User.organization_id == user.organization_id
    return User.id == user.id


def _audit_scope(user):
    """Admins see the whole log; a CSO manager sees their CSO's entries; no one else any."""
    if user.role == Role.ADMIN:
        return sa.true()
    if user.role == Role.CSO_MANAGER:
        return AuditEntry.organization_id == user.organization_id
    return sa.false()


def _site_scope(user):
    """Admins see all sites; CSO staff see the sites their CSO works at."""
    if user.role == Role.ADMIN:
        return sa.true()
    if user.is_cso_staff:
        return Site.organizations.any(Organization.id == user.organization_id)
    return sa.false()


def _cso_owned_scope(model):
    """Rows carrying organization_id are seen by their own CSO's staff, and nobody else."""

    def scope(user):
        if user.is_cso_staff:
            return model.organization_id == user.organization_id
        return sa.false()

    return scope


def note_with_its_case():
    """Notes whose case file is in the note's own CSO. A transfer leaves the confidential
    notes behind with the CSO that wrote them: reaching one would show a case (and the
    youth's new code) that CSO may no longer see, so such a note is out of everyone's
    reach until the case comes back."""
    return sa.exists().where(Case.id == CaseNote.case_id,
                             Case.organization_id == CaseNote.organization_id)


def _note_scope(user):
    """Case notes of the CSO whose case is still there (note_with_its_case); a
    confidential one only for its author and the CSO manager."""
    if not user.is_cso_staff:
        return sa.false()
    readable = sa.or_(CaseNote.confidential.is_(False), CaseNote.author_id == user.id)
    if user.role == Role.CSO_MANAGER:
        readable = sa.true()
    return sa.and_(CaseNote.organization_id == user.organization_id, readable,
                   note_with_its_case())


def _transfer_scope(user):
    """A transfer is seen by the CSO that asked and the CSO asked to take the case."""
    if not user.is_cso_staff:
        return sa.false()
    return sa.or_(CaseTransfer.from_organization_id == user.organization_id,
                  CaseTransfer.to_organization_id == user.organization_id)


def _survey_scope(user):
    """Authors (admins, reviewers) see every survey; CSO staff the program-wide ones and
    their CSO's own; the donor none."""
    if user.role in (Role.ADMIN, Role.REVIEWER):
        return sa.true()
    if user.is_cso_staff:
        return sa.or_(Survey.organization_id.is_(None),
                      Survey.organization_id == user.organization_id)
    return sa.false()


def _survey_version_scope(user):
    """A version is visible with its survey."""
    return SurveyVersion.survey.has(_survey_scope(user))


def _report_scope(model):
    """Reports, targets and manual values: a CSO's staff see their CSO's; reviewers and
    admins every CSO's (aggregates, never identities); the donor approved reports only."""

    def scope(user):
        if user.is_cso_staff:
            return model.organization_id == user.organization_id
        if user.role in (Role.REVIEWER, Role.ADMIN):
            return sa.true()
        if user.role == Role.DONOR and model is QuarterlyReport:
            return QuarterlyReport.status == "approved"
        return sa.false()

    return scope


# Models that need a rule other than the CSO-owned default. Organisations are program-wide
# reference data (names of CSOs are public), so every logged-in user may read them.
_SCOPES: dict[type, Callable] = {
    User: _user_scope,
    AuditEntry: _audit_scope,
    Site: _site_scope,
    Organization: lambda user: sa.true(),
    CaseNote: _note_scope,
    CaseTransfer: _transfer_scope,
    Survey: _survey_scope,
    SurveyVersion: _survey_version_scope,
    SurveyDraft: lambda user: SurveyDraft.user_id == user.id,
    QuarterlyReport: _report_scope(QuarterlyReport),
    Target: _report_scope(Target),
    ManualValue: _report_scope(ManualValue),
    Indicator: lambda user: sa.true(),
    # A background job, its progress and its file: the person who asked for it, nobody else.
    Job: lambda user: Job.user_id == user.id,
}


def row_filter(model, user):
    """The SQL criterion selecting the rows of `model` that `user` may see."""
    if user is None or not getattr(user, "is_authenticated", False):
        return sa.false()
    if model in _SCOPES:
        return _SCOPES[model](user)
    if hasattr(model, "organization_id"):
        return _cso_owned_scope(model)(user)
    # Deny by default: a model nobody wrote a rule for is visible to no one.
    return sa.false()


def scoped(model, user) -> sa.Select:
    """A SELECT of `model` limited to what `user` may see: the one place scoping happens."""
    return sa.select(model).where(row_filter(model, user))


# What of a user the scopes above read: the user's id, role (and `is_cso_staff`, which
# follows from it), CSO and whether they are logged in. tests/test_policy.py reads this
# module and fails when a scope reads anything else of the user without it being here.
SCOPE_ATTRIBUTES = ("id", "role", "organization_id", "is_authenticated")
DERIVED_FROM_ROLE = ("is_cso_staff",)
# Statements kept by `kept_statement`, at most this many per process (a few per user of
# the day; past it, the cache starts again).
KEPT_STATEMENTS = 1024
_kept_statements: dict[tuple, object] = {}


@dataclass(frozen=True, slots=True)
class ScopeOf:
    """A user as the scopes see them: SCOPE_ATTRIBUTES and nothing else (`is_cso_staff`
    is User's own rule, on the role). What a kept statement is built for and kept under,
    so that a build can read nothing of the user that is not in its key: an attribute
    missing here fails at the build, instead of handing one user's statement to another."""

    id: int | None
    role: str | None
    organization_id: int | None
    is_authenticated: bool

    is_cso_staff = property(User.is_cso_staff.fget)

    @classmethod
    def of(cls, user) -> ScopeOf:
        """The scope attributes of a user (or of an anonymous one)."""
        return cls(*(getattr(user, attribute, None) for attribute in SCOPE_ATTRIBUTES))


def kept_statement(name: str, user, build: Callable[[ScopeOf], object], *more):
    """A statement built through `scoped` for `user`, made once and kept between requests.

    On the pages opened all day, building a scoped statement and computing its key in
    SQLAlchemy's cache costs more CPU than running it (about 2 ms for the home page's
    follow-ups, a union of four scoped queries). `build` is given the user's `ScopeOf`,
    not the user, and the statement is kept under `name`, that scope and `more`: whatever
    else `build` reads (a date, say), and the app's database, whose form a builder may
    choose (`cases.by_case`; one process may serve apps on both, as the tests do). The rows
    are read again on every call."""
    scope = ScopeOf.of(user)
    key = (name, db.engine.dialect.name, scope, *more)
    statement = _kept_statements.get(key)
    if statement is None:
        if len(_kept_statements) >= KEPT_STATEMENTS:
            _kept_statements.clear()
        statement = _kept_statements[key] = build(scope)
    return statement


# Actions beyond "view" that need more than visibility.
def _may_act(obj, user, action: str) -> bool:
    if action == "view":
        return True
    if isinstance(obj, User) and action in ("edit", "deactivate"):
        if not can(user, Perm.USERS_MANAGE):
            return False
        if user.role != Role.ADMIN:
            return obj.role in (Role.FIELD_WORKER, Role.CSO_MANAGER)
        # No back door to youth identities: a CSO that has an active manager manages its
        # own staff accounts. An administrator may still deactivate one (that opens
        # nothing), and resets one only by an emergency reset (`emergency_reset`).
        return action == "deactivate" or not (
            obj.is_cso_staff and has_active_manager(obj.organization_id))
    if isinstance(obj, User) and action == "emergency_reset":
        return user.role == Role.ADMIN and obj.is_cso_staff and obj.id != user.id
    if isinstance(obj, User) and action == "reset_second_factor":
        # A lost phone: a field worker's manager resets it; an administrator resets a
        # manager's or a non-CSO account's. Clearing a factor opens nothing (the password
        # is still needed), and nobody resets their own (the account page renews codes).
        if obj.id == user.id or not can(user, Perm.USERS_MANAGE):
            return False
        if user.role == Role.CSO_MANAGER:
            return obj.role == Role.FIELD_WORKER
        return user.role == Role.ADMIN and obj.role != Role.FIELD_WORKER
    if isinstance(obj, Organization | Site) and action == "edit":
        return user.role == Role.ADMIN
    if isinstance(obj, Activity) and action == "edit":
        return can(user, Perm.ACTIVITIES_MANAGE)
    if isinstance(obj, ActivitySession | GroupEvent) and action == "edit":
        return can(user, Perm.ACTIVITIES)
    if isinstance(obj, Case | CaseNote | Referral | Outcome | CaseGoal | ServiceProvider) \
            and action == "edit":
        return can(user, Perm.CASES)
    if isinstance(obj, CaseTransfer) and action == "decide":
        return user.role == Role.CSO_MANAGER and obj.to_organization_id == user.organization_id
    if isinstance(obj, QuarterlyReport):
        if action == "edit":
            return can(user, Perm.REPORTS_CSO) and obj.organization_id == user.organization_id
        if action == "review":
            return can(user, Perm.REPORTS_REVIEW)
    if isinstance(obj, Survey | SurveyVersion) and action == "publish":
        # A CSO's own survey is published by that CSO's managers only (reviewers and
        # admins see it, but its versions are the CSO's to choose); a program-wide one by
        # the program's authors.
        survey = obj if isinstance(obj, Survey) else obj.survey
        if survey.organization_id is None:
            return user.role in (Role.ADMIN, Role.REVIEWER)
        return (user.role == Role.CSO_MANAGER
                and survey.organization_id == user.organization_id)
    if isinstance(obj, Beneficiary):
        if action == "edit":
            return can(user, Perm.BENEFICIARIES)
        if action in ("access_request", "erase"):
            return can(user, Perm.BENEFICIARY_RIGHTS)
    return False


def has_active_manager(organization_id: int | None) -> bool:
    """Whether a CSO has an active manager, who then alone manages its staff accounts."""
    return organization_id is not None and db.session.scalar(sa.select(sa.exists().where(
        User.organization_id == organization_id, User.role == Role.CSO_MANAGER,
        User.active.is_(True))))


def may(user, obj, action: str) -> bool:
    """Whether `user` may do `action` on a row they can already see (for showing buttons)."""
    return _may_act(obj, user, action)


def get_or_404(model, public_id, user, action: str = "view", *options,
               kept_as: str | None = None):
    """Load one row by its public UUID (or code) through `scoped`; 404 if not visible.

    A visible row that the user may not act on answers 403; an invisible one answers 404,
    whatever the reason, so another CSO's records cannot be probed.

    By UUID, the statement is kept per user and model (`kept_statement`), the UUID a
    parameter: every detail page asks, and building it cost more than running it.
    `options` load the rows a page names with it, in the same statement (name that
    statement `kept_as`).
    """
    if options and kept_as is None:
        raise TypeError("get_or_404 with loader options needs kept_as, the kept statement's name")
    if model is Organization and isinstance(public_id, str):
        obj = db.session.scalars(scoped(model, user).where(Organization.code == public_id)).first()
    else:
        try:
            key = public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(str(public_id))
        except ValueError:
            abort(404)
        statement = kept_statement(
            kept_as or f"get_or_404.{model.__name__}", user,
            lambda who: scoped(model, who).where(model.uuid == sa.bindparam("public_id"))
            .options(*options), model)
        obj = db.session.scalars(statement, {"public_id": key}).first()
    if obj is None:
        abort(404)
    if not _may_act(obj, user, action):
        abort(403)
    return obj

"""The policy on its own: the permission table, scoped queries, load-or-404."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from werkzeug.exceptions import Forbidden, NotFound

from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, Organization, Role, Site, User
from bladi_cases.policy import PERMISSIONS, Perm, can, get_or_404, row_filter, scoped
from bladi_cases.services.audit import record


def _visible(model, user):
    return set(db.session.scalars(scoped(model, user)).all())


def test_permission_table_grants_only_what_each_role_needs():
    assert can(None, Perm.HOME) is False
    assert PERMISSIONS[Role.FIELD_WORKER] == {Perm.HOME, Perm.ACCOUNT, Perm.BENEFICIARIES,
                                              Perm.ACTIVITIES, Perm.CASES, Perm.SURVEYS_FILL,
                                              Perm.SURVEYS_VIEW, Perm.SYNC}
    assert Perm.ACTIVITIES_MANAGE in PERMISSIONS[Role.CSO_MANAGER]
    assert Perm.USERS_MANAGE in PERMISSIONS[Role.CSO_MANAGER]
    assert {Perm.BENEFICIARIES_IMPORT, Perm.BENEFICIARY_RIGHTS} <= PERMISSIONS[Role.CSO_MANAGER]
    assert Perm.ORGS_MANAGE not in PERMISSIONS[Role.CSO_MANAGER]
    assert PERMISSIONS[Role.DONOR] == {Perm.HOME, Perm.ACCOUNT, Perm.REPORTS_APPROVED}
    assert PERMISSIONS[Role.REVIEWER] == {Perm.HOME, Perm.ACCOUNT, Perm.SURVEYS_AUTHOR,
                                          Perm.SURVEYS_VIEW, Perm.REPORTS_REVIEW,
                                          Perm.REPORTS_APPROVED}
    assert {Perm.ORGS_MANAGE, Perm.SITES_MANAGE, Perm.AUDIT_VIEW} <= PERMISSIONS[Role.ADMIN]
    # Identities of young people never go above the CSO, not even to administrators.
    for role in (Role.REVIEWER, Role.DONOR, Role.ADMIN):
        assert not {Perm.BENEFICIARIES, Perm.BENEFICIARIES_IMPORT, Perm.BENEFICIARY_RIGHTS,
                    Perm.ACTIVITIES, Perm.ACTIVITIES_MANAGE, Perm.CASES,
                    Perm.SURVEYS_FILL} & PERMISSIONS[role]


def test_users_are_scoped_to_the_managers_cso(make_user):
    manager = make_user(Role.CSO_MANAGER, "BA")
    colleague = make_user(Role.FIELD_WORKER, "BA")
    stranger = make_user(Role.FIELD_WORKER, "ACEC")
    admin = make_user(Role.ADMIN)
    seen = _visible(User, manager)
    assert {manager, colleague} <= seen and stranger not in seen and admin not in seen
    assert _visible(User, colleague) == _visible(User, manager), "colleagues, to assign cases"
    reviewer = make_user(Role.REVIEWER)
    assert _visible(User, reviewer) == {reviewer}
    assert {manager, colleague, stranger, admin} <= _visible(User, admin)


def test_sites_are_scoped_to_the_csos_working_there(make_user, make_site):
    ba_site, acec_site = make_site("BA", name="Site BA"), make_site("ACEC", name="Site ACEC")
    worker = make_user(Role.FIELD_WORKER, "BA")
    assert ba_site in _visible(Site, worker) and acec_site not in _visible(Site, worker)
    for role in (Role.REVIEWER, Role.DONOR):
        assert _visible(Site, make_user(role)) == set()
    assert {ba_site, acec_site} <= _visible(Site, make_user(Role.ADMIN))


def test_audit_entries_are_scoped(make_user):
    manager = make_user(Role.CSO_MANAGER, "BA")
    other = make_user(Role.CSO_MANAGER, "ACEC")
    mine = record("login", actor=manager, obj=manager)
    theirs = record("login", actor=other, obj=other)
    assert mine in _visible(AuditEntry, manager) and theirs not in _visible(AuditEntry, manager)
    assert _visible(AuditEntry, make_user(Role.FIELD_WORKER)) == set()
    assert _visible(AuditEntry, make_user(Role.REVIEWER)) == set()
    assert {mine, theirs} <= _visible(AuditEntry, make_user(Role.ADMIN))


def test_unknown_models_and_anonymous_users_see_nothing(make_user):
    class Unruled:  # a model nobody wrote a rule for
        pass

    assert str(row_filter(Unruled, make_user(Role.ADMIN))) == str(sa.false())
    assert str(row_filter(User, None)) == str(sa.false())


def test_cso_owned_rows_are_scoped_by_organization_id(make_user):
    # Any model with organization_id gets the CSO rule (beneficiaries, cases... later).
    class Owned:
        organization_id = User.organization_id  # a column to build the criterion with

    worker = make_user(Role.FIELD_WORKER, "BA")
    criterion = row_filter(Owned, worker)
    assert "organization_id" in str(criterion)
    assert str(row_filter(Owned, make_user(Role.ADMIN))) == str(sa.false())


def test_get_or_404(make_user, org):
    manager = make_user(Role.CSO_MANAGER, "BA")
    colleague = make_user(Role.FIELD_WORKER, "BA")
    stranger = make_user(Role.FIELD_WORKER, "ACEC")
    assert get_or_404(User, colleague.uuid, manager, "edit") is colleague
    assert get_or_404(User, str(colleague.uuid), manager) is colleague
    for bad in (stranger.uuid, uuid.uuid4(), "not-a-uuid", "", "1"):
        with pytest.raises(NotFound):
            get_or_404(User, bad, manager)
    with pytest.raises(Forbidden):  # visible (itself) but may not edit accounts
        get_or_404(User, colleague.uuid, colleague, "edit")
    assert get_or_404(Organization, "BA", manager) == org("BA")
    with pytest.raises(Forbidden):
        get_or_404(Organization, "BA", manager, "edit")
    with pytest.raises(NotFound):
        get_or_404(Organization, "NOPE", manager)


def test_confidential_notes_scope(make_user, make_beneficiary, make_case):
    from bladi_cases.models import CaseNote
    from bladi_cases.services.cases.cases import add_note

    author = make_user(Role.FIELD_WORKER, "BA")
    colleague = make_user(Role.FIELD_WORKER, "BA")
    manager = make_user(Role.CSO_MANAGER, "BA")
    case, _provider = make_case(make_beneficiary("BA"), author)
    secret = add_note(author, case, {"kind": "meeting", "text": "x", "confidential": True})
    assert secret in _visible(CaseNote, author) and secret in _visible(CaseNote, manager)
    assert secret not in _visible(CaseNote, colleague)
    assert len(_visible(CaseNote, colleague)) >= 1, "non-confidential notes stay shared"
    assert _visible(CaseNote, make_user(Role.ADMIN)) == set()


def test_kept_statements_are_keyed_by_everything_a_scope_reads_of_the_user():
    """`kept_statement` keeps a scoped statement per SCOPE_ATTRIBUTES of the user: a scope
    reading anything else of the user would hand one person's statement to another."""
    import ast
    import inspect

    from bladi_cases import policy

    read = {node.attr for node in ast.walk(ast.parse(inspect.getsource(policy)))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "user"}
    assert read <= set(policy.SCOPE_ATTRIBUTES) | set(policy.DERIVED_FROM_ROLE), read
    for name in policy.DERIVED_FROM_ROLE:
        follows = {node.attr for node in ast.walk(ast.parse(inspect.cleandoc(
            inspect.getsource(getattr(User, name).fget))))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "self"}
        assert follows == {"role"}, (name, follows)


def test_a_kept_statement_is_each_users_own(make_user):
    from bladi_cases.policy import kept_statement

    one, other = make_user(Role.REVIEWER), make_user(Role.REVIEWER)
    manager = make_user(Role.CSO_MANAGER)

    def build(who):
        return scoped(User, who)

    mine = kept_statement("test.users", one, build)
    assert kept_statement("test.users", one, build) is mine
    assert kept_statement("test.users", other, build) is not mine
    assert manager in set(db.session.scalars(kept_statement("test.users", manager, build)))
    assert set(db.session.scalars(mine)) == {one}  # a reviewer sees only their own account
    assert set(db.session.scalars(kept_statement("test.users", other, build))) == {other}


def test_a_kept_statements_build_sees_only_what_it_is_kept_under(make_user):
    """The build is given the user's scope attributes, not the user: a build that reads
    anything else of the user (their email, say) fails at once, where it would otherwise
    keep a statement made for one user under a key that another user shares."""
    from bladi_cases.policy import SCOPE_ATTRIBUTES, ScopeOf, kept_statement

    worker = make_user(Role.FIELD_WORKER)
    given = []
    kept_statement("test.scope", worker, lambda who: given.append(who) or scoped(User, who))
    assert isinstance(given[0], ScopeOf)
    assert {name: getattr(given[0], name) for name in SCOPE_ATTRIBUTES} == {
        name: getattr(worker, name) for name in SCOPE_ATTRIBUTES}
    assert given[0].is_cso_staff is True
    with pytest.raises(AttributeError):
        kept_statement("test.scope.email", worker, lambda who: sa.select(User).where(
            User.email == who.email))

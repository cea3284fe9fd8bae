"""No back door for administrators (issue 16, item 5): an administrator cannot give
themselves a way into a CSO's youth records. They may create the first manager of a CSO
that has none; a CSO with an active manager manages its own staff accounts; an emergency
reset is audited with a reason, clears the second factor, and is shown to the CSO's
managers until they acknowledge it. Checked through the pages, as the administrator would
try it."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, PasswordReset, RecoveryCode, Role, User

from .conftest import login, text_of


@pytest.fixture(autouse=True)
def _english(client):
    """Messages are checked in English here (and once in Arabic)."""
    client.set_cookie("lang", "en", domain="bladi.test")


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _form(org_id: int, role: str = "cso_manager", email: str = "nouveau@example.tn") -> dict:
    return {"display_name": "Nouveau Compte", "email": email, "role": role,
            "organization": str(org_id), "preferred_language": "fr"}


def test_the_issue_attack_an_admin_makes_a_manager_of_a_cso_that_has_one(client, make_user,
                                                                           org):
    """The attack from the issue: create a manager account for a CSO, take its one-time
    link, log in as that manager. Refused at the first step, nothing saved."""
    make_user(Role.CSO_MANAGER, "BA")
    login(client, make_user(Role.ADMIN))
    response = client.post("/admin/users/new", data=_form(org("BA").id))
    assert response.status_code == 422
    assert "active manager" in text_of(response)
    assert _count(User, User.email == "nouveau@example.tn") == 0
    assert _count(PasswordReset) == 0


def test_an_admin_creates_the_first_manager_of_a_cso_without_one(client, make_user, org):
    admin = make_user(Role.ADMIN)
    login(client, admin)
    # Not a field worker, even in a CSO without a manager: its manager creates those.
    refused = client.post("/admin/users/new", data=_form(org("ACEC").id, role="field_worker"))
    assert refused.status_code == 422 and "first manager" in text_of(refused)
    assert _count(User, User.email == "nouveau@example.tn") == 0
    done = client.post("/admin/users/new", data=_form(org("ACEC").id))
    assert done.status_code == 200 and re.search(r"/reset/[A-Za-z0-9_-]+", done.text)
    manager = db.session.scalars(sa.select(User).where(User.email == "nouveau@example.tn")).one()
    assert (manager.role, manager.organization_id) == ("cso_manager", org("ACEC").id)
    # Now ACEC has a manager: a second one is refused.
    again = client.post("/admin/users/new", data=_form(org("ACEC").id, email="deux@example.tn"))
    assert again.status_code == 422
    assert _count(User, User.email == "deux@example.tn") == 0


def test_a_cso_with_a_manager_manages_its_accounts_an_admin_may_not(client, make_user):
    manager = make_user(Role.CSO_MANAGER, "BA")
    worker = make_user(Role.FIELD_WORKER, "BA", email="worker@example.tn")
    login(client, make_user(Role.ADMIN))
    page = client.get(f"/admin/users/{worker.uuid}")
    assert page.status_code == 200 and 'name="email"' not in page.text
    assert "Emergency reset" in page.text
    # Neither an ordinary reset (the link would let the admin in) nor a change of email.
    assert client.post(f"/admin/users/{worker.uuid}/reset").status_code == 403
    assert client.post(f"/admin/users/{worker.uuid}", data={
        "display_name": "X", "email": "admin-owned@example.tn", "role": "field_worker",
        "organization": str(worker.organization_id), "preferred_language": ""}
    ).status_code == 403
    db.session.refresh(worker)
    assert worker.email == "worker@example.tn" and _count(PasswordReset) == 0
    # Deactivating opens nothing: an administrator may (a stolen phone, say).
    assert client.post(f"/admin/users/{worker.uuid}/active", data={"active": "0"}
                       ).status_code == 302
    db.session.refresh(worker)
    assert worker.active is False
    # The CSO's own manager still manages its accounts.
    login(client, manager)
    assert client.post(f"/admin/users/{worker.uuid}/active", data={"active": "1"}
                       ).status_code == 302
    assert client.post(f"/admin/users/{worker.uuid}/reset").status_code == 200


def test_a_manager_cannot_reach_the_emergency_reset(client, make_user):
    login(client, make_user(Role.CSO_MANAGER, "BA"))
    worker = make_user(Role.FIELD_WORKER, "BA")
    assert client.get(f"/admin/users/{worker.uuid}/emergency-reset").status_code == 403


def test_an_emergency_reset_needs_a_reason_and_is_shown_to_the_csos_managers(
        client, app, make_user):
    manager = make_user(Role.CSO_MANAGER, "BA")
    other_manager = make_user(Role.CSO_MANAGER, "ACEC")
    worker = make_user(Role.FIELD_WORKER, "BA", display_name="Amal Ferchichi",
                       totp_secret_enc=b"x", totp_last_step=5)
    db.session.add(RecoveryCode(user_id=worker.id, code_hash="0" * 64))
    db.session.commit()
    nonce = worker.session_nonce
    admin = make_user(Role.ADMIN, display_name="Admin Central")
    login(client, admin)
    url = f"/admin/users/{worker.uuid}/emergency-reset"
    # Bad input: no reason, or a reason too short to tell the managers anything.
    for reason in ("", "oops"):
        refused = client.post(url, data={"reason": reason})
        assert refused.status_code == 422
    assert _count(PasswordReset) == 0
    assert _count(AuditEntry, AuditEntry.action == "emergency_reset") == 0
    client.set_cookie("lang", "ar", domain="bladi.test")
    assert "سيقرؤه مسؤولو الجمعية" in text_of(client.post(url, data={"reason": "short"}))
    client.set_cookie("lang", "en", domain="bladi.test")
    reason = "Lost phone; the manager is on leave until Monday."
    done = client.post(url, data={"reason": reason})
    assert done.status_code == 200 and re.search(r"/reset/[A-Za-z0-9_-]+", done.text)
    db.session.refresh(worker)
    assert worker.totp_secret_enc is None and worker.totp_last_step is None
    assert worker.second_factor_required is True
    assert worker.session_nonce != nonce, "every session of the account ends"
    assert _count(RecoveryCode, RecoveryCode.user_id == worker.id) == 0
    entry = db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action == "emergency_reset")).one()
    assert (entry.actor_id, entry.organization_id, entry.detail) == (
        admin.id, worker.organization_id, {"reason": reason})
    # BA's manager sees it on their home page until they acknowledge it; ACEC's does not.
    login(client, manager)
    home = text_of(client.get("/"))
    assert "Amal Ferchichi" in home and "Admin Central" in home and reason in home
    login(client, other_manager)
    assert reason not in text_of(client.get("/"))
    login(client, manager)
    assert client.post("/account/notices/seen").status_code == 302
    assert reason not in text_of(client.get("/"))

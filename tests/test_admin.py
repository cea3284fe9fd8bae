"""Staff accounts, organisations and sites, through the pages, with their bad input."""

from __future__ import annotations

import re

import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, Organization, Role, Site, User

from .conftest import login, text_of


def _count(model, *where):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _new_user_form(**overrides):
    data = {"display_name": "Mariem Ayari", "email": "mariem@example.tn",
            "role": "field_worker", "organization": "0", "preferred_language": "ar"}
    data.update(overrides)
    return data


def test_manager_creates_a_field_worker_in_own_cso_and_gets_a_reset_link(client, make_user, org):
    manager = make_user(Role.CSO_MANAGER, "BA")
    login(client, manager)
    # A manager cannot place staff in another CSO: the choice is refused, nothing saved.
    refused = client.post("/admin/users/new",
                          data=_new_user_form(organization=str(org("ACEC").id)))
    assert "اختيار غير صحيح" in text_of(refused)
    assert _count(User, User.email == "mariem@example.tn") == 0
    response = client.post("/admin/users/new",
                           data=_new_user_form(organization=str(org("BA").id)))
    assert response.status_code == 200
    created = db.session.scalars(sa.select(User).where(User.email == "mariem@example.tn")).one()
    assert created.organization_id == org("BA").id and created.role == "field_worker"
    link = re.search(r"/reset/([A-Za-z0-9_-]+)", response.get_data(as_text=True))
    assert link, "the page shows the one-time link to hand over"
    assert client.get(f"/reset/{link.group(1)}").status_code == 200
    actions = db.session.scalars(sa.select(AuditEntry.action)
                                 .where(AuditEntry.actor_id == manager.id)).all()
    assert {"user_created", "password_reset_issued"} <= set(actions)


def test_manager_cannot_create_an_admin_or_reviewer(client, make_user):
    manager = make_user(Role.CSO_MANAGER, "BA")
    login(client, manager)
    for role in ("admin", "reviewer", "donor"):
        response = client.post("/admin/users/new", data=_new_user_form(
            role=role, organization=str(manager.organization_id)))
        assert response.status_code == 422
        assert "اختيار غير صحيح" in text_of(response)
    assert _count(User, User.email == "mariem@example.tn") == 0


def test_new_account_bad_input_saves_nothing(client, make_user, org):
    existing = make_user(Role.FIELD_WORKER, "BA", email="taken@example.tn")
    login(client, make_user(Role.ADMIN))
    before = _count(User)
    cases = [
        (_new_user_form(email="not-an-email"), "بريد"),
        (_new_user_form(email="TAKEN@example.tn"), "يوجد حساب"),
        (_new_user_form(display_name=""), "مطلوب"),
        (_new_user_form(display_name="x" * 121), "120"),
        (_new_user_form(organization="0"), "جمعية ممولة"),
        (_new_user_form(role="reviewer", organization=str(org("BA").id)), "شريكة"),
        (_new_user_form(role="wizard"), "اختيار غير صحيح"),
    ]
    for data, expected in cases:
        response = client.post("/admin/users/new", data=data)
        assert response.status_code == 422
        assert expected in text_of(response), (data, text_of(response)[-600:])
    assert _count(User) == before
    assert existing.email == "taken@example.tn"


def test_admin_creates_a_reviewer_in_a_partner(client, make_user, org):
    login(client, make_user(Role.ADMIN))
    response = client.post("/admin/users/new", data=_new_user_form(
        role="reviewer", organization=str(org("JAMAITY").id), email="rev@jamaity.tn"))
    assert response.status_code == 200
    assert _count(User, User.email == "rev@jamaity.tn", User.role == "reviewer") == 1


def test_manager_lists_only_own_csos_accounts(client, make_user):
    manager = make_user(Role.CSO_MANAGER, "BA", display_name="Manager BA")
    make_user(Role.FIELD_WORKER, "BA", display_name="Worker Sfax")
    make_user(Role.FIELD_WORKER, "ACEC", display_name="Worker Kabaria")
    login(client, manager)
    page = text_of(client.get("/admin/users"))
    assert "Worker Sfax" in page and "Worker Kabaria" not in page


def test_deactivate_and_reactivate(client, make_user):
    manager = make_user(Role.CSO_MANAGER, "BA")
    worker = make_user(Role.FIELD_WORKER, "BA")
    login(client, manager)
    nonce = worker.session_nonce
    response = client.post(f"/admin/users/{worker.uuid}/active", data={"active": "0"})
    assert response.status_code == 302
    db.session.refresh(worker)
    assert worker.active is False and worker.session_nonce != nonce
    client.post(f"/admin/users/{worker.uuid}/active", data={"active": "1"})
    db.session.refresh(worker)
    assert worker.active is True
    garbled = client.post(f"/admin/users/{worker.uuid}/active", data={"active": "x"})
    assert garbled.status_code == 400


def test_manager_cannot_deactivate_self(client, make_user):
    manager = make_user(Role.CSO_MANAGER, "BA")
    login(client, manager)
    response = client.post(f"/admin/users/{manager.uuid}/active", data={"active": "0"},
                           follow_redirects=True)
    assert "لا يمكنك تعطيل حسابك" in text_of(response)
    db.session.refresh(manager)
    assert manager.active is True


def test_edit_user_changes_role_and_ends_sessions(client, make_user):
    admin = make_user(Role.ADMIN)
    worker = make_user(Role.FIELD_WORKER, "BA")
    login(client, admin)
    nonce = worker.session_nonce
    response = client.post(f"/admin/users/{worker.uuid}", data=_new_user_form(
        email=worker.email, display_name="Renamed", role="cso_manager",
        organization=str(worker.organization_id)))
    assert response.status_code == 302
    db.session.refresh(worker)
    assert worker.role == "cso_manager" and worker.session_nonce != nonce


def test_create_organization_and_refuse_duplicates(client, make_user):
    login(client, make_user(Role.ADMIN))
    data = {"code": "new1", "name_ar": "جمعية جديدة", "name_fr": "Nouvelle", "name_en": "New",
            "kind": "funded_cso", "governorate_code": "TN-51", "locality": "Sousse",
            "active": "y"}
    assert client.post("/admin/organizations/new", data=data).status_code == 302
    assert _count(Organization, Organization.code == "NEW1") == 1
    again = client.post("/admin/organizations/new", data=data)
    assert "رمز" in text_of(again)
    bad = client.post("/admin/organizations/new", data={**data, "code": "x y!"})
    assert bad.status_code == 422
    assert _count(Organization, Organization.code.like("NEW%")) == 1


def test_create_and_edit_a_site(client, make_user, org):
    login(client, make_user(Role.ADMIN))
    data = {"name": "دار الشباب بقفصة", "kind": "youth_centre", "governorate_code": "TN-71",
            "locality": "Gafsa", "organizations": [str(org("MASHHAD").id)], "active": "y"}
    assert client.post("/admin/sites/new", data=data).status_code == 302
    site = db.session.scalars(sa.select(Site).where(Site.name == "دار الشباب بقفصة")).one()
    assert [o.code for o in site.organizations] == ["MASHHAD"]
    # A partner cannot be linked to a site; nothing changes.
    bad = client.post(f"/admin/sites/{site.uuid}/edit", data={
        **data, "name": "Renamed", "organizations": [str(org("AMIDEAST").id)]})
    assert bad.status_code == 422
    db.session.refresh(site)
    assert site.name == "دار الشباب بقفصة"
    bad_kind = client.post("/admin/sites/new", data={**data, "kind": "prison"})
    assert bad_kind.status_code == 422
    assert _count(Site, Site.name == "دار الشباب بقفصة") == 1


def test_audit_log_filters_and_scope(client, make_user):
    admin = make_user(Role.ADMIN, email="auditor@example.tn")
    manager = make_user(Role.CSO_MANAGER, "BA")
    other = make_user(Role.CSO_MANAGER, "ACEC", email="other-manager@example.tn")
    from bladi_cases.services.audit import record

    record("login", actor=manager, obj=manager)
    record("lockout", actor=other, obj=other)
    db.session.commit()
    login(client, admin)
    page = text_of(client.get("/audit/?action=lockout"))
    assert "other-manager@example.tn" in page
    assert "other-manager@example.tn" in text_of(client.get("/audit/?organization=ACEC"))
    assert "other-manager@example.tn" not in text_of(client.get("/audit/?organization=BA"))
    assert client.get("/audit/?date_from=not-a-date").status_code == 200
    login(client, manager)
    assert "other-manager@example.tn" not in text_of(client.get("/audit/"))


def test_staff_names_with_direction_controls_or_no_letter_are_refused(client, make_user, org):
    manager = make_user(Role.CSO_MANAGER, "BA")
    login(client, manager)
    before = _count(User)
    for name, expected in (("\u202eMariem Ayari", "أحرف غير مرئية تغيّر اتجاه النص"),
                           ("Mariem\u200f", "أحرف غير مرئية تغيّر اتجاه النص"),
                           ("\u200b\u200c\u200d", "يجب أن يحتوي الاسم على حرف واحد على الأقل"),
                           ("007", "يجب أن يحتوي الاسم على حرف واحد على الأقل")):
        response = client.post("/admin/users/new", data=_new_user_form(
            display_name=name, organization=str(org("BA").id)))
        assert response.status_code == 422
        assert expected in text_of(response), (name, text_of(response)[-600:])
    assert _count(User) == before
    worker = make_user(Role.FIELD_WORKER, "BA", display_name="Mariem Ayari")
    renamed = client.post(f"/admin/users/{worker.uuid}", data=_new_user_form(
        email=worker.email, display_name="\u2067Mariem", organization=str(org("BA").id)))
    assert renamed.status_code == 422
    db.session.refresh(worker)
    assert worker.display_name == "Mariem Ayari"

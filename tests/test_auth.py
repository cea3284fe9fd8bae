"""Login, lockout, logout, password rules and changes, one-time reset codes."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, PasswordReset, Role, User
from bladi_cases.models.common import utcnow
from bladi_cases.services.auth import issue_reset, password_problems

from .conftest import TEST_PASSWORD, login, text_of
from .second_factor_support import enrol, log_in_through_form


def _login(client, email, password, **kwargs):
    return client.post("/login", data={"email": email, "password": password}, **kwargs)


def _actions(user=None):
    query = sa.select(AuditEntry.action).order_by(AuditEntry.id)
    if user is not None:
        query = query.where(AuditEntry.actor_id == user.id)
    return db.session.scalars(query).all()


def test_login_with_good_credentials_any_case_email(client, make_user):
    user = make_user(Role.FIELD_WORKER, email="amal@example.tn")
    response = _login(client, "  AMAL@Example.TN ", TEST_PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert "login" in _actions(user)


def test_login_redirects_to_next_but_never_off_site(client, make_user):
    enrol(make_user(Role.ADMIN, email="boss@example.tn"))  # through the second factor too
    response = log_in_through_form(client, "boss@example.tn", TEST_PASSWORD,
                                   "https://evil.example/x")
    assert response.headers["Location"] == "/"
    client.post("/logout")
    response = log_in_through_form(client, "boss@example.tn", TEST_PASSWORD, "/admin/users")
    assert response.headers["Location"] == "/admin/users"


def test_wrong_password_and_unknown_email_get_the_same_generic_message(client, make_user):
    make_user(Role.FIELD_WORKER, email="known@example.tn")
    wrong = text_of(_login(client, "known@example.tn", "not-the-password"))
    unknown = text_of(_login(client, "nobody@example.tn", "not-the-password"))
    assert "البريد الإلكتروني أو كلمة المرور غير صحيحة" in wrong
    assert wrong == unknown, "the two failures must look identical"
    assert _actions()[-2:] == ["login_failed", "login_failed"]


def test_five_failures_lock_the_account_for_fifteen_minutes(client, make_user):
    user = make_user(Role.FIELD_WORKER, email="lock@example.tn")
    for _ in range(5):
        assert _login(client, "lock@example.tn", "wrong-password-1").status_code == 200
    db.session.refresh(user)
    assert user.locked_until is not None
    assert "lockout" in _actions(user)
    # Even the right password fails while locked, with the same generic message.
    response = _login(client, "lock@example.tn", TEST_PASSWORD)
    assert response.status_code == 200
    assert client.get("/").status_code == 302
    # After the lock expires the right password works again.
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert _login(client, "lock@example.tn", TEST_PASSWORD).status_code == 302


def test_failures_spread_over_more_than_the_window_do_not_lock(client, make_user):
    user = make_user(Role.FIELD_WORKER, email="slow@example.tn")
    for _ in range(4):
        _login(client, "slow@example.tn", "wrong-password-1")
    db.session.refresh(user)
    user.first_failed_login_at = utcnow() - timedelta(minutes=16)
    db.session.commit()
    _login(client, "slow@example.tn", "wrong-password-1")
    db.session.refresh(user)
    assert user.locked_until is None and user.failed_login_count == 1


def test_deactivated_user_cannot_log_in_and_is_logged_out_on_next_request(client, make_user):
    user = make_user(Role.FIELD_WORKER, email="gone@example.tn")
    login(client, user)
    assert client.get("/").status_code == 200
    user.active = False
    db.session.commit()
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert _login(client, "gone@example.tn", TEST_PASSWORD).status_code == 200


def test_logout_is_a_post(client, make_user):
    login(client, make_user(Role.DONOR))
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


def test_password_rules():
    assert password_problems("short", email="a@b.tn")
    assert password_problems("amal.trabelsi-2026", email="x@y.tn", display_name="Amal Trabelsi")
    assert password_problems("worker42-tunisia", email="worker42@demo.tn")
    assert password_problems("aaaaaaaaaaaa")
    assert password_problems("x" * 201 + "abcd")
    assert password_problems("Olive-Tree-4821", email="worker@demo.tn",
                             display_name="Amal Trabelsi") == []


def test_change_password_ends_other_sessions_but_not_this_one(app, make_user):
    user = make_user(Role.FIELD_WORKER, email="change@example.tn")
    phone, laptop = app.test_client(), app.test_client()
    login(phone, user)
    login(laptop, user)
    response = phone.post("/account/password", data={
        "current_password": TEST_PASSWORD, "new_password": "Jasmine-Road-7731",
        "confirm": "Jasmine-Road-7731"})
    assert response.status_code == 302
    assert phone.get("/").status_code == 200
    assert laptop.get("/").status_code == 302
    assert "password_changed" in _actions(user)
    fresh = app.test_client()
    assert _login(fresh, "change@example.tn", "Jasmine-Road-7731").status_code == 302


def test_change_password_bad_input_saves_nothing(client, make_user):
    user = make_user(Role.FIELD_WORKER, email="keep@example.tn", display_name="Hela Gharbi")
    login(client, user)
    before = user.password_hash
    cases = [
        ({"current_password": "wrong-one-1234", "new_password": "Jasmine-Road-7731",
          "confirm": "Jasmine-Road-7731"}, "كلمة المرور الحالية غير صحيحة"),
        ({"current_password": TEST_PASSWORD, "new_password": "short",
          "confirm": "short"}, "12"),
        ({"current_password": TEST_PASSWORD, "new_password": "hela-gharbi-2026",
          "confirm": "hela-gharbi-2026"}, "اسمك"),
        ({"current_password": TEST_PASSWORD, "new_password": "Jasmine-Road-7731",
          "confirm": "Jasmine-Road-7732"}, "غير متطابقتين"),
    ]
    for data, expected in cases:
        response = client.post("/account/password", data=data)
        assert response.status_code == 422
        assert expected in text_of(response), (data, text_of(response)[:400])
    db.session.refresh(user)
    assert user.password_hash == before


def test_reset_code_sets_password_once(app, client, make_user):
    manager = make_user(Role.CSO_MANAGER)
    worker = make_user(Role.FIELD_WORKER, email="forgot@example.tn")
    code = issue_reset(worker, manager)
    db.session.commit()
    stored = db.session.scalars(sa.select(PasswordReset.token_hash)).all()
    assert code not in stored, "only a hash of the code is stored"
    assert client.get(f"/reset/{code}").status_code == 200
    bad = client.post(f"/reset/{code}", data={"new_password": "short", "confirm": "short"})
    assert bad.status_code == 422
    ok = client.post(f"/reset/{code}", data={"new_password": "Harbour-Light-5150",
                                             "confirm": "Harbour-Light-5150"})
    assert ok.status_code == 302
    assert client.get(f"/reset/{code}").status_code == 404, "a code works once"
    assert _login(app.test_client(), "forgot@example.tn", "Harbour-Light-5150").status_code == 302


def test_reset_code_expires_after_24_hours_and_new_code_voids_old(client, make_user):
    manager = make_user(Role.CSO_MANAGER)
    worker = make_user(Role.FIELD_WORKER)
    first = issue_reset(worker, manager)
    second = issue_reset(worker, manager)
    db.session.commit()
    assert client.get(f"/reset/{first}").status_code == 404
    assert client.get(f"/reset/{second}").status_code == 200
    reset = db.session.scalars(sa.select(PasswordReset).where(
        PasswordReset.user_id == worker.id, PasswordReset.used_at.is_(None))).one()
    reset.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert client.get(f"/reset/{second}").status_code == 404
    assert client.get("/reset/garbage").status_code == 404


def test_users_table_stores_only_password_hashes(make_user):
    make_user(Role.FIELD_WORKER, email="hash@example.tn")
    stored = db.session.scalars(sa.select(User.password_hash)
                                .where(User.email == "hash@example.tn")).one()
    assert stored.startswith("$argon2id$") and TEST_PASSWORD not in stored

"""The second factor (TOTP, RFC 6238): enrolment after the password, the code page, replay
and the time window, recovery codes, the lockout, resets by a manager or an administrator,
the secret encrypted at rest, and the pages in Arabic.

The server's clock is frozen (`clock`) and every code is computed with pyotp for an
explicit instant, so no test depends on when it runs or on how long it takes.
"""

from __future__ import annotations

import re
import secrets

import pyotp
import pytest
import sqlalchemy as sa

from bladi_cases.config import ConfigError, load_settings
from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, RecoveryCode, Role, User
from bladi_cases.services.auth import second_factor

from .conftest import TEST_PASSWORD, login, text_of
from .second_factor_support import SECRET_ON_PAGE, log_in_through_form

# A fixed instant in the middle of a 30 s step (2027-01-15, long after any real clock
# skew matters): the server's "now" in these tests.
NOW = 1_800_000_015
STEP = 30


class Clock:
    """The server's clock, frozen; tests move it."""

    def __init__(self) -> None:
        self.now = NOW


@pytest.fixture
def clock(monkeypatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(second_factor, "_clock", lambda: frozen.now)
    return frozen


def _code(secret: str, steps_from_now: int = 0) -> str:
    return pyotp.TOTP(secret).at(NOW + steps_from_now * STEP)


def _enrolled(user: User, clock: Clock) -> tuple[str, list[str]]:
    """Enrol `user` through the service ten minutes before NOW (so every step near NOW is
    still unused); returns (secret, recovery codes)."""
    clock.now = NOW - 20 * STEP
    secret = second_factor.begin_enrolment(user)
    codes = second_factor.confirm_enrolment(user, pyotp.TOTP(secret).at(clock.now))
    db.session.commit()
    clock.now = NOW
    return secret, codes


def _password(client, user: User, next_url: str = ""):
    return client.post("/login", data={"email": user.email, "password": TEST_PASSWORD,
                                       "next": next_url})


def _actions(user: User) -> list[str]:
    return db.session.scalars(sa.select(AuditEntry.action).where(
        AuditEntry.object_id == str(user.uuid)).order_by(AuditEntry.id)).all()


def _logged_in(client) -> bool:
    return client.get("/").status_code == 200


# --- enrolment and login ------------------------------------------------------------------

def test_a_manager_enrols_after_the_password_then_logs_in_with_a_code(client, make_user,
                                                                      clock):
    manager = make_user(Role.CSO_MANAGER)
    answer = _password(client, manager, "/admin/users")
    assert answer.status_code == 302 and answer.location.endswith("/login/enrol")
    assert not _logged_in(client), "nobody is logged in before the second factor"

    page = client.get("/login/enrol")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<svg" in html, "the QR code, drawn inline"
    shown = SECRET_ON_PAGE.search(html).group(1)
    assert re.fullmatch(r"([A-Z2-7]{4} )+[A-Z2-7]{4}", shown), "the secret, in groups of 4"
    secret = shown.replace(" ", "")
    assert second_factor.pending_secret(manager) == secret

    wrong = client.post("/login/enrol", data={"code": _code(secret, 5)})
    assert wrong.status_code == 422 and manager.totp_confirmed_at is None
    codes_page = client.post("/login/enrol", data={"code": _code(secret)})
    assert codes_page.status_code == 200
    codes = re.findall(r"<code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code>",
                       codes_page.get_data(as_text=True))
    assert len(codes) == len(set(codes)) == 10
    stored = db.session.scalars(sa.select(RecoveryCode.code_hash).where(
        RecoveryCode.user_id == manager.id)).all()
    assert len(stored) == 10 and not set(codes) & set(stored), "hashes only"
    assert not _logged_in(client), "not before the recovery codes were acknowledged"

    done = client.post("/login/enrol/done")
    assert done.status_code == 302 and done.location == "/admin/users"
    assert _logged_in(client)
    db.session.refresh(manager)
    assert manager.totp_confirmed_at is not None
    assert "second_factor_enrolled" in _actions(manager)

    # The next login asks for a code (the next step: the enrolment used this one).
    client.post("/logout")
    answer = _password(client, manager)
    assert answer.location.endswith("/login/code")
    assert not _logged_in(client)
    assert client.post("/login/code", data={"code": _code(secret, 1)}).location == "/"
    assert _logged_in(client)
    assert _actions(manager)[-1] == "second_factor_passed"


def test_an_optional_role_logs_in_with_the_password_alone(client, make_user):
    worker = make_user(Role.FIELD_WORKER)
    answer = _password(client, worker)
    assert answer.status_code == 302 and answer.location == "/"
    assert worker.totp_secret_enc is None


def test_the_roles_that_require_a_factor_are_a_setting(app, client, make_user, monkeypatch):
    donor = make_user(Role.DONOR)
    monkeypatch.setitem(app.config, "BLADI_2FA_ROLES", frozenset({"admin"}))
    assert _password(client, donor).location == "/"
    client.post("/logout")
    # Marked on the account (after a reset), it must enrol whatever its role.
    donor.second_factor_required = True
    db.session.commit()
    assert _password(client, donor).location.endswith("/login/enrol")


def test_role_settings_are_checked(tmp_path):
    settings = load_settings({"BLADI_ENV": "testing"}, tmp_path)
    assert settings["BLADI_2FA_ROLES"] == {"admin", "reviewer", "donor", "cso_manager"}
    assert settings["BLADI_2FA_OPTIONAL_ROLES"] == {"field_worker"}
    chosen = load_settings({"BLADI_ENV": "testing", "BLADI_2FA_ROLES": "admin, donor",
                            "BLADI_2FA_OPTIONAL_ROLES": ""}, tmp_path)
    assert chosen["BLADI_2FA_ROLES"] == {"admin", "donor"}
    assert chosen["BLADI_2FA_OPTIONAL_ROLES"] == frozenset()
    with pytest.raises(ConfigError, match="boss"):
        load_settings({"BLADI_ENV": "testing", "BLADI_2FA_ROLES": "admin,boss"}, tmp_path)
    with pytest.raises(ConfigError, match="field_worker"):
        load_settings({"BLADI_ENV": "testing", "BLADI_2FA_ROLES": "field_worker"}, tmp_path)


def test_the_pending_login_expires(client, make_user, clock):
    admin = make_user(Role.ADMIN)
    _enrolled(admin, clock)
    _password(client, admin)
    with client.session_transaction() as session:
        held = next(v for k, v in session.items() if isinstance(v, dict) and "stage" in v)
        held["until"] = 0
        session.modified = True
    answer = client.post("/login/code", data={"code": "000000"})
    assert answer.status_code == 302 and answer.location == "/login"
    assert not _logged_in(client)


# --- codes ----------------------------------------------------------------------------------

def test_a_wrong_code_counts_toward_the_lockout_and_a_locked_account_cannot_pass(
        app, client, make_user, clock):
    reviewer = make_user(Role.REVIEWER)
    secret, _codes = _enrolled(reviewer, clock)
    _password(client, reviewer)
    for _attempt in range(app.config["BLADI_LOGIN_MAX_FAILURES"]):
        answer = client.post("/login/code", data={"code": _code(secret, 3)})
        assert answer.status_code == 200 and not _logged_in(client)
    db.session.refresh(reviewer)
    assert reviewer.locked_until is not None, "five wrong codes lock the account"
    assert "lockout" in _actions(reviewer)
    refused = client.post("/login/code", data={"code": _code(secret)})
    assert refused.status_code == 200 and not _logged_in(client)
    reasons = db.session.scalars(sa.select(AuditEntry.detail).where(
        AuditEntry.action == "login_failed", AuditEntry.actor_id == reviewer.id)).all()
    assert [r["reason"] for r in reasons].count("bad_code") == 5
    assert reasons[-1]["reason"] == "locked"


def test_wrong_codes_share_the_login_rate_limit_of_the_account(app, client, make_user, clock,
                                                                monkeypatch):
    monkeypatch.setitem(app.config, "BLADI_RATELIMIT_LOGIN_ACCOUNT", "3 per minute")
    donor = make_user(Role.DONOR, email=f"limit-{secrets.token_hex(4)}@example.tn")
    secret, _codes = _enrolled(donor, clock)
    _password(client, donor)
    answers = [client.post("/login/code", data={"code": _code(secret, 9)},
                           environ_base={"REMOTE_ADDR": f"192.0.2.{n}"}).status_code
               for n in range(4)]
    assert answers == [200, 200, 200, 429], "from any address"


def test_the_same_code_is_never_accepted_twice(client, make_user, clock):
    admin = make_user(Role.ADMIN)
    secret, _codes = _enrolled(admin, clock)
    _password(client, admin)
    assert client.post("/login/code", data={"code": _code(secret)}).location == "/"
    client.post("/logout")
    _password(client, admin)
    replay = client.post("/login/code", data={"code": _code(secret)})
    assert replay.status_code == 200 and not _logged_in(client)
    # Nor an earlier step's code, once a later one was used.
    assert second_factor.check_code(admin, _code(secret, -1)) is None
    assert second_factor.check_code(admin, _code(secret, 1)) == "totp"


def test_the_step_is_claimed_in_the_database_not_in_memory(make_user, clock):
    """Two requests racing with one code: the one that loses read the row before the other
    wrote it, and its conditional UPDATE must still match nothing."""
    admin = make_user(Role.ADMIN)
    secret, _codes = _enrolled(admin, clock)
    step = pyotp.TOTP(secret).timecode(NOW)
    db.session.execute(sa.text("UPDATE user_account SET totp_last_step = :step WHERE id = :id"),
                       {"step": step, "id": admin.id})
    assert admin.totp_last_step < step, "the object in memory is stale, as in the loser"
    assert second_factor.check_code(admin, _code(secret)) is None


@pytest.mark.parametrize("steps,accepted", [(-2, False), (-1, True), (0, True), (1, True),
                                            (2, False)])
def test_a_code_is_valid_one_step_either_side(make_user, clock, steps, accepted):
    donor = make_user(Role.DONOR)
    secret, _codes = _enrolled(donor, clock)
    assert (second_factor.check_code(donor, _code(secret, steps)) == "totp") is accepted


def test_digits_typed_on_an_arabic_keyboard_are_read(make_user, clock):
    donor = make_user(Role.DONOR)
    secret, _codes = _enrolled(donor, clock)
    arabic = _code(secret).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert second_factor.check_code(donor, f"{arabic[:3]} {arabic[3:]}") == "totp"


def test_a_recovery_code_works_once(client, make_user, clock):
    manager = make_user(Role.CSO_MANAGER)
    _secret, codes = _enrolled(manager, clock)
    _password(client, manager)
    typed = codes[0].upper().replace("-", " ")  # as a person may type it
    answer = client.post("/login/code", data={"code": typed})
    assert answer.location == "/"
    assert "بقي 9" in text_of(client.get("/")), "how many are left"
    assert second_factor.recovery_codes_left(manager) == 9
    assert "recovery_code_used" in _actions(manager)
    client.post("/logout")
    _password(client, manager)
    again = client.post("/login/code", data={"code": codes[0]})
    assert again.status_code == 200 and not _logged_in(client)
    assert client.post("/login/code", data={"code": codes[1]}).location == "/"


# --- the account page ---------------------------------------------------------------------

def test_a_field_worker_enrols_by_choice_on_the_account_page(client, make_user, clock):
    worker = make_user(Role.FIELD_WORKER)
    login(client, worker)
    assert "/account/second-factor/start" in client.get("/account/second-factor").get_data(
        as_text=True)
    assert client.post("/account/second-factor/start").location == "/account/second-factor/enrol"
    page = client.get("/account/second-factor/enrol").get_data(as_text=True)
    secret = SECRET_ON_PAGE.search(page).group(1).replace(" ", "")
    shown = client.post("/account/second-factor/enrol", data={"code": _code(secret)})
    assert shown.status_code == 200 and shown.get_data(as_text=True).count("<code>") == 10
    assert second_factor.is_enrolled(worker)
    client.post("/logout")
    assert _password(client, worker).location.endswith("/login/code")


def test_new_recovery_codes_need_a_current_code(client, make_user, clock):
    admin = make_user(Role.ADMIN)
    secret, old = _enrolled(admin, clock)
    login(client, admin)
    wrong = client.post("/account/second-factor/recovery-codes", data={"code": _code(secret, 4)})
    assert wrong.status_code == 200
    db.session.refresh(admin)
    assert admin.failed_login_count == 1, "a wrong code here counts too"
    renewed = client.post("/account/second-factor/recovery-codes", data={"code": _code(secret)})
    new = re.findall(r"<code>([a-z2-7-]{19})</code>", renewed.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    assert second_factor.check_code(admin, old[0]) is None
    assert second_factor.check_code(admin, new[0]) == "recovery_code"
    assert "recovery_codes_renewed" in _actions(admin)


# --- resets ---------------------------------------------------------------------------------

def _reset(client, account: User):
    return client.post(f"/admin/users/{account.uuid}/second-factor/reset")


def _assert_cleared(account: User) -> None:
    db.session.refresh(account)
    assert account.totp_secret_enc is None and account.totp_confirmed_at is None
    assert account.second_factor_required is True
    assert second_factor.recovery_codes_left(account) == 0


def test_a_manager_resets_a_field_workers_factor(client, make_user, clock):
    manager = make_user(Role.CSO_MANAGER, "BA")
    worker = make_user(Role.FIELD_WORKER, "BA")
    _enrolled(worker, clock)
    login(client, manager)
    page = client.get(f"/admin/users/{worker.uuid}").get_data(as_text=True)
    assert "second-factor/reset" in page, "the button is on the account's page"
    assert _reset(client, worker).status_code == 302
    _assert_cleared(worker)
    entry = db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action == "second_factor_reset")).one()
    assert entry.actor_id == manager.id and entry.object_id == str(worker.uuid)
    # At the next login the worker enrols again, although the role makes it optional.
    client.post("/logout")
    assert _password(client, worker).location.endswith("/login/enrol")


def test_a_manager_resets_neither_another_csos_account_nor_a_managers(client, make_user,
                                                                      clock):
    manager = make_user(Role.CSO_MANAGER, "BA")
    stranger = make_user(Role.FIELD_WORKER, "ACEC")
    colleague = make_user(Role.CSO_MANAGER, "BA")
    for account in (stranger, colleague, manager):
        _enrolled(account, clock)
    login(client, manager)
    assert _reset(client, stranger).status_code == 404
    assert _reset(client, colleague).status_code == 403
    assert _reset(client, manager).status_code == 403, "not one's own"
    for account in (stranger, colleague, manager):
        db.session.refresh(account)
        assert second_factor.is_enrolled(account)
    assert not db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "second_factor_reset"))


@pytest.mark.parametrize("role", [Role.CSO_MANAGER, Role.REVIEWER, Role.DONOR])
def test_an_administrator_resets_a_managers_or_a_non_cso_accounts_factor(client, make_user,
                                                                          clock, role):
    admin = make_user(Role.ADMIN)
    account = make_user(role)
    _enrolled(account, clock)
    login(client, admin)
    assert _reset(client, account).status_code == 302
    _assert_cleared(account)
    assert _actions(account)[-1] == "second_factor_reset"


def test_an_administrator_leaves_a_field_workers_factor_to_their_manager(client, make_user,
                                                                         clock):
    admin = make_user(Role.ADMIN)
    worker = make_user(Role.FIELD_WORKER, "BA")
    _enrolled(worker, clock)
    login(client, admin)
    assert _reset(client, worker).status_code == 403
    assert second_factor.is_enrolled(worker)


# --- at rest, and in Arabic -----------------------------------------------------------------

def test_the_secret_is_encrypted_at_rest(make_user, clock):
    admin = make_user(Role.ADMIN)
    secret, codes = _enrolled(admin, clock)
    row = db.session.execute(sa.text("SELECT * FROM user_account WHERE id = :id"),
                             {"id": admin.id}).mappings().one()
    stored = " ".join(bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview)
                      else str(v) for v in row.values())
    assert secret not in stored and secret.lower() not in stored
    assert row["totp_secret_enc"] and second_factor.pending_secret(admin) is None
    hashes = db.session.execute(sa.text("SELECT code_hash FROM recovery_code WHERE user_id = :id"),
                                {"id": admin.id}).scalars().all()
    assert not set(codes) & set(hashes)


def test_the_pages_and_messages_are_in_arabic(client, make_user, clock):
    admin = make_user(Role.ADMIN)
    page = _password(client, admin)
    enrol = client.get(page.location)
    assert '<html lang="ar" dir="rtl">' in enrol.get_data(as_text=True)
    assert "إعداد عامل تحقق ثانٍ" in text_of(enrol)
    client.post("/logout")
    db.session.refresh(admin)
    secret, _codes = _enrolled(admin, clock)
    _password(client, admin)
    wrong = client.post("/login/code", data={"code": _code(secret, 7)})
    assert "هذا الرمز خاطئ أو سبق استعماله" in text_of(wrong)


def test_the_tests_phone_app_logs_in_through_the_form(client, make_user):
    """tests/second_factor_support.py, which every login through the form in the suite uses:
    the enrolment at the first login, a code at the next ones."""
    manager = make_user(Role.CSO_MANAGER)
    first = log_in_through_form(client, manager.email, TEST_PASSWORD, "/audit/")
    assert first.status_code == 302 and first.location == "/audit/"
    assert second_factor.is_enrolled(manager)
    client.post("/logout")
    again = log_in_through_form(client, manager.email, TEST_PASSWORD)
    assert again.status_code == 302 and again.location == "/" and _logged_in(client)

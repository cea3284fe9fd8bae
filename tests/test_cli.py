"""The command line: seeding, accounts, keys."""

from __future__ import annotations

import base64

import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Governorate, Organization, Site, User
from bladi_cases.seed import DEMO_USERS


def _count(model, *where):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_seed_reference_is_idempotent(app):
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["seed", "reference"])
        assert result.exit_code == 0, result.output
    assert _count(Governorate) == 24
    assert _count(Organization, Organization.kind == "funded_cso") == 11
    codes = set(db.session.scalars(sa.select(Organization.code)))
    assert {"BA", "ACEC", "KS", "KHATWA", "ARA", "ATTEJ", "SOUTKOM", "AFEK", "COMM", "HE",
            "MASHHAD", "AMIDEAST", "JAMAITY", "SHANTI", "DOS"} <= codes
    ba = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
    assert ba.name_ar == "بذرة أمل" and ba.governorate_code == "TN-61"
    gabes = db.session.get(Governorate, "TN-81")
    assert (gabes.name_ar, gabes.name_fr, gabes.name_en) == ("قابس", "Gabès", "Gabes")


def test_seed_demo_prints_accounts_and_is_idempotent(app):
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["seed", "demo"])
        assert result.exit_code == 0, result.output
    for demo in DEMO_USERS:
        assert demo.email in result.output and demo.password in result.output
    assert _count(User, User.email.like("%@demo.bladi.tn")) == len(DEMO_USERS)
    assert _count(Site) >= 11


def test_seed_demo_refuses_production(app, monkeypatch):
    monkeypatch.setitem(app.config, "BLADI_ENV", "production")
    result = app.test_cli_runner().invoke(args=["seed", "demo"])
    assert result.exit_code != 0 and "production" in result.output


def test_users_create_with_password_from_stdin(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--email", "Cli@Example.tn", "--name",
                                 "Rim Saidi", "--role", "field_worker", "--org", "ba",
                                 "--password-stdin"], input="Palm-Grove-8842\n")
    assert result.exit_code == 0, result.output
    assert "Password:" not in result.output
    user = db.session.scalars(sa.select(User).where(User.email == "cli@example.tn")).one()
    assert user.organization.code == "BA"


def test_users_create_generates_a_password(app):
    result = app.test_cli_runner().invoke(args=[
        "users", "create", "--email", "gen@example.tn", "--name", "Admin Two", "--role", "admin"])
    assert result.exit_code == 0, result.output
    assert "Password: " in result.output


def test_users_create_bad_input(app):
    runner = app.test_cli_runner()
    cases = [
        (["--role", "field_worker"], "funded CSO"),                    # CSO role, no org
        (["--role", "field_worker", "--org", "NOPE"], "No organisation"),
        (["--role", "wizard"], "Invalid value"),
    ]
    for extra, expected in cases:
        result = runner.invoke(args=["users", "create", "--email", "bad@example.tn",
                                     "--name", "Bad Input", *extra])
        assert result.exit_code != 0 and expected in result.output, result.output
    weak = runner.invoke(args=["users", "create", "--email", "weak@example.tn", "--name", "Weak",
                               "--role", "admin", "--password-stdin"], input="short\n")
    assert weak.exit_code != 0 and "at least 12" in weak.output
    assert _count(User, User.email.in_(["bad@example.tn", "weak@example.tn"])) == 0


def test_users_list_and_deactivate(app, make_user):
    user = make_user(email="leaving@example.tn")
    runner = app.test_cli_runner()
    assert "leaving@example.tn" in runner.invoke(args=["users", "list"]).output
    result = runner.invoke(args=["users", "deactivate", "LEAVING@example.tn"])
    assert result.exit_code == 0, result.output
    db.session.refresh(user)
    assert user.active is False
    assert runner.invoke(args=["users", "deactivate", "nobody@example.tn"]).exit_code != 0


def test_keys_generate_prints_a_32_byte_key(app):
    result = app.test_cli_runner().invoke(args=["keys", "generate"])
    key = result.output.strip()
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert app.test_cli_runner().invoke(args=["keys", "generate"]).output.strip() != key

"""The count of each CSO's youth that the database keeps (BeneficiaryCount, migration 0016),
and the home page that shows it: after every kind of write it equals a real count, on
SQLite and PostgreSQL. The writes go through the pages and services the app uses, and
through plain SQL (what a script or a later feature would write)."""

from __future__ import annotations

import importlib.util
import re
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, BeneficiaryCount, Organization, Role
from bladi_cases.services.cases import transfers

from .conftest import follow_job, login, text_of
from .test_beneficiaries_imports import _csv, _done, _rows, _upload


def _migration_0016():
    """Migration 0016 as a module (migrations are not a package)."""
    path = Path(__file__).resolve().parent.parent / "migrations/versions/0016_beneficiary_count.py"
    spec = importlib.util.spec_from_file_location("migration_0016", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The triggers migration 0016 creates on each database, read from it: what must still be
# there after every later migration (one that rebuilds beneficiary on SQLite drops them).
_0016 = _migration_0016()
TRIGGERS = {"sqlite": set(_0016.SQLITE_TRIGGERS), "postgresql": set(_0016.POSTGRESQL_TRIGGERS)}


def _triggers() -> set[str]:
    if db.engine.dialect.name == "sqlite":
        found = db.session.scalars(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'beneficiary'"))
    else:
        found = db.session.scalars(sa.text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'beneficiary'::regclass "
            "AND NOT tgisinternal"))
    return set(found)


def _kept() -> dict[int, int]:
    """Every CSO's kept count, those at zero left out (a CSO whose youth are all gone
    keeps its row at 0)."""
    return {org: live for org, live in db.session.execute(
        sa.select(BeneficiaryCount.organization_id, BeneficiaryCount.live)) if live}


def _real() -> dict[int, int]:
    """Every CSO's youth not erased, counted."""
    return dict(db.session.execute(
        sa.select(Beneficiary.organization_id, sa.func.count())
        .where(Beneficiary.erased_at.is_(None)).group_by(Beneficiary.organization_id)).all())


def _org(code: str) -> Organization:
    return db.session.scalars(sa.select(Organization).where(Organization.code == code)).one()


def _home_count(client) -> int:
    """The count the home page prints ("N young people registered", in English)."""
    found = re.search(r"(\d+) young (?:person|people) registered", text_of(client.get("/")))
    assert found, "the home page shows no youth count"
    return int(found.group(1))


def test_the_migrated_database_has_the_triggers(app):
    assert _triggers() == TRIGGERS[db.engine.dialect.name]


def test_the_count_follows_every_kind_of_write(app, client, make_user, make_beneficiary,
                                               make_case):
    manager = make_user(Role.CSO_MANAGER, "BA", preferred_language="en")
    worker = make_user(Role.FIELD_WORKER, "BA", preferred_language="en")
    ba, acec = _org("BA").id, _org("ACEC").id
    login(client, manager)
    assert _kept() == _real()
    shown = _home_count(client)
    assert shown == _real().get(ba, 0)

    # Registration (the service the registration page calls).
    youth = make_beneficiary("BA")
    other = make_beneficiary("BA")
    assert _kept() == _real() and _home_count(client) == shown + 2

    # An import of two rows, through the import page and its job.
    header, rows = _rows()
    assert _done(follow_job(client, _upload(client, "youth.csv", _csv(header, rows))))
    db.session.commit()
    assert _kept() == _real() and _home_count(client) == shown + 4

    # Erasure, through its page: the youth stays, uncounted; a second erasure is refused and
    # counts nothing twice.
    assert client.post(f"/beneficiaries/{other.uuid}/erase",
                       data={"confirm": other.code}).status_code == 302
    client.post(f"/beneficiaries/{other.uuid}/erase", data={"confirm": other.code})
    db.session.commit()
    assert _kept() == _real() and _home_count(client) == shown + 3

    # A transfer to another CSO, accepted there: one less in BA, one more in ACEC.
    acec_before = _real().get(acec, 0)
    case, _provider = make_case(youth, worker)
    transfer = transfers.request_transfer(manager, case, _org("ACEC"), "موافقة الشاب كتابيا")
    transfers.decide_transfer(make_user(Role.CSO_MANAGER, "ACEC"), transfer, accept=True)
    db.session.commit()
    assert db.session.get(Beneficiary, youth.id).organization_id == acec
    assert _kept() == _real() and _real()[acec] == acec_before + 1
    assert _home_count(client) == shown + 2

    # Plain SQL: an update that changes neither column counted, a move back, an erasure
    # undone, a delete.
    db.session.execute(sa.update(Beneficiary).where(Beneficiary.id == youth.id)
                       .values(delegation="Sakiet Ezzit"))
    assert _kept() == _real()
    db.session.execute(sa.update(Beneficiary).where(Beneficiary.id == youth.id)
                       .values(organization_id=ba))
    assert _kept() == _real()
    db.session.execute(sa.update(Beneficiary).where(Beneficiary.id == other.id)
                       .values(erased_at=None))
    assert _kept() == _real()
    # An erased youth moved: counted nowhere, before or after.
    db.session.execute(sa.update(Beneficiary).where(Beneficiary.id == other.id)
                       .values(erased_at=sa.func.current_timestamp(), organization_id=acec))
    assert _kept() == _real()
    gone = make_beneficiary("BA")  # youth moved back, other erased again, gone
    assert _home_count(client) == shown + 4
    db.session.execute(sa.delete(Beneficiary).where(Beneficiary.id == gone.id))
    assert _kept() == _real()
    db.session.commit()
    assert _home_count(client) == shown + 3


def test_a_write_rolled_back_takes_its_count_back(app):
    from bladi_cases.services.beneficiaries.registry import register

    from .conftest import registration

    ba = _org("BA")
    before = _kept().get(ba.id, 0)
    with db.session.begin_nested() as savepoint:
        register(None, ba, registration(), confirmed_new=True)
        assert _kept().get(ba.id, 0) == before + 1
        db.session.execute(sa.text(
            "UPDATE beneficiary SET erased_at = CURRENT_TIMESTAMP WHERE organization_id = :o "
            "AND erased_at IS NULL"), {"o": ba.id})
        assert _kept().get(ba.id, 0) == 0
        savepoint.rollback()
    assert _kept().get(ba.id, 0) == before == _real().get(ba.id, 0)


def test_a_cso_with_no_youth_yet_shows_zero(app, client, make_user):
    """A CSO that never registered anyone has no row: its home page says 0."""
    empty = next(org for org in db.session.scalars(sa.select(Organization))
                 if org.kind == "funded_cso" and org.id not in _real())
    login(client, make_user(Role.FIELD_WORKER, empty.code, preferred_language="en"))
    assert _home_count(client) == 0


def test_the_first_count_and_the_way_back(file_app):
    """0016 counts the youth already registered; downgrading removes the table, its
    triggers and function, and brings back the index; upgrading again counts again."""
    from bladi_cases.seed import seed_reference
    from bladi_cases.services.beneficiaries.registry import register

    from .conftest import registration

    with file_app.app_context():
        upgrade(revision="0015")
        seed_reference()
        ba, acec = _org("BA"), _org("ACEC")
        for org, many in ((ba, 3), (acec, 2)):
            for n in range(many):
                register(None, org, registration(first_name_ar=f"سامي{n}",
                                                 birth_date=date(2000, 1, n + 1)),
                         confirmed_new=True)
        db.session.execute(sa.text(
            "UPDATE beneficiary SET erased_at = CURRENT_TIMESTAMP WHERE id = "
            "(SELECT min(id) FROM beneficiary WHERE organization_id = :o)"), {"o": ba.id})
        db.session.commit()
        upgrade()
        assert _kept() == _real() == {ba.id: 2, acec.id: 2}
        assert _triggers() == TRIGGERS["sqlite"]
        downgrade(revision="0015")
        inspector = sa.inspect(db.engine)
        assert "beneficiary_count" not in inspector.get_table_names()
        assert "ix_beneficiary_org_live" in {i["name"] for i in
                                             inspector.get_indexes("beneficiary")}
        db.session.remove()
        assert _triggers() == set()
        register(None, ba, registration(first_name_ar="جديد"), confirmed_new=True)
        db.session.commit()
        upgrade()
        assert _kept() == _real() == {ba.id: 3, acec.id: 2}

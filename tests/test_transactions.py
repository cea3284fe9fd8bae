"""When a request writes (bladi_cases/transactions.py), on either database: a page's audit
entries are written once it is built, and a page whose entries cannot be written is not sent.
How SQLite's locks behave under load is in tests/test_concurrency.py."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import before_render_template

from bladi_cases import transactions
from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, Role
from bladi_cases.services.audit import Action

from .conftest import login, text_of


def _entries(action: str, actor) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.actor_id == actor.id))


@pytest.fixture
def youth_page(app, client, make_user, make_beneficiary):
    """A field worker logged in on `client`, and the record page of a youth of their CSO."""
    worker = make_user(Role.FIELD_WORKER, "BA", preferred_language="en")
    youth = make_beneficiary("BA")
    login(client, worker)
    return worker, f"/beneficiaries/{youth.uuid}"


def test_a_page_writes_its_audit_entry_once_it_is_built(app, client, youth_page):
    worker, page = youth_page
    at_render: list[int] = []

    def count(_sender, **_extra):
        at_render.append(_entries(Action.BENEFICIARY_VIEWED, worker))

    before_render_template.connect(count, app)
    try:
        response = client.get(page)
    finally:
        before_render_template.disconnect(count, app)
    assert response.status_code == 200 and "Amira" in text_of(response)
    assert at_render and set(at_render) == {0}, "written while the page was being built"
    assert _entries(Action.BENEFICIARY_VIEWED, worker) == 1


@pytest.mark.parametrize("failure", ["locked", "refused"])
def test_a_page_whose_audit_entry_cannot_be_written_is_not_sent(app, client, youth_page,
                                                                monkeypatch, failure):
    """The write lock not had in time (SQLite, where the entry has a transaction of its
    own), or the entry's row refused by the database (both): an error page, not the page,
    and nothing written."""
    from bladi_cases.services import audit

    worker, page = youth_page
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)  # as in production
    if failure == "locked":
        if db.engine.dialect.name != "sqlite":
            pytest.skip("PostgreSQL writes a page's audit entry in the page's transaction")

        @contextmanager
        def locked():
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
            yield  # pragma: no cover

        monkeypatch.setattr(transactions, "write_transaction", locked)
    else:
        missing = sa.table("no_audit_entry_here", *(sa.column(c.key) for c in audit._WRITTEN))
        monkeypatch.setattr(audit, "_INSERT", sa.insert(missing))
    response = client.get(page)
    assert response.status_code == 500
    assert "Amira" not in text_of(response) and "Trabelsi" not in text_of(response)
    monkeypatch.undo()
    assert _entries(Action.BENEFICIARY_VIEWED, worker) == 0
    assert client.get(page).status_code == 200, "the next page works again"
    assert _entries(Action.BENEFICIARY_VIEWED, worker) == 1


def test_after_render_is_for_read_requests_only(app):
    with app.test_request_context("/", method="POST"), pytest.raises(RuntimeError):
        transactions.after_render(lambda: None)
    with pytest.raises(RuntimeError):
        transactions.after_render(lambda: None)


def test_a_write_transaction_begins_afresh(app):
    db.session.execute(sa.text("SELECT 1"))
    with pytest.raises(RuntimeError), transactions.write_transaction():
        pass  # pragma: no cover
    db.session.commit()
    with transactions.write_transaction():
        assert transactions.begins_writing()
    assert not transactions.begins_writing()


def _durability_at_each_commit(connection_or_engine, record: list) -> None:
    """Record, at each commit (and, in the suite's nested transactions, each savepoint
    released), whether it waits for the disk: SQLite's `synchronous` (2 FULL, 1 NORMAL),
    PostgreSQL's `synchronous_commit`."""
    def probe(conn, *_args):
        if conn.dialect.name == "sqlite":
            record.append(conn.exec_driver_sql("PRAGMA synchronous").scalar())
        else:
            record.append(conn.exec_driver_sql("SHOW synchronous_commit").scalar())

    sa.event.listen(connection_or_engine, "commit", probe)
    sa.event.listen(connection_or_engine, "release_savepoint", probe)


def _bookkeeping_only(app) -> None:
    """A read request whose only write is bookkeeping that need not wait for the disk (a
    login session's last request, as services/auth/sessions.py sets it aside)."""
    with app.test_request_context("/", method="GET"):
        transactions.after_render(lambda: db.session.execute(sa.text(
            "UPDATE user_account SET display_name = display_name")), waits_for_disk=False)
        transactions.commit_request()  # as commit_once does


def test_a_pages_bookkeeping_does_not_wait_for_the_disk_an_audit_entry_does(app, client,
                                                                              youth_page):
    """PostgreSQL: a youth's page commits its audit entry with the page's own transaction,
    waiting for the WAL flush ("on": each view of an identity stays on record); bookkeeping
    alone does not ("off"), in a transaction of its own. (SQLite's, which needs commits of
    its own, is the test below.)"""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's setting; SQLite's is checked on a file of its own")
    worker, page = youth_page
    seen: list = []
    _durability_at_each_commit(db.session.connection(), seen)
    assert client.get(page).status_code == 200
    assert seen == ["on"], "one commit: the entry in the page's own transaction"
    assert _entries(Action.BENEFICIARY_VIEWED, worker) == 1
    seen.clear()
    _bookkeeping_only(app)
    assert seen[-1:] == ["off"]  # after the request's own commit


def test_on_sqlite_only_bookkeeping_skips_the_sync(file_app):
    """SQLite (WAL): a GET's audit entry is committed with synchronous=FULL, bookkeeping
    alone with NORMAL (no fsync), and a POST's transaction after it on the same pooled
    connection with FULL again."""
    from flask_migrate import upgrade

    from bladi_cases.models import Organization, User
    from bladi_cases.seed import seed_reference

    from .conftest import TEST_PASSWORD, _hashed
    from .free_text import register_named_youth

    with file_app.app_context():
        upgrade()
        seed_reference()
        ba = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
        worker = User(email="fw@example.tn", display_name="fw", role=Role.FIELD_WORKER,
                      organization_id=ba.id, password_hash=_hashed(TEST_PASSWORD),
                      preferred_language="en")
        db.session.add(worker)
        youth = register_named_youth(ba)
        db.session.commit()
        page = f"/beneficiaries/{youth.uuid}"
        client = file_app.test_client()
        login(client, worker)
        db.session.remove()
        seen: list = []
        _durability_at_each_commit(db.engine, seen)
        assert client.get(page).status_code == 200
        assert seen == [2, 2]
        db.session.remove()
        assert _entries(Action.BENEFICIARY_VIEWED, worker) == 1
        db.session.remove()
        seen.clear()
        _bookkeeping_only(file_app)
        assert seen == [1]
        db.session.remove()
        seen.clear()
        assert client.post("/logout").status_code == 302
        assert seen and set(seen) == {2}, seen
        db.session.remove()
        db.engine.dispose()

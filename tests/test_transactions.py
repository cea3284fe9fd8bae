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

_write_transaction = transactions.write_transaction


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


def test_a_page_whose_audit_entry_cannot_be_written_is_not_sent(app, client, youth_page,
                                                                monkeypatch):
    worker, page = youth_page
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)  # as in production

    @contextmanager
    def locked():
        raise sa.exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        yield  # pragma: no cover

    monkeypatch.setattr(transactions, "write_transaction", locked)
    response = client.get(page)
    assert response.status_code == 500
    assert "Amira" not in text_of(response) and "Trabelsi" not in text_of(response)
    monkeypatch.setattr(transactions, "write_transaction", _write_transaction)
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

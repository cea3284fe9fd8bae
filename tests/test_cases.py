"""Case management through the pages: statuses, plan, notes (confidential, encrypted, edited),
referrals, outcomes, follow-ups on the home page, transfers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import (
    AuditEntry,
    Beneficiary,
    Case,
    CaseNote,
    CaseTransfer,
    Outcome,
    Referral,
    Role,
)
from bladi_cases.services.cases import cases as service

from .conftest import compiled_sql, login, sqlite_plan, text_of

TODAY = date.today()


def _count(model, *where):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@pytest.fixture
def team(client, make_user, make_beneficiary, make_case):
    worker = make_user(Role.FIELD_WORKER, "BA", display_name="Amal Worker")
    colleague = make_user(Role.FIELD_WORKER, "BA", display_name="Other Worker")
    manager = make_user(Role.CSO_MANAGER, "BA")
    youth = make_beneficiary("BA")
    case, provider = make_case(youth, worker)
    login(client, worker)
    return {
        "worker": worker,
        "colleague": colleague,
        "manager": manager,
        "youth": youth,
        "case": case,
        "provider": provider,
    }


def test_open_a_case_from_the_record(client, team, make_beneficiary):
    youth = make_beneficiary("BA", first_name_ar="رانية")
    page = client.get(f"/beneficiaries/{youth.uuid}")
    assert f"/cases/new/{youth.uuid}" in page.get_data(as_text=True)
    response = client.post(
        f"/cases/new/{youth.uuid}",
        data={
            "needs": ["education", "health"],
            "priority-education": "1",
            "risk_level": "low",
            "workers": [str(team["worker"].id)],
        },
    )
    assert response.status_code == 302
    case = db.session.scalars(sa.select(Case).where(Case.beneficiary_id == youth.id)).one()
    assert {n.need: n.priority for n in case.needs} == {"education": 1, "health": 2}
    again = client.post(f"/cases/new/{youth.uuid}", data={"workers": []})
    assert again.status_code == 422
    assert _count(Case, Case.beneficiary_id == youth.id) == 1


def test_status_changes_need_a_reason_to_close_and_are_kept(client, team):
    case = team["case"]
    client.post(f"/cases/{case.uuid}/status", data={"status-status": "closed", "status-reason": ""})
    db.session.refresh(case)
    assert case.status == "open"
    client.post(f"/cases/{case.uuid}/status", data={"status-status": "active"})
    client.post(
        f"/cases/{case.uuid}/status", data={"status-status": "closed", "status-reason": "goals_met"}
    )
    client.post(f"/cases/{case.uuid}/status", data={"status-status": "open"})  # reopen
    db.session.refresh(case)
    assert case.status == "open" and case.closure_reason is None
    assert [e.to_value for e in reversed(case.history)] == ["open", "active", "closed", "open"]
    assert (
        client.post(f"/cases/{case.uuid}/status", data={"status-status": "bogus"}).status_code
        == 302
    )
    db.session.refresh(case)
    assert case.status == "open"


def test_confidential_note_is_invisible_to_a_colleague(app, client, team):
    case, worker, colleague, manager = (team[k] for k in ("case", "worker", "colleague", "manager"))
    client.post(
        f"/cases/{case.uuid}/notes",
        data={"note-kind": "home_visit", "note-text": "سر عائلي حساس", "note-confidential": "y"},
    )
    note = db.session.scalars(sa.select(CaseNote).where(CaseNote.confidential.is_(True))).one()
    assert "سر عائلي حساس" in text_of(client.get(f"/cases/{case.uuid}"))
    other = app.test_client()
    login(other, colleague)
    page = text_of(other.get(f"/cases/{case.uuid}"))
    assert "سر عائلي حساس" not in page and "اتصال مع الأم" in page
    assert "سر عائلي حساس" not in text_of(other.get(f"/beneficiaries/{team['youth'].uuid}"))
    assert other.get(f"/cases/notes/{note.uuid}").status_code == 404
    boss = app.test_client()
    login(boss, manager)
    assert "سر عائلي حساس" in text_of(boss.get(f"/cases/{case.uuid}"))
    raw = repr(db.session.execute(sa.text("SELECT * FROM case_note")).all())
    assert "سر عائلي" not in raw and "اتصال" not in raw


def test_editing_a_note_keeps_the_previous_text(app, client, team):
    note = db.session.scalars(sa.select(CaseNote)).first()
    assert client.post(f"/cases/notes/{note.uuid}", data={"text": "نص مصحح"}).status_code == 302
    db.session.refresh(note)
    assert service.note_text(note) == "نص مصحح" and len(note.versions) == 1
    assert service.cipher().decrypt(note.versions[0].text_enc) == "اتصال مع الأم"
    other = app.test_client()
    login(other, team["colleague"])
    other.post(f"/cases/notes/{note.uuid}", data={"text": "تغيير من زميل"})
    db.session.refresh(note)
    assert service.note_text(note) == "نص مصحح", "only the author or the manager edits"


def test_bad_input_saves_nothing(client, team):
    case = team["case"]
    before = (_count(CaseNote), _count(Referral), _count(Outcome))
    client.post(f"/cases/{case.uuid}/notes", data={"note-kind": "phone_call", "note-text": ""})
    client.post(
        f"/cases/{case.uuid}/notes",
        data={
            "note-kind": "phone_call",
            "note-text": "x",
            "note-due_date": (TODAY - timedelta(days=1)).isoformat(),
        },
    )
    client.post(
        f"/cases/{case.uuid}/goals",
        data={
            "goal-description": "هدف",
            "goal-target_date": (TODAY - timedelta(days=2)).isoformat(),
        },
    )
    client.post(
        f"/cases/{case.uuid}/outcomes",
        data={
            "outcome-kind": "job",
            "outcome-on_date": (team["youth"].first_contact_date - timedelta(days=10)).isoformat(),
        },
    )
    client.post(f"/cases/{case.uuid}/referrals", data={"referral-service_type": ""})
    assert (_count(CaseNote), _count(Referral), _count(Outcome)) == before
    assert len(case.goals) == 1


def test_referral_cannot_complete_before_it_was_made(client, team):
    case = team["case"]
    client.post(f"/cases/{case.uuid}/referrals", data={"referral-service_type": "health"})
    referral = db.session.scalars(
        sa.select(Referral).where(Referral.service_type == "health")
    ).one()
    client.post(f"/cases/referrals/{referral.uuid}", data={"status": "completed"})
    db.session.refresh(referral)
    assert referral.status == "proposed"
    made = client.post(
        f"/cases/referrals/{referral.uuid}",
        data={"status": "made", "on": (TODAY - timedelta(days=5)).isoformat()},
        follow_redirects=True,
    )
    db.session.refresh(referral)
    assert referral.status == "proposed", text_of(made)[-300:]
    client.post(f"/cases/referrals/{referral.uuid}", data={"status": "made"})
    client.post(
        f"/cases/referrals/{referral.uuid}", data={"status": "completed", "outcome": "تم الفحص"}
    )
    db.session.refresh(referral)
    assert referral.status == "completed" and referral.closed_on == TODAY


def test_outcome_checks(client, team):
    outcome = team["case"].outcomes[0]
    outcome.on_date = TODAY - timedelta(days=100)
    db.session.commit()
    client.post(f"/cases/outcomes/{outcome.uuid}/check", data={"months": "3", "still": "yes"})
    client.post(f"/cases/outcomes/{outcome.uuid}/check", data={"months": "9", "still": "yes"})
    db.session.refresh(outcome)
    assert outcome.check_3m is True and outcome.check_6m is None


def test_home_shows_overdue_and_due_today_first(client, team):
    note = db.session.scalars(sa.select(CaseNote)).first()
    note.due_date = TODAY - timedelta(days=2)
    db.session.commit()
    items = service.due_items(team["worker"], TODAY)
    assert [i.kind for i in items][:1] == ["note"] and items[0].due < TODAY
    assert any(i.kind == "goal" for i in items)
    html = client.get("/").get_data(as_text=True)
    main = html[html.index('<main id="main">') :]
    # The follow-ups come first on the page, the overdue one first among them.
    assert main.index('class="list cards due"') < main.index("/beneficiaries/new")
    due_list = main[main.index('class="list cards due"') :]
    assert due_list[due_list.index("<li") :].startswith('<li class="overdue"')
    client.post(f"/cases/notes/{note.uuid}/done", data={"next": "/"})
    assert all(i.kind != "note" for i in service.due_items(team["worker"], TODAY))


def test_risk_level_only_for_assigned_workers_and_manager(app, client, team):
    case = team["case"]
    assert "مستوى الخطر" in text_of(client.get(f"/cases/{case.uuid}")) or service.can_see_risk(
        team["worker"], case
    )
    assert not service.can_see_risk(team["colleague"], case)
    assert service.can_see_risk(team["manager"], case)
    other = app.test_client()
    login(other, team["colleague"])
    html = other.get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert 'name="risk_level"' not in html


def test_case_reads_are_audited(client, team):
    client.get(f"/cases/{team['case'].uuid}")
    actions = db.session.scalars(
        sa.select(AuditEntry.action).where(AuditEntry.actor_id == team["worker"].id)
    ).all()
    assert "case_viewed" in actions and "beneficiary_viewed" in actions


def test_transfer_request_accept_and_what_moves(app, client, team, make_user, org):
    case, youth = team["case"], team["youth"]
    service.add_note(
        team["worker"], case, {"kind": "meeting", "text": "سري جدا", "confidential": True}
    )
    db.session.commit()
    inactive = org("ARA")
    inactive.active = False
    db.session.commit()
    for target in ("ARA", "AMIDEAST", "BA", "NOPE"):
        client.post(
            f"/cases/{case.uuid}/transfer",
            data={"transfer-to_organization": target, "transfer-consent_note": "موافقة"},
        )
    client.post(
        f"/cases/{case.uuid}/transfer",
        data={"transfer-to_organization": "ACEC", "transfer-consent_note": ""},
    )
    assert _count(CaseTransfer) == 0
    client.post(
        f"/cases/{case.uuid}/transfer",
        data={"transfer-to_organization": "ACEC", "transfer-consent_note": "موافقة الشاب كتابيا"},
    )
    transfer = db.session.scalars(sa.select(CaseTransfer)).one()
    receiver_worker = make_user(Role.FIELD_WORKER, "ACEC")
    receiver = make_user(Role.CSO_MANAGER, "ACEC")
    staff = app.test_client()
    login(staff, receiver_worker)
    assert (
        staff.post(f"/cases/transfers/{transfer.uuid}", data={"decision": "accept"}).status_code
        == 403
    )
    boss = app.test_client()
    login(boss, receiver)
    assert (
        boss.post(f"/cases/transfers/{transfer.uuid}", data={"decision": "accept"}).status_code
        == 302
    )
    db.session.expire_all()
    youth = db.session.get(Beneficiary, youth.id)
    assert youth.code.startswith("ACEC-") and youth.organization_id == org("ACEC").id
    page = text_of(boss.get(f"/cases/{case.uuid}"))
    assert "اتصال مع الأم" in page and "سري جدا" not in page
    assert client.get(f"/cases/{case.uuid}").status_code == 404, "no longer BA's"
    assert "→" in page


def test_providers_directory(client, team):
    assert client.get("/cases/providers").status_code == 200
    bad = client.post(
        "/cases/providers/new",
        data={"name": "", "service_type": "health", "governorate_code": "TN-61"},
    )
    assert bad.status_code == 422
    ok = client.post(
        "/cases/providers/new",
        data={
            "name": "مركز الصحة الأساسية",
            "service_type": "health",
            "governorate_code": "TN-61",
            "active": "y",
        },
    )
    assert ok.status_code == 302


def test_goal_progress_and_assessment_update(client, team):
    case = team["case"]
    goal = case.goals[0]
    assert client.post(f"/cases/goals/{goal.uuid}", data={"status": "achieved"}).status_code == 302
    db.session.refresh(goal)
    assert goal.status == "achieved"
    client.post(f"/cases/goals/{goal.uuid}", data={"status": "nonsense"})
    db.session.refresh(goal)
    assert goal.status == "achieved"
    client.post(f"/cases/{case.uuid}/assessment", data={
        "needs": ["housing"], "priority-housing": "1", "risk_level": "high",
        "workers": [str(team["worker"].id), str(team["colleague"].id)]})
    db.session.refresh(case)
    assert [(n.need, n.priority) for n in case.needs] == [("housing", 1)]
    assert case.risk_level == "high" and len(case.workers) == 2


def test_home_lists_the_30_most_urgent_follow_ups_then_all_on_asking(client, team, monkeypatch):
    """A manager of a large CSO may have hundreds due: the home page (a phone, on 3G) shows
    the most urgent, and the whole list on asking."""
    from bladi_cases.blueprints.main import views as home_views

    monkeypatch.setattr(home_views, "DUE_ON_HOME", 1)
    note = db.session.scalars(sa.select(CaseNote)).first()
    note.due_date = TODAY - timedelta(days=2)
    db.session.commit()
    items = service.due_items(team["worker"], TODAY)
    assert len(items) >= 2
    html = client.get("/").get_data(as_text=True)
    due_list = html[html.index('class="list cards due"'):]
    due_list = due_list[:due_list.index("</ul>")]
    assert due_list.count("<li") == 1 and 'class="overdue"' in due_list, "the most urgent"
    assert 'href="/?due=all"' in html
    everything = client.get("/?due=all").get_data(as_text=True)
    listed = everything[everything.index('class="list cards due"'):]
    assert listed[:listed.index("</ul>")].count("<li") == len(items)
    assert 'href="/?due=all"' not in everything


def test_follow_ups_of_each_kind_for_whom_they_are(client, team, make_beneficiary, make_case):
    """The home page's follow-ups: a note, a goal, a referral and an outcome's check, each
    with its case's link and youth code; a worker sees the cases assigned to them, the
    manager all the CSO's, and a confidential note only its author and the manager."""
    case = team["case"]
    case.referrals[0].due_date = TODAY - timedelta(days=1)
    case.outcomes[0].on_date = TODAY - timedelta(days=88)  # the 3-month check in 2 days
    other_youth = make_beneficiary("BA")
    other_case, _provider = make_case(other_youth, team["colleague"])
    service.add_note(team["colleague"], case, {"kind": "home_visit", "text": "سري",
                                               "confidential": True, "due_date": TODAY})
    db.session.commit()

    def items(user):
        return [(i.kind, i.case_uuid, i.youth_code) for i in service.due_items(user, TODAY)]

    own = [(kind, case.uuid, team["youth"].code)
           for kind in ("referral", "note", "check_3m", "goal")]
    assert items(team["worker"]) == own
    theirs = items(team["colleague"])
    assert {(k, u) for k, u, _code in theirs} == {("note", other_case.uuid),
                                                  ("goal", other_case.uuid)}
    everything = items(team["manager"])
    assert sorted(everything) == sorted(own + [("note", case.uuid, team["youth"].code)]
                                        + [(k, u, other_youth.code) for k, u, _c in theirs])
    html = client.get("/").get_data(as_text=True)
    due_list = html[html.index('class="list cards due"'):]
    due_list = due_list[:due_list.index("</ul>")]
    assert due_list.count("<li") == 4 and f'href="/cases/{case.uuid}"' in due_list
    assert "إيجاد تربص مهني" in due_list and other_youth.code not in due_list
    # The page lists the first ones (their goals decrypted) and says how many there are.
    everything = service.due_items(team["worker"], TODAY)
    for limit in (1, 4, None):
        shown, total = service.due_page(team["worker"], TODAY, limit)
        assert total == 4 and shown == everything[:limit]
    assert everything[-1].kind == "goal" and everything[-1].text == "إيجاد تربص مهني"


def test_a_cases_notes_are_read_through_the_case_index_on_each_database(app, make_user):
    """The field app's follow-ups and a record's timeline read notes by case: on SQLite,
    which has no statistics of a new database, through the case index, not all the CSO's
    notes through the organization index; on PostgreSQL in the plain form (`by_case`),
    which it plans through the case index (the detour read the whole table)."""
    from bladi_cases.policy import ScopeOf
    from bladi_cases.services.cases.cases import _build_events_statement
    from bladi_cases.services.field.data import _build_cases_statements

    scope = ScopeOf.of(make_user(Role.FIELD_WORKER))
    for statement in (_build_cases_statements(scope)[1], _build_events_statement(scope)):
        compiled = compiled_sql(statement.params(case_ids=[1, 2, 3]))
        sql = str(compiled)
        if db.engine.dialect.name == "sqlite":
            plan = sqlite_plan(compiled)
            assert "USING COVERING INDEX ix_case_note_case_id (case_id=?)" in plan, plan
            # The organization index only to find a row by its id, never the CSO's range.
            assert "ix_case_note_organization_id (organization_id=?)" not in plan, plan
        else:
            assert "case_note.case_id IN" in sql and "SELECT case_note.id" not in sql, sql


# sqlite_stat1 of a CSO of 100,000 youth and 14,000 case files (bench/load.py's database,
# after the periodic ANALYZE): what leads SQLite to plan the follow-ups as on a real server.
_LARGE_CSO_STATS = [
    ("case_file", "ix_case_file_organization_id", "14420 1001"),
    ("case_file", "ix_case_file_beneficiary_id", "16400 1"),
    ("case_goal", "ix_case_goal_case_id", "14937 1"),
    ("case_goal", "ix_case_goal_organization_id", "14420 1001"),
    ("case_note", "ix_case_note_organization_id", "29252 1001"),
    ("case_note", "ix_case_note_case_id", "31284 3"),
    ("case_worker", "ix_case_worker_user_id", "6120 501"),
    ("outcome", "ix_outcome_organization_id", "4120 1001"),
    ("outcome", "ix_outcome_case_id", "4114 1"),
    ("referral", "ix_referral_case_id", "14937 1"),
    ("referral", "ix_referral_organization_id", "14420 1001"),
]


def test_the_home_pages_follow_ups_read_only_the_workers_cases_on_sqlite(file_app):
    """With the statistics of a large CSO, SQLite copied the worker's cases (a CTE used by
    the four kinds) into a table it could not size, and built a Bloom filter of each kind
    from every row of the CSO to join them: 4.9 ms a view at 14,000 case files. Written
    into each kind (NOT MATERIALIZED), the worker's cases lead to each kind's rows through
    its case index."""
    from flask_migrate import upgrade

    from bladi_cases.models import Organization, User
    from bladi_cases.seed import seed_reference

    with file_app.app_context():
        upgrade()
        seed_reference()
        db.session.commit()
        connection = db.session.connection()
        connection.exec_driver_sql("ANALYZE")  # creates sqlite_stat1
        connection.exec_driver_sql("DELETE FROM sqlite_stat1")
        for row in _LARGE_CSO_STATS:
            connection.exec_driver_sql("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", row)
        connection.exec_driver_sql("ANALYZE sqlite_schema")  # the planner reads them now
        org = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
        worker = User(email="w@example.tn", display_name="W", role=Role.FIELD_WORKER,
                      organization_id=org.id, password_hash="x")
        db.session.add(worker)
        db.session.flush()

        compiled = compiled_sql(service._due_statement(worker, TODAY + timedelta(days=7)))
        used = sqlite_plan(compiled)
        assert "BLOOM FILTER" not in used and "MATERIALIZE" not in used, used
        for kind in ("case_note", "case_goal", "referral", "outcome"):
            assert f"SEARCH {kind} USING INDEX ix_{kind}_case_id (case_id=?)" in used, used
        # The same statement as SQLite plans a CTE by default: what the statistics lead to.
        default = sqlite_plan(compiled, str(compiled).replace("AS NOT MATERIALIZED", "AS", 1))
        assert "MATERIALIZE due_case" in default and "BLOOM FILTER" in default, default
        db.session.rollback()

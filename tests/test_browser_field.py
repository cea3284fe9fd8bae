"""The field app offline, in a real browser (system Chromium, phone, Arabic): entries made
with no connection survive a reload, are sent once the connection is back, and reach the
server exactly once; a shared phone shows nothing of the previous worker; a session ended
on the server keeps the queue until the worker logs in again."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import date

import pytest

from . import browser_support
from .browser_support import (
    CLUB,
    ROOT,
    SCREENSHOTS,
    Audit,
    Words,
    log_in,
    phone_context,
    require_browser,
)

browser, server = browser_support.browser, browser_support.server

pytestmark = pytest.mark.browser
require_browser()

AR = Words("ar")
WORKER = ("worker@demo.bladi.tn", "Olive-Tree-4821")
OTHER = ("worker.acec@demo.bladi.tn", "Kasbah-Door-6610")  # the phone passed on

COUNT = """
import json, sys, uuid
from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import ActivitySession, Attendance, Beneficiary, CaseNote, SurveyResponse
app = create_app()
ids = json.loads(sys.argv[1])
with app.app_context():
    found = {}
    for kind, model in (("session", ActivitySession), ("registration", Beneficiary),
                        ("survey_response", SurveyResponse)):
        key = uuid.UUID(ids[kind])
        found[kind] = db.session.scalar(db.select(db.func.count()).select_from(model)
                                        .where(model.uuid == key))
    session = db.session.scalars(db.select(ActivitySession).where(
        ActivitySession.uuid == uuid.UUID(ids["session"]))).first()
    found["present"] = session and db.session.scalar(
        db.select(db.func.count()).select_from(Attendance).where(
            Attendance.session_id == session.id, Attendance.status == "present"))
    found["follow_up_done"] = db.session.scalar(db.select(db.func.count()).select_from(
        CaseNote).where(CaseNote.uuid == uuid.UUID(ids["follow_up_note"]),
                        CaseNote.done_on.is_not(None)))
    print(json.dumps(found))
"""


def _server_counts(server_base: str, ids: dict) -> dict:
    """Count the records in the test server's own database."""
    env = browser_support._env(browser_support.INSTANCES[server_base])
    out = subprocess.run([sys.executable, "-c", COUNT, json.dumps(ids)], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


BASELINE_TO_FILL = """
import json, sys
from datetime import date
from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import Activity, Beneficiary, ConsentScope, Survey, SurveyResponse
from bladi_cases.sample_survey import FORM_ID
from bladi_cases.services.activities.activities import rosters
app = create_app()
with app.app_context():
    club = db.session.scalars(db.select(Activity).where(Activity.name == sys.argv[1])).one()
    survey = db.session.scalars(db.select(Survey).where(
        Survey.code == FORM_ID, Survey.organization_id.is_(None))).one()
    done = set(db.session.scalars(db.select(SurveyResponse.beneficiary_id).where(
        SurveyResponse.survey_id == survey.id, SurveyResponse.wave == "baseline")))
    fresh = sorted((b for b in (db.session.get(Beneficiary, row.id)
                                for row in rosters([club], date.today())[club.id])
                    if b.allows(ConsentScope.SURVEYS) and b.id not in done), key=lambda b: b.code)
    print(json.dumps({"version": str(survey.current.uuid),
                      "youth": str(fresh[0].uuid) if fresh else None}))
"""


def _baseline_to_fill(server_base: str) -> dict:
    """The sample survey's current version and a youth of the club, with consent to surveys,
    who has no baseline yet: chosen by what the data says, never by a position on a list."""
    env = browser_support._env(browser_support.INSTANCES[server_base])
    out = subprocess.run([sys.executable, "-c", BASELINE_TO_FILL, CLUB], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["youth"], "every youth of the club already has a baseline"
    return found


def _until(page, script: str, timeout: float = 15.0, arg=None) -> None:
    """Poll a JavaScript function (may return a promise) until it is true (the page's CSP
    forbids the string form of wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {script}")
        time.sleep(0.2)


def _ready(page) -> None:
    """Wait until the service worker controls the page and the field data is on the phone."""
    _until(page, "() => !!(navigator.serviceWorker && navigator.serviceWorker.controller)")
    _until(page, "() => document.querySelectorAll('#att-activity option').length > 1")


def _queue(page) -> list[dict]:
    return page.evaluate("() => BladiQueue.list()")


def test_offline_entries_survive_a_reload_and_reach_the_server_once(browser, server):
    baseline = _baseline_to_fill(server)
    context = phone_context(browser, service_workers="allow")
    page = context.new_page()
    log_in(page, server, *WORKER, AR)
    page.wait_for_url(server + "/")
    page.goto(server + "/field")
    page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # now under the service worker, which keeps the page
    _ready(page)

    context.set_offline(True)
    # Attendance of today's club, everyone present.
    page.select_option("#att-activity", label=CLUB)
    _until(page, "() => document.querySelectorAll('[data-roster] fieldset').length === 30")
    page.fill("#att-date", date.today().isoformat())
    # A new youth, with her mother's consent.
    form = page.locator('form[data-offline="registration"]')
    form.locator("#first_name_ar").fill("مريم")
    form.locator("#last_name_ar").fill("الزواري")
    form.locator('input[name="sex"][value="female"]').check()
    form.locator("#birth_date").fill(f"{date.today().year - 15}-02-10")
    form.locator("#setting_kind").select_option("youth_centre")
    form.locator("#consent_given_by").select_option("guardian")
    form.locator("#guardian_name").fill("فاطمة الزواري")
    form.locator("#guardian_relationship").fill("أم")
    form.locator("#consent_method").select_option("signed_form")
    form.locator("#reg-activity").select_option(label=CLUB)
    form.locator("button[type=submit]").click()
    # She joins the club today: on its roster at once, and present.
    _until(page, "() => document.querySelectorAll('[data-roster] fieldset').length === 31")
    page.locator('form[data-offline="session"] button[type=submit]').click()
    page.screenshot(path=str(SCREENSHOTS / "field-offline-ar-360.png"), full_page=False)
    # The baseline survey of a youth of the club who has none yet (the demo gives one to
    # 40% of youth: the first name on the list may already have hers).
    survey = page.locator('form[data-offline="survey_response"]')
    survey.locator("#sv-version").select_option(baseline["version"])
    survey.locator("#sv-youth").select_option(baseline["youth"])
    survey.locator("#sv-wave").select_option("baseline")
    # The skip rules hold offline: "has a job?" is asked only of those not studying.
    has_job = survey.locator('[data-question="has_job"]')
    survey.locator('input[name="q-situation"]').nth(1).check()
    assert has_job.is_visible()
    survey.locator('input[name="q-has_job"][value="yes"]').check()
    assert survey.locator('[data-question="job_hours"]').is_visible()
    survey.locator('input[name="q-situation"][value="studying"]').check()
    assert not has_job.is_visible()
    assert not survey.locator('[data-question="job_hours"]').is_visible(), "a chain of rules"
    for item in ("w1", "w2", "w3", "w4", "w5", "trust_staff"):
        survey.locator(f'input[name="q-{item}"][value="3"]').check()
    survey.locator("button[type=submit]").click()
    # A follow-up of one of her cases, done today.
    case = page.evaluate("() => BladiQueue.cacheGet('cases').then("
                         "cases => (cases.find(c => c.follow_ups_due.length) || {}).id)")
    assert case, "the demo worker has a follow-up due"
    page.select_option("#nt-case", case)
    page.locator("[data-followups] button").first.click()
    _until(page, "() => BladiQueue.list().then(items => items.length === 4)")
    items = _queue(page)
    assert {i["type"] for i in items} == {"session", "registration", "survey_response",
                                          "follow_up"}
    assert all(i["state"] == "waiting" for i in items), items
    assert page.locator(".queue-badge").is_visible()

    # Reloading with no connection: the page comes from the phone, the entries too.
    page.reload()
    _until(page, "() => document.querySelectorAll('[data-queue] li[data-item]').length === 4")
    assert page.locator("#att-activity option", has_text=CLUB).count() == 1

    # The connection comes back: everything is sent, and confirmed, then leaves the phone.
    context.set_offline(False)
    page.evaluate("() => window.dispatchEvent(new Event('online'))")
    try:
        _until(page, "() => BladiQueue.list().then(items => items.length === 0)", timeout=30)
    except AssertionError:
        left = [(i["type"], i["state"], i["reason"]) for i in _queue(page)]
        raise AssertionError(f"entries still on the phone: {left}") from None
    ids = {i["type"]: i["uuid"] for i in items}
    ids["follow_up_note"] = next(i["data"]["note"] for i in items if i["type"] == "follow_up")
    counts = _server_counts(server, ids)
    assert counts == {"session": 1, "registration": 1, "survey_response": 1, "present": 31,
                      "follow_up_done": 1}

    # The same records sent again (a retry after a lost answer): stored once, still.
    answer = page.evaluate("""async (items) => {
        const me = await (await fetch('/api/v1/me')).json();
        const response = await fetch('/api/v1/sync', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRFToken': me.csrf_token},
            body: JSON.stringify({records: items.map(i => ({uuid: i.uuid, type: i.type,
                                                           base_version: null, data: i.data}))})});
        return (await response.json()).results.map(r => r.status);
    }""", items)
    assert answer == ["already_stored"] * 4
    assert _server_counts(server, ids) == counts
    context.close()


def test_a_shared_phone_shows_nothing_of_the_previous_worker(browser, server):
    context, page = _open_field(browser, server)
    names = page.evaluate("() => BladiQueue.cacheGet('activities').then(a => a.flatMap("
                          "x => x.roster.map(y => y.name)).filter(Boolean))")
    assert names, "the worker's roster is on the phone"
    # The phone has a connection but the server cannot take the entry (cut on the way).
    context.route("**/api/v1/sync", lambda route: route.abort())
    page.locator('form[data-offline="case_note"] #nt-text').fill("زيارة منزلية")
    page.locator('form[data-offline="case_note"] #nt-case').select_option(index=1)
    page.locator('form[data-offline="case_note"] button[type=submit]').click()
    _until(page, "() => BladiQueue.list().then(items => items.length === 1)")

    # Logging out with an entry waiting: a warning first; cancelling leads to the queue.
    warnings = []
    page.once("dialog", lambda dialog: (warnings.append(dialog.message), dialog.dismiss()))
    page.locator("form[data-logout] button").click()
    page.wait_for_url("**/field#queue")
    assert warnings, "the worker was warned"
    # Logging out anyway: the entry stays on the phone for her, hidden from anyone else.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("form[data-logout] button").click()
    page.wait_for_url("**/login**")
    log_in(page, server, *OTHER, AR)
    page.wait_for_url(server + "/")
    page.goto(server + "/field")
    _until(page, "() => document.querySelector('[data-queue] li') !== null")
    assert page.locator("[data-queue] li[data-item]").count() == 0
    assert not page.locator(".queue-badge").is_visible()
    assert page.evaluate("() => BladiQueue.list()") == []
    content = page.content()
    cached = page.evaluate("""() => new Promise(resolve => {
        const open = indexedDB.open('bladi-field');
        open.onsuccess = () => {
          const all = open.result.transaction('cache').objectStore('cache').getAll();
          all.onsuccess = () => resolve(JSON.stringify(all.result));
        };
    })""")
    for name in names[:10]:
        assert name not in content and name not in cached, "a name of the previous roster"
    context.close()


def _ready_data(page) -> None:
    _until(page, "() => document.querySelectorAll('#nt-case option').length > 1")
    time.sleep(0.3)  # the cache write follows the fetch


COUNT_ONE = """
import sys, uuid
from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, CaseNote
app = create_app()
model = {"registration": Beneficiary, "case_note": CaseNote}[sys.argv[1]]
with app.app_context():
    print(db.session.scalar(db.select(db.func.count()).select_from(model).where(
        model.uuid == uuid.UUID(sys.argv[2]))))
"""


def _count_one(server_base: str, kind: str, record_uuid: str) -> int:
    env = browser_support._env(browser_support.INSTANCES[server_base])
    out = subprocess.run([sys.executable, "-c", COUNT_ONE, kind, record_uuid], cwd=ROOT,
                         env=env, check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def _open_field(browser, server):
    context = phone_context(browser, service_workers="allow", accept_downloads=True)
    page = context.new_page()
    log_in(page, server, *WORKER, AR)
    page.wait_for_url(server + "/")
    page.goto(server + "/field")
    _ready_data(page)
    return context, page


def test_a_rejected_entry_is_fixed_and_the_queue_moves_between_phones(browser, server,
                                                                      tmp_path):
    context, page = _open_field(browser, server)
    # A registration the server refuses (no sex given): rejected, with the field's message.
    form = page.locator('form[data-offline="registration"]')
    form.locator("#first_name_ar").fill("سلمى")
    form.locator("#last_name_ar").fill("المرزوقي")
    form.locator("#birth_date").fill(f"{date.today().year - 19}-06-01")
    form.locator("#setting_kind").select_option("youth_centre")
    form.locator("button[type=submit]").click()
    _until(page, "() => BladiQueue.list().then(i => i.length === 1 && i[0].state === 'rejected')")
    [item] = _queue(page)
    assert "sex" in item["field_errors"]
    row = page.locator("[data-queue] li[data-state=rejected]")
    assert row.locator(".error").count() >= 1
    # Fixed on the phone and sent again under the same UUID: stored once.
    row.get_by_role("button", name=AR("Fix")).click()
    assert form.locator("#first_name_ar").input_value() == "سلمى"
    form.locator('input[name="sex"][value="female"]').check()
    form.locator("button[type=submit]").click()
    _until(page, "() => BladiQueue.list().then(i => i.length === 0)")
    assert _count_one(server, "registration", item["uuid"]) == 1

    # The server cannot be reached: the entry waits, retried later and later.
    context.route("**/api/v1/sync", lambda route: route.abort())
    note = page.locator('form[data-offline="case_note"]')
    note.locator("#nt-case").select_option(index=1)
    note.locator("#nt-text").fill("اتصال هاتفي مع العائلة")
    note.locator("button[type=submit]").click()
    _until(page, "() => BladiQueue.list().then(i => i.length === 1 && i[0].tries >= 1)")
    [waiting] = _queue(page)
    assert waiting["state"] == "waiting" and waiting["next_try"] > time.time() * 1000
    # Last resort: the queue as a file, taken to another phone, which sends it.
    with page.expect_download() as download:
        page.locator("[data-download]").click()
    path = tmp_path / "queue.json"
    download.value.save_as(path)
    assert json.loads(path.read_text(encoding="utf-8"))["items"][0]["uuid"] == waiting["uuid"]
    other, other_page = _open_field(browser, server)
    other_page.locator("[data-upload]").set_input_files(str(path))
    _until(other_page, "() => document.querySelector('[data-status]').textContent.endsWith('1')")
    _until(other_page, "() => BladiQueue.list().then(i => i.length === 0)")
    assert _count_one(server, "case_note", waiting["uuid"]) == 1
    # The first phone gets through at last: "already stored", and its copy leaves too.
    context.unroute("**/api/v1/sync")
    page.locator("[data-send-now]").click()
    _until(page, "() => BladiQueue.list().then(i => i.length === 0)")
    assert _count_one(server, "case_note", waiting["uuid"]) == 1

    # Twelve hours without use: the rosters and cases on the phone are gone.
    other_page.evaluate("() => localStorage.setItem('bladi-last-use', "
                        "String(Date.now() - 13 * 3600 * 1000))")
    other.set_offline(True)
    other_page.reload()
    _until(other_page, "() => document.querySelector('[data-status]').textContent === "
                       "document.getElementById('field-app').getAttribute('data-empty')")
    assert other_page.evaluate("() => BladiQueue.cacheGet('activities')") is None
    other.close()
    context.close()


def test_an_ended_session_keeps_the_queue_until_the_worker_logs_in_again(browser, server):
    context, page = _open_field(browser, server)
    context.set_offline(True)
    note = page.locator('form[data-offline="case_note"]')
    note.locator("#nt-case").select_option(index=1)
    note.locator("#nt-text").fill("زيارة منزلية بعد انتهاء الجلسة")
    note.locator("button[type=submit]").click()
    _until(page, "() => BladiQueue.list().then(items => items.length === 1)")
    [queued] = _queue(page)

    # Meanwhile, on another phone, the worker ends every session of her account.
    other = phone_context(browser)
    other_page = other.new_page()
    audit = Audit(other_page, "sessions", "ar")
    log_in(other_page, server, *WORKER, AR, audit)
    other_page.wait_for_url(server + "/")
    audit.check("home")
    other_page.get_by_role("link", name=AR("Login sessions")).click()
    other_page.wait_for_url(server + "/account/sessions")
    audit.check("login sessions")
    sessions_list = other_page.locator("ul.sessions > li")
    assert sessions_list.count() >= 2, "the field phone's session and this one"
    assert sessions_list.filter(has_text=AR("This device")).count() == 1
    other_page.get_by_role("button", name=AR("Log out everywhere")).click()
    other_page.wait_for_url(re.compile(r"/login$"))
    audit.check("logged out everywhere")
    audit.finish()
    other.close()

    # Back online: the entry stays on the phone, and the page asks to log in again.
    context.set_offline(False)
    page.evaluate("() => window.dispatchEvent(new Event('online'))")
    relogin = page.locator("[data-login-needed]")
    relogin.wait_for(state="visible")
    [item] = _queue(page)
    assert (item["uuid"], item["state"], item["tries"]) == (queued["uuid"], "waiting", 0)
    assert _count_one(server, "case_note", queued["uuid"]) == 0
    # Logging in again leads back to the field app, which sends it.
    relogin.get_by_role("link", name=AR("Log in again")).click()
    page.wait_for_url(re.compile(r"/login\?next=(/|%2F)field$"))
    page.get_by_label(AR("Email")).fill(WORKER[0])
    page.get_by_label(AR("Password"), exact=True).fill(WORKER[1])
    page.get_by_role("button", name=AR("Log in")).click()
    page.wait_for_url(server + "/field")
    _until(page, "() => BladiQueue.list().then(items => items.length === 0)", timeout=30)
    assert not page.locator("[data-login-needed]").is_visible()
    assert _count_one(server, "case_note", queued["uuid"]) == 1
    context.close()

"""The foundation's phone journey in a real browser (Playwright driving the system Chromium).

A real server process (gunicorn) on a free port, with a fresh SQLite database migrated and
seeded with the demo data, exactly as `make run` does. Skipped, with a visible reason, when
Chromium or Playwright is missing; .ci/run installs both, so CI always runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api", reason="SKIPPED: Playwright not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("SKIPPED: no Chromium (apt-get install chromium)", allow_module_level=True)


# A drama club meeting today with 30 youth of Bedhret Amal, run by the demo field worker.
CLUB_OF_30 = """
from datetime import date, timedelta
from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, ConsentScope, Organization, User
from bladi_cases.services.activities import create_activity, enrol_in_activity
app = create_app()
with app.app_context():
    ba = db.session.scalars(db.select(Organization).where(Organization.code == "BA")).one()
    worker = db.session.scalars(db.select(User).where(User.email == "worker@demo.bladi.tn")).one()
    site = [s for s in ba.sites if s.kind == "youth_centre"][0]
    club = create_activity(worker, ba, {"name": "نادي المسرح التجريبي", "kind": "drama",
        "site": site, "planned_start": date.today() - timedelta(days=30), "planned_end": None,
        "planned_sessions": 30, "default_duration_minutes": 90, "completion_rule": "percent",
        "completion_threshold": 75, "present_by_default": True,
        "weekdays": [date.today().weekday()], "facilitators": [worker]})
    youth = [b for b in db.session.scalars(db.select(Beneficiary).where(
        Beneficiary.organization_id == ba.id).order_by(Beneficiary.id))
        if b.allows(ConsentScope.PARTICIPATION)][:30]
    assert len(youth) == 30, len(youth)
    for member in youth:
        enrol_in_activity(worker, member, club, date.today() - timedelta(days=30))
    db.session.commit()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn serving the app on a demo SQLite database."""
    instance = tmp_path_factory.mktemp("browser-instance")
    env = {**os.environ, "BLADI_ENV": "development", "BLADI_INSTANCE_PATH": str(instance),
           "DATABASE_URL": f"sqlite:///{instance / 'bladi.db'}"}
    env.pop("TEST_DATABASE_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    subprocess.run([*flask, "seed", "demo", "--beneficiaries", "400"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", CLUB_OF_30], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("the server did not start")
    yield base
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ar-TN",
                                  device_scale_factor=1, is_mobile=True, has_touch=True)
    yield context.new_page()
    context.close()


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def _log_in(page, base, email, password):
    page.goto(base + "/login")
    page.get_by_label("البريد الإلكتروني").fill(email)
    page.get_by_label("كلمة المرور").fill(password)
    page.get_by_role("button", name="تسجيل الدخول").click()


def test_login_page_is_arabic_rtl_and_fits_a_phone(phone, server):
    phone.goto(server + "/login")
    assert phone.get_attribute("html", "dir") == "rtl"
    assert phone.get_attribute("html", "lang") == "ar"
    assert _no_horizontal_scroll(phone)
    button = phone.get_by_role("button", name="تسجيل الدخول").bounding_box()
    assert button["height"] >= 44
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "login-ar-360.png"), full_page=True)


def test_field_worker_logs_in_and_sees_their_csos_sites(phone, server):
    _log_in(phone, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    phone.wait_for_url(server + "/")
    body = phone.inner_text("main")
    assert "مرحبًا" in body or "مرحبا" in body
    assert "Centre de rééducation des mineurs, Sfax" in body
    assert _no_horizontal_scroll(phone)
    # The navigation starts on the right in Arabic.
    nav = phone.locator(".main-nav a").first.bounding_box()
    assert nav["x"] + nav["width"] > 360 / 2
    phone.screenshot(path=str(ARTIFACTS / "home-field-worker-ar-360.png"), full_page=True)


def test_wrong_password_shows_the_generic_message(phone, server):
    _log_in(phone, server, "worker@demo.bladi.tn", "not-the-password")
    assert "غير صحيحة" in phone.inner_text("main")


def test_manager_switches_to_french_and_opens_staff_accounts(phone, server):
    _log_in(phone, server, "manager@demo.bladi.tn", "Sahara-Wind-7305")
    phone.wait_for_url(server + "/")
    phone.get_by_role("button", name="Français").click()
    assert phone.get_attribute("html", "dir") == "ltr"
    phone.get_by_role("link", name="Comptes du personnel", exact=True).click()
    assert "Amal Trabelsi" in phone.inner_text("main")
    assert _no_horizontal_scroll(phone)
    phone.screenshot(path=str(ARTIFACTS / "staff-manager-fr-360.png"), full_page=True)


def test_reviewer_home_lists_the_funded_csos_without_individuals(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.goto(server + "/login")
    page.get_by_label("Email").fill("reviewer@demo.bladi.tn")
    page.get_by_label("Password").fill("Medina-Gate-1944")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server + "/")
    text = page.inner_text("main")
    assert "Bedhret Amal" in text and "Mashhad" in text
    page.screenshot(path=str(ARTIFACTS / "home-reviewer-en.png"), full_page=True)
    context.close()


def test_field_worker_registers_a_minor_with_guardian_consent(phone, server):
    _log_in(phone, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    phone.wait_for_url(server + "/")
    phone.get_by_role("link", name="تسجيل شاب(ة)").first.click()
    phone.get_by_label("الاسم (بالعربية)").fill("نور")
    phone.get_by_label("اللقب (بالعربية)").fill("الحمامي")
    phone.get_by_label("أنثى").check()
    phone.get_by_label("تاريخ الولادة").fill("2012-04-03")
    phone.get_by_label("نوع الموقع").select_option("youth_centre")
    phone.get_by_label("الموافقة صادرة عن").select_option("guardian")
    phone.get_by_label("اسم الولي").fill("سنية الحمامي")
    phone.get_by_label("العلاقة بالشاب(ة)").fill("أم")
    phone.get_by_label("طريقة الموافقة").select_option("signed_form")
    assert _no_horizontal_scroll(phone)
    phone.screenshot(path=str(ARTIFACTS / "register-ar-360.png"), full_page=True)
    phone.get_by_role("button", name="تسجيل", exact=True).click()
    phone.wait_for_url(re.compile(r".*/beneficiaries/[0-9a-f-]{36}$"))
    body = phone.inner_text("main")
    assert "نور الحمامي" in body and "BA-" in body
    assert _no_horizontal_scroll(phone)
    phone.screenshot(path=str(ARTIFACTS / "record-ar-360.png"), full_page=True)
    # Found again by a name prefix, from the list.
    phone.goto(server + "/beneficiaries/?q=" + "الحما")
    assert "نور الحمامي" in phone.inner_text("main")
    phone.screenshot(path=str(ARTIFACTS / "search-ar-360.png"), full_page=True)


def test_another_csos_worker_gets_not_found(phone, server, browser):
    _log_in(phone, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    phone.wait_for_url(server + "/")
    phone.goto(server + "/beneficiaries/")
    record = phone.locator(".cards a").first.get_attribute("href")
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ar-TN")
    other = context.new_page()
    _log_in(other, server, "worker.acec@demo.bladi.tn", "Kasbah-Door-6610")
    other.wait_for_url(server + "/")
    response = other.goto(server + record)
    assert response.status == 404
    assert "الصفحة غير موجودة" in other.inner_text("main")
    context.close()


def test_facilitator_takes_attendance_for_30_youth_in_one_save(phone, server):
    _log_in(phone, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    phone.wait_for_url(server + "/")
    today_card = phone.locator("li", has_text="نادي المسرح التجريبي")
    today_card.get_by_role("link", name="تسجيل الحضور").click()
    rows = phone.locator(".roster li")
    assert rows.count() == 30
    assert _no_horizontal_scroll(phone)
    for index in (1, 4, 8):
        rows.nth(index).get_by_text("غائب", exact=True).click()
    rows.nth(12).get_by_text("غياب مبرر", exact=True).click()
    assert phone.locator('.roster input[value="present"]:checked').count() == 26
    # Every toggle is a large tap target.
    box = rows.nth(0).locator("label").first.bounding_box()
    assert box["height"] >= 44
    phone.screenshot(path=str(ARTIFACTS / "attendance-ar-360.png"), full_page=True)
    assert phone.locator("form[data-attendance] button[type=submit].primary").count() == 1
    phone.get_by_role("button", name="حفظ الحضور").click()
    phone.wait_for_url(re.compile(r".*/activities/[0-9a-f-]{36}$"))
    body = phone.inner_text("main")
    assert "تم حفظ الحضور" in body
    table = phone.locator("table").last.inner_text()
    assert table.count("1 / 1") == 26 and table.count("0 / 1") == 4
    phone.screenshot(path=str(ARTIFACTS / "activity-ar-360.png"), full_page=True)


def test_all_present_button_is_instant_with_javascript(phone, server):
    _log_in(phone, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    phone.wait_for_url(server + "/")
    phone.goto(server + "/activities/")
    phone.get_by_role("link", name="نادي المسرح التجريبي").click()
    phone.get_by_role("link", name="تسجيل الحضور").first.click()
    rows = phone.locator(".roster li")
    rows.nth(0).get_by_text("غائب", exact=True).click()
    url = phone.url
    phone.get_by_role("button", name="الكل حاضر").click()
    assert phone.url == url, "no reload"
    assert phone.locator('.roster input[value="present"]:checked').count() == 30


def test_field_worker_starts_from_due_items_and_works_a_case(phone, server):
    _log_in(phone, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    phone.wait_for_url(server + "/")
    main = phone.locator("main")
    headings = main.locator("h2").all_inner_texts()
    assert headings[0] == "متابعات حان أجلها", headings
    first = main.locator(".due li").first
    assert "متأخر" in first.inner_text()
    phone.screenshot(path=str(ARTIFACTS / "home-due-ar-360.png"), full_page=True)
    first.locator("a").first.click()
    phone.wait_for_url(re.compile(r".*/cases/[0-9a-f-]{36}$"))
    assert _no_horizontal_scroll(phone)
    notes = phone.locator("#notes")
    notes.get_by_label("الملاحظة").fill("زيارة للعائلة: الشاب متحمس للتكوين")
    notes.get_by_role("button", name="إضافة الملاحظة").click()
    assert "زيارة للعائلة: الشاب متحمس للتكوين" in phone.inner_text("#notes")
    referrals = phone.locator("#referrals")
    referrals.get_by_text("إضافة توجيه").click()
    referrals.get_by_label("الخدمة", exact=True).select_option("health")
    referrals.get_by_role("button", name="إضافة", exact=True).click()
    assert phone.locator("#referrals li").count() >= 2
    outcomes = phone.locator("#outcomes")
    outcomes.get_by_text("تسجيل نتيجة").click()
    outcomes.get_by_label("النتيجة", exact=True).select_option("job")
    outcomes.get_by_label("التاريخ", exact=True).fill(date.today().isoformat())
    outcomes.get_by_role("button", name="حفظ").click()
    assert phone.locator("#outcomes li").first.inner_text().strip() != ""
    assert _no_horizontal_scroll(phone)
    phone.screenshot(path=str(ARTIFACTS / "case-ar-360.png"), full_page=True)


def _survey_link(page, server, wave):
    """The survey link of the first listed youth who consented to surveys."""
    page.goto(server + "/beneficiaries/")
    records = page.locator(".cards a").evaluate_all("links => links.map(a => a.href)")
    for record in records[:10]:
        page.goto(record)
        link = page.locator(f'#surveys a[href*="wave={wave}"]')
        if link.count():
            return link.first.get_attribute("href")
    raise AssertionError("no youth with survey consent in the first records")


def test_survey_skip_logic_instant_with_javascript(phone, server):
    _log_in(phone, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    phone.wait_for_url(server + "/")
    phone.goto(server + _survey_link(phone, server, "midline"))
    job = phone.locator('[data-question="has_job"]')
    hours = phone.locator('[data-question="job_hours"]')
    phone.get_by_label("أعمل").check()
    phone.locator('[data-question="has_job"] input[value="yes"]').check()
    hours.wait_for(state="visible")
    assert _no_horizontal_scroll(phone)
    phone.screenshot(path=str(ARTIFACTS / "survey-ar-360.png"), full_page=True)
    phone.get_by_label("أدرس").check()
    job.wait_for(state="hidden")
    assert hours.is_hidden()


def test_survey_skip_logic_on_the_server_without_javascript(browser, server):
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ar-TN",
                                  java_script_enabled=False)
    page = context.new_page()
    _log_in(page, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    page.wait_for_url(server + "/")
    page.goto(server + _survey_link(page, server, "follow_up"))
    page.get_by_label("أدرس").check()
    page.locator('button[value="next"]').click()
    # A student is not asked about a job: the next page is the wellbeing one.
    assert page.locator('[data-question="w1"]').count() == 1
    assert "page=1" in page.url
    context.close()

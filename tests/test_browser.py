"""The foundation's phone screens in a real browser (Playwright driving the system Chromium).

A real server process (gunicorn) on a free port, with a fresh SQLite database migrated and
seeded with the demo data, exactly as `make run` does (see browser_support.py). Skipped, with
a visible reason, when Chromium or Playwright is missing; .ci/run installs both, so CI always
runs it. The whole journeys, with their layout, accessibility and weight checks, are in
test_browser_journeys.py.
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from . import browser_support
from .browser_support import (
    ARTIFACTS,
    CLUB,
    Words,
    no_horizontal_scroll,
    phone_context,
    require_browser,
)
from .second_factor_support import complete_in_browser

# The fixtures this module uses (each module gets its own server).
browser, server = browser_support.browser, browser_support.server

pytestmark = pytest.mark.browser
require_browser()


@pytest.fixture
def phone(browser):
    context = phone_context(browser)
    yield context.new_page()
    context.close()


def _log_in(page, base, email, password):
    page.goto(base + "/login")
    page.get_by_label("البريد الإلكتروني").fill(email)
    page.get_by_label("كلمة المرور").fill(password)
    page.get_by_role("button", name="تسجيل الدخول").click()
    complete_in_browser(page, base, email, Words("ar"))  # the manager's second factor


def test_login_page_is_arabic_rtl_and_fits_a_phone(phone, server):
    phone.goto(server + "/login")
    assert phone.get_attribute("html", "dir") == "rtl"
    assert phone.get_attribute("html", "lang") == "ar"
    assert no_horizontal_scroll(phone)
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
    assert no_horizontal_scroll(phone)
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
    assert no_horizontal_scroll(phone)
    phone.screenshot(path=str(ARTIFACTS / "staff-manager-fr-360.png"), full_page=True)


def test_reviewer_home_lists_the_funded_csos_without_individuals(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.goto(server + "/login")
    page.get_by_label("Email").fill("reviewer@demo.bladi.tn")
    page.get_by_label("Password").fill("Medina-Gate-1944")
    page.get_by_role("button", name="Log in").click()
    complete_in_browser(page, server, "reviewer@demo.bladi.tn", Words("en"))
    page.wait_for_url(server + "/")
    text = page.inner_text("main")
    assert "Bedhret Amal" in text and "Mashhad" in text
    page.screenshot(path=str(ARTIFACTS / "home-reviewer-en.png"), full_page=True)
    context.close()


def test_facilitator_takes_attendance_for_30_youth_in_one_save(phone, server):
    _log_in(phone, server, "worker@demo.bladi.tn", "Olive-Tree-4821")
    phone.wait_for_url(server + "/")
    today_card = phone.locator("li", has_text=CLUB)
    today_card.get_by_role("link", name="تسجيل الحضور").click()
    rows = phone.locator(".roster li")
    assert rows.count() == 30
    assert no_horizontal_scroll(phone)
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
    phone.get_by_role("link", name=CLUB).click()
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
    assert no_horizontal_scroll(phone)
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
    assert no_horizontal_scroll(phone)
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
    assert no_horizontal_scroll(phone)
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

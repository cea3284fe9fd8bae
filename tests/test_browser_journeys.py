"""Quality as a person sees it: whole journeys in Chromium, on a phone in Arabic unless noted.

Every page a journey lands on goes through `Audit.check` (browser_support.py): no sideways
scrolling, nothing cut off, right-to-left with the menu on the right in Arabic, no
Content-Security-Policy violation, no serious or critical axe-core finding, and at most 50 KB
transferred with its CSS, JS and images. The phone journeys keep docs/screenshots/ current.

The journeys share one server and run in file order: the manager sets up her second factor
before her other journeys, the reviewer works on the report the manager submitted, the other
CSO's worker tries the record the field worker registered.
"""

from __future__ import annotations

import io
import re
import time
from datetime import date

import openpyxl
import pyotp
import pytest
from playwright.sync_api import Error as PlaywrightError

from . import browser_support
from .browser_support import (
    ARTIFACTS,
    CLUB,
    LAPTOP,
    Audit,
    Words,
    log_in,
    phone_context,
    require_axe,
    require_browser,
    write_report,
)
from .second_factor_support import PHONE

# The fixtures this module uses (each module gets its own server).
browser, server = browser_support.browser, browser_support.server

pytestmark = pytest.mark.browser
require_browser()
require_axe()

AR, FR, EN = Words("ar"), Words("fr"), Words("en")
WORKER = ("worker@demo.bladi.tn", "Olive-Tree-4821")
MANAGER = ("manager@demo.bladi.tn", "Sahara-Wind-7305")
OTHER_CSO_WORKER = ("worker.acec@demo.bladi.tn", "Kasbah-Door-6610")
REVIEWER = ("reviewer@demo.bladi.tn", "Medina-Gate-1944")
DONOR = ("donor@demo.bladi.tn", "Carthage-Sun-5560")
RECORD_URL = re.compile(r".*/beneficiaries/[0-9a-f-]{36}$")
SHARED: dict[str, str] = {}  # what a later journey needs from an earlier one


@pytest.fixture(scope="module", autouse=True)
def audit_report():
    """After the journeys: every checked page's weight and axe findings, for the README."""
    yield
    write_report(ARTIFACTS / "browser-audit.md")


def test_field_worker_registers_enrols_attends_surveys_and_works_a_case(browser, server):
    context = phone_context(browser)
    page = context.new_page()
    audit = Audit(page, "field worker", "ar")

    page.goto(server + "/login")
    audit.check("log in", screenshot="login-ar-360")
    log_in(page, server, *WORKER, AR)
    page.wait_for_url(server + "/")
    audit.check("home", screenshot="home-due-ar-360")

    # Registers a 14-year-old with her mother's consent, to take part and to be surveyed.
    page.get_by_role("link", name=AR("Register a young person")).first.click()
    page.get_by_label(AR("First name (Arabic)")).fill("نور")
    page.get_by_label(AR("Last name (Arabic)")).fill("الحمامي")
    page.get_by_label(AR("Female")).check()
    page.get_by_label(AR("Date of birth")).fill(f"{date.today().year - 14}-04-03")
    page.get_by_label(AR("Setting")).select_option("youth_centre")
    page.get_by_label(AR("Consent given by")).select_option("guardian")
    page.get_by_label(AR("Guardian name")).fill("سنية الحمامي")
    page.get_by_label(AR("Relationship to the young person")).fill("أم")
    page.get_by_label(AR("Consent method")).select_option("signed_form")
    page.get_by_label(AR("Answering surveys")).check()
    audit.check("register", screenshot="register-ar-360")
    page.get_by_role("button", name=AR("Register"), exact=True).click()
    if page.get_by_role("button", name=AR("It is someone else: register")).count():
        audit.check("register: possible duplicate")
        page.get_by_role("button", name=AR("It is someone else: register")).click()
    page.wait_for_url(RECORD_URL)
    record = page.url
    SHARED["record"] = record
    code = page.locator("h1 [dir=ltr]").inner_text().strip()
    assert code.startswith("BA-") and "نور الحمامي" in page.inner_text("h1")
    audit.check("youth record, new")

    # Found again by a name prefix.
    page.goto(server + "/beneficiaries/?q=" + "الحما")
    assert code in page.inner_text("main")
    audit.check("search")

    # Enrols her in today's club from the attendance page, and records the session.
    page.get_by_role("link", name=AR("Activities"), exact=True).click()
    audit.check("activities")
    page.get_by_role("link", name=CLUB).click()
    audit.check("activity")
    page.get_by_role("link", name=AR("Take attendance")).first.click()
    audit.check("attendance, before")
    page.get_by_label(AR("Add a young person by code")).fill(code)
    page.get_by_role("button", name=AR("Add"), exact=True).click()
    row = page.locator(".roster li", has_text=code)
    assert row.count() == 1
    assert row.locator('input[value="present"]').is_checked()
    page.locator(".roster li").nth(2).get_by_text(AR("Absent"), exact=True).click()
    audit.check("attendance", screenshot="attendance-ar-360")
    page.get_by_role("button", name=AR("Save attendance")).click()
    page.wait_for_url(re.compile(r".*/activities/[0-9a-f-]{36}$"))
    assert AR("Attendance saved.") in page.inner_text("main")
    audit.check("activity, attendance saved")

    # Fills the baseline survey with her.
    page.goto(record)
    audit.check("youth record, enrolled")
    page.locator('#surveys a[href*="wave=baseline"]').first.click()
    page.get_by_label("أدرس").check()  # "Studying": the job questions stay hidden
    audit.check("survey, page 1", screenshot="survey-ar-360")
    page.get_by_role("button", name=AR("Next")).click()
    for item, answer in zip(("w1", "w2", "w3", "w4", "w5"), "42424", strict=True):
        page.locator(f'[data-question="{item}"] input[value="{answer}"]').check()
    audit.check("survey, page 2")
    page.get_by_role("button", name=AR("Next")).click()
    page.locator('[data-question="trust_staff"] input[value="5"]').check()
    audit.check("survey, page 3")
    page.get_by_role("button", name=AR("Next")).click()
    audit.check("survey, review")
    page.get_by_role("button", name=AR("Send")).click()
    page.wait_for_url(record)
    assert AR("Survey saved.") in page.inner_text("main")
    audit.check("youth record, surveyed")

    # Opens a case, adds a note and a referral.
    page.get_by_role("link", name=AR("Open a case")).click()
    audit.check("open a case")
    page.get_by_role("button", name=AR("Open the case")).click()
    page.wait_for_url(re.compile(r".*/cases/[0-9a-f-]{36}$"))
    audit.check("case, opened")
    notes = page.locator("#notes")
    notes.get_by_label(AR("Note")).fill("زيارة للعائلة: نور متحمسة للمسرح")
    notes.get_by_role("button", name=AR("Add the note")).click()
    assert "زيارة للعائلة: نور متحمسة للمسرح" in page.inner_text("#notes")
    audit.check("case, note added")
    referrals = page.locator("#referrals")
    referrals.get_by_text(AR("Add a referral")).click()
    referrals.get_by_label(AR("Service"), exact=True).select_option("health")
    referrals.get_by_role("button", name=AR("Add"), exact=True).click()
    assert page.locator("#referrals li").count() == 1
    audit.check("case, referral added", screenshot="case-ar-360")

    # Everything is on her timeline.
    page.locator("h1 a").click()
    page.wait_for_url(record)
    timeline = page.locator(".timeline").inner_text()
    for event in ("First contact", "Consent recorded", "Enrolled at", "Survey", "Case",
                  "Case note", "Referral"):
        assert AR(event) in timeline, (event, timeline)
    assert CLUB in timeline
    assert "1 / 1" in page.locator("table").first.inner_text()
    audit.check("youth record, timeline", screenshot="timeline-ar-360")
    audit.finish()
    context.close()


def test_another_csos_worker_gets_not_found(browser, server):
    record = SHARED.get("record")
    assert record, "runs after the field worker's journey, which registers the youth"
    context = phone_context(browser)
    page = context.new_page()
    audit = Audit(page, "other CSO", "ar")
    log_in(page, server, *OTHER_CSO_WORKER, AR, audit)
    page.wait_for_url(server + "/")
    audit.check("home")
    response = page.goto(record)
    assert response.status == 404
    assert AR("Page not found") in page.inner_text("main")
    audit.check("not found", screenshot="not-found-ar-360")
    audit.finish()
    context.close()


def test_manager_sets_up_the_second_factor_on_a_phone_in_arabic(browser, server):
    """The manager's first login asks for the second factor her role requires: she types the
    key shown as text (no camera), then the code her app computes, keeps the recovery
    codes, and is logged in. Runs before her other journeys, which then type codes."""
    context = phone_context(browser)
    page = context.new_page()
    audit = Audit(page, "CSO manager, second factor", "ar")
    page.goto(server + "/login")
    audit.check("log in")
    page.get_by_label(AR("Email")).fill(MANAGER[0])
    page.get_by_label(AR("Password"), exact=True).fill(MANAGER[1])
    page.get_by_role("button", name=AR("Log in")).click()
    page.wait_for_url(server + "/login/enrol")
    assert page.inner_text("h1") == AR("Set up a second factor")
    assert page.locator(".qr svg").is_visible(), "the QR code"
    audit.check("set up the second factor")
    page.screenshot(path=str(ARTIFACTS / "second-factor-enrol-ar-360.png"), full_page=True)

    shown = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4})+", shown), shown
    app = pyotp.TOTP(shown.replace(" ", ""))  # her phone's app, the key typed in
    step = app.timecode(time.time())
    page.get_by_label(AR("Code from the app")).fill(app.generate_otp(step))
    PHONE.add(server, MANAGER[0], shown, used_step=step)  # her later journeys type codes
    page.get_by_role("button", name=AR("Confirm")).click()
    assert page.inner_text("h1") == AR("Your recovery codes")
    codes = page.locator(".recovery-codes code").all_inner_texts()
    assert len(set(codes)) == 10 and all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", c)
                                         for c in codes)
    audit.check("recovery codes")
    page.screenshot(path=str(ARTIFACTS / "second-factor-codes-ar-360.png"), full_page=True)

    page.get_by_role("button", name=AR("I have saved them: continue")).click()
    page.wait_for_url(server + "/")
    assert "Sami Ben Salah" in page.inner_text("header")
    audit.check("home")
    audit.finish()
    context.close()


YOUTH_ROWS = [  # first name, last name, sex, birth date, phone; made-up people
    ("ياسين", "التجريبي", "male", "2009-02-11", "98 765 432"),
    ("مروى", "التجريبي", "female", "2007-09-30", "12345"),  # the phone is wrong
    ("أيمن", "التجريبي", "male", "2005-06-18", ""),
]


def _filled_template(template: bytes, rows) -> bytes:
    """The downloaded Arabic template with our young people in it, as a manager fills it."""
    book = openpyxl.load_workbook(io.BytesIO(template))
    sheet = book["data"]
    columns = {cell.value: cell.column - 1 for cell in sheet[1]}
    for first, last, sex, born, phone in rows:
        values = {"First name (Arabic)": first, "Last name (Arabic)": last, "Sex": sex,
                  "Date of birth": born, "Governorate": "TN-61", "Setting": "youth_centre",
                  "Phone": phone, "Consent given by": "guardian" if born > "2008" else "self",
                  "Guardian name": "سعاد التجريبي" if born > "2008" else "",
                  "Relationship to the young person": "أم" if born > "2008" else "",
                  "Consent method": "signed_form", "Consent covers": "participation, surveys"}
        row = [None] * len(columns)
        for msgid, value in values.items():
            row[columns[AR(msgid)]] = value
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _upload(page, name: str, body: bytes) -> None:
    page.get_by_label(AR("Spreadsheet (.csv or .xlsx, up to 5 MB, 10,000 rows)")).set_input_files(
        {"name": name, "mimeType": "application/octet-stream", "buffer": body})
    page.get_by_role("button", name=AR("Check and import")).click()


def test_manager_adds_a_worker_imports_youth_and_submits_the_report(browser, server):
    context = phone_context(browser)
    page = context.new_page()
    audit = Audit(page, "CSO manager", "ar")
    log_in(page, server, *MANAGER, AR, audit)
    page.wait_for_url(server + "/")
    _in_arabic(page)  # the manager chose French in an earlier journey
    audit.check("home")

    # A new field worker's account, and the one-time link to choose a password.
    page.get_by_role("link", name=AR("Staff accounts"), exact=True).click()
    audit.check("staff accounts")
    page.get_by_role("link", name=AR("New account")).click()
    page.get_by_label(AR("Name"), exact=True).fill("Rim Haddad")
    page.get_by_label(AR("Email")).fill("rim.haddad@demo.bladi.tn")
    page.get_by_label(AR("Role")).select_option("field_worker")
    audit.check("new account", screenshot="staff-new-ar-360")
    page.get_by_role("button", name=AR("Save"), exact=True).click()
    assert AR("Account created") in page.inner_text("h1")
    link = page.locator(".code code").inner_text().strip()
    audit.check("account created")

    newcomer = phone_context(browser)
    first_day = newcomer.new_page()
    newcomer_audit = Audit(first_day, "new field worker", "ar")
    first_day.goto(link)
    newcomer_audit.check("choose a password")
    first_day.get_by_label(AR("New password"), exact=True).fill("Jasmine-Road-2718")
    first_day.get_by_label(AR("New password again")).fill("Jasmine-Road-2718")
    first_day.get_by_role("button", name=AR("Save"), exact=True).click()
    newcomer_audit.check("log in after the reset")
    first_day.get_by_label(AR("Email")).fill("rim.haddad@demo.bladi.tn")
    first_day.get_by_label(AR("Password"), exact=True).fill("Jasmine-Road-2718")
    first_day.get_by_role("button", name=AR("Log in")).click()
    first_day.wait_for_url(server + "/")
    assert "Rim Haddad" in first_day.inner_text("main")
    newcomer_audit.check("home")
    newcomer_audit.finish()
    newcomer.close()

    # Imports three young people from the template: one bad row, fixed, then imported.
    page.get_by_role("link", name=AR("Young people"), exact=True).click()
    audit.check("young people")
    page.get_by_role("link", name=AR("Import a spreadsheet")).click()
    audit.check("import")
    with page.expect_download() as download:
        page.get_by_role("link", name=AR("Template (Excel)")).click()
    template = download.value.path().read_bytes()
    _upload(page, "youth.xlsx", _filled_template(template, YOUTH_ROWS))
    page.wait_for_selector('[data-status="failed"]', timeout=30_000)
    problems = page.get_by_role("alert").inner_text()
    where = AR("Row %(row)d, column %(column)s: %(message)s").split("%(message)s")[0]
    assert where % {"row": 3, "column": f"K ({AR('Phone')})"} in problems, problems
    assert problems.count(where.split("%")[0]) == 1, "one bad row, one message"
    audit.check("import, one bad row", screenshot="import-error-ar-360")
    fixed = [row[:4] + ("98 123 456",) if row[1] == "التجريبي" and row[4] == "12345" else row
             for row in YOUTH_ROWS]
    page.get_by_role("link", name=AR("Upload a corrected file")).click()
    _upload(page, "youth.xlsx", _filled_template(template, fixed))
    page.wait_for_selector('[data-status="done"]', timeout=30_000)
    assert AR("%(n)d young people imported.", n=3) in page.inner_text("main")
    audit.check("import, done")
    page.get_by_role("link", name=AR("Young people"), exact=True).last.click()
    audit.check("young people, imported")

    # In French, prepares and submits the quarter's report.
    page.get_by_role("button", name="Français").click()
    audit.lang = "fr"
    page.wait_for_load_state()
    audit.check("young people, in French")
    page.get_by_role("link", name=FR("Reports"), exact=True).click()
    audit.check("progress of the CSO")
    page.get_by_role("button", name=FR("Prepare the report of this quarter")).click()
    audit.check("quarterly report, draft")
    page.get_by_label(FR("Achievements")).fill(
        "Trois nouveaux jeunes inscrits ; le club de théâtre se réunit chaque semaine.")
    page.get_by_label(FR("Challenges")).fill("Les transports vers le centre en hiver.")
    page.get_by_label(FR("Lessons learned")).fill("Prévenir les familles la veille.")
    audit.check("quarterly report, written", screenshot="report-fr-360")
    page.get_by_role("button", name=FR("Submit to the reviewers")).click()
    assert FR("Report submitted.") in page.inner_text("main")
    SHARED["report"] = page.url
    audit.check("quarterly report, submitted")
    audit.finish()
    context.close()


def _laptop(browser):
    context = browser.new_context(viewport=LAPTOP, locale="en-GB")
    context.set_default_timeout(10_000)
    return context


def test_reviewer_returns_the_report_manager_resubmits_reviewer_approves_donor_downloads(
        browser, server):
    report = SHARED.get("report")
    assert report, "runs after the manager's journey, which submits the report"
    desk = _laptop(browser)
    page = desk.new_page()
    audit = Audit(page, "reviewer (laptop, English)", "en")
    log_in(page, server, *REVIEWER, EN, audit)
    page.wait_for_url(server + "/")
    audit.check("home")
    page.get_by_role("link", name=EN("Reports"), exact=True).click()
    audit.check("dashboard")
    page.get_by_label(EN("CSO"), exact=True).select_option("BA")
    page.get_by_role("button", name=EN("Show")).click()
    assert page.locator("tbody th", has_text="BA").count() >= 1
    audit.check("dashboard, one CSO")
    page.screenshot(path=str(ARTIFACTS / "reviewer-dashboard-en.png"), full_page=True)
    page.get_by_role("link", name=EN("Quarterly reports")).click()
    audit.check("quarterly reports")
    page.locator(f'a[href="{report.removeprefix(server)}"]').click()
    audit.check("report, submitted")
    page.get_by_label(EN("Comment"), exact=True).fill(
        "Please say how many girls joined the drama club.")
    page.get_by_role("button", name=EN("Return")).click()
    assert EN("Returned") in page.inner_text("main")
    audit.check("report, returned")

    # The manager, on the phone and in French (her saved choice), fixes and resubmits.
    phone = phone_context(browser)
    manager = phone.new_page()
    manager_audit = Audit(manager, "CSO manager, again", "ar")
    log_in(manager, server, *MANAGER, AR, manager_audit)
    manager.wait_for_url(server + "/")
    manager_audit.lang = "fr"
    manager_audit.check("home")
    manager.goto(report)
    assert "Please say how many girls" in manager.inner_text("main")
    manager_audit.check("report, returned")
    achievements = manager.get_by_label(FR("Achievements"))
    achievements.fill(achievements.input_value() + " Deux filles sur trois nouveaux jeunes.")
    manager.get_by_role("button", name=FR("Submit to the reviewers")).click()
    assert FR("Report submitted.") in manager.inner_text("main")
    manager_audit.check("report, resubmitted")
    manager_audit.finish()
    phone.close()

    page.reload()
    audit.check("report, resubmitted")
    page.get_by_role("button", name=EN("Approve")).click()
    assert EN("Approved") in page.inner_text("main")
    audit.check("report, approved")
    audit.finish()
    desk.close()

    # The donor downloads the indicator tracking table.
    donor_desk = _laptop(browser)
    donor = donor_desk.new_page()
    donor_audit = Audit(donor, "donor (laptop, English)", "en")
    log_in(donor, server, *DONOR, EN, donor_audit)
    donor.wait_for_url(server + "/")
    donor_audit.check("home")
    donor.get_by_role("link", name=EN("Reports"), exact=True).click()
    assert "BA" in donor.inner_text("main")  # the approved report
    donor_audit.check("approved reports")
    donor.get_by_role("link", name=EN("Exports for the donor")).click()
    donor_audit.check("exports")
    donor.get_by_role("link", name=EN("Indicator tracking table (Excel)")).click()
    donor.wait_for_selector('[data-status="done"]', timeout=30_000)  # made by a job
    donor_audit.check("export job, done")
    with donor.expect_download() as download:
        donor.get_by_role("link", name=re.compile(EN("Download"))).click()
    book = openpyxl.load_workbook(io.BytesIO(download.value.path().read_bytes()))
    sheet = book[book.sheetnames[-2]]  # this fiscal year's, before the disaggregation
    assert sheet["A1"].value == EN("Indicator") and sheet.max_row >= 8
    donor_audit.finish()
    donor_desk.close()


def _sheet_of(count: int) -> bytes:
    """A CSV of `count` adults consenting for themselves, headers in Arabic."""
    header = ",".join(AR(h) for h in ("First name (Arabic)", "Last name (Arabic)", "Sex",
                                      "Date of birth", "Governorate", "Setting",
                                      "Consent given by", "Consent method", "Consent covers"))
    rows = "".join(f"ياسمين{n},المرزوقي{n},female,2003-0{1 + n % 9}-2{n % 8},TN-61,"
                   "youth_centre,self,signed_form,participation\r\n" for n in range(count))
    return (header + "\r\n" + rows).encode("utf-8-sig")


def _in_arabic(page) -> None:
    """Choose Arabic with the footer's button (a choice kept on the account)."""
    if page.get_attribute("html", "lang") != "ar":
        page.get_by_role("button", name="العربية").click()
        page.wait_for_load_state()


def test_manager_watches_a_large_import_progress_on_a_phone(browser, server):
    """10,000 rows (the most a file may hold): the job's page shows a progress bar that
    moves (polling the JSON status), then the outcome; the page fits 360 px and passes the
    audit at each step."""
    context = phone_context(browser)
    page = context.new_page()
    audit = Audit(page, "CSO manager, large import", "ar")
    log_in(page, server, *MANAGER, AR, audit)
    page.wait_for_url(server + "/")
    _in_arabic(page)  # the manager chose French in an earlier journey
    audit.check("home")
    page.goto(server + "/beneficiaries/import")
    audit.check("import")
    _upload(page, "large.csv", _sheet_of(10_000))
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
    seen = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            status = page.get_attribute("[data-job]", "data-status")
            if status not in ("queued", "running"):
                break
            seen.add(page.evaluate("document.querySelector('progress.job-bar').value"))
            if len(seen) == 2:
                audit.check("import, in progress", screenshot="import-progress-ar-360")
        except PlaywrightError:  # the page reloads itself once the job is done
            pass
        time.sleep(0.2)
    page.wait_for_selector('[data-status="done"]', timeout=30_000)
    assert AR("%(n)d young people imported.", n=10_000) in page.inner_text("main")
    assert len(seen) >= 2 and max(seen) > min(seen), f"the bar moved: {sorted(seen)}"
    audit.check("import, done")
    audit.finish()
    context.close()


def test_without_javascript_the_job_page_reloads_itself_until_done(browser, server):
    """No script: the page refreshes itself (a meta refresh inside <noscript>) while the
    job runs, and shows the outcome when it is done."""
    context = phone_context(browser, java_script_enabled=False)
    page = context.new_page()
    log_in(page, server, *MANAGER, AR)
    page.wait_for_url(server + "/")
    _in_arabic(page)
    page.goto(server + "/beneficiaries/import")
    _upload(page, "small.csv", _sheet_of(1500).replace("ياسمين".encode(), "نور".encode()))
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
    page.wait_for_selector('[data-status="done"]', timeout=60_000)
    assert AR("%(n)d young people imported.", n=1500) in page.inner_text("main")
    context.close()

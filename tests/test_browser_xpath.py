"""The phone's XPath in a real browser (system Chromium): the runner the differential test
uses (tests/xpath_browser.py) reads dates as days and takes an injected today; and the field
app, with no connection, shows or hides a question by a date rule as ODK does."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from . import browser_support
from .browser_support import ROOT, Words, log_in, phone_context, require_browser
from .xpath_browser import ERROR, evaluate_all

browser, server = browser_support.browser, browser_support.server

pytestmark = pytest.mark.browser
require_browser()

AR = Words("ar")
WORKER = ("worker@demo.bladi.tn", "Olive-Tree-4821")


def test_the_runner_reads_dates_as_days_and_takes_today():
    cases = [
        {"expr": "${dob} <= '2007-01-01'", "answers": {"dob": "2005-03-02"}},
        {"expr": "${dob} <= '2007-01-01'", "answers": {"dob": "2009-03-02"}},
        {"expr": "${dob} <= '2007-01-01'", "answers": {}, "names": ["dob"]},
        {"expr": "today() - ${d}", "answers": {"d": "2024-02-01"}, "today": "2024-02-29"},
        {"expr": "format-date(today(), '%Y/%m/%d')", "answers": {}, "today": "2031-12-31"},
        {"expr": ". >= ${start}", "answers": {"start": "2024-01-10", "end": "2024-01-09"},
         "current": "end"},
        {"expr": "selected(${m}, 'b') and count-selected(${m}) = 2",
         "answers": {"m": ["a", "b"]}},
        {"expr": "string-length(${x})", "answers": {"x": 2.0}},  # "2.0", as on the server
        {"expr": "'${x}'", "answers": {"x": "no"}},  # inside a literal: not a reference
        {"expr": "${x} != 'a'", "answers": {}, "names": ["x"]},  # empty element, not missing
        {"expr": "0 div 0", "answers": {}},
        {"expr": "concat('a', ", "answers": {}},
    ]
    results = evaluate_all(cases)
    assert results[:11] == [True, False, False, 28, "2031/12/31", False, True, 3, "${x}",
                            True, "NaN"]
    assert isinstance(results[11], dict) and ERROR in results[11]


SURVEY_WITH_A_DATE_RULE = """
import io, json
import openpyxl
from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.services.surveys.surveys import import_version
book = openpyxl.Workbook()
sheet = book.active
sheet.title = "survey"
sheet.append(["type", "name", "label::English (en)", "relevant"])
sheet.append(["date", "dob", "Date of birth", ""])
sheet.append(["text", "work", "Where do you work?", "${dob} <= '2007-01-01'"])
settings = book.create_sheet("settings")
settings.append(["form_id", "form_title"])
settings.append(["date_rule", "Date rule"])
data = io.BytesIO()
book.save(data)
app = create_app()
with app.app_context():
    version = import_version(None, data.getvalue(), None, publish=True)
    db.session.commit()
    print(json.dumps({"version": str(version.uuid)}))
"""


OFFERED = "(id) => [...document.querySelectorAll('#sv-version option')].some(o => o.value === id)"


def _until(page, script: str, arg=None, timeout: float = 15.0) -> None:
    """Poll a JavaScript function until it is true (the page's CSP forbids the string form
    of wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {script}")
        time.sleep(0.2)


def test_a_date_rule_hides_and_shows_a_question_offline(browser, server):
    env = browser_support._env(browser_support.INSTANCES[server])
    out = subprocess.run([sys.executable, "-c", SURVEY_WITH_A_DATE_RULE], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    version = json.loads(out.strip().splitlines()[-1])["version"]
    context = phone_context(browser, service_workers="allow")
    page = context.new_page()
    log_in(page, server, *WORKER, AR)
    page.wait_for_url(server + "/")
    page.goto(server + "/field")
    page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # under the service worker, which keeps the page and its scripts
    _until(page, "() => !!(navigator.serviceWorker && navigator.serviceWorker.controller)")
    _until(page, OFFERED, version)

    context.set_offline(True)
    page.reload()  # the page, xpath.min.js included, from the service worker's cache
    assert page.evaluate("() => typeof BladiXPath") == "object", "the evaluator works offline"
    survey = page.locator('form[data-offline="survey_response"]')
    _until(page, OFFERED, version)
    survey.locator("#sv-version").select_option(version)
    work = survey.locator('[data-question="work"]')
    # Unanswered, the date is empty: "" <= a date is false (NaN), so the question hides.
    assert work.is_hidden()
    survey.locator("#q-dob").fill("2005-06-15")
    survey.locator("#q-dob").dispatch_event("change")
    assert work.is_visible(), "born before 2007: compared as days, the question shows"
    survey.locator("#q-dob").fill("2010-06-15")
    survey.locator("#q-dob").dispatch_event("change")
    assert work.is_hidden(), "born after 2007: hidden again"
    survey.locator("#q-dob").fill("2007-01-01")
    survey.locator("#q-dob").dispatch_event("change")
    assert work.is_visible(), "the day itself counts (<=)"
    context.close()

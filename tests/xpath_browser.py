"""The phone's XPath, run from Python: every case goes through BladiXPath (the field app's
bundle, bladi_cases/static/js/xpath.min.js, i.e. openrosa-xpath-evaluator) in headless
Chromium, so a test can set its results beside the server's (tests/test_surveys_xpath.py).

A case is {"expr", "answers", "today"?, "names"?, "current"?}: `answers` maps question names
to values (a list for select_multiple); `today` ("YYYY-MM-DD") fixes today() and now();
`names` lists questions that exist unanswered (empty elements, as on the server);
`current` is the question `.` stands for.
"""

from __future__ import annotations

import json

from .browser_support import CHROMIUM, ROOT, require_browser

BUNDLE = ROOT / "bladi_cases" / "static" / "js" / "xpath.min.js"
ERROR = "error"  # the marker for an expression the evaluator throws on: {"error": message}

# Runs in the page: one result per case, NaN and infinities as strings (JSON has none).
_RUN = """
(cases) => cases.map((c) => {
  try {
    const v = BladiXPath.evaluate(c.expr, c.answers || {},
                                  {today: c.today, names: c.names, current: c.current});
    if (typeof v === "number" && !Number.isFinite(v)) return {special: String(v)};
    return {value: v};
  } catch (e) {
    return {error: String(e && e.message || e)};
  }
})
"""


def _answer_text(value):
    """Scalars as the server writes them into its instance (str()), so that e.g. 2.0 stays
    "2.0" rather than JavaScript's "2"; lists item by item; None stays empty."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return [_answer_text(v) for v in value]
    return str(value)


def _result(raw: dict):
    if "error" in raw:
        return {ERROR: raw["error"]}
    if "special" in raw:
        return raw["special"]  # "NaN", "Infinity", "-Infinity"
    return raw["value"]


def evaluate_all(cases: list[dict], timezone: str = "UTC") -> list:
    """Each case's value through the phone's evaluator: a bool, a number, a string ("NaN",
    "Infinity" or "-Infinity" for those numbers), or {"error": message} when the evaluator
    throws. One browser for the lot, its clock in `timezone` (a case's `today` is midnight
    there; date-only strings are local dates to the evaluator, as on a phone)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    payload = [{"expr": c["expr"],
                "answers": {k: _answer_text(v) for k, v in (c.get("answers") or {}).items()},
                "today": c.get("today"), "names": c.get("names"), "current": c.get("current")}
               for c in cases]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(timezone_id=timezone)
            page.set_content("<!doctype html><title>xpath</title>")
            page.add_script_tag(content=BUNDLE.read_text(encoding="utf-8"))
            raw = page.evaluate(_RUN, json.loads(json.dumps(payload)))
        finally:
            browser.close()
    return [_result(r) for r in raw]

"""Shared machinery of the browser tests: a real server on a fresh demo database, Chromium,
and the checks every page of a journey goes through (layout, accessibility, weight, CSP).

Test modules import the fixtures they use (`from .browser_support import browser, server`);
each module then gets its own server on its own copy of one freshly seeded database. The
server machinery (`seed_demo_instance`, `demo_instance`, `gunicorn`) also serves the load
tests (tests/test_concurrency.py) and bench/concurrency.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from babel.support import Translations

from bladi_cases.config import RATE_LIMITS, TESTING_RATE_LIMIT

from .second_factor_support import complete_in_browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 360, "height": 740}
LAPTOP = {"width": 1280, "height": 800}
PAGE_BUDGET = 50 * 1024  # bytes transferred for a page with its CSS, JS and images
BLOCKING_IMPACTS = ("serious", "critical")

# A drama club meeting today with 30 youth of Bedhret Amal, run by the demo field worker.
CLUB_OF_30 = """
from datetime import date, timedelta
from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, ConsentScope, Organization, User
from bladi_cases.services.activities.activities import create_activity, enrol_in_activity
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
CLUB = "نادي المسرح التجريبي"


def require_browser() -> None:
    """Skip the calling module, visibly, without Playwright or Chromium."""
    pytest.importorskip("playwright.sync_api", reason="SKIPPED: Playwright not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("SKIPPED: no Chromium (apt-get install chromium)", allow_module_level=True)


def require_axe() -> None:
    """Skip the calling module without axe-core (`npm ci`); CI must have it."""
    if AXE.exists():
        return
    message = f"axe-core is not installed ({AXE.relative_to(ROOT)} missing): run `npm ci`"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(f"SKIPPED: {message}", allow_module_level=True)


class Words:
    """The UI words of one language, from the catalogs the server uses: tests read like the
    English msgids and follow the translators' wording."""

    def __init__(self, lang: str):
        self.lang = lang
        self.catalog = Translations.load(str(ROOT / "translations"), [lang])

    def __call__(self, msgid: str, **values) -> str:
        # English is the msgids themselves; elsewhere a missing entry is a typo in the test.
        assert self.lang == "en" or msgid in self.catalog._catalog, f"no msgid {msgid!r}"
        text = self.catalog.gettext(msgid)
        return text % values if values else text


# --- the server ------------------------------------------------------------------------------

_SEEDED: dict[str, Path] = {}
INSTANCES: dict[str, Path] = {}  # server base URL -> its instance folder (its database)


def _env(instance: Path) -> dict[str, str]:
    env = {**os.environ, "BLADI_ENV": "development", "BLADI_INSTANCE_PATH": str(instance),
           "DATABASE_URL": f"sqlite:///{instance / 'bladi.db'}"}
    env.pop("TEST_DATABASE_URL", None)
    # Many threads, one address, one user: the rate limits stay on, out of reach (as in the
    # test config). tests/test_auth_limits.py checks the limits themselves.
    env.update(dict.fromkeys(RATE_LIMITS, TESTING_RATE_LIMIT))
    env.pop("REDIS_URL", None)
    return env


def seed_demo_instance(instance: Path) -> Path:
    """Migrate and seed an instance folder as `make run` does (400 youth), and add the club
    of 30 meeting today. Also used by bench/concurrency.py."""
    env = _env(instance)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    for command in ([*flask, "db", "upgrade"],
                    [*flask, "seed", "demo", "--beneficiaries", "400"],
                    [sys.executable, "-c", CLUB_OF_30]):
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    return instance


def _seeded_instance(tmp_path_factory) -> Path:
    """One migrated and seeded instance folder per test session, copied by each server."""
    if "path" not in _SEEDED:
        _SEEDED["path"] = seed_demo_instance(tmp_path_factory.mktemp("browser-seeded"))
    return _SEEDED["path"]


def demo_instance(tmp_path_factory, name: str) -> Path:
    """A fresh copy of the session's seeded instance folder (its own database)."""
    instance = tmp_path_factory.mktemp(name)
    shutil.copytree(_seeded_instance(tmp_path_factory), instance, dirs_exist_ok=True)
    return instance


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(instance: Path, *options: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """gunicorn serving the app on the database of `instance`, on a free loopback port, with
    extra command-line `options` (e.g. "--workers", "4") and settings (`env`, e.g. another
    DATABASE_URL); yields the base URL. Its log is instance/gunicorn.log."""
    port = _free_port()
    log = (instance / "gunicorn.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *options, "wsgi:app"],
        cwd=ROOT, env={**_env(instance), **(env or {})}, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the server did not start (see {log.name})")
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped at start (see {log.name})")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn (one worker) serving the app on a fresh copy of the demo database (demo
    accounts, 400 youth, the club of 30 meeting today)."""
    instance = demo_instance(tmp_path_factory, "browser-instance")
    try:
        with gunicorn(instance, "--workers", "1") as base:
            INSTANCES[base] = instance
            yield base
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def browser():
    """The system Chromium, headless."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


def phone_context(browser, locale: str = "ar-TN", **options):
    """A cheap Android phone: 360 x 740, touch. Service workers are blocked unless asked
    for: a page's weight is measured as on a first visit, not from the worker's cache."""
    options.setdefault("service_workers", "block")
    context = browser.new_context(viewport=PHONE, locale=locale, device_scale_factor=1,
                                  is_mobile=True, has_touch=True, **options)
    context.set_default_timeout(10_000)
    return context


def log_in(page, base: str, email: str, password: str, words: Words,
           audit: Audit | None = None) -> None:
    """Log in through the form, in the language the page is shown in, then through the
    second factor where the role asks for one (the enrolment at the first login, a code
    after: tests/second_factor_support.py)."""
    page.goto(base + "/login")
    if audit:
        audit.check("log in")
    page.get_by_label(words("Email")).fill(email)
    page.get_by_label(words("Password"), exact=True).fill(password)
    page.get_by_role("button", name=words("Log in")).click()
    complete_in_browser(page, base, email, words, audit)


def no_horizontal_scroll(page) -> bool:
    """True when the page fits the screen's width. A phone widens its layout viewport to fit
    a page that is too wide, so the window's own width cannot tell."""
    return page.evaluate("(width) => document.documentElement.scrollWidth <= width"
                         " && window.innerWidth <= width", page.viewport_size["width"])


# --- what every page of a journey must pass --------------------------------------------------

# Layout problems a person would see (browser_layout.js): sideways scrolling, text cut off,
# controls off screen or smaller than a 44 px tap target on a phone, and a menu that does not
# start on the reading side.
LAYOUT_PROBLEMS = (Path(__file__).with_name("browser_layout.js")).read_text(encoding="utf-8")

AXE_RUN = """
async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' '))}));
}
"""

# Installed in every document before its own scripts (through DevTools, so the page's CSP
# does not apply to it): collects the page's Content-Security-Policy violations.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline code'}`
    + (e.sourceFile ? ` (${e.sourceFile}:${e.lineNumber})` : ''));
});
"""


@dataclass
class PageRecord:
    """What one checked page weighed and what axe-core said about it."""

    journey: str
    name: str
    path: str
    html_bytes: int
    other_bytes: dict[str, int]
    violations: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.html_bytes + sum(self.other_bytes.values())


RECORDS: list[PageRecord] = []
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Audit:
    """Watches one page (tab) through a journey; `check()` after every page it lands on.

    The cache is off, so each page counts everything it needs, as on a phone's first visit.
    `finish()` fails if the tab showed a page that was never checked.
    """

    def __init__(self, page, journey: str, lang: str):
        self.page, self.journey, self.lang = page, journey, lang
        page.context.add_init_script(CSP_WATCH)
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        self.requests: dict[str, tuple[str, str]] = {}  # request id -> (loader id, type)
        self.received: dict[str, int] = {}  # request id -> bytes on the wire
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.loadingFinished", self._finished)
        self.shown: list[str] = []
        self.checked: set[str] = set()
        page.on("framenavigated",
                lambda frame: frame == page.main_frame and self.shown.append(frame.url))

    def _sent(self, event: dict) -> None:
        self.requests[event["requestId"]] = (event.get("loaderId", ""),
                                             event.get("type", "Other"))

    def _finished(self, event: dict) -> None:
        self.received[event["requestId"]] = int(event["encodedDataLength"])

    def _weight(self) -> tuple[int, dict[str, int]]:
        loader = self.cdp.send("Page.getFrameTree")["frameTree"]["frame"]["loaderId"]
        html, other = 0, {}
        for request_id, (owner, kind) in self.requests.items():
            if owner != loader or request_id not in self.received:
                continue
            if kind == "Document":
                html += self.received[request_id]
            else:
                other[kind] = other.get(kind, 0) + self.received[request_id]
        return html, other

    def check(self, name: str, screenshot: str | None = None) -> PageRecord:
        """Layout, language direction, CSP, accessibility and weight of the current page."""
        page = self.page
        page.wait_for_load_state("load")
        where = f"{self.journey} / {name} ({page.url})"
        assert page.get_attribute("html", "lang") == self.lang, where
        expected_dir = "rtl" if self.lang == "ar" else "ltr"
        assert page.get_attribute("html", "dir") == expected_dir, where
        problems = page.evaluate(LAYOUT_PROBLEMS, page.viewport_size["width"])
        assert not problems, f"{where}: {problems}"
        blocked = page.evaluate("window.__cspViolations || []")
        assert not blocked, f"{where}: Content-Security-Policy violations {blocked}"
        if page.evaluate("typeof window.axe") == "undefined":
            page.evaluate(AXE.read_text(encoding="utf-8"))
        violations = page.evaluate(AXE_RUN)
        html, other = self._weight()
        path = _UUID.sub("<id>", page.url.split("://", 1)[-1].partition("/")[2])
        record = PageRecord(self.journey, name, "/" + path, html, other, violations)
        RECORDS.append(record)
        blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
        assert not blocking, f"{where}: accessibility {json.dumps(blocking, indent=1)}"
        assert html > 0, f"{where}: the page's own transfer was not seen"
        assert record.total <= PAGE_BUDGET, f"{where}: {record.total} bytes"
        if screenshot:
            assert page.viewport_size == PHONE, "README screenshots are taken on the phone"
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.screenshot(path=str(SCREENSHOTS / f"{screenshot}.png"), full_page=True,
                            animations="disabled", caret="hide")
        self.checked.add(page.url)
        return record

    def finish(self) -> None:
        """Every page this tab showed went through `check()`."""
        missed = [url for url in dict.fromkeys(self.shown)
                  if url not in self.checked and url != "about:blank"]
        assert not missed, f"{self.journey}: pages shown but not checked: {missed}"


def write_report(path: Path) -> None:
    """The weights and accessibility findings of every checked page, as Markdown."""
    if not RECORDS:
        return
    lines = ["| journey | page | path | HTML | CSS + JS + images | total | axe (all impacts) |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in RECORDS:
        found = ", ".join(f"{v['id']} ({v['impact']})" for v in r.violations) or "none"
        lines.append(f"| {r.journey} | {r.name} | `{r.path}` | {r.html_bytes:,} | "
                     f"{sum(r.other_bytes.values()):,} | {r.total:,} | {found} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

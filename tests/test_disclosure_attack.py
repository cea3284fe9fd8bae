"""The regression test of issue 14: the demo data, everything a reviewer and the donor see,
collected through the HTTP layer, attacked with one integer program written here.

The attacker (docs/PRIVACY.md) holds, for every fiscal year of the award: the reviewers'
dashboard for every indicator and through every filter (CSO, setting, CSO x setting,
governorate, governorate x setting), the quarterly reports a reviewer or the donor may open,
the donor's tracking table (CSV, and XLSX with its disaggregation sheet) and microdata. Each
figure is named once, by what it counts: (kind, fiscal year, indicator, CSO or category,
quarter or setting), and must read the same wherever it appears. What the attacker knows
about the figures is written as linear facts over whole numbers (`_facts`, and
`_microdata_facts` for what the microdata rows count); every hidden figure ("…") is then
minimised and maximised with scipy's HiGHS, and must keep at least k-1 possible values.
Nothing here comes from bladi_cases/privacy/attack.py: this is a second, independent
attacker. A last test downloads a year before and after its age bands are changed.

The module builds its own demo database as `make run` does (migrations, then
`flask seed demo --beneficiaries 330`) in a temporary SQLite file, with its own app, and
never touches the session's test database (its `_transaction` fixture is overridden below).
It does so under PostgreSQL runs too: what it checks is the release logic, and the figures'
queries are tested on both databases elsewhere. The demo has no quarterly report, so the
demo CSO manager files one per quarter of every year with data, and the demo reviewer
approves half of them, all through the pages, before anything is collected.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from html.parser import HTMLParser
from urllib.parse import urlencode

import numpy as np
import openpyxl
import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import Enrolment, FiguresSnapshot, Governorate, Role
from bladi_cases.privacy.release import Release
from bladi_cases.seed import DEMO_USERS
from bladi_cases.services.reports import exports
from bladi_cases.services.reports.indicators import Period
from bladi_cases.services.reports.release import year_release

from .conftest import get_file
from .second_factor_support import log_in_through_form

HIDDEN = "…"
ALL = "*"
CEILING = 10**6  # every figure's upper bound: keeps each integer program bounded
CACHE_SECONDS = 3600  # pages read the year's snapshot, as in production; never stale here
# Youth counted by one indicator are among those counted by another, cell by cell.
INCLUDED_IN = [("youth_improved", "youth_baseline_endline"),
               ("youth_baseline_endline", "youth_reached"),
               ("youth_10_sessions", "youth_reached")]
# A mean change is shown only over at least k youth (the tracking table says so), and the
# youth it is over are those counted by another indicator.
MEAN_OVER = {"score_change": "youth_baseline_endline"}
# The microdata (one row per youth reached, data dictionary) counts some youth of other
# indicators row by row: (indicator, does the row's youth count in it?).
MICRODATA_COUNTS = [
    ("youth_10_sessions", lambda row: int(row["sessions_attended"] or 0) >= 10),
    ("youth_baseline_endline", lambda row: bool(row["baseline_score"] and row["endline_score"])),
    ("youth_improved", lambda row: bool(row["baseline_score"] and row["endline_score"])
     and float(row["endline_score"]) > float(row["baseline_score"])),
    ("youth_placed", lambda row: row["outcome"] in ("job", "training_completed",
                                                     "returned_to_school", "own_business")),
]
DIMENSIONS = {"Sex": "sex", "Age band": "age_band", "Governorate": "governorate",
              "Setting": "setting", "CSO": "cso"}


@pytest.fixture(autouse=True)
def _transaction():
    """This module runs on its own demo database: the session's test database and its
    per-test transaction (conftest) are left alone."""
    yield


# --- The demo, as `make run` builds it ---------------------------------------------------

@dataclass
class Demo:
    """The demo app and what the test needs to know about it."""

    app: object
    k: int
    data_years: list[int]    # fiscal years with youth enrolled: every page is collected
    award_years: list[int]   # from the award's first year on: the exports (life of award)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    """A fresh demo database in a temporary SQLite file, with its own app; the demo CSO
    manager's quarterly reports filed and half of them approved."""
    folder = tmp_path_factory.mktemp("disclosure-demo")
    app = create_app({
        "BLADI_ENV": "testing", "TESTING": True, "WTF_CSRF_ENABLED": False,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'demo.db'}",
        "SERVER_NAME": "bladi.test", "BLADI_DASHBOARD_CACHE_SECONDS": CACHE_SECONDS})
    with app.app_context():
        upgrade()
        result = app.test_cli_runner().invoke(args=["seed", "demo", "--beneficiaries", "330"])
        assert result.exit_code == 0, result.output
        first_day = db.session.scalar(sa.select(sa.func.min(Enrolment.start_date)))
        db.session.remove()
    assert first_day is not None, "the demo enrolled nobody"
    # Nobody is reached ahead of today: the data runs from the first enrolment to today.
    first, last = Period.containing(first_day).fiscal_year, Period.containing(
        date.today()).fiscal_year
    award_first = app.config["BLADI_AWARD_FIRST_FY"]
    demo = Demo(app, app.config["BLADI_SMALL_CELL_K"], list(range(first, last + 1)),
                list(range(min(award_first, first), last + 1)))
    _file_reports(demo)
    yield demo
    with app.app_context():
        db.engine.dispose()


def _client(app, role: Role):
    """A test client logged in, through the login form, as the demo account of `role`."""
    account = next(d for d in DEMO_USERS if d.role == role)
    client = app.test_client()
    client.set_cookie("lang", "en", domain="bladi.test")
    response = log_in_through_form(client, account.email, account.password)
    assert response.status_code == 302 and "/login" not in response.location, \
        f"the demo {role.value} could not log in"
    return client


def _file_reports(demo: Demo) -> None:
    """The demo CSO manager generates and submits a report for every quarter of every year
    with data; the reviewer approves those of Q1 and Q2 (frozen figures), the others stay
    submitted."""
    manager = _client(demo.app, Role.CSO_MANAGER)
    reviewer = _client(demo.app, Role.REVIEWER)
    for year in demo.data_years:
        for quarter in (1, 2, 3, 4):
            response = manager.post(f"/reports/quarterly/generate?fy={year}&q={quarter}")
            assert response.status_code == 302, response.status_code
            page = response.location
            response = manager.post(page, data={"action": "submit", "achievements": "Clubs."})
            assert response.status_code == 302, response.status_code
            if quarter <= 2:
                assert reviewer.post(page, data={"action": "approve"}).status_code == 302
    listing = reviewer.get("/reports/quarterly").get_data(as_text=True)
    assert "Approved" in listing and "Submitted" in listing


# --- Reading the pages -------------------------------------------------------------------

class _Page(HTMLParser):
    """A page's tables (rows of cell texts), its <select> options and its links."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.options: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.links: list[tuple[str, str]] = []
        self._row = self._cell = self._select = self._option = self._link = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select:
            self._option = (attrs.get("value") or "", [])
        elif tag == "a":
            self._link = (attrs.get("href") or "", [])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "select":
            self._select = None
        elif tag == "option" and self._option is not None:
            self.options[self._select].append(
                (self._option[0], " ".join("".join(self._option[1]).split())))
            self._option = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link[0], " ".join("".join(self._link[1]).split())))
            self._link = None

    def handle_data(self, data):
        for part in (self._cell, self._option and self._option[1], self._link and self._link[1]):
            if part is not None:
                part.append(data)

    def table(self, *header: str) -> list[list[str]]:
        """The rows (header first) of the table whose header row starts with `header`."""
        found = [t for t in self.tables if t and tuple(t[0][:len(header)]) == header]
        assert len(found) == 1, f"expected one table headed {header}, found {len(found)}"
        return found[0]


CHART_BAR = re.compile(r'class="label">([^<]*)</text><text [^>]*class="value">([^<]*)</text>')


def _reading(text, place: str, mean: bool = False) -> int | float | str | None:
    """A published figure: a count (a mean: a decimal), HIDDEN, or None where there is none
    ("—", empty; a mean over no youth stays "—", to be compared with the other pages).
    Anything else fails: no other symbol may be published."""
    text = "" if text is None else str(text).strip()
    if text in ("", "—"):
        return "—" if mean and text else None
    if text == HIDDEN:
        return HIDDEN
    if mean:
        assert re.fullmatch(r"[+-]?\d+(\.\d+)?", text), f"{place}: unreadable mean {text!r}"
        return float(text)
    assert re.fullmatch(r"\d+", text), f"{place}: unreadable figure {text!r}"
    return int(text)


@dataclass(repr=False)
class Seen:
    """Everything the attacker collected: each figure's published text(s), where it was
    read, and the governorate filters' sums. A figure is (kind, fiscal year, indicator, ...):
    ("q", Y, code, cso, quarter), ("fy", Y, code, cso, setting), ("dim", Y, code, dimension,
    category) and ("life", Y, code); cso and setting are ALL for the program."""

    texts: dict = field(default_factory=lambda: defaultdict(dict))  # figure -> text -> place
    means: dict = field(default_factory=lambda: defaultdict(dict))  # the same, for means
    sums: list = field(default_factory=list)  # (figures, published value, place)
    units: dict = field(default_factory=dict)  # code -> "youth" | "additive" | "mean"
    names: dict = field(default_factory=dict)  # indicator name -> code
    settings: dict = field(default_factory=dict)  # setting label -> code
    csos: list = field(default_factory=list)
    governorates: dict = field(default_factory=dict)  # governorate -> its CSOs
    positions: dict = field(default_factory=dict)  # dim figure -> index in its export rows
    microdata: dict = field(default_factory=dict)  # year -> the rows of its microdata file
    pages: int = 0

    def see(self, figure: tuple, text, place: str) -> None:
        """Note a published figure (a mean apart: it is not a count)."""
        mean = self.units[figure[2]] == "mean"
        value = _reading(text, place, mean)
        if value is not None:
            (self.means if mean else self.texts)[figure].setdefault(value, place)

    def value(self, figure: tuple):
        """The one published value of a figure (HIDDEN, a count, or None if never seen)."""
        texts = self.texts.get(figure)
        return next(iter(texts)) if texts else None

    def conflicts(self) -> list[str]:
        """Figures published with different values in different places."""
        return [f"{figure}: " + "; ".join(f"{v!r} at {p}" for v, p in texts.items())
                for figure, texts in [*self.texts.items(), *self.means.items()]
                if len(texts) > 1]


def _get(client, url: str, seen: Seen):
    response = get_file(client, url)
    assert response.status_code == 200, f"{url} answered {response.status_code}"
    seen.pages += 1
    return response


def _learn_the_vocabulary(reviewer, donor, demo: Demo, seen: Seen) -> None:
    """Indicator names, settings, CSOs and governorates as the pages list them; whether each
    indicator counts youth, adds up (sessions, hours...) or is a mean, from the tracking
    table's unit column."""
    page = _Page(_get(reviewer, f"/reports/?fy={demo.data_years[-1]}", seen).get_data(
        as_text=True))
    seen.names = {name: code for code, name in page.options["indicator"]}
    seen.settings = {label: code for code, label in page.options["setting"] if code}
    seen.csos = [code for code, _label in page.options["cso"] if code]
    seen.governorates = {code: [] for code, _label in page.options["governorate"] if code}
    rows = _csv(_get(donor, f"/reports/exports/tracking-{demo.data_years[-1]}.csv", seen))
    header = rows[0]
    for row in rows[1:]:
        unit = row[header.index("Unit")]
        seen.units[seen.names[row[header.index("Indicator")]]] = (
            "youth" if unit == "young people" else "mean" if unit == "score points"
            else "additive")
    assert sorted(seen.units) == sorted(seen.names.values())
    assert "youth" in seen.units.values() and "additive" in seen.units.values()


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))


def _read_tracking(rows: list[list], year: int, place: str, seen: Seen) -> None:
    """The tracking table: per indicator, the program's quarters, year and life of award."""
    header = [str(h) for h in rows[0]]
    quarter_columns = {q: next(i for i, h in enumerate(header) if h.startswith(f"Q{q}"))
                       for q in (1, 2, 3, 4)}
    for row in rows[1:]:
        code = seen.names[row[header.index("Indicator")]]
        where = f"{place} row {code}"
        for q, column in quarter_columns.items():
            seen.see(("q", year, code, ALL, q), row[column], f"{where} Q{q}")
        seen.see(("fy", year, code, ALL, ALL), row[header.index("Fiscal year")], where)
        seen.see(("life", year, code), row[header.index("Life of award to date")],
                 f"{where} life of award")


def _read_disaggregation(rows: list[list], year: int, place: str, seen: Seen) -> None:
    """The disaggregation sheet: youth indicators by sex, age band, governorate, setting, CSO."""
    header = [str(h) for h in rows[0]]
    assert header == ["Indicator", "Disaggregation", "Category", "Value"], header
    position: dict = defaultdict(int)
    for name, dimension, category, value in rows[1:]:
        code, dimension = seen.names[name], DIMENSIONS[dimension]
        where = f"{place} {code} {dimension} {category}"
        if dimension == "setting":
            figure = ("fy", year, code, ALL, seen.settings[category])
        elif dimension == "cso":
            figure = ("fy", year, code, category, ALL)
        else:
            figure = ("dim", year, code, dimension, category)
            seen.positions[figure] = position[(code, dimension)]
            position[(code, dimension)] += 1
        seen.see(figure, value, where)


def _collect_exports(donor, demo: Demo, seen: Seen) -> None:
    """The donor's tracking table of every year of the award, CSV and XLSX (this year's and
    the previous year's sheets, and the disaggregation of the year)."""
    for year in demo.award_years:
        url = f"/reports/exports/tracking-{year}.csv"
        _read_tracking(_csv(_get(donor, url, seen)), year, url, seen)
        url = f"/reports/exports/tracking-{year}.xlsx"
        book = openpyxl.load_workbook(io.BytesIO(_get(donor, url, seen).data))
        for sheet in book.worksheets:
            rows = [list(r) for r in sheet.iter_rows(values_only=True)]
            if re.fullmatch(r"FY\d{4}", sheet.title):
                _read_tracking(rows, int(sheet.title[2:]), f"{url} {sheet.title}", seen)
            else:
                assert sheet.title == "Disaggregation", sheet.title
                _read_disaggregation(rows, year, f"{url} {sheet.title}", seen)


def _collect_microdata(donor, demo: Demo, seen: Seen) -> None:
    """The donor's de-identified microdata of every year with data, its sex and governorate
    read as the tables name them (the governorates' ISO codes are public; "female" is the
    tables' "Female")."""
    with demo.app.app_context():
        names = {g.iso_code: g.name_en for g in db.session.scalars(sa.select(Governorate))}
    for year in demo.data_years:
        response = _get(donor, f"/reports/exports/microdata-{year}.csv", seen)
        rows = list(csv.DictReader(io.StringIO(
            b"".join(response.response).decode("utf-8-sig"))))
        for row in rows:
            row["governorate"] = names.get(row["governorate"], row["governorate"])
            row["sex"] = row["sex"] if row["sex"] == ALL else row["sex"].capitalize()
        seen.microdata[year] = rows


def _dashboard_views(seen: Seen) -> list[dict]:
    """Every filter of the reviewers' dashboard: each indicator unfiltered, and each CSO,
    setting, governorate, CSO x setting and governorate x setting. The indicator only
    changes the trend table, whose figures do not depend on the filters (its rows are the
    filter's CSOs): the filtered views go through the indicators in turn, so every figure
    is still read more than once and checked to read the same."""
    codes = list(seen.names.values())
    filters = ([{"cso": c} for c in seen.csos] + [{"setting": s} for s in seen.settings.values()]
               + [{"governorate": g} for g in seen.governorates]
               + [{"cso": c, "setting": s} for c in seen.csos for s in seen.settings.values()]
               + [{"governorate": g, "setting": s} for g in seen.governorates
                  for s in seen.settings.values()])
    return ([{"indicator": code} for code in codes]
            + [{**f, "indicator": codes[i % len(codes)]} for i, f in enumerate(filters)])


def _read_dashboard(html: str, year: int, view: dict, place: str, seen: Seen) -> None:
    page = _Page(html)
    code = view["indicator"]
    trend = page.table("CSO", "Q1", "Q2", "Q3", "Q4", "FY")
    rows = {(ALL if row[0] == "All CSOs" else row[0]): row[1:] for row in trend[1:]}
    assert ALL in rows, f"{place}: no 'All CSOs' row"
    if "governorate" in view and "setting" not in view:
        seen.governorates[view["governorate"]] = sorted(set(rows) - {ALL})
    for cso, cells in rows.items():
        for q in (1, 2, 3, 4):
            seen.see(("q", year, code, cso, q), cells[q - 1], f"{place} trend {cso} Q{q}")
        seen.see(("fy", year, code, cso, ALL), cells[4], f"{place} trend {cso} FY")
    for cso, text in CHART_BAR.findall(html):
        seen.see(("fy", year, code, cso, ALL), text, f"{place} chart {cso}")
    setting = view.get("setting", ALL)
    for name, value, *_rest in page.table("Indicator", "Value")[1:]:
        other = seen.names[name]
        where = f"{place} totals {other}"
        parts = [("fy", year, other, c, setting) for c in (
            sorted(set(rows) - {ALL}) if "governorate" in view else [view.get("cso", ALL)])]
        if len(parts) == 1:
            seen.see(parts[0], value, where)
        elif seen.units[other] != "mean":  # a mean over several CSOs is never shown
            if isinstance(_reading(value, where), int):  # a "…" sum: some part is hidden
                seen.sums.append((parts, _reading(value, where), where))


def _collect_dashboards(reviewer, demo: Demo, seen: Seen) -> None:
    for year in demo.data_years:
        for view in _dashboard_views(seen):
            url = "/reports/?" + urlencode({"fy": year, **view})
            _read_dashboard(_get(reviewer, url, seen).get_data(as_text=True), year, view,
                            url, seen)
        for governorate, csos in seen.governorates.items():
            assert csos, f"the governorate filter {governorate} listed no CSO"


REPORT_LINK = re.compile(r"(\S+) · FY(\d{4}) Q([1-4])")


def _collect_reports(client, role: str, seen: Seen) -> int:
    """Every quarterly report the user may open: its figures for its CSO and quarter."""
    links = [(href, REPORT_LINK.fullmatch(text)) for href, text in _Page(
        _get(client, "/reports/quarterly", seen).get_data(as_text=True)).links
        if href.startswith("/reports/quarterly/")]
    for href, match in links:
        assert match, f"a report link that names no CSO and quarter: {href}"
        cso, year, quarter = match.group(1), int(match.group(2)), int(match.group(3))
        page = _Page(_get(client, href, seen).get_data(as_text=True))
        for name, value, *_rest in page.table("Indicator", "Value")[1:]:
            seen.see(("q", year, seen.names[name], cso, quarter), value,
                     f"{role} report {cso} FY{year} Q{quarter} {name}")
    return len(links)


def collect(demo: Demo) -> Seen:
    """Everything a reviewer and the donor can see, through the pages and downloads."""
    seen = Seen()
    reviewer, donor = _client(demo.app, Role.REVIEWER), _client(demo.app, Role.DONOR)
    _learn_the_vocabulary(reviewer, donor, demo, seen)
    _collect_exports(donor, demo, seen)
    _collect_microdata(donor, demo, seen)
    _collect_dashboards(reviewer, demo, seen)
    assert _collect_reports(reviewer, "reviewer", seen) > 0, "the reviewer sees no report"
    assert _collect_reports(donor, "donor", seen) > 0, "the donor sees no approved report"
    return seen


# --- The attacker ------------------------------------------------------------------------

@dataclass
class Fact:
    """sum(coefficient * figure) == value (equality) or <= value."""

    terms: dict
    value: int
    equality: bool
    why: str


def _facts(seen: Seen, award_first: int, k: int, microdata: bool) -> list[Fact]:
    """What a reader knows about the figures beyond each one's published value:
    - a program's quarter is the sum of the CSOs' quarters, its year the sum of their years;
    - sessions, hours, referrals...: quarters add up to the year; youth count once a year,
      so max(quarters) <= year <= sum(quarters), for each CSO and the program;
    - youth: a CSO's settings add up to its year, a setting's CSOs to its total, and each
      disaggregation (setting, sex, age band, governorate) to the program's year;
    - life of award: at least the year and the previous year's life (sessions...: that life
      plus the year), and the year itself in the award's first year;
    - the inclusions of INCLUDED_IN, cell by cell;
    - a governorate filter's shown total is the sum of its CSOs' figures;
    - a shown mean is over at least k youth of MEAN_OVER's indicator;
    - with `microdata`, what the microdata rows count (`_microdata_facts`)."""
    facts: list[Fact] = []

    def equal(parts, total, why, value=0):  # sum(parts) - total == value
        terms: dict = defaultdict(int)
        for p in parts:
            terms[p] += 1
        if total is not None:
            terms[total] -= 1
        facts.append(Fact(dict(terms), value, True, why))

    def at_most(small, big, why):  # small <= big
        facts.append(Fact({small: 1, big: -1}, 0, False, why))

    years = sorted({figure[1] for figure in seen.texts})
    settings = list(seen.settings.values())
    dimensions = defaultdict(list)  # (year, code, dimension) -> its category figures
    for figure in seen.texts:
        if figure[0] == "dim":
            dimensions[figure[1:4]].append(figure)
    csos = seen.csos
    for year in years:
        for code, unit in seen.units.items():
            if unit == "mean":
                continue
            fy = {c: ("fy", year, code, c, ALL) for c in csos + [ALL]}
            q = {(c, n): ("q", year, code, c, n) for c in csos + [ALL] for n in (1, 2, 3, 4)}
            for n in (1, 2, 3, 4):
                equal([q[(c, n)] for c in csos], q[(ALL, n)], "CSO quarters add up")
            equal([fy[c] for c in csos], fy[ALL], "CSO years add up")
            for c in csos + [ALL]:
                quarters = [q[(c, n)] for n in (1, 2, 3, 4)]
                if unit == "additive":
                    equal(quarters, fy[c], "quarters add up to the year")
                else:  # a youth counts once a year: max(quarters) <= year <= sum(quarters)
                    for quarter in quarters:
                        at_most(quarter, fy[c], "a quarter's youth are in the year")
                    facts.append(Fact({fy[c]: 1, **{x: -1 for x in quarters}}, 0, False,
                                      "the year's youth are in some quarter"))
            life = ("life", year, code)
            if life in seen.texts:
                at_most(fy[ALL], life, "life of award holds the year")
                if ("life", year - 1, code) in seen.texts and year - 1 >= award_first:
                    if unit == "additive":
                        equal([("life", year - 1, code), fy[ALL]], life, "life adds the year")
                    else:
                        at_most(("life", year - 1, code), life, "life of award only grows")
                if year == award_first:
                    equal([fy[ALL]], life, "the award's first year is its life")
            if unit != "youth":
                continue
            for c in csos + [ALL]:
                equal([("fy", year, code, c, s) for s in settings], fy[c], "settings add up")
            for s in settings:
                equal([("fy", year, code, c, s) for c in csos], ("fy", year, code, ALL, s),
                      "CSOs add up in a setting")
            for (y, c, dimension), categories in dimensions.items():
                if (y, c) == (year, code):
                    equal(categories, fy[ALL], f"the {dimension} categories add up")
    for small, big in INCLUDED_IN:
        for figure in list(seen.texts):
            if figure[0] in ("q", "fy", "dim") and figure[2] == small:
                twin = (figure[0], figure[1], big, *figure[3:])
                if twin in seen.texts:
                    at_most(figure, twin, f"{small} are among {big}")
    for parts, value, where in seen.sums:
        equal(parts, None, f"the governorate filter's sum ({where})", value)
    for figure, texts in seen.means.items():
        if all(isinstance(text, float) for text in texts):
            count = (figure[0], figure[1], MEAN_OVER[figure[2]], *figure[3:])
            facts.append(Fact({count: -1}, -k, False, "a shown mean is over k youth or more"))
    for year, rows in seen.microdata.items() if microdata else ():
        facts += _microdata_facts(year, rows)
    return facts


def _microdata_facts(year: int, rows: list[dict]) -> list[Fact]:
    """What a year's microdata says of the youth reached (its rows are exactly those youth,
    some generalised to "*" or left out), by CSO, setting and both, and by sex, age band and
    governorate: at least the rows of that profile, at most those plus the rows that could
    be theirs ("*") and those left out (the year's youth reached minus the rows). And of
    indicators whose youth a row shows: at least as many as the rows that show it, in every
    cell."""
    facts = []
    program = ("fy", year, "youth_reached", ALL, ALL)

    def cells(row) -> list[tuple]:
        """The figures a row counts toward, for an indicator code to fill in (a generalised
        column reads "*" in the file, as ALL does here: such a row counts toward the total
        over that column, never toward one of its values)."""
        found = [("fy", year, None, cso, setting) for cso in {row["cso"], ALL}
                 for setting in {row["setting"], ALL}]
        return found + [("dim", year, None, d, row[d]) for d in ("sex", "age_band",
                                                                   "governorate")
                        if row[d] != ALL]

    def could_be(row, figure) -> bool:
        """Whether a row may be one of the youth a youth-reached figure counts."""
        if figure[0] == "fy":
            return all(row[c] in (ALL, want) or want == ALL
                       for c, want in (("cso", figure[3]), ("setting", figure[4])))
        return row[figure[3]] in (ALL, figure[4])

    exact = Counter(cell for row in rows for cell in cells(row))
    for cell in exact:
        figure = (cell[0], cell[1], "youth_reached", *cell[3:])
        if figure == program:
            continue
        possible = sum(could_be(row, figure) for row in rows)
        facts.append(Fact({figure: -1}, -exact[cell], False, "microdata rows of the profile"))
        facts.append(Fact({figure: 1, program: -1}, possible - len(rows), False,
                          "microdata rows that could be of the profile, and those left out"))
    for code, counts_in in MICRODATA_COUNTS:
        found = Counter(cell for row in rows if counts_in(row) for cell in cells(row))
        for cell, n in found.items():
            facts.append(Fact({(cell[0], cell[1], code, *cell[3:]): -1}, -n, False,
                              f"microdata rows counted in {code}"))
    return facts


@dataclass(repr=False)
class Attack:
    """The outcome: each hidden figure's interval, and facts the published values break."""

    intervals: dict
    broken: list
    unknowns: int
    facts: int
    seconds: float


def attack(seen: Seen, award_first: int, k: int, microdata: bool = False) -> Attack:
    """One integer program over every hidden figure (integer, at least 1: zeros are shown)
    and every figure a fact names that no page shows (at least 0); shown figures are
    constants. Each hidden figure is minimised and maximised. With `microdata`, what the
    microdata files say is part of the facts."""
    started = time.perf_counter()
    hidden = {f for f in seen.texts if seen.value(f) == HIDDEN}
    facts = _facts(seen, award_first, k, microdata)
    unknowns = sorted(hidden, key=repr)
    index = {f: i for i, f in enumerate(unknowns)}
    rows, lows, highs, broken = [], [], [], []
    for fact in facts:
        row, constant = {}, 0
        for figure, coefficient in fact.terms.items():
            value = seen.value(figure)
            if value is None or value == HIDDEN:
                if figure not in index:
                    index[figure] = len(unknowns)
                    unknowns.append(figure)
                row[index[figure]] = row.get(index[figure], 0) + coefficient
            else:
                constant += coefficient * value
        row = {i: c for i, c in row.items() if c}
        bound = fact.value - constant
        if not row:  # only shown figures: the pages must agree with the fact
            if (bound != 0) if fact.equality else (bound < 0):
                broken.append(f"{fact.why}: {fact.terms} (shown values break it)")
            continue
        rows.append(row)
        lows.append(bound if fact.equality else -np.inf)
        highs.append(bound)
    lower = np.array([1.0 if f in hidden else 0.0 for f in unknowns])
    intervals = {}
    for block, numbers in _blocks(rows, len(unknowns)):
        where = {j: n for n, j in enumerate(block)}
        matrix = csr_array((np.array([c for i in numbers for c in rows[i].values()], dtype=float),
                            (np.array([n for n, i in enumerate(numbers) for _j in rows[i]]),
                             np.array([where[j] for i in numbers for j in rows[i]]))),
                           shape=(len(numbers), len(block)))
        constraints = [LinearConstraint(matrix, np.array([lows[i] for i in numbers]),
                                        np.array([highs[i] for i in numbers]))] if numbers else []
        bounds = Bounds(lower[block], np.full(len(block), float(CEILING)))
        for j in block:
            if unknowns[j] not in hidden:
                continue
            ends = []
            for sign in (1.0, -1.0):
                objective = np.zeros(len(block))
                objective[where[j]] = sign
                solved = milp(objective, constraints=constraints, bounds=bounds,
                              integrality=np.ones(len(block)),
                              options={"presolve": False})  # see privacy/attack.py
                assert solved.status == 0, (
                    f"the integer program failed on {unknowns[j]} ({solved.message}): the "
                    "published figures contradict the attacker's facts, or a fact is wrong")
                ends.append(round(sign * solved.fun))
            intervals[unknowns[j]] = (ends[0], ends[1])
    assert set(intervals) == hidden
    return Attack(intervals, broken, len(unknowns), len(rows), time.perf_counter() - started)


def _blocks(rows: list[dict], size: int) -> list[tuple[list[int], list[int]]]:
    """The program is block-diagonal: unknowns linked by no fact, directly or through
    others, never bound each other. Each block (its unknowns, its rows' numbers) is solved
    alone: the same optimum as over the whole program, much faster."""
    parent = list(range(size))

    def root(j: int) -> int:
        while parent[j] != j:
            parent[j] = parent[parent[j]]
            j = parent[j]
        return j

    for row in rows:
        first, *others = row
        for j in others:
            parent[root(j)] = root(first)
    unknowns: dict = defaultdict(list)
    for j in range(size):
        unknowns[root(j)].append(j)
    numbers: dict = defaultdict(list)
    for i, row in enumerate(rows):
        numbers[root(next(iter(row)))].append(i)
    return [(block, numbers[top]) for top, block in unknowns.items()]


def narrowed(result: Attack, k: int) -> dict:
    """Hidden figures whose interval holds fewer than k-1 whole numbers ("…" says no more
    than "one of at least k-1 values")."""
    return {f: (low, high) for f, (low, high) in result.intervals.items()
            if high - low + 1 < k - 1}


def summary(seen: Seen, result: Attack, demo: Demo) -> str:
    """Figures collected, hidden, narrowed and pinned per year; what the attack cost."""
    found = narrowed(result, demo.k)
    lines = [f"{result.unknowns} unknowns, {result.facts} facts; attack {result.seconds:.1f} s"]
    for year in sorted({f[1] for f in seen.texts}):
        figures = [f for f in seen.texts if f[1] == year]
        hidden = [f for f in figures if seen.value(f) == HIDDEN]
        lines.append(f"FY{year}: {len(figures)} figures, {len(hidden)} hidden "
                     f"({100 * len(hidden) / max(len(figures), 1):.0f}%), "
                     f"{sum(f[1] == year for f in found)} narrowed, "
                     f"{sum(f[1] == year and low == high for f, (low, high) in found.items())}"
                     " pinned to one value")
    return "\n".join(lines)


def _true_values(demo: Demo, seen: Seen, figures) -> dict:
    """The true counts of some figures, from the app's own release (for checks and
    messages, never for the attack)."""
    found = {}
    with demo.app.app_context():
        releases: dict = {}

        def release(year: int):
            if year not in releases:
                releases[year] = year_release(year, demo.k, CACHE_SECONDS)
            return releases[year]

        for figure in figures:
            kind, year, code = figure[:3]
            if kind in ("q", "fy"):
                found[figure] = release(year).release.true((kind, *figure[2:]))
            elif kind == "dim":
                values = release(year).payload["dimensions"][code][figure[3]]
                found[figure] = values[sorted(values)[seen.positions[figure]]]
            elif code in release(year).payload["lifetime"]:  # youth, each counted once
                found[figure] = release(year).payload["lifetime"][code]
            else:  # figures that add up: the sum of the award's years
                first = min(demo.app.config["BLADI_AWARD_FIRST_FY"], year)
                found[figure] = sum(release(y).release.true(("fy", code, ALL, ALL))
                                    for y in range(first, year + 1))
        db.session.remove()
    return found


def _explain(seen: Seen, found: dict, truth: dict) -> str:
    """Narrowed figures, their intervals, true values and where they were read."""
    return "\n".join(
        f"  {figure}: {low}..{high}" + (f" (true {truth[figure]})" if figure in truth else "")
        + f"  [{next(iter(seen.texts[figure].values()))}]"
        for figure, (low, high) in sorted(found.items(), key=repr))


def _forget_snapshots(demo: Demo) -> None:
    """Drop the years' figures snapshots: the next page computes (and audits) them again."""
    with demo.app.app_context():
        db.session.execute(sa.delete(FiguresSnapshot))
        db.session.commit()
        db.session.remove()


# --- The tests ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seen(demo) -> Seen:
    """Everything a reviewer and the donor see on the demo, collected once."""
    started = time.perf_counter()
    found = collect(demo)
    print(f"\n{found.pages} pages and files read in {time.perf_counter() - started:.1f} s")
    for year in demo.data_years:
        assert any(f[1] == year for f in found.texts), f"nothing collected for FY{year}"
    return found


def test_every_figure_reads_the_same_on_every_page(seen):
    conflicts = seen.conflicts()
    assert not conflicts, "figures that read differently in two places:\n  " + \
        "\n  ".join(conflicts)


def _check(demo: Demo, seen: Seen, microdata: bool) -> None:
    """Attack, print the summary, and fail on any narrowed figure (with its true value)."""
    hidden = [f for f in seen.texts if seen.value(f) == HIDDEN]
    assert hidden, "nothing is hidden on the demo: the attack would prove nothing"
    result = attack(seen, demo.app.config["BLADI_AWARD_FIRST_FY"], demo.k, microdata)
    print(f"\n{'with' if microdata else 'without'} the microdata: "
          + summary(seen, result, demo))
    broken = result.broken
    assert not broken, "the published figures break the attacker's facts:\n  " + \
        "\n  ".join(broken)
    found = narrowed(result, demo.k)
    assert not found, (f"{len(found)} of {len(hidden)} hidden figures are narrowed to fewer "
                       f"than {demo.k - 1} values:\n"
                       + _explain(seen, found, _true_values(demo, seen, found)))


def test_no_hidden_figure_is_narrowed_by_the_pages_and_the_tracking_table(demo, seen):
    _check(demo, seen, microdata=False)


# The microdata's rows count youth by every column they carry, crossed: the file carries a
# column or a measure only where the tables hide none of its figures
# (services/reports/exports.publishable), so its counts undo no table's protection.
def test_the_microdata_narrows_no_hidden_figure_either(demo, seen):
    _check(demo, seen, microdata=True)


def test_the_attacker_finds_what_the_microdata_rule_protects(demo, monkeypatch):
    """The microdata with every column and measure the k-anonymity and l-diversity allow,
    as before the rule that the file carries none whose tables hide a figure: its rows
    narrow hidden figures (the microdata facts have teeth; the rule is what stops them)."""
    def everything(release):
        allowed = real(release)
        return replace(allowed, columns=frozenset(exports.QUASI_IDENTIFIERS),
                       measures=frozenset(exports.MEASURES))
    real = exports.publishable
    monkeypatch.setattr(exports, "publishable", everything)
    seen = collect(demo)
    monkeypatch.undo()
    result = attack(seen, demo.app.config["BLADI_AWARD_FIRST_FY"], demo.k, microdata=True)
    print("\nwith every column and measure in the microdata:\n" + summary(seen, result, demo))
    assert narrowed(result, demo.k), "the microdata's rows narrow nothing without the rule"


def test_the_attacker_finds_what_the_audit_protects(demo, monkeypatch):
    """The same collection and attack, with the release's audit switched off: hidden figures
    are narrowed (the attacker is not toothless, and the audit is what stops it)."""
    monkeypatch.setattr(Release, "_partners_for_narrowed", lambda self, hidden: set())
    _forget_snapshots(demo)
    try:
        seen = collect(demo)
    finally:
        monkeypatch.undo()
        _forget_snapshots(demo)
    result = attack(seen, demo.app.config["BLADI_AWARD_FIRST_FY"], demo.k)
    found = narrowed(result, demo.k)
    assert found, "without the audit, nothing is narrowed"
    truth = _true_values(demo, seen, found)
    print("\nwithout the audit:\n" + summary(seen, result, demo) + "\nfor example:\n"
          + _explain(seen, dict(sorted(found.items(), key=repr)[:5]), truth))
    # The attacker's facts are true ones: every narrowed interval holds the true count.
    assert all(low <= truth[f] <= high for f, (low, high) in found.items()), \
        _explain(seen, found, truth)


def test_a_year_keeps_its_age_bands_once_released(demo):
    """Two downloads of one year under different age bands give the youth of single ages by
    subtraction (issue 14): once a year is out, it keeps the bands it was released with,
    even when a report of the year is approved afterwards (which recomputes its figures)."""
    seen = Seen()
    reviewer, donor = _client(demo.app, Role.REVIEWER), _client(demo.app, Role.DONOR)
    _learn_the_vocabulary(reviewer, donor, demo, seen)
    year = demo.data_years[-1]
    code = next(c for c, unit in seen.units.items() if unit == "youth")
    name = next(n for n, c in seen.names.items() if c == code)

    def download() -> list:
        book = openpyxl.load_workbook(io.BytesIO(_get(
            donor, f"/reports/exports/tracking-{year}.xlsx", seen).data))
        return [(row[2], row[3]) for row in book["Disaggregation"].iter_rows(values_only=True)
                if row[:2] == (name, "Age band")]

    def set_bands(text: str) -> None:
        response = reviewer.post(f"/reports/targets?fy={year}", data={
            "action": "bands", "indicator": code, "age_bands": text})
        assert response.status_code == 302, response.status_code

    page = _get(reviewer, f"/reports/targets?fy={year}", seen).get_data(as_text=True)
    bands = re.search(rf'id="b-{code}"[^>]*value="([^"]*)"', page).group(1)
    (low, high), (low2, high2), *rest = [tuple(map(int, b.split("-"))) for b in
                                         bands.split(", ")]
    assert high2 > low2, f"cannot move the edge between the first two bands {bands}"
    moved = ", ".join(f"{a}-{b}" for a, b in [(low, high + 1), (low2 + 1, high2), *rest])
    before = download()
    fourth = next(href for href, text in _Page(_get(reviewer, "/reports/quarterly", seen)
                                               .get_data(as_text=True)).links
                  if text.endswith(f"FY{year} Q4"))
    set_bands(moved)
    try:
        assert download() == before, "the released year took the new bands at once"
        assert reviewer.post(fourth, data={"action": "approve"}).status_code == 302
        after = download()
        assert after == before, (
            f"FY{year}'s age bands changed after a report was approved: {before} then "
            f"{after}; the difference of the two downloads counts the youth of single ages")
    finally:
        set_bands(bands)
        _forget_snapshots(demo)

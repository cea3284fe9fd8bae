"""The donor's files: the indicator tracking table (XLSX and CSV) and de-identified
microdata (CSV with a data dictionary), all through the anonymiser. Every cell is
neutralised against formula injection before it is written."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import date

import openpyxl
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from openpyxl.styles import Font

from ...extensions import db
from ...models import (
    Attendance,
    Beneficiary,
    Case,
    Governorate,
    Outcome,
    QuarterlyReport,
    ReportStatus,
    Sex,
    SiteKind,
    SurveyResponse,
)
from ...models.reports import IndicatorUnit
from ...privacy.deidentify import age_band
from ...privacy.suppression import WITHHELD
from .indicators import RULES, Period
from .release import YearRelease, first_year, number, year_release
from .reports import funded_csos, indicators, targets_of

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """A cell that a spreadsheet would run as a formula is kept as text (quote first)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def approved(fiscal_year: int) -> dict[int, bool]:
    """Quarter -> whether every funded CSO's report of that quarter is approved."""
    csos = funded_csos()
    status = {}
    for quarter in range(1, 5):
        approved_count = db.session.scalar(sa.select(sa.func.count()).select_from(
            QuarterlyReport).where(QuarterlyReport.fiscal_year == fiscal_year,
                                   QuarterlyReport.quarter == quarter,
                                   QuarterlyReport.status == ReportStatus.APPROVED))
        status[quarter] = approved_count >= len(csos) > 0
    return status


def _number(shown: str):
    """A published figure as a spreadsheet number when it is one ("<5" stays text)."""
    value = number(shown)
    return shown if value is None else value


def _releases(fiscal_year: int, k: int) -> list[YearRelease]:
    """This year's release and the earlier years' of the award (life-of-award totals)."""
    seconds = current_app.config["BLADI_DASHBOARD_CACHE_SECONDS"]
    return [year_release(y, k, seconds) for y in range(
        min(first_year(), fiscal_year), fiscal_year + 1)]


def tracking_rows(fiscal_year: int, lang: str, k: int,
                  releases: list[YearRelease] | None = None) -> list[list]:
    """The indicator tracking table of a fiscal year, program-wide (all funded CSOs), from
    the year's release: every figure suppressed consistently with the dashboards."""
    releases = releases or _releases(fiscal_year, k)
    release = releases[-1]
    state = approved(fiscal_year)
    header = [_("Indicator"), _("Definition"), _("Unit"), _("Disaggregation"), _("Baseline"),
              _("Life-of-award target"), _("Annual target")] + \
        [f"Q{q}" + ("" if state[q] else f" ({_('not approved')})") for q in range(1, 5)] + \
        [_("Fiscal year"), _("Life of award to date"), _("Percent of target"), _("On track"),
         _("Notes")]
    rows = [header]
    today_period = Period.containing(date.today())
    elapsed = 4 if fiscal_year < today_period.fiscal_year else (
        today_period.quarter if fiscal_year == today_period.fiscal_year else 0)
    csos = funded_csos()
    by_code = {i.code: i for i in indicators()}
    targets = targets_of(fiscal_year)
    for indicator in indicators():
        value = _number(release.year(indicator))
        yearly = [t for o in csos if (t := targets.get((indicator.id, o.id, fiscal_year)))]
        award = [t for o in csos if (t := targets.get((indicator.id, o.id, None)))]
        annual = sum(t.value for t in yearly)
        lifetime = sum(t.value for t in award)
        baseline = sum(t.baseline or 0 for t in award)
        known = isinstance(value, int | float)
        percent = f"{round(100 * value / annual)}%" if annual and known else (
            WITHHELD if annual else "")
        on_track = "" if not annual or not elapsed or not known else (
            _("Yes") if value >= annual * elapsed / 4 else _("No"))
        rows.append([indicator.text("name", lang), indicator.text("definition", lang),
                     str(IndicatorUnit.label_of(indicator.unit)),
                     _disaggregation(indicator), baseline or "",
                     lifetime or "", annual or ""]
                    + [_number(release.quarter(indicator, "*", q)) for q in range(1, 5)]
                    + [value, _number(release.lifetime(indicator, releases[:-1])), percent,
                       on_track, _notes(indicator, release, by_code)])
    return rows


def _disaggregation(indicator) -> str:
    if indicator.rule in RULES and RULES[indicator.rule].by_youth:
        return _("sex, age band, governorate, setting, CSO")
    return _("CSO")


def _notes(indicator, release: YearRelease, by_code: dict) -> str:
    """What a reader of the row must know: entered by hand, a share, a mean."""
    if indicator.rule is None:
        return _("Entered by the CSOs, with the evidence.")
    if RULES[indicator.rule].mean:
        return _("A mean, shown only over at least %(k)d youth.", k=release.k)
    base = by_code.get("youth_baseline_endline")
    if indicator.rule == "youth_improved" and base is not None:
        part, whole = release.year(indicator), release.year(base)
        if part.isdigit() and whole.isdigit() and int(whole):
            share = round(100 * int(part) / int(whole))
            return _("Share of the youth with a baseline and an endline: %(share)d%%.",
                     share=share)
        return _("Share of the youth with a baseline and an endline: hidden.")
    return ""


def disaggregation_rows(fiscal_year: int, lang: str, k: int,
                        release: YearRelease | None = None) -> list[list]:
    """Youth-based indicators of the year by sex, age band, governorate, setting and CSO,
    from the same release as the tracking table."""
    release = release or year_release(fiscal_year, k,
                                      current_app.config["BLADI_DASHBOARD_CACHE_SECONDS"])
    names = {"sex": _("Sex"), "age_band": _("Age band"), "governorate": _("Governorate"),
             "setting": _("Setting"), "cso": _("CSO")}
    # Categories in words where they are codes (sex, setting, governorate).
    words = {"sex": {k: str(v) for k, v in Sex.labels().items()},
             "setting": {k: str(v) for k, v in SiteKind.labels().items()},
             "governorate": {g.iso_code: g.name(lang) for g in db.session.scalars(
                 sa.select(Governorate))}}
    rows = [[_("Indicator"), _("Disaggregation"), _("Category"), _("Value")]]
    for indicator in indicators():
        if indicator.rule not in RULES or not RULES[indicator.rule].by_youth:
            continue
        for dimension in ("sex", "age_band", "governorate", "setting", "cso"):
            for category, shown in release.dimension(indicator, dimension):
                category = words.get(dimension, {}).get(category, category)
                rows.append([indicator.text("name", lang), names[dimension], category,
                             _number(shown)])
    return rows


def tracking_xlsx(fiscal_years: list[int], lang: str, k: int) -> bytes:
    """The tracking table as XLSX: one sheet per fiscal year, and a disaggregation sheet."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    releases = _releases(fiscal_years[-1], k)
    by_year = {r.fiscal_year: i for i, r in enumerate(releases)}
    for fiscal_year in fiscal_years:
        _write(book.create_sheet(f"FY{fiscal_year}"), tracking_rows(
            fiscal_year, lang, k, releases[:by_year[fiscal_year] + 1]
            if fiscal_year in by_year else None), lang)
    _write(book.create_sheet(_("Disaggregation")[:31]),
           disaggregation_rows(fiscal_years[-1], lang, k, releases[-1]), lang)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _write(sheet, rows: list[list], lang: str) -> None:
    sheet.sheet_view.rightToLeft = lang == "ar"
    for row in rows:
        sheet.append([neutralise(v) for v in row])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 40
    sheet.column_dimensions["B"].width = 50


def rows_csv(rows: list[list]) -> bytes:
    """Any table as CSV, UTF-8 with BOM, neutralised."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[neutralise(v) for v in row] for row in rows])
    return buffer.getvalue().encode("utf-8-sig")


# --- Microdata ---------------------------------------------------------------------------

MICRODATA_FIELDS = ["pseudonym", "cso", "sex", "age_band", "governorate", "setting",
                    "sessions_attended", "baseline_score", "endline_score", "outcome"]
QUASI_IDENTIFIERS = ("age_band", "sex", "governorate", "setting")


def microdata(fiscal_year: int, k: int) -> Iterator[list]:
    """One row per youth reached, de-identified; rows whose age band, sex, governorate and
    setting are shared by fewer than k youth are generalised (governorate dropped), and
    removed if still too rare (k-anonymity). Rows are tuples, built as they are written, so
    memory stays flat: one pass counts the profiles, the next writes the file."""
    period = Period(fiscal_year)
    csos = {o.id: o.code for o in funded_csos()}
    attended = dict(db.session.execute(sa.select(Attendance.beneficiary_id, sa.func.count())
                                       .where(Attendance.status == "present")
                                       .group_by(Attendance.beneficiary_id)).all())
    scores: dict[str, dict[int, float]] = {"baseline": {}, "endline": {}}
    # Read in batches: 200,000 responses' JSON must not sit in memory all at once.
    for youth_id, wave, values in db.session.execute(sa.select(
            SurveyResponse.beneficiary_id, SurveyResponse.wave, SurveyResponse.scores).where(
            SurveyResponse.wave.in_(("baseline", "endline"))).execution_options(
            yield_per=5000)):
        scores[wave][youth_id] = next(iter((values or {}).values()), None)
    outcomes = dict(db.session.execute(sa.select(Case.beneficiary_id, sa.func.max(Outcome.kind))
                                       .join(Outcome, Outcome.case_id == Case.id)
                                       .group_by(Case.beneficiary_id)).all())
    youth = [(y.id, csos[y.organization_id], y.sex,
              age_band(y.birth_year, y.birth_month, period.end), y.governorate_code,
              y.setting_kind) for y in db.session.execute(sa.select(
                  Beneficiary.id, Beneficiary.organization_id, Beneficiary.sex,
                  Beneficiary.birth_year, Beneficiary.birth_month,
                  Beneficiary.governorate_code, Beneficiary.setting_kind).where(
                  Beneficiary.organization_id.in_(csos),
                  Beneficiary.first_contact_date <= period.end).execution_options(
                  yield_per=5000))]
    # QUASI_IDENTIFIERS order: age band, sex, governorate, setting.
    groups = Counter((band, sex, gov, setting) for _i, _c, sex, band, gov, setting in youth)
    coarse = Counter((band, sex, setting) for _i, _c, sex, band, _g, setting in youth)
    key = secrets.token_bytes(32)  # per export: pseudonyms cannot be joined across files
    yield MICRODATA_FIELDS
    for youth_id, cso, sex, band, governorate, setting in youth:
        if groups[(band, sex, governorate, setting)] < k:
            if coarse[(band, sex, setting)] < k:
                continue  # still rare enough to single someone out: left out
            governorate = "*"
        pseudonym = hmac.new(key, str(youth_id).encode(), hashlib.sha256).hexdigest()[:12]
        yield [pseudonym, cso, sex, band, governorate, setting, attended.get(youth_id, 0),
               scores["baseline"].get(youth_id), scores["endline"].get(youth_id),
               outcomes.get(youth_id)]


def microdata_dictionary(lang: str) -> list[list]:
    """What each microdata column means (the data dictionary)."""
    meaning = {
        "pseudonym": _("A code valid in this file only: files cannot be joined on it."),
        "cso": _("The CSO that serves the young person."),
        "sex": _("female or male"), "age_band": _("Age band at the end of the fiscal year."),
        "governorate": _("ISO 3166-2 code; * when generalised to protect rare profiles."),
        "setting": _("rehabilitation_centre, youth_centre or school"),
        "sessions_attended": _("Sessions attended, all activities."),
        "baseline_score": _("First scale score at the baseline survey."),
        "endline_score": _("First scale score at the endline survey."),
        "outcome": _("A recorded outcome (job, training completed...), if any."),
    }
    return [[_("Column"), _("Meaning")]] + [[f, meaning[f]] for f in MICRODATA_FIELDS]


def microdata_csv(fiscal_year: int, k: int) -> Iterator[bytes]:
    """The microdata as a CSV stream (UTF-8 with BOM), a chunk per 1,000 rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    for index, row in enumerate(microdata(fiscal_year, k)):
        writer.writerow(row)
        if index % 1000 == 999:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")

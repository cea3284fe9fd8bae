"""The donor's files: the indicator tracking table (XLSX and CSV) and de-identified
microdata (CSV with a data dictionary), all through the anonymiser. The files are written
by services/files.py, the one writer, which neutralises formulas in every cell."""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ...extensions import db
from ...models import (
    ActivitySession,
    Attendance,
    Beneficiary,
    Case,
    JobStage,
    Outcome,
    QuarterlyReport,
    ReportStatus,
    Sex,
    SiteKind,
    SurveyResponse,
)
from ...models.reports import IndicatorUnit
from ...privacy.deidentify import (
    DEFAULT_BANDS,
    age_band,
    k_anonymise,
    pseudonym,
    uniform_values,
    wider_bands,
)
from ...privacy.suppression import WITHHELD
from .. import jobs
from ..admin import governorate_choices
from ..files import CSV_MIMETYPE, XLSX_MIMETYPE, Sheet, csv_bytes, csv_stream, xlsx_bytes
from .indicators import RULES, Period, first_scales, youth_ids
from .release import SETTINGS, YearRelease, first_year, number, year_release
from .reports import funded_csos, indicators, targets_of


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
    """A published figure as a spreadsheet number when it is one ("…" stays text)."""
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
             "governorate": dict(governorate_choices(lang))}
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
    releases = _releases(fiscal_years[-1], k)
    by_year = {r.fiscal_year: i for i, r in enumerate(releases)}
    look = {"rtl": lang == "ar", "bold_header": True, "widths": {"A": 40, "B": 50}}
    sheets = [Sheet(f"FY{fiscal_year}", tracking_rows(
        fiscal_year, lang, k, releases[:by_year[fiscal_year] + 1]
        if fiscal_year in by_year else None), **look) for fiscal_year in fiscal_years]
    sheets.append(Sheet(_("Disaggregation"), disaggregation_rows(
        fiscal_years[-1], lang, k, releases[-1]), **look))
    return xlsx_bytes(sheets)


# --- Microdata ---------------------------------------------------------------------------

# The descriptive columns are the quasi-identifiers: someone who knows a youth knows all of
# them. The CSO implies its governorate; its generalisation comes first (below), so a "*"
# governorate never sits next to a CSO that would give it away.
QUASI_IDENTIFIERS = ("cso", "sex", "age_band", "governorate", "setting")
# The measures: each is sensitive, and blanked for a profile where it takes one value.
MEASURES = ("sessions_attended", "baseline_score", "endline_score", "outcome")
MICRODATA_FIELDS = ["pseudonym", *QUASI_IDENTIFIERS, *MEASURES]
ANY = "*"


@dataclass(frozen=True)
class Generalise:
    """One generalisation step of a profile: a column made coarser, to its wider value in
    `wider` (unchanged when absent), or to "*" when `wider` is None."""

    column: str
    wider: dict[str, str] | None = None

    def __call__(self, profile: tuple) -> tuple:
        at = QUASI_IDENTIFIERS.index(self.column)
        value = ANY if self.wider is None else self.wider.get(profile[at], profile[at])
        return (*profile[:at], value, *profile[at + 1:])

    def __str__(self) -> str:
        shown = ANY if self.wider is None else ", ".join(sorted(set(self.wider.values())))
        return f"{self.column}: {shown}"


def generalisation(bands=DEFAULT_BANDS) -> tuple[Generalise, ...]:
    """The order rare profiles are generalised in: the age band (widened, then *), the
    setting, the CSO (the governorate stays, the coarser geography), the governorate, the
    sex."""
    return (Generalise("age_band", wider_bands(bands)), Generalise("age_band"),
            Generalise("setting"), Generalise("cso"), Generalise("governorate"),
            Generalise("sex"))


GENERALISATION = generalisation()


@dataclass
class Microdata:
    """A fiscal year's de-identified rows, ready to write, and what protecting them took."""

    rows: list[tuple]  # (profile as written, youth id, *MEASURES), sorted by profile
    reached: int  # youth reached in the year: the rows before any was left out
    generalised: Counter = field(default_factory=Counter)  # steps taken -> rows
    withheld: Counter = field(default_factory=Counter)  # measure -> values blanked
    # Per export: pseudonyms cannot be joined across files.
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    allowed: Publishable | None = None  # the columns and measures the release allowed

    @property
    def suppressed(self) -> int:
        """Rows left out: their profile stayed rarer than k after every step."""
        return self.reached - len(self.rows)

    def lines(self) -> Iterator[list]:
        """The file's rows, in MICRODATA_FIELDS order: a pseudonym instead of the id."""
        for profile, youth_id, *measures in self.rows:
            yield [pseudonym(youth_id, self.key), *profile, *measures]


@dataclass(frozen=True)
class Publishable:
    """What a year's microdata may carry beside its rows, so that it never tells a figure
    that the year's release (the tables of every page and export) hides."""

    columns: frozenset[str]  # descriptive columns written; the others read "*" on every row
    measures: frozenset[str]  # measures written; the others are blank on every row
    bands: tuple  # the age bands of the release's youth reached (frozen once released)
    rows: bool  # False: the year's total of youth reached is hidden, so no row is written


def publishable(release: YearRelease) -> Publishable:
    """The columns and measures a year's microdata may carry (docs/PRIVACY.md).

    The file's rows cross every column with every other, which no table does. If it carried
    a column whose table hides some figure, the rows would count that figure exactly (or
    count every other one, leaving it to a subtraction); generalising only the rows of the
    hidden figures would not do either, as the same youth are counted by the other columns'
    tables too. So a column is written for the year only when every figure of youth reached
    by that column is shown (by CSO: the CSO-by-setting table too, when the setting is
    written), and a measure only when every figure of each indicator it tells (the rule's
    `shown_by`), by the written columns and in total, is shown. A year whose total is hidden
    has no rows. k-anonymity and l-diversity then apply on top, as before."""
    youth = [i for i in indicators() if i.rule in RULES]
    reached = next((i for i in youth if i.rule == "youth_reached"), None)
    bands = tuple(tuple(b) for b in release.payload["age_bands"].get(
        reached.code if reached else "", ())) or DEFAULT_BANDS
    if reached is None or release.release.hidden(("fy", reached.code, ANY, ANY)):
        return Publishable(frozenset(), frozenset(), bands, False)

    def shown(indicator, figures) -> bool:
        # A category missing from an indicator's table is a zero (no youth of it there).
        return not any(_is_hidden(release, indicator, figure) for figure in figures)

    def by(indicator, column: str, written: set[str]) -> list[tuple]:
        """The figures of an indicator's year by one column (by CSO: and by setting)."""
        code = indicator.code
        if column == "cso":
            settings = SETTINGS if "setting" in written else []
            return [("fy", code, c, s) for c in release.csos for s in [ANY, *settings]]
        if column == "setting":
            return [("fy", code, ANY, s) for s in SETTINGS]
        return [(column, code, category) for category in release.payload["dimensions"].get(
            code, {}).get(column, {})]

    # The setting first: whether the CSO's figures are checked by setting depends on it.
    columns: set[str] = set()
    for column in ("setting", "cso", "sex", "age_band", "governorate"):
        if shown(reached, by(reached, column, columns)):
            columns.add(column)
    measures = set(MEASURES)
    for indicator in youth:
        rule = RULES[indicator.rule]
        if not rule.shown_by:
            continue
        figures = [("fy", indicator.code, ANY, ANY)]
        for column in columns if not rule.mean else columns & {"cso"}:
            figures += by(indicator, column, columns)
        if not shown(indicator, figures):
            measures -= set(rule.shown_by)
    return Publishable(frozenset(columns), frozenset(measures), bands, True)


def _is_hidden(release: YearRelease, indicator, figure: tuple) -> bool:
    """Whether the release hides one figure of an indicator (a mean: its count of youth)."""
    if RULES[indicator.rule].mean:
        cso, setting = figure[2], figure[3]
        return setting == ANY and release.year(indicator, cso) == WITHHELD
    try:
        return release.release.hidden(figure)
    except KeyError:  # a category without youth: not in the tables, a zero
        return False


def microdata_table(fiscal_year: int, k: int) -> Microdata:
    """One row per youth reached in the fiscal year (the indicator's own query), with the
    sessions, scores and outcome dated within that year, carrying only the columns and
    measures the year's release allows (`publishable`), made k-anonymous over every
    descriptive column as written (privacy.deidentify.k_anonymise, GENERALISATION in order,
    then rows left out) and l-diverse (a measure with one value in a profile is blanked
    there). Rows are small tuples sharing one tuple per profile (100,000 youth: about 20
    MB), in random order within a profile, so their order says nothing of when a youth was
    registered."""
    period = Period(fiscal_year)
    release = year_release(fiscal_year, k, current_app.config["BLADI_DASHBOARD_CACHE_SECONDS"])
    allowed = publishable(release)
    if not allowed.rows:
        reached = db.session.scalar(sa.select(sa.func.count()).select_from(youth_ids(
            "youth_reached", period, [o.id for o in funded_csos()]).subquery()))
        return Microdata([], reached, allowed=allowed)
    csos = {o.id: o.code for o in funded_csos()}
    attended, baseline, endline, outcome = _measures(period)
    kept = [column in allowed.columns for column in QUASI_IDENTIFIERS]
    written_measures = [measure in allowed.measures for measure in MEASURES]
    rows, shared = [], {}
    for youth_id, org_id, sex, born, month, governorate, setting in db.session.execute(
            sa.select(Beneficiary.id, Beneficiary.organization_id, Beneficiary.sex,
                      Beneficiary.birth_year, Beneficiary.birth_month,
                      Beneficiary.governorate_code, Beneficiary.setting_kind).where(
                Beneficiary.id.in_(youth_ids("youth_reached", period, list(csos))),
                Beneficiary.organization_id.in_(csos)).execution_options(yield_per=5000)):
        profile = tuple(value if keep else ANY for value, keep in zip(
            (csos[org_id], sex, age_band(born, month, period.end, allowed.bands), governorate,
             setting), kept, strict=True))
        measures = (attended.get(youth_id, 0), baseline.get(youth_id), endline.get(youth_id),
                    outcome.get(youth_id))
        rows.append((shared.setdefault(profile, profile),  # one copy of each profile
                     youth_id, *(value if keep else None
                                 for value, keep in zip(measures, written_measures,
                                                        strict=True))))
    del attended, baseline, endline, outcome
    steps = generalisation(allowed.bands)
    written, taken = k_anonymise([row[0] for row in rows], k, steps)
    for index, profile in enumerate(written):  # in place, the rows that changed only
        if profile is None or profile is not rows[index][0]:
            rows[index] = profile and (shared.setdefault(profile, profile), *rows[index][1:])
    rows = [row for row in rows if row is not None]
    del written, shared
    uniform = uniform_values((row[0], row[2:]) for row in rows)
    withheld: Counter = Counter()
    for index, (profile, youth_id, *measures) in enumerate(rows):
        if blank := uniform.get(profile):
            rows[index] = (profile, youth_id,
                           *(None if i in blank else value for i, value in enumerate(measures)))
            withheld.update(MEASURES[i] for i in blank if measures[i] is not None)
    random.Random(secrets.randbits(128)).shuffle(rows)  # seeded from the system's randomness
    rows.sort(key=itemgetter(0))  # stable: still random within a profile
    return Microdata(rows, len(taken), Counter(taken), withheld, allowed=allowed)


def _measures(period: Period) -> tuple[dict, dict, dict, dict]:
    """Youth id -> value of each measure, dated within the period: sessions attended
    (present), the baseline and endline scores (the first scale of the first survey the
    youth answered in the period, as the outcome indicators read it: first baseline, last
    endline), the latest outcome."""
    start, end = period.start, period.end
    attended = {youth_id: count for youth_id, count in db.session.execute(sa.select(
        Attendance.beneficiary_id, sa.func.count()).join(
        ActivitySession, ActivitySession.id == Attendance.session_id).where(
        Attendance.status == "present", ActivitySession.date.between(start, end)).group_by(
        Attendance.beneficiary_id).execution_options(yield_per=5000))}
    baseline: dict[int, float | None] = {}
    endline: dict[int, float | None] = {}
    for survey_id, scale in first_scales():
        # Scores of two surveys are not comparable: a youth's come from the first survey
        # they answered in the period (the set is only built when there is a second one).
        earlier = baseline.keys() | endline.keys() if baseline or endline else set()
        # The database reads the one score out of the JSON: no document is decoded here.
        for youth_id, wave, score in db.session.execute(sa.select(
                SurveyResponse.beneficiary_id, SurveyResponse.wave,
                SurveyResponse.scores[scale].as_float()).where(
                SurveyResponse.survey_id == survey_id,
                SurveyResponse.wave.in_(("baseline", "endline")),
                SurveyResponse.submitted_on.between(start, end)).order_by(
                SurveyResponse.submitted_on, SurveyResponse.id).execution_options(
                yield_per=5000)):
            if youth_id in earlier:
                continue
            if wave == "endline":
                endline[youth_id] = score
            else:
                baseline.setdefault(youth_id, score)
    outcomes = dict(db.session.execute(sa.select(Case.beneficiary_id, Outcome.kind).join(
        Outcome, Outcome.case_id == Case.id).where(Outcome.on_date.between(start, end))
        .order_by(Outcome.on_date, Outcome.id)).all())  # the latest one wins
    return attended, baseline, endline, outcomes


def microdata(fiscal_year: int, k: int) -> Iterator[list]:
    """The microdata file's rows, header first (microdata_table); computed when the first
    row is asked for, so a streamed response starts at once."""
    yield MICRODATA_FIELDS
    yield from microdata_table(fiscal_year, k).lines()


def microdata_dictionary(lang: str, k: int | None = None) -> list[list]:
    """What each microdata column means (the data dictionary), then which youth the rows
    are and how the file is protected. A separate download from the file: it says how, not
    how many (that changes with every year and every day)."""
    k = current_app.config["BLADI_SMALL_CELL_K"] if k is None else k
    meaning = {
        "pseudonym": _("A code valid in this file only: files cannot be joined on it."),
        "cso": _("The CSO that serves the young person; * when generalised."),
        "sex": _("female or male; * when generalised."),
        "age_band": _("Age band at the end of the fiscal year; a wider band or * when "
                      "generalised."),
        "governorate": _("ISO 3166-2 code; * when generalised to protect rare profiles."),
        "setting": _("rehabilitation_centre, youth_centre or school; * when generalised."),
        "sessions_attended": _("Sessions attended within the fiscal year, all activities; "
                               "blank when withheld."),
        "baseline_score": _("First scale score of the baseline survey answered within the "
                            "fiscal year; blank when none or withheld."),
        "endline_score": _("First scale score of the endline survey answered within the "
                           "fiscal year; blank when none or withheld."),
        "outcome": _("The latest outcome recorded within the fiscal year (job, training "
                     "completed...); blank when none or withheld."),
    }
    steps = "; ".join(f"{n}. {step}" for n, step in enumerate(GENERALISATION, start=1))
    notes = [
        [_("Rows"), _("One row per young person reached in the fiscal year (enrolled at a "
                      "site on at least one of its days): the youth that the indicator of "
                      "youth reached counts. Rows are sorted by profile.")],
        [_("Profile"), _(
            "The columns cso, sex, age_band, governorate and setting. Every profile in the "
            "file (these five columns as written, * included) is shared by at least %(k)d "
            "rows. A rarer profile is generalised, step by step in this order, until it is "
            "not: %(steps)s. Rows whose profile is still rarer after the last step are left "
            "out, so the file can hold fewer youth than the published figures.",
            k=k, steps=steps)],
        [_("Columns and measures the tables hide"), _(
            "A year's file carries a descriptive column only when the published tables show "
            "every figure of youth reached by that column, and a measure only when they show "
            "every figure of the indicators it would count (in total and by the columns the "
            "file carries). Otherwise the column reads * and the measure is blank on every "
            "row of that year, so that the rows never tell a figure the tables hide. A year "
            "whose total of youth reached is hidden has no rows.")],
        [_("Withheld values"), _(
            "Where the rows of a profile show a single value of sessions_attended, "
            "baseline_score, endline_score or outcome (blanks aside), that column is blanked "
            "for all of them: knowing someone's profile would otherwise tell their value.")],
    ]
    return [[_("Column"), _("Meaning")]] + [[f, meaning[f]] for f in MICRODATA_FIELDS] + notes


def microdata_csv(fiscal_year: int, k: int) -> Iterator[bytes]:
    """The microdata as a CSV stream (UTF-8 with BOM), a chunk per 1,000 rows."""
    return csv_stream(microdata(fiscal_year, k))


# --- The donor's files, made by background jobs ------------------------------------------

@jobs.job_kind("reports.tracking", _l("Indicator tracking table"), back="reports.exports_page",
               back_label=_l("Files for the donor"))
def tracking_job(job, progress) -> jobs.Outcome:
    """The tracking table of the asked years (XLSX, or one year as CSV)."""
    params = job.params
    years, fmt, k = params["years"], params["fmt"], params["k"]
    progress(JobStage.COMPUTED, 0, len(years))
    if fmt == "xlsx":
        body, mimetype = tracking_xlsx(years, job.language, k), XLSX_MIMETYPE
    else:
        body, mimetype = csv_bytes(tracking_rows(years[-1], job.language, k)), CSV_MIMETYPE
    progress(JobStage.COMPUTED, len(years), len(years))
    return jobs.Outcome(result=body, result_name=f"bladi-indicators-FY{years[-1]}.{fmt}",
                        result_mimetype=mimetype)


@jobs.job_kind("reports.microdata", _l("De-identified microdata"), back="reports.exports_page",
               back_label=_l("Files for the donor"))
def microdata_job(job, progress) -> jobs.Outcome:
    """The year's de-identified microdata (CSV)."""
    year, k = job.params["fiscal_year"], job.params["k"]
    chunks = []
    for count, chunk in enumerate(microdata_csv(year, k), start=1):
        chunks.append(chunk)
        progress(JobStage.ROWS, count * 1000, 0)
    return jobs.Outcome(result=b"".join(chunks), result_name=f"bladi-microdata-FY{year}.csv",
                        result_mimetype=CSV_MIMETYPE)

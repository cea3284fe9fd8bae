"""Views of the reports blueprint: dashboards, quarterly reports, targets."""

from __future__ import annotations

from datetime import date

from flask import abort, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...errors import render_error
from ...extensions import db
from ...i18n import text_direction, ui_language
from ...models import Indicator, QuarterlyReport
from ...policy import Perm, can, get_or_404, requires, scoped
from ...services.reports import reports as service
from ...services.reports.charts import bar_chart
from ...services.reports.indicators import RULES, Period
from ...services.reports.quality import flags_from
from ...services.reports.release import (
    ALL,
    SETTINGS,
    number,
    progress_rows,
    report_figures,
    year_release,
)
from .. import attempt, flash_refusal, run_action
from . import bp


def refuse(status: int, message: str):
    """Stop the request with an error page (or JSON) saying `message`."""
    abort(make_response(render_error(status, message=message)))


def _whole(value) -> int | None:
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def asked_period() -> Period:
    """The period a report or export was asked for: the year in the URL or ?fy=, the
    quarter in ?q= (this quarter by default). A year outside the award's years
    (`reporting_years`) or a quarter other than 1-4 answers 404 with a message."""
    today = Period.containing(date.today())
    years = service.reporting_years()
    year = today.fiscal_year
    for asked in ((request.view_args or {}).get("year"), request.args.get("fy")):
        if asked in (None, ""):
            continue
        year = _whole(asked)
        if year not in years:
            refuse(404, _("There are no figures for “%(year)s”: choose a fiscal year from "
                          "%(first)d to %(last)d.", year=str(asked)[:12], first=years.start,
                          last=years.stop - 1))
    quarter = request.args.get("q") or today.quarter
    if _whole(quarter) not in (1, 2, 3, 4):
        refuse(404, _("There is no quarter “%(quarter)s”: choose Q1, Q2, Q3 or Q4.",
                      quarter=str(quarter)[:12]))
    return Period(year, _whole(quarter))


@bp.before_request
def check_period() -> None:
    """Every report and export route, before anything is computed: the period asked for
    exists (a year of 9000 must not start a computation of 7,000 years)."""
    asked_period()


@bp.app_template_global()
def fiscal_years() -> range:
    """The years a fiscal-year field may take (its min and max)."""
    return service.reporting_years()


def _chosen(name: str, allowed, title: str) -> str | None:
    """A dashboard filter's value (None when not set); 400 for a value not offered."""
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        refuse(400, _("“%(value)s” is not one of the choices of the filter %(filter)s.",
                      value=value[:40], filter=title))
    return value


def _cache_seconds() -> int:
    return current_app.config["BLADI_DASHBOARD_CACHE_SECONDS"]


def _k() -> int:
    return current_app.config["BLADI_SMALL_CELL_K"]


@bp.get("/")
@requires(Perm.HOME)
def dashboard():
    """A CSO manager: their CSO, exact. Reviewers and admins: every CSO, through the
    anonymiser. Anyone else: the approved reports."""
    period, lang = asked_period(), ui_language()
    if can(current_user, Perm.REPORTS_CSO):
        rows = service.progress(current_user.organization, period, None)
        return render_template("reports/cso.html", rows=rows, period=period, lang=lang,
                               reports=_reports())
    if not can(current_user, Perm.REPORTS_REVIEW):
        return redirect(url_for(".quarterly"))
    return _reviewer_dashboard(period, lang)


def _reviewer_dashboard(period: Period, lang: str):
    k = _k()
    release = year_release(period.fiscal_year, k, _cache_seconds())
    every = service.funded_csos()
    csos = every
    governorates = sorted({o.governorate_code for o in every})
    governorate = _chosen("governorate", governorates, _("Governorate"))
    if governorate:
        csos = [o for o in csos if o.governorate_code == governorate]
    chosen = _chosen("cso", {o.code for o in every}, _("CSO"))
    if chosen:
        csos = [o for o in csos if o.code == chosen]
    setting = _chosen("setting", SETTINGS, _("Setting")) or ALL
    codes = [o.code for o in csos]
    by_code = {i.code: i for i in service.indicators()}
    indicator = by_code[_chosen("indicator", by_code, _("Indicator"))
                        or service.indicators()[0].code]
    totals = progress_rows(release, csos, setting)
    trend = [(code, [release.quarter(indicator, code, q) for q in range(1, 5)],
              release.year(indicator, code)) for code in codes]
    program = ([release.quarter(indicator, ALL, q) for q in range(1, 5)],
               release.year(indicator))
    bars = [(code, number(year), year) for code, _quarters, year in trend]
    chart = bar_chart(indicator.text("name", lang), bars, rtl=text_direction() == "rtl")
    return render_template(
        "reports/reviewer.html", period=period, lang=lang, totals=totals, trend=trend,
        program=program, indicator=indicator, indicators=service.indicators(), chart=chart,
        flags=flags_from(release.payload["quality"], csos, period.quarter), all_csos=every,
        k=k, setting=setting, settings=SETTINGS,
        computed_at=release.computed_at, governorates=governorates)


def _reports():
    return db.session.scalars(scoped(QuarterlyReport, current_user).order_by(
        QuarterlyReport.fiscal_year.desc(), QuarterlyReport.quarter.desc())).all()


@bp.get("/quarterly")
@requires(Perm.HOME)
def quarterly():
    """Quarterly reports the user may see (the donor: approved ones)."""
    if not any(can(current_user, p) for p in (Perm.REPORTS_CSO, Perm.REPORTS_REVIEW,
                                                 Perm.REPORTS_APPROVED)):
        abort(403)
    return render_template("reports/quarterly.html", reports=_reports(), lang=ui_language(),
                           period=Period.containing(date.today()))


@bp.post("/quarterly/generate")
@requires(Perm.REPORTS_CSO)
def generate():
    """Create or refresh this quarter's report from the data."""
    report, failure = attempt(lambda: service.generate_report(
        current_user, current_user.organization, asked_period()))
    if failure is not None:
        flash_refusal(failure)
        return redirect(url_for(".quarterly"))
    return redirect(url_for(".report", report_id=report.uuid))


@bp.route("/quarterly/<uuid:report_id>", methods=["GET", "POST"])
@requires(Perm.HOME)
def report(report_id):
    """A report: figures (hidden below k for anyone outside the CSO), narrative, review."""
    item = get_or_404(QuarterlyReport, report_id, current_user)
    own = can(current_user, Perm.REPORTS_CSO)
    if request.method == "POST":
        return _act_on_report(item, own)
    figures = {code: f"{v:g}" for code, v in item.figures.items()}
    if not own:  # outside the CSO: only what the year's release shows
        figures = report_figures(item, year_release(item.fiscal_year, _k(),
                                                    _cache_seconds()))
    return render_template(
        "reports/report.html", report=item, figures=figures, own=own, lang=ui_language(),
        indicators=service.indicators(),
        differences=service.differences(item) if can(current_user, Perm.REPORTS_REVIEW)
        else {}, can_review=can(current_user, Perm.REPORTS_REVIEW), errors={})


def _act_on_report(item: QuarterlyReport, own: bool):
    action = request.form.get("action")
    back = redirect(url_for(".report", report_id=item.uuid))
    if action in ("save", "submit") and own:
        get_or_404(QuarterlyReport, item.uuid, current_user, "edit")

        def save():
            service.save_narrative(current_user, item, request.form)
            if action == "submit":
                service.submit_report(current_user, item)

        run_action(_("Report submitted.") if action == "submit" else _("Saved."), save)
        return back
    if action in ("comment", "return", "approve") and can(current_user, Perm.REPORTS_REVIEW):
        run_action(_("Saved."), service.review_report, current_user, item, action,
                   request.form.get("comment", ""))
        return back
    abort(403)


@bp.route("/targets", methods=["GET", "POST"])
@requires(Perm.REPORTS_REVIEW)
def targets():
    """Targets per indicator, CSO and fiscal year (and life of award), with baselines."""
    period = asked_period()
    csos = service.funded_csos()
    if request.method == "POST" and request.form.get("action") == "bands":
        indicator = db.session.scalars(db.select(Indicator).where(
            Indicator.code == request.form.get("indicator"))).first()
        if indicator is None:
            abort(400)
        run_action(_("Saved."), service.set_age_bands, current_user, indicator,
                   request.form.get("age_bands", ""))
        return redirect(url_for(".targets", fy=period.fiscal_year, q=period.quarter))
    if request.method == "POST":
        org = next((o for o in csos if o.code == request.form.get("cso")), None)
        indicator = db.session.scalars(db.select(Indicator).where(
            Indicator.code == request.form.get("indicator"))).first()
        if org is None or indicator is None:
            abort(400)
        year = None if request.form.get("scope") == "award" else period.fiscal_year
        run_action(_("Target saved."), service.set_target, current_user, indicator, org, year,
                   None, request.form.get("value"), request.form.get("baseline"))
        return redirect(url_for(".targets", fy=period.fiscal_year, q=period.quarter))
    targets = service.targets_of(period.fiscal_year)
    rows = [(i, o, targets.get((i.id, o.id, period.fiscal_year)), targets.get((i.id, o.id, None)))
            for i in service.indicators() for o in csos]
    youth_indicators = [i for i in service.indicators()
                        if i.rule in RULES and RULES[i.rule].by_youth]
    return render_template("reports/targets.html", rows=rows, period=period,
                           lang=ui_language(), youth_indicators=youth_indicators)


@bp.post("/manual")
@requires(Perm.REPORTS_CSO)
def manual():
    """Enter a manual indicator's value for the quarter, with its evidence."""
    indicator = db.session.scalars(db.select(Indicator).where(
        Indicator.code == request.form.get("indicator"))).first()
    if indicator is None:
        abort(400)
    period = asked_period()
    run_action(_("Saved."), service.enter_manual_value, current_user, indicator,
               current_user.organization, period, request.form.get("value"),
               request.form.get("evidence", ""))
    return redirect(url_for(".dashboard", fy=period.fiscal_year, q=period.quarter))



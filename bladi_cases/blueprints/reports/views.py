"""Views of the reports blueprint: dashboards, quarterly reports, targets."""

from __future__ import annotations

from datetime import date

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

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


def _period() -> Period:
    today = Period.containing(date.today())
    try:
        year = int(request.args.get("fy", today.fiscal_year))
        quarter = int(request.args.get("q", today.quarter))
    except ValueError:
        return today
    if not 2018 <= year <= 2100 or quarter not in (1, 2, 3, 4):
        return today
    return Period(year, quarter)


def _cache_seconds() -> int:
    return current_app.config["BLADI_DASHBOARD_CACHE_SECONDS"]


def _k() -> int:
    return current_app.config["BLADI_SMALL_CELL_K"]


@bp.get("/")
@requires(Perm.HOME)
def dashboard():
    """A CSO manager: their CSO, exact. Reviewers and admins: every CSO, through the
    anonymiser. Anyone else: the approved reports."""
    period, lang = _period(), ui_language()
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
    governorate = request.args.get("governorate") or None
    if governorate:
        csos = [o for o in csos if o.governorate_code == governorate]
    chosen = request.args.get("cso")
    if chosen:
        csos = [o for o in csos if o.code == chosen]
    setting = request.args.get("setting") if request.args.get("setting") in SETTINGS else ALL
    codes = [o.code for o in csos]
    indicator = next((i for i in service.indicators()
                      if i.code == request.args.get("indicator")), service.indicators()[0])
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
        computed_at=release.computed_at,
        governorates=sorted({o.governorate_code for o in every}))


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
        current_user, current_user.organization, _period()))
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
    period = _period()
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
    run_action(_("Saved."), service.enter_manual_value, current_user, indicator,
               current_user.organization, _period(), request.form.get("value"),
               request.form.get("evidence", ""))
    return redirect(url_for(".dashboard", fy=_period().fiscal_year, q=_period().quarter))



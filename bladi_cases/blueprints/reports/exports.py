"""The donor's downloads: tracking table (XLSX, CSV) and de-identified microdata. The
fiscal year was checked by `check_period` (views.py) before any of these runs."""

from __future__ import annotations

from flask import Response, current_app, redirect, render_template, url_for
from flask_login import current_user

from ...i18n import ui_language
from ...policy import Perm, requires
from ...services import jobs
from ...services.audit import Action, record
from ...services.files import CSV_MIMETYPE, csv_bytes, download
from ...services.reports import exports
from ...services.reports.reports import reporting_years
from ..limits import export_limit
from . import bp
from .views import asked_period


@bp.get("/exports")
@requires(Perm.REPORTS_APPROVED)
def exports_page():
    """The files for the donor, by fiscal year, with which quarters are approved."""
    year = asked_period().fiscal_year
    return render_template("reports/exports.html", year=year, approved=exports.approved(year))


@bp.get("/exports/tracking-<int:year>.<fmt>")
@requires(Perm.REPORTS_APPROVED)
@export_limit
def tracking(year: int, fmt: str):
    """The indicator tracking table of a fiscal year (and the previous one, in XLSX), made
    by a background job; its page offers the file when ready."""
    if fmt not in ("xlsx", "csv"):
        return Response(status=404)
    k = current_app.config["BLADI_SMALL_CELL_K"]
    record(Action.EXPORT_DOWNLOADED, actor=current_user, detail={"file": f"tracking.{fmt}",
                                                                 "fy": year})
    years = (list(range(max(reporting_years().start, year - 1), year + 1)) if fmt == "xlsx"
             else [year])
    job = jobs.start("reports.tracking", current_user, {"years": years, "fmt": fmt, "k": k})
    return redirect(url_for("jobs.show", job_id=job.uuid))


@bp.get("/exports/microdata-<int:year>.csv")
@requires(Perm.REPORTS_APPROVED)
@export_limit
def microdata(year: int):
    """De-identified microdata (one row per youth), made by a background job."""
    k = current_app.config["BLADI_SMALL_CELL_K"]
    record(Action.EXPORT_DOWNLOADED, actor=current_user, detail={"file": "microdata",
                                                                 "fy": year})
    job = jobs.start("reports.microdata", current_user, {"fiscal_year": year, "k": k})
    return redirect(url_for("jobs.show", job_id=job.uuid))


@bp.get("/exports/microdata-dictionary.csv")
@requires(Perm.REPORTS_APPROVED)
def dictionary():
    """What each microdata column means."""
    return download(csv_bytes(exports.microdata_dictionary(ui_language())),
                    "bladi-microdata-dictionary.csv", CSV_MIMETYPE)

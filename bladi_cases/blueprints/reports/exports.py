"""The donor's downloads: tracking table (XLSX, CSV) and de-identified microdata."""

from __future__ import annotations

from datetime import date

from flask import Response, current_app, render_template, request, stream_with_context
from flask_login import current_user

from ...i18n import ui_language
from ...policy import Perm, requires
from ...services.audit import Action, record
from ...services.reports import exports
from ...services.reports.indicators import Period
from . import bp

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _fiscal_year() -> int:
    current = Period.containing(date.today()).fiscal_year
    try:
        year = int(request.args.get("fy", current))
    except ValueError:
        return current
    return year if 2018 <= year <= current + 1 else current


def _attachment(body, mimetype: str, name: str) -> Response:
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/exports")
@requires(Perm.REPORTS_APPROVED)
def exports_page():
    """The files for the donor, by fiscal year, with which quarters are approved."""
    year = _fiscal_year()
    return render_template("reports/exports.html", year=year, approved=exports.approved(year))


@bp.get("/exports/tracking-<int:year>.<fmt>")
@requires(Perm.REPORTS_APPROVED)
def tracking(year: int, fmt: str):
    """The indicator tracking table of a fiscal year (and the previous ones, in XLSX)."""
    k, lang = current_app.config["BLADI_SMALL_CELL_K"], ui_language()
    record(Action.EXPORT_DOWNLOADED, actor=current_user, detail={"file": f"tracking.{fmt}",
                                                                 "fy": year})
    if fmt == "xlsx":
        years = list(range(max(2019, year - 1), year + 1))
        return _attachment(exports.tracking_xlsx(years, lang, k), XLSX,
                           f"bladi-indicators-FY{year}.xlsx")
    if fmt == "csv":
        return _attachment(exports.rows_csv(exports.tracking_rows(year, lang, k)),
                           "text/csv; charset=utf-8", f"bladi-indicators-FY{year}.csv")
    return Response(status=404)


@bp.get("/exports/microdata-<int:year>.csv")
@requires(Perm.REPORTS_APPROVED)
def microdata(year: int):
    """De-identified microdata, streamed (one row per youth)."""
    k = current_app.config["BLADI_SMALL_CELL_K"]
    record(Action.EXPORT_DOWNLOADED, actor=current_user, detail={"file": "microdata",
                                                                 "fy": year})
    return _attachment(stream_with_context(exports.microdata_csv(year, k)),
                       "text/csv; charset=utf-8", f"bladi-microdata-FY{year}.csv")


@bp.get("/exports/microdata-dictionary.csv")
@requires(Perm.REPORTS_APPROVED)
def dictionary():
    """What each microdata column means."""
    return _attachment(exports.rows_csv(exports.microdata_dictionary(ui_language())),
                       "text/csv; charset=utf-8", "bladi-microdata-dictionary.csv")

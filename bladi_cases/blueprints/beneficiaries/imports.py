"""Spreadsheet import views: template, upload and check, duplicates, confirmation."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ...extensions import db
from ...i18n import ui_language
from ...models import Job, JobStatus
from ...policy import Perm, get_or_404, requires
from ...services import jobs
from ...services.beneficiaries import imports as importer
from ...services.beneficiaries import templates
from ...services.files import CSV_MIMETYPE, XLSX_MIMETYPE, download
from . import bp
from .forms import ImportConfirmForm, ImportForm

MIMETYPES = {"csv": CSV_MIMETYPE, "xlsx": XLSX_MIMETYPE}


@bp.get("/import/template.<fmt>")
@requires(Perm.BENEFICIARIES_IMPORT)
def import_template(fmt: str):
    """Download the import template, with headers in the user's language."""
    if fmt not in MIMETYPES:
        abort(404)
    lang = ui_language()
    body = (templates.template_csv(lang) if fmt == "csv"
            else templates.template_xlsx(lang, current_user.organization))
    return download(body, f"bladi-beneficiaries-{lang}.{fmt}", MIMETYPES[fmt])


@bp.route("/import", methods=["GET", "POST"])
@requires(Perm.BENEFICIARIES_IMPORT)
def import_upload():
    """Upload a spreadsheet: a background job checks every row, then (after any decision on
    possible duplicates) writes them all, or nothing if one is wrong. Its page shows how far
    it is."""
    form = ImportForm()
    if form.validate_on_submit():
        upload = form.upload.data
        data = upload.read(importer.MAX_BYTES + 1)
        try:
            job = importer.start_import(current_user, upload.filename, data)
        except importer.ImportRefused as refused:
            return _refused(form, refused.messages, refused.status)
        except jobs.JobRefused as refused:
            return _refused(form, [refused.message], 409)
        return redirect(url_for("jobs.show", job_id=job.uuid))
    return render_template("beneficiaries/import.html", form=form, problems=[]), (
        422 if form.errors else 200)


def _refused(form, messages: list[str], status: int):
    """The upload page with why nothing was imported."""
    db.session.rollback()
    return render_template("beneficiaries/import.html", form=form, problems=messages), status


@bp.get("/import/<uuid:job_id>/duplicates")
@requires(Perm.BENEFICIARIES_IMPORT)
def import_duplicates(job_id):
    """An import waiting for the person to decide, row by row, on possible duplicates."""
    job = get_or_404(Job, job_id, current_user)
    if job.kind != "beneficiaries.import" or job.status != JobStatus.WAITING:
        return redirect(url_for("jobs.show", job_id=job.uuid))
    return render_template("beneficiaries/import_duplicates.html", job=job,
                           outcome=jobs.outcome_of(job), confirm=ImportConfirmForm())


@bp.post("/import/<uuid:job_id>/duplicates")
@requires(Perm.BENEFICIARIES_IMPORT)
def import_confirm(job_id):
    """Go on with the import after the person decided on each possible duplicate."""
    job = get_or_404(Job, job_id, current_user)
    form = ImportConfirmForm()
    if not form.validate():
        abort(400)
    decisions = {key.removeprefix("row-"): value for key, value in request.form.items()
                 if key.startswith("row-")}
    try:
        importer.decide_duplicates(job, decisions)
    except jobs.JobRefused as refused:
        flash(refused.message, "error")
    return redirect(url_for("jobs.show", job_id=job.uuid))

"""Spreadsheet import views: template, upload and check, duplicates, confirmation."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...extensions import db
from ...i18n import ui_language
from ...policy import Perm, requires
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


def _finish(check, skip: set[int]):
    codes = importer.import_rows(current_user, current_user.organization, check, skip)
    flash(_("%(n)d young people imported.", n=len(codes)), "success")
    return redirect(url_for(".index"))


@bp.route("/import", methods=["GET", "POST"])
@requires(Perm.BENEFICIARIES_IMPORT)
def import_upload():
    """Upload a spreadsheet: every row is checked; nothing is saved unless all are valid."""
    form = ImportForm()
    if form.validate_on_submit():
        upload = form.upload.data
        data = upload.read(importer.MAX_BYTES + 1)
        try:
            check = importer.check_file(current_user.organization, upload.filename, data)
        except importer.ImportRefused as refused:
            return _refused(form, refused)
        if not check.duplicates:
            return _finish(check, set())
        token = importer.stash_upload(current_user, upload.filename, data)
        return render_template("beneficiaries/import_duplicates.html", check=check,
                               confirm=ImportConfirmForm(token=token))
    return render_template("beneficiaries/import.html", form=form, problems=[]), (
        422 if form.errors else 200)


def _refused(form, refused: importer.ImportRefused):
    """The upload page with why nothing was imported (422, or 413 for a file too large)."""
    db.session.rollback()
    return render_template("beneficiaries/import.html", form=form,
                           problems=refused.messages), refused.status


@bp.post("/import/confirm")
@requires(Perm.BENEFICIARIES_IMPORT)
def import_confirm():
    """Import after the user decided, row by row, on the possible duplicates."""
    form = ImportConfirmForm()
    stashed = importer.take_stash(current_user, form.token.data) if form.validate() else None
    if stashed is None:
        flash(_("This upload has expired. Upload the file again."), "error")
        return redirect(url_for(".import_upload"))
    try:
        check = importer.check_file(current_user.organization, *stashed)
    except importer.ImportRefused as refused:
        return _refused(ImportForm(), refused)
    skip = {n for n in check.duplicates if request.form.get(f"row-{n}") != "new"}
    return _finish(check, skip)

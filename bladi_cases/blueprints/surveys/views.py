"""Views of the surveys blueprint: surveys, versions, import/export, responses."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...extensions import db
from ...i18n import ui_language
from ...models import Survey, SurveyResponse, SurveyVersion
from ...policy import Perm, can, get_or_404, may, requires, scoped
from ...services import files, inputs, jobs
from ...services.audit import Action, record
from ...services.surveys import surveys as service
from ...services.surveys.xlsform import export_xlsform
from .. import form_action, form_page
from ..limits import export_limit
from . import bp
from .forms import ConfirmForm, ImportSurveyForm


@bp.get("/")
@requires(Perm.SURVEYS_VIEW)
def index():
    """Surveys the user may fill or author."""
    return render_template("surveys/index.html", surveys=service.survey_list(current_user),
                           lang=ui_language())


@bp.route("/import", methods=["GET", "POST"])
@requires(Perm.SURVEYS_AUTHOR)
def import_survey():
    """Import an XLSForm as a new version (a CSO manager's surveys are their CSO's), in a
    background job."""
    form = ImportSurveyForm()
    done = form_action(form, lambda: service.start_import(
        current_user, form.upload.data.read(inputs.MAX_UPLOAD_BYTES + 1),
        form.upload.data.filename, form.publish.data))
    if done:  # a background job parses it; its page says how it went
        return redirect(url_for("jobs.show", job_id=done.value.uuid))
    return form_page("surveys/import.html", form)


@bp.get("/<uuid:survey_id>")
@requires(Perm.SURVEYS_VIEW)
def show(survey_id):
    """A survey: its versions, what to fill, the CSO's responses."""
    survey = get_or_404(Survey, survey_id, current_user)
    responses = []
    if can(current_user, Perm.SURVEYS_FILL):
        responses = db.session.scalars(scoped(SurveyResponse, current_user).where(
            SurveyResponse.survey_id == survey.id).order_by(SurveyResponse.id.desc())
            .limit(100)).all()
    codes = service.codes_of(responses, current_user)
    return render_template("surveys/show.html", survey=survey, responses=responses,
                           codes=codes, lang=ui_language(),
                           confirm=ConfirmForm(), can_publish=_can_publish(survey))


def _can_publish(survey: Survey) -> bool:
    return can(current_user, Perm.SURVEYS_AUTHOR) and may(current_user, survey, "publish")


@bp.post("/versions/<uuid:version_id>/publish")
@requires(Perm.SURVEYS_AUTHOR)
def publish(version_id):
    """Publish a version (CSO managers: their CSO's surveys only)."""
    version = get_or_404(SurveyVersion, version_id, current_user, "publish")
    if ConfirmForm().validate_on_submit():
        service.publish_version(current_user, version)
        flash(_("Version %(n)d published.", n=version.number), "success")
    return redirect(url_for(".show", survey_id=version.survey.uuid))


@bp.get("/versions/<uuid:version_id>/xlsform")
@requires(Perm.SURVEYS_AUTHOR)
def export_definition(version_id):
    """Download a version as an XLSForm."""
    version = get_or_404(SurveyVersion, version_id, current_user)
    return files.download(export_xlsform(version.definition),
                          f"{version.survey.code}-v{version.number}.xlsx", files.XLSX_MIMETYPE)


@bp.get("/<uuid:survey_id>/responses.<fmt>")
@requires(Perm.SURVEYS_FILL)
@export_limit
def export_responses(survey_id, fmt):
    """The CSO's own responses as CSV or XLSX, labels in the user's language. A repeat's
    entries are in long format: a sheet of their own in the XLSX; in CSV, a file of their
    own, `?repeat=<name>`."""
    survey = get_or_404(Survey, survey_id, current_user)
    if fmt not in ("csv", "xlsx"):
        return redirect(url_for(".show", survey_id=survey.uuid))
    count = db.session.scalar(scoped(SurveyResponse, current_user).where(
        SurveyResponse.survey_id == survey.id).with_only_columns(sa.func.count()))
    if not count:
        flash(_("No response to export yet."), "info")
        return redirect(url_for(".show", survey_id=survey.uuid))
    wanted = request.args.get("repeat")
    if wanted is not None and wanted not in service.repeat_names(survey):
        abort(404)
    record(Action.SURVEY_EXPORTED, actor=current_user, obj=survey,
           detail={"responses": count})
    job = jobs.start("surveys.responses", current_user, {
        "survey_id": survey.id, "fmt": fmt, "lang": request.args.get("lang") or ui_language(),
        "repeat": wanted})
    return redirect(url_for("jobs.show", job_id=job.uuid))

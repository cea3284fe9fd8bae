"""A job's page (a progress bar that follows it, with or without JavaScript), its JSON
status for polling, its file, and the person's recent jobs. Only the person who asked for a
job sees it: another person's job answers 404 (policy.scoped)."""

from __future__ import annotations

from flask import flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...models import Job, JobStatus
from ...policy import Perm, get_or_404, requires
from ...services import jobs
from ...services.files import download
from . import bp

# While a job runs, the page without JavaScript reloads itself this often (seconds).
REFRESH_SECONDS = 2


@bp.get("/")
@requires(Perm.HOME)
def index():
    """The person's latest jobs."""
    return render_template("jobs/index.html", jobs=jobs.finished_recently(current_user, 20),
                           kinds=jobs.KINDS)


@bp.get("/<uuid:job_id>")
@requires(Perm.HOME)
def show(job_id):
    """Where the job is; when it waits for a decision, the page where it is made."""
    job = get_or_404(Job, job_id, current_user)
    kind = jobs.KINDS.get(job.kind)
    if job.status == JobStatus.WAITING and kind is not None and kind.decide:
        return redirect(url_for(kind.decide, job_id=job.uuid))
    return render_template("jobs/show.html", job=job, kind=kind, state=jobs.status_of(job),
                           refresh=REFRESH_SECONDS)


@bp.post("/<uuid:job_id>/cancel")
@requires(Perm.HOME)
def cancel(job_id):
    """The person who asked for a job stops it: at once when it waits, at its next step
    when it runs (its work rolled back); a job that has ended says so."""
    job = get_or_404(Job, job_id, current_user)
    try:
        status = jobs.cancel(job)
    except jobs.JobRefused as refused:
        flash(refused.message, "error")
    else:
        flash(_("Cancelled: nothing was saved.") if status == JobStatus.CANCELLED else
              _("Stopping: unless it finishes first, the job ends at its next step, and "
                "nothing it did is saved."),
              "success")
    return redirect(url_for(".show", job_id=job.uuid))


@bp.get("/<uuid:job_id>.json")
@requires(Perm.HOME)
def status(job_id):
    """The job's state, polled by the page's script: status, stage, done, total, percent."""
    job = get_or_404(Job, job_id, current_user)
    return jsonify(jobs.status_of(job))


@bp.get("/<uuid:job_id>/download")
@requires(Perm.HOME)
def result(job_id):
    """The job's file, for the person who asked, until it expires (410 after)."""
    job = get_or_404(Job, job_id, current_user)
    body = jobs.result_of(job) if job.status == JobStatus.DONE else None
    if body is None:
        return render_template("jobs/show.html", job=job, kind=jobs.KINDS.get(job.kind),
                               state=jobs.status_of(job), refresh=REFRESH_SECONDS,
                               gone=_("This file has expired. Ask for it again.")), 410
    return download(body, job.result_name, job.result_mimetype)

"""Background jobs: long work (imports, exports, the figures refresh, key rotation, backups)
that runs in a worker while the person who asked sees its progress.

The row is the job's shared state, so any app node answers "how far is it" and serves the
result: it lives in the database, never in a worker's memory or disk. The uploaded file a job
works on and the file it produces are stored encrypted (a youth's name can be in either), and
the file expires. Progress while the job runs is in Redis (or a file on a single machine):
the job's own transaction cannot show it before it commits (services/jobs.py).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .common import PublicIdMixin, TitledEnum, check_in, encrypted_column, utcnow


class JobStatus(TitledEnum):
    """Where a job is: waiting for a worker, running, waiting for the person who asked (an
    import's possible duplicates), done, failed (its work rolled back), or cancelled by the
    person who asked (its work rolled back too)."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    __titles__ = {"queued": _l("Waiting to start"), "running": _l("Running"),
                  "waiting": _l("Waiting for your decision"), "done": _l("Done"),
                  "failed": _l("Failed"), "cancelled": _l("Cancelled")}


class JobStage(TitledEnum):
    """What a running job reports it has done so far (`progress(stage, done, total)` in
    services/jobs.py): its page shows the stage's title beside the count. A stage is one of
    these or the job fails at its first report: none can show without a title."""

    CHECKED = "checked"
    WRITTEN = "written"
    ROWS = "rows"
    COMPUTED = "computed"
    ROTATED = "rotated"
    COPIED = "copied"
    __titles__ = {"checked": _l("Rows checked"), "written": _l("Rows written"),
                  "rows": _l("Rows written"), "computed": _l("Figures computed"),
                  "rotated": _l("Values re-encrypted"), "copied": _l("Copied")}


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.WAITING)
# A job that will not change any more: its file and row expire (services/jobs.py sweep).
ENDED = tuple(status for status in JobStatus if status not in ACTIVE)


class Job(PublicIdMixin, db.Model):
    """One background job, asked for by a user (or the scheduler when user_id is None)."""

    __tablename__ = "job"
    __table_args__ = (sa.CheckConstraint(check_in("status", JobStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organization.id"))
    # The language of the person who asked: the job's messages are written in it.
    language: Mapped[str] = mapped_column(sa.String(5), default="en")
    status: Mapped[str] = mapped_column(sa.String(10), default=JobStatus.QUEUED, index=True)
    params: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # While the job is not finished: what makes a second one the same job (an import's
    # file); unique, so two nodes cannot both start it. Cleared when it ends.
    active_key: Mapped[str | None] = mapped_column(sa.String(80), unique=True)
    input_enc: Mapped[bytes | None] = encrypted_column()
    input_name: Mapped[str | None] = mapped_column(sa.String(255))
    # What the page shows when it ended or waits: messages, counts, an import's duplicates.
    outcome_enc: Mapped[bytes | None] = encrypted_column()
    result_enc: Mapped[bytes | None] = encrypted_column()
    result_name: Mapped[str | None] = mapped_column(sa.String(255))
    result_mimetype: Mapped[str | None] = mapped_column(sa.String(120))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    # A finished job's file (and its uploaded input) is deleted after this.
    expires_at: Mapped[dt.datetime | None] = mapped_column(index=True)

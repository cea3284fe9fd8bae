"""Reporting speed: the reviewers' dashboard for all 11 CSOs, and the donor's microdata
export, with 100,000 youth, 2,000,000 attendance rows and 200,000 survey responses.

Goals: the dashboard renders in under 500 ms; the microdata export streams 100,000 rows in
under 10 s with under 200 MB of memory. Run: `.venv/bin/python bench/reporting.py
[--database URL]` after bench/participation.py has built the same database (it does so
itself otherwise); survey responses are added in bulk once.

The dashboard reads the fiscal year's figures from a snapshot at most a few minutes old (the
path every view takes); recomputing the figures (`flask reports refresh`, run by cron, or
after the response when a snapshot is stale) is timed on its own.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _add_responses(count: int) -> None:
    """Baseline and endline responses for the first youth, in bulk."""
    import sqlalchemy as sa

    from bladi_cases.extensions import db
    from bladi_cases.models import Beneficiary, Survey, SurveyResponse

    survey = db.session.scalars(sa.select(Survey).where(Survey.organization_id.is_(None))).first()
    version = survey.current
    youth = db.session.execute(sa.select(Beneficiary.id, Beneficiary.organization_id)
                               .order_by(Beneficiary.id).limit(count // 2)).all()
    rng = random.Random(3)
    today = date.today()
    rows = []
    for youth_id, org_id in youth:
        for wave, offset in (("baseline", 200), ("endline", 20)):
            score = rng.randint(8, 25)
            rows.append({"uuid": uuid.uuid4(), "organization_id": org_id,
                         "version_id": version.id, "survey_id": survey.id,
                         "beneficiary_id": youth_id, "wave": wave,
                         "answers": {"w1": "3"}, "scores": {"wellbeing": score},
                         "content_hash": "bench", "submitted_on": today - timedelta(offset)})
        if len(rows) >= 10_000:
            db.session.execute(sa.insert(SurveyResponse), rows)
            db.session.commit()
            rows = []
    if rows:
        db.session.execute(sa.insert(SurveyResponse), rows)
    db.session.commit()


def main() -> int:
    """Build what is missing, then time the dashboard and the export."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--microdata-only", action="store_true",
                        help="Only the export, in a fresh process (its own memory figure).")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.gettempdir()}/bladi-bench-100000.db"
    os.environ.update(BLADI_ENV="development", DATABASE_URL=url,
                      BLADI_INSTANCE_PATH=str(Path(tempfile.gettempdir()) / "bladi-bench"))

    import sqlalchemy as sa

    from bench.participation import _build_attendance
    from bench.search import _build
    from bladi_cases import create_app
    from bladi_cases.extensions import db
    from bladi_cases.models import Attendance, Organization, SurveyResponse, User
    from bladi_cases.models.common import refresh_statistics
    from bladi_cases.seed import DEMO_USERS
    from bladi_cases.services.auth import sessions as auth_sessions
    from bladi_cases.services.reports.exports import microdata_csv
    from bladi_cases.services.reports.indicators import Period
    from bladi_cases.services.reports.release import build, refresh, year_figures

    app = create_app({"WTF_CSRF_ENABLED": False})
    if not args.microdata_only:
        _build(app, 100_000)
    with app.app_context():
        org = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
        worker = db.session.scalars(sa.select(User).where(User.email == DEMO_USERS[0].email)).one()
        if db.session.scalar(sa.select(sa.func.count()).select_from(Attendance)) < 1_000_000:
            _build_attendance(org, worker)
        if db.session.scalar(sa.select(sa.func.count()).select_from(SurveyResponse)) < 150_000:
            _add_responses(200_000)
        refresh_statistics(db.session, "survey_response", "attendance", "enrolment",
                           "beneficiary")
        db.session.commit()
        if args.microdata_only:
            year = Period.containing(date.today()).fiscal_year
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            rows = sum(chunk.count(b"\n") for chunk in microdata_csv(year, 5))
            print(f"| microdata export alone, fresh process | {rows - 1:,} rows in "
                  f"{time.perf_counter() - started:.1f} s; peak memory "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
                  f"(app loaded: {before / 1024:.0f} MB) |")
            return 0
        counts = {name: db.session.scalar(sa.select(sa.func.count()).select_from(model))
                  for name, model in (("attendance", Attendance),
                                      ("responses", SurveyResponse))}
        reviewer = db.session.scalars(sa.select(User).where(
            User.email == DEMO_USERS[3].email)).one()
        year = Period.containing(date.today()).fiscal_year
        client = app.test_client()
        token = auth_sessions.start(reviewer, "bench")  # a live login session, as after a login
        db.session.commit()
        with client.session_transaction() as session:
            session["_user_id"] = reviewer.get_id()
            session[auth_sessions.TOKEN_KEY] = token
        # The figures themselves: what `flask reports refresh` (cron) and the first view
        # after a day without one compute.
        refreshes = []
        for _ in range(max(1, args.repeat // 3)):
            started = time.perf_counter()
            with app.test_request_context():
                refresh(year)
                db.session.commit()
            refreshes.append((time.perf_counter() - started) * 1000)
        # The disclosure audit alone (docs/PRIVACY.md): building the release with it, and
        # again from the snapshot that keeps what it hid (what every page does).
        with app.test_request_context():
            payload = year_figures(year)
            started = time.perf_counter()
            audited = build(payload, year, 5)
            audit_ms = (time.perf_counter() - started) * 1000
            kept = {**payload, "protection": {"5": audited.release.protection()}}
            started = time.perf_counter()
            build(kept, year, 5)
            reuse_ms = (time.perf_counter() - started) * 1000
            hidden = sum(1 for f in audited.release._shown.values() if f == "…")
            figures = len(audited.release._shown)
        app.config["BLADI_DASHBOARD_CACHE_SECONDS"] = 300
        assert client.get(f"/reports/?fy={year}").status_code == 200  # templates compiled
        timings = []
        pages = [f"/reports/?fy={year}", f"/reports/?fy={year}&indicator=youth_10_sessions",
                 f"/reports/?fy={year}&setting=school", f"/reports/?fy={year}&cso=BA"]
        for index in range(args.repeat):
            started = time.perf_counter()
            assert client.get(pages[index % len(pages)]).status_code == 200
            timings.append((time.perf_counter() - started) * 1000)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        size = rows = 0
        for chunk in microdata_csv(year, 5):
            size += len(chunk)
            rows += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"| 100,000 youth, {counts['attendance']:,} attendance rows, "
          f"{counts['responses']:,} survey responses | figure |")
    print("|---|---:|")
    print(f"| reviewer dashboard, 11 CSOs, 4 filter variants (median of {args.repeat}) | "
          f"{statistics.median(timings):.0f} ms |")
    print(f"| reviewer dashboard, slowest | {max(timings):.0f} ms |")
    print(f"| the year's figures recomputed (`flask reports refresh`, median of "
          f"{len(refreshes)}) | {statistics.median(refreshes):.0f} ms |")
    print(f"| the year's release with the disclosure audit (no snapshot) | {audit_ms:.0f} ms; "
          f"{hidden} of {figures} figures hidden |")
    print(f"| the same release from the snapshot (what each page builds) | {reuse_ms:.0f} ms |")
    print(f"| microdata export: rows, size | {rows - 1:,} rows, {size / 1e6:.1f} MB |")
    print(f"| microdata export: time | {seconds:.1f} s |")
    print(f"| process peak memory (after / before the export) | {peak / 1024:.0f} MB / "
          f"{before / 1024:.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

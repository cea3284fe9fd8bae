"""Participation speed: a youth's participation summary and an activity's roster, among
100,000 beneficiaries and 2,000,000 attendance rows.

Goal: both render in under 100 ms. Run: `.venv/bin/python bench/participation.py
[--database URL] [--repeat 100]`. Builds on the registry of bench/search.py (run that first
for the same database, or let this script build it): adds 400 activities of 25 youth with
200 sessions each (10,000 enrolments, 80,000 sessions, 2,000,000 attendance rows), once.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACTIVITIES, MEMBERS, SESSIONS = 400, 25, 200


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _build_attendance(org, worker) -> None:
    """Insert the activities, enrolments, sessions and attendance in bulk (fast, raw)."""
    import sqlalchemy as sa

    from bladi_cases.extensions import db
    from bladi_cases.models import Activity, ActivitySession, Attendance, Beneficiary, Enrolment

    rng = random.Random(11)
    site = org.sites[0]
    youth_ids = db.session.scalars(sa.select(Beneficiary.id).where(
        Beneficiary.organization_id == org.id).order_by(Beneficiary.id)).all()
    first_day = date.today() - timedelta(days=SESSIONS * 2)
    started = time.perf_counter()
    for number in range(ACTIVITIES):
        activity = Activity(organization_id=org.id, site_id=site.id, name=f"Club {number}",
                            kind="drama", planned_start=first_day, weekdays="0,3",
                            default_duration_minutes=90)
        db.session.add(activity)
        db.session.flush()
        members = youth_ids[number * MEMBERS:(number + 1) * MEMBERS]
        db.session.execute(sa.insert(Enrolment), [
            {"uuid": uuid.uuid4(), "beneficiary_id": b, "organization_id": org.id,
             "site_id": site.id, "activity_id": activity.id, "start_date": first_day}
            for b in members])
        sessions = [{"uuid": uuid.uuid4(), "organization_id": org.id,
                     "activity_id": activity.id, "date": first_day + timedelta(days=2 * i),
                     "duration_minutes": 90, "content_hash": "bench",
                     "created_by_id": worker.id} for i in range(SESSIONS)]
        db.session.execute(sa.insert(ActivitySession), sessions)
        session_ids = db.session.scalars(sa.select(ActivitySession.id).where(
            ActivitySession.activity_id == activity.id)).all()
        db.session.execute(sa.insert(Attendance), [
            {"session_id": s, "beneficiary_id": b, "organization_id": org.id,
             "status": "present" if rng.random() < 0.8 else rng.choice(("absent", "excused"))}
            for s in session_ids for b in members])
        if number % 50 == 49:
            db.session.commit()
            print(f"activities {number + 1}", file=sys.stderr, flush=True)
    db.session.commit()
    print(f"attendance generation: {time.perf_counter() - started:.0f} s", file=sys.stderr)


def _time(function, repeat: int) -> list[float]:
    function()  # one warm-up call: template compilation and first-use caches are per process
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> int:
    """Build once, then time the summaries and the pages; prints a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database")
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.gettempdir()}/bladi-bench-100000.db"
    os.environ.update(BLADI_ENV="development", DATABASE_URL=url,
                      BLADI_INSTANCE_PATH=str(Path(tempfile.gettempdir()) / "bladi-bench"))

    import sqlalchemy as sa

    from bench.search import _build
    from bladi_cases import create_app
    from bladi_cases.extensions import db
    from bladi_cases.models import Activity, Attendance, Beneficiary, Organization, User
    from bladi_cases.models.common import refresh_statistics
    from bladi_cases.seed import DEMO_USERS
    from bladi_cases.services.activities.participation import for_activity, for_beneficiary
    from bladi_cases.services.auth import sessions as auth_sessions

    app = create_app({"WTF_CSRF_ENABLED": False})
    _build(app, 100_000)
    with app.app_context():
        org = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
        worker = db.session.scalars(sa.select(User).where(
            User.email == DEMO_USERS[0].email)).one()
        if db.session.scalar(sa.select(sa.func.count()).select_from(Attendance)) < 1_000_000:
            _build_attendance(org, worker)
            refresh_statistics(db.session, "attendance", "activity_session", "enrolment")
            db.session.commit()
        rows = db.session.scalar(sa.select(sa.func.count()).select_from(Attendance))
        youth = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary))
        activities = db.session.scalars(sa.select(Activity).where(
            Activity.organization_id == org.id)).all()
        rng = random.Random(5)
        members = [b for a in rng.sample(activities, 20) for b in db.session.scalars(
            sa.select(Beneficiary).join(Beneficiary.enrolments).where(
                Beneficiary.enrolments.any(activity_id=a.id)).limit(5))]
        lines = [
            ("youth participation summary (service)",
             _time(lambda: for_beneficiary(rng.choice(members)), args.repeat)),
            ("activity roster with participation (service)",
             _time(lambda: for_activity(rng.choice(activities)), args.repeat)),
        ]
        client = app.test_client()
        token = auth_sessions.start(worker, "bench")  # a live login session, as after a login
        db.session.commit()
        with client.session_transaction() as session:
            session["_user_id"] = worker.get_id()
            session[auth_sessions.TOKEN_KEY] = token

        def page(path):
            response = client.get(path)
            assert response.status_code == 200, path

        lines.append(("youth record page (decrypt, participation, timeline, render)", _time(
            lambda: page(f"/beneficiaries/{rng.choice(members).uuid}"), args.repeat)))
        lines.append(("activity page (roster of 25 with names, calendar, render)", _time(
            lambda: page(f"/activities/{rng.choice(activities).uuid}"), args.repeat)))
        print(f"| {youth:,} youth, {rows:,} attendance rows, {args.repeat} runs each "
              "| median ms | p95 ms | max ms |")
        print("|---|---:|---:|---:|")
        for label, timings in lines:
            print(f"| {label} | {statistics.median(timings):.1f} | "
                  f"{_percentile(timings, .95):.1f} | {max(timings):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

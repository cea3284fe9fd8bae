"""Reporting speed: the reviewers' dashboard for all 11 CSOs, and the donor's microdata
export, with 100,000 youth, 2,000,000 attendance rows and 200,000 survey responses.

Goals: the dashboard renders in under 500 ms; the microdata export streams 100,000 rows in
under 10 s with under 200 MB of memory. Run: `.venv/bin/python bench/reporting.py
[--database URL]` after bench/participation.py has built the same database (it does so
itself otherwise); survey responses are added in bulk once.

The dashboard reads the fiscal year's figures from a snapshot at most a few minutes old (the
path every view takes); recomputing the figures (`flask reports refresh`, run by cron, or
after the response when a snapshot is stale) is timed on its own, with the figures alone
(`year_figures`, its tables read on one connection, then on several at once: the same
payload, checked) and the disclosure audit alone. `--figures-only` stops there; `--youth
1000000` builds (once, in bulk: see `_build_large`) and times a registry of that size.
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


def _busiest_connection(year: int, workers: int) -> float:
    """The figures on `workers` connections, in ms: this thread's CPU time plus the most any
    one connection used (its thread's CPU and, on PostgreSQL, its server process's, from
    /proc: the server runs here). Their wall time on `workers` idle cores, whatever the
    load of a shared machine."""
    import threading

    import sqlalchemy as sa

    from bladi_cases.extensions import db
    from bladi_cases.services.reports import indicators
    from bladi_cases.services.reports.release import year_figures

    postgres = db.engine.dialect.name == "postgresql"
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")

    def server_seconds() -> float:
        if not postgres:
            return 0.0
        pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    def measured(read):
        def run():
            started, server = time.thread_time(), server_seconds()
            try:
                return read()
            finally:
                spent = time.thread_time() - started + server_seconds() - server
                ident = threading.get_ident()
                used[ident] = used.get(ident, 0.0) + spent
        return run

    original = indicators.read_concurrently
    indicators.read_concurrently = lambda reads, n: original([measured(r) for r in reads], n)
    try:
        started = time.thread_time()
        year_figures(year, workers=workers)
        own = time.thread_time() - started
    finally:
        indicators.read_concurrently = original
    return (own + max(used.values())) * 1000


def _build_large(app, youth: int) -> None:
    """A registry of `youth` young people spread over the 11 CSOs, in bulk (sa.insert, no
    encrypted identity: the figures never read one), in proportion to the 100,000 of the
    default: an enrolment each, one youth in ten in an activity of 25 with 200 sessions
    (attendance written by the database, INSERT ... SELECT, 80% present), a baseline and
    an endline each. Built once; each step skipped when its rows are there."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from bladi_cases.extensions import db
    from bladi_cases.models import (
        Activity,
        ActivitySession,
        Attendance,
        Beneficiary,
        Enrolment,
        Organization,
        SurveyResponse,
        User,
    )
    from bladi_cases.models.common import refresh_statistics, utcnow
    from bladi_cases.seed import DEMO_USERS, seed_demo

    with app.app_context():
        upgrade()
        seed_demo()
        db.session.commit()
        csos = db.session.scalars(sa.select(Organization).where(
            Organization.kind == "funded_cso").order_by(Organization.code)).all()
        sites = {o.id: o.sites[0].id for o in csos}
        worker = db.session.scalars(sa.select(User).where(
            User.email == DEMO_USERS[0].email)).one()
        rng = random.Random(17)
        today, now = date.today(), utcnow()
        started = time.perf_counter()
        have = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary)) or 0
        while have < youth:
            batch = min(50_000, youth - have)
            rows = []
            for number in range(have, have + batch):
                org = csos[number % len(csos)]
                rows.append({
                    "uuid": uuid.uuid4(), "organization_id": org.id,
                    "sequence": 100_000 + number // len(csos), "code": f"BENCH-{number}",
                    "sex": rng.choice(("female", "male")),
                    "birth_year": today.year - rng.randint(12, 29),
                    "birth_month": rng.randint(1, 12),
                    "governorate_code": rng.choice(("TN-11", "TN-12", "TN-13", "TN-21",
                                                    "TN-31", "TN-51", "TN-61", "TN-71")),
                    "setting_kind": rng.choice(("rehabilitation_centre", "youth_centre", "school")),
                    "first_contact_date": today - timedelta(days=rng.randint(0, 700)),
                    "created_at": now, "updated_at": now})
            db.session.execute(sa.insert(Beneficiary), rows)
            db.session.commit()
            have += batch
            print(f"youth {have}", file=sys.stderr, flush=True)
        if db.session.scalar(sa.select(sa.func.count()).select_from(Enrolment)) < youth:
            ids = db.session.execute(sa.select(Beneficiary.id, Beneficiary.organization_id,
                                               Beneficiary.first_contact_date)).all()
            for first in range(0, len(ids), 50_000):
                db.session.execute(sa.insert(Enrolment), [
                    {"uuid": uuid.uuid4(), "beneficiary_id": b, "organization_id": o,
                     "site_id": sites[o], "start_date": day, "created_at": now}
                    for b, o, day in ids[first:first + 50_000]])
                db.session.commit()
            print(f"enrolments: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        activities = youth // 10 // 25
        first_day = today - timedelta(days=400)
        done = db.session.scalar(sa.select(sa.func.count()).select_from(Activity)) or 0
        if done < activities:  # resumed after the last hundred committed
            members = db.session.execute(sa.select(Beneficiary.id, Beneficiary.organization_id)
                                         .order_by(Beneficiary.organization_id,
                                                   Beneficiary.id)).all()
            by_org: dict[int, list[int]] = {}
            for b, o in members:
                by_org.setdefault(o, []).append(b)
            for number in range(done, activities):
                org = csos[number % len(csos)]
                activity = Activity(organization_id=org.id, site_id=sites[org.id],
                                    name=f"Club {number}", kind="drama",
                                    planned_start=first_day, weekdays="0,3",
                                    default_duration_minutes=90)
                db.session.add(activity)
                db.session.flush()
                slot = number // len(csos)
                db.session.execute(sa.insert(Enrolment), [
                    {"uuid": uuid.uuid4(), "beneficiary_id": b, "organization_id": org.id,
                     "site_id": sites[org.id], "activity_id": activity.id,
                     "start_date": first_day, "created_at": now}
                    for b in by_org[org.id][slot * 25:(slot + 1) * 25]])
                db.session.execute(sa.insert(ActivitySession), [
                    {"uuid": uuid.uuid4(), "organization_id": org.id,
                     "activity_id": activity.id, "date": first_day + timedelta(days=2 * i),
                     "duration_minutes": 90, "content_hash": "bench",
                     "created_by_id": worker.id, "created_at": now} for i in range(200)])
                # The database writes the 5,000 attendance rows of the activity itself.
                db.session.execute(sa.insert(Attendance).from_select(
                    ["session_id", "beneficiary_id", "organization_id", "status"],
                    sa.select(ActivitySession.id, Enrolment.beneficiary_id,
                              Enrolment.organization_id,
                              sa.case(((ActivitySession.id * 7 + Enrolment.beneficiary_id * 13)
                                       % 10 < 8, "present"), else_="absent")).join(
                        Enrolment, Enrolment.activity_id == ActivitySession.activity_id).where(
                        ActivitySession.activity_id == activity.id)))
                if number % 100 == 99:
                    db.session.commit()
                    # PostgreSQL would otherwise plan on the first (empty) tables' statistics.
                    refresh_statistics(db.session, "activity_session", "enrolment")
                    db.session.commit()
                    print(f"activities {number + 1}", file=sys.stderr, flush=True)
            db.session.commit()
            print(f"attendance: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if db.session.scalar(sa.select(sa.func.count()).select_from(SurveyResponse)) < youth:
            _add_responses(2 * youth)
            print(f"responses: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        refresh_statistics(db.session, "survey_response", "attendance", "enrolment", "consent",
                           "beneficiary", "activity_session")
        db.session.commit()


def main() -> int:
    """Build what is missing, then time the dashboard and the export."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--microdata-only", action="store_true",
                        help="Only the export, in a fresh process (its own memory figure).")
    parser.add_argument("--youth", type=int, default=100_000,
                        help="Other than 100,000: a registry of that size spread over the 11 "
                             "CSOs, generated in bulk (see _build_large); the figures only.")
    parser.add_argument("--figures-only", action="store_true",
                        help="Only the year's figures and the disclosure audit.")
    args = parser.parse_args()
    large = args.youth != 100_000
    url = args.database or f"sqlite:///{tempfile.gettempdir()}/bladi-bench-{args.youth}.db"
    os.environ.update(BLADI_ENV="development", DATABASE_URL=url,
                      BLADI_INSTANCE_PATH=str(Path(tempfile.gettempdir()) / "bladi-bench"))

    import sqlalchemy as sa

    from bench.participation import _build_attendance
    from bench.search import _build
    from bladi_cases import create_app, freeze_startup_objects
    from bladi_cases.extensions import db
    from bladi_cases.models import Attendance, Beneficiary, Organization, SurveyResponse, User
    from bladi_cases.models.common import refresh_statistics
    from bladi_cases.seed import DEMO_USERS
    from bladi_cases.services.auth import sessions as auth_sessions
    from bladi_cases.services.reports.exports import microdata_csv
    from bladi_cases.services.reports.indicators import Period
    from bladi_cases.services.reports.release import (
        FIGURES_CONNECTIONS,
        build,
        refresh,
        year_figures,
    )

    app = create_app({"WTF_CSRF_ENABLED": False})
    if large:
        _build_large(app, args.youth)
    elif not args.microdata_only:
        _build(app, 100_000)
    with app.app_context():
        org = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
        worker = db.session.scalars(sa.select(User).where(User.email == DEMO_USERS[0].email)).one()
        if not large and db.session.scalar(
                sa.select(sa.func.count()).select_from(Attendance)) < 1_000_000:
            _build_attendance(org, worker)
        if not large and db.session.scalar(
                sa.select(sa.func.count()).select_from(SurveyResponse)) < 150_000:
            _add_responses(200_000)
        if not large:  # the large registry's statistics are taken once, when it is built
            refresh_statistics(db.session, "survey_response", "attendance", "enrolment", "consent",
                               "beneficiary", "activity_session")
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
        # The figures themselves: what `flask reports refresh` (cron), the job after a
        # response and the first view after a day without one compute.
        # Wall time, and this process's CPU time (all its threads): on SQLite all the work,
        # and a shared machine's load does not inflate it (on PostgreSQL the server's work
        # is not in it).
        # As a served process is (wsgi.py), what is loaded so far out of the collector's way.
        freeze_startup_objects()
        refreshes, cpu = [], {"refresh": [], "alone": [], "together": []}
        walls: dict[str, list] = {"alone": [], "together": []}
        busiest: dict[int, list[float]] = {1: [], FIGURES_CONNECTIONS: []}
        for _ in range(max(1, args.repeat // 3)):
            started, used = time.perf_counter(), time.process_time()
            # The command line's path (outside a request: the tables read on
            # FIGURES_CONNECTIONS connections at once), in its own app context (so its own
            # `g`: the request caches of one run must not serve the next).
            with app.app_context():
                refresh(year)
                db.session.commit()
            refreshes.append((time.perf_counter() - started) * 1000)
            cpu["refresh"].append((time.process_time() - used) * 1000)
            # The figures alone (no audit, nothing stored), on one connection and on
            # several, alternately; the same payload either way.
            payloads = []
            for name, workers in (("alone", 0), ("together", FIGURES_CONNECTIONS)):
                with app.app_context():
                    started, used = time.perf_counter(), time.process_time()
                    payloads.append(year_figures(year, workers=workers))
                    walls[name].append((time.perf_counter() - started) * 1000)
                    cpu[name].append((time.process_time() - used) * 1000)
                    db.session.rollback()
            assert payloads[0] == payloads[1]
            for workers in busiest:
                with app.app_context():
                    busiest[workers].append(_busiest_connection(year, workers))
                    db.session.rollback()
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
        youth = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary))
        lines = [
            f"| {youth:,} youth, {counts['attendance']:,} attendance rows, "
            f"{counts['responses']:,} survey responses | figure |", "|---|---:|",
            f"| the year's figures recomputed and audited (`flask reports refresh`, median "
            f"of {len(refreshes)}) | {statistics.median(refreshes):.0f} ms (CPU "
            f"{statistics.median(cpu['refresh']):.0f} ms) |",
            *[f"| the figures alone (`year_figures`, median of {len(walls[name])}), {label} | "
              f"{statistics.median(walls[name]):.0f} ms (CPU "
              f"{statistics.median(cpu[name]):.0f} ms) |"
              for name, label in (("alone", "on one connection"),
                                  ("together", f"on {FIGURES_CONNECTIONS} at once"))],
            *[f"| the figures on {workers} connection(s): CPU of the busiest (its thread, and "
              f"server process on PostgreSQL) + the caller's thread, i.e. the wall time on "
              f"{workers} idle core(s) | {statistics.median(busiest[workers]):.0f} ms |"
              for workers in busiest],
            f"| the year's release with the disclosure audit (no snapshot) | {audit_ms:.0f} ms;"
            f" {hidden} of {figures} figures hidden |",
            f"| the same release from the snapshot (what each page builds) | {reuse_ms:.0f} ms |"]
        if large or args.figures_only:
            print("\n".join(lines))
            return 0
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
    print("\n".join(lines[:2]))
    print(f"| reviewer dashboard, 11 CSOs, 4 filter variants (median of {args.repeat}) | "
          f"{statistics.median(timings):.0f} ms |")
    print(f"| reviewer dashboard, slowest | {max(timings):.0f} ms |")
    print("\n".join(lines[2:]))
    print(f"| microdata export: rows, size | {rows - 1:,} rows, {size / 1e6:.1f} MB |")
    print(f"| microdata export: time | {seconds:.1f} s |")
    print(f"| process peak memory (after / before the export) | {peak / 1024:.0f} MB / "
          f"{before / 1024:.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

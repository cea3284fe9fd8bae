"""Page throughput under load: wrk against a real gunicorn, every page a field worker opens
on a phone, beside a bare Flask page (bench/bare.py) served the same way in the same run.

Run: `make bench` or `.venv/bin/python bench/load.py [--database URL] [--youth 20000]
[--duration 10] [--connections 20] [--workers N]`. Needs wrk (`apt-get install wrk`).

The database holds `--youth` synthetic young people of one CSO (the generator of
bench/search.py), with the demo's activities, sessions and case files; it is built once and
reused: SQLite in /tmp/bladi-bench-load-<youth>.db, or at `--database` (a PostgreSQL URL
whose database is created when missing). gunicorn runs as in the README's deployment
(`wsgi:app`, sync workers, 2 per core unless `--workers`); the field worker logs in through
the login form and wrk sends the session cookie, with `Accept-Encoding: gzip` as phones do.
Each page: `wrk -t2 -c<connections> -d<duration>s --latency`, right after the bare page
measured the same way: a page's share is its requests per second over those of the bare
page just before it. (A shared machine's speed drifts over a run: the bare page served 735
requests a second at the start of one run and 999 at its end, so a share over the mean of
the two ends was off by up to 15 % for the pages in between.)

Prints a Markdown table: requests/s, the bare page's just before, share, p50 and p99
latency, errors (non-2xx/3xx answers and socket errors). Goal: share >= 0.35, no error,
p99 < 300 ms. The bare page renders a template file compiled once per process, as any Flask
app does; until 1 December it compiled its template on every request, which made it
several times slower and every share several times higher. `--former-reference` measures
that former page too, just after the real one, and adds each page's share of it (for
reading the README's earlier rounds; the goal is measured against the real page only).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INSTANCE = Path(tempfile.gettempdir()) / "bladi-bench"  # the keys of bench/search.py's data
GOAL_SHARE, GOAL_P99_MS = 0.35, 300
# The demo worker's open case files. The demo generator gives the CSO's one field worker a
# case file for one youth in seven (2,857 at 20,000 youth); a caseload is a few dozen, so
# the others go to a colleague's account (the manager still sees them all).
# What the field worker's phone says it is, at the login and on every request of wrk: the
# login session is bound to it (Flask-Login's "basic" protection), and wrk sends no
# User-Agent of its own, so before 1 December each page measured also re-signed and sent
# the session cookie on every request, which a phone (one browser, one User-Agent) never asks.
USER_AGENT = "Mozilla/5.0 (Linux; Android 10; bench/load.py)"
# The headers of every request measured (gzip, as phones ask), and of the check before.
HEADERS = {"Accept-Encoding": "gzip", "User-Agent": USER_AGENT}
CASELOAD = 40
COLLEAGUE = "colleague@bench.bladi.tn"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ensure_postgres_database(url: str) -> None:
    """Create the database of a PostgreSQL URL when it does not exist yet."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    engine = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                   {"name": target.database})
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    engine.dispose()


def _build(url: str, youth: int) -> dict[str, str]:
    """Build the database once (youth, demo activities and cases); return the URLs of the
    records the pages show: a youth enrolled in an activity, that activity, its last
    session."""
    os.environ.update(BLADI_ENV="development", DATABASE_URL=url,
                      BLADI_INSTANCE_PATH=str(INSTANCE))
    import sqlalchemy as sa

    from bench.search import _build as build_registry
    from bladi_cases import create_app
    from bladi_cases.demo import seed_demo_activities, seed_demo_cases
    from bladi_cases.extensions import db
    from bladi_cases.models import Activity, ActivitySession, Beneficiary, Enrolment, User
    from bladi_cases.models.common import refresh_statistics
    from bladi_cases.policy import scoped
    from bladi_cases.seed import DEMO_USERS

    app = create_app({"WTF_CSRF_ENABLED": False})
    build_registry(app, youth)
    with app.app_context():
        if seed_demo_activities(7):
            seed_demo_cases(7)
            refresh_statistics(db.session, "beneficiary", "activity", "activity_session",
                               "attendance", "enrolment")
        db.session.commit()
        worker = db.session.scalars(sa.select(User).where(
            User.email == DEMO_USERS[0].email)).one()
        _share_caseload(worker)
        activity = db.session.scalars(scoped(Activity, worker).where(
            Activity.sessions.any()).order_by(Activity.id).limit(1)).one()
        youth_row = db.session.scalars(scoped(Beneficiary, worker).where(
            Beneficiary.enrolments.any(Enrolment.activity_id == activity.id))
            .order_by(Beneficiary.id).limit(1)).one()
        last = db.session.scalars(sa.select(ActivitySession).where(
            ActivitySession.activity_id == activity.id)
            .order_by(ActivitySession.date.desc()).limit(1)).one()
        _as_autovacuum_keeps_it()
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary))
        print(f"database: {count:,} youth", file=sys.stderr, flush=True)
        records = {"beneficiary": str(youth_row.uuid), "activity": str(activity.uuid),
                   "session": str(last.uuid),
                   "css": app.extensions["bladi_assets"].fingerprinted("css/app.css")}
    return records


def _as_autovacuum_keeps_it() -> None:
    """The database as a running server keeps it: on PostgreSQL, VACUUM ANALYZE (what
    autovacuum does, which some machines, like this one, run with it off: without it the
    home page's count reads the table instead of the index, 14 ms instead of 2, and a
    worker's follow-ups read the whole CSO's notes, 93 ms instead of 2); on SQLite, the
    statistics (imports and the demo refresh them; this generator writes in bulk)."""
    import sqlalchemy as sa

    from bladi_cases.extensions import db

    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE"))
    else:
        db.session.execute(sa.text("PRAGMA analysis_limit=1000"))
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()


def _share_caseload(worker) -> None:
    """Leave the worker CASELOAD case files; the others go to a colleague (once)."""
    import sqlalchemy as sa

    from bladi_cases.extensions import db
    from bladi_cases.models import Role, User
    from bladi_cases.models.cases import case_worker

    mine = sa.select(case_worker.c.case_id).where(case_worker.c.user_id == worker.id)
    if db.session.scalar(sa.select(sa.func.count()).select_from(mine.subquery())) <= CASELOAD:
        return
    colleague = db.session.scalars(sa.select(User).where(User.email == COLLEAGUE)).first()
    if colleague is None:
        colleague = User(email=COLLEAGUE, display_name="Bench Colleague",
                         role=Role.FIELD_WORKER.value, organization_id=worker.organization_id,
                         password_hash="!", active=False)
        db.session.add(colleague)
        db.session.flush()
    kept = db.session.scalars(mine.order_by(case_worker.c.case_id).limit(CASELOAD)).all()
    db.session.execute(sa.update(case_worker).where(
        case_worker.c.user_id == worker.id, case_worker.c.case_id.not_in(kept))
        .values(user_id=colleague.id))
    db.session.commit()


def _pages(records: dict[str, str]) -> list[tuple[str, str]]:
    """(label, path) of every page measured: what a field worker opens on a phone."""
    return [
        ("home `/`", "/"),
        ("youth list `/beneficiaries/`", "/beneficiaries/"),
        ("search `/beneficiaries/?q=mo`", "/beneficiaries/?q=mo"),
        ("youth record", f"/beneficiaries/{records['beneficiary']}"),
        ("activity", f"/activities/{records['activity']}"),
        ("session attendance", f"/activities/sessions/{records['session']}"),
        ("activities `/activities/`", "/activities/"),
        ("field app `/field`", "/field"),
        ("API `/api/v1/me`", "/api/v1/me"),
        ("API `/api/v1/activities`", "/api/v1/activities"),
        ("API `/api/v1/sessions/today`", "/api/v1/sessions/today"),
        ("API `/api/v1/surveys`", "/api/v1/surveys"),
        ("API `/api/v1/registration-options`", "/api/v1/registration-options"),
        ("API `/api/v1/cases`", "/api/v1/cases"),
        ("API `/api/v1/openapi.json`", "/api/v1/openapi.json"),
        ("static file (CSS, fingerprinted)", f"/static/{records['css']}"),
    ]


@contextmanager
def _gunicorn(app: str, env: dict[str, str], workers: int, log: Path, chdir: Path = ROOT):
    """gunicorn serving `app` ("module:variable") on a free port; yields the base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--timeout", "120", "--chdir", str(chdir), app]
    with log.open("ab") as stream:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=stream)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # it answers (a redirect to the login is an answer)
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"gunicorn stopped at start (see {log})") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, cookie: str | None, duration: int, connections: int) -> dict:
    """One wrk run; its requests/s, p50/p99 in ms and errors."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency",
               "--timeout", "10s"]
    for name, value in HEADERS.items():
        command += ["-H", f"{name}: {value}"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = {share: _ms(value, unit) for share, value, unit in re.findall(
        r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": latency.get("50", 0.0), "p99": latency.get("99", 0.0), "errors": errors}


def _bare_errors(reference: dict) -> str:
    """The bare page's errors beside a page's, when it had any (they fail the page's row:
    its reference is not to be trusted)."""
    return f" (bare {reference['errors']})" if reference["errors"] else ""


def _check(base: str, path: str, cookie: str) -> None:
    """A page must answer 200 to the logged-in worker before it is measured (a redirect to
    the login would be measured as a success by wrk), asked as wrk asks it, and must not
    send the session cookie again."""
    request = urllib.request.Request(base + path, headers={**HEADERS, "Cookie": cookie})
    with urllib.request.urlopen(request, timeout=60) as answer:
        if answer.status != 200 or answer.url != base + path:
            raise RuntimeError(f"{path} answered {answer.status} at {answer.url}")
        if answer.headers.get("Set-Cookie"):  # wrk would send the old cookie every time
            raise RuntimeError(f"{path} sets the session cookie again to a logged-in browser")


def in_process(records: dict[str, str], pages: list[tuple[str, str]], repeat: int) -> None:
    """Each page through the Flask test client in this process: CPU per request and SQL
    statements per request, beside the bare page's. Steadier than wrk on a busy machine
    (CPU time, not wall time), so it is what to watch while changing a page; wrk's table is
    the measure of the goal."""
    import sqlalchemy as sa
    from bare import app as bare_app

    from bladi_cases import create_app, freeze_startup_objects
    from bladi_cases.extensions import db
    from tests.load_support import WORKER

    app = create_app({"WTF_CSRF_ENABLED": False})
    freeze_startup_objects()  # as wsgi.py does in a served process
    statements = [0]

    def count(*_args, **_kwargs):
        statements[0] += 1

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", count)
    client = app.test_client()
    answer = client.post("/login", data={"email": WORKER[0], "password": WORKER[1]})
    if answer.status_code != 302:
        raise RuntimeError(f"login answered {answer.status_code}")
    bare = bare_app.test_client()

    def measure(get, path: str) -> tuple[float, float]:
        for _ in range(3):  # warm the caches a long-running worker has warm
            get(path)
        statements[0] = 0
        start = time.process_time()
        for _ in range(repeat):
            answer = get(path, headers={"Accept-Encoding": "gzip"})
            if answer.status_code != 200:
                raise RuntimeError(f"{path} answered {answer.status_code}")
        return ((time.process_time() - start) * 1000 / repeat, statements[0] / repeat)

    reference, _ = measure(bare.get, "/")
    print(f"| in-process, CPU per request ({repeat} requests each) | CPU ms | statements | "
          "CPU / bare |")
    print("|---|---:|---:|---:|")
    print(f"| bare Flask page | {reference:.2f} | 0 | 1 |")
    for label, path in pages:
        cpu, queries = measure(client.get, path)
        print(f"| {label} | {cpu:.2f} | {queries:.0f} | {cpu / reference:.1f} |", flush=True)


def main() -> int:
    """Build or reuse the database, serve the app and the bare page, measure each page."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database")
    parser.add_argument("--youth", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per page")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--only", help="measure only the pages whose path matches this "
                        "regular expression")
    parser.add_argument("--former-reference", action="store_true", help="also each page's "
                        "share of the former bare page (its template compiled per request)")
    parser.add_argument("--in-process", type=int, metavar="N", help="instead of wrk, each "
                        "page N times in this process: CPU and SQL statements per request")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.in_process:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    url = args.database or f"sqlite:///{tempfile.gettempdir()}/bladi-bench-load-{args.youth}.db"
    if url.startswith("postgresql"):
        _ensure_postgres_database(url)
    records = _build(url, args.youth)
    if args.in_process:
        sys.path.insert(0, str(ROOT / "bench"))
        in_process(records, [p for p in _pages(records)
                             if not args.only or re.search(args.only, p[1])], args.in_process)
        return 0

    from tests.browser_support import _env
    from tests.load_support import WORKER, log_in

    INSTANCE.mkdir(exist_ok=True)
    env = {**_env(INSTANCE), "DATABASE_URL": url}
    log = INSTANCE / "gunicorn-load.log"
    pages = [p for p in _pages(records) if not args.only or re.search(args.only, p[1])]
    rows = []
    with _gunicorn("bare:app", {**os.environ}, args.workers, log, ROOT / "bench") as bare, \
            _gunicorn("wsgi:app", env, args.workers, log) as base:
        cookie = log_in(base, *WORKER, user_agent=USER_AGENT)
        for label, path in pages:
            _check(base, path, cookie)
            reference = wrk(bare + "/", None, args.duration, args.connections)
            former = (wrk(bare + "/string", None, args.duration, args.connections)
                      if args.former_reference else None)
            rows.append((label, reference, wrk(base + path, cookie, args.duration,
                                               args.connections), former))
            print(f"{label}: {rows[-1][2]} (bare {reference['rps']:.0f}/s)", file=sys.stderr,
                  flush=True)
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    former_head = (" former bare page, req/s | share of it |", "---:|---:|") \
        if args.former_reference else ("", "")
    print(f"| {database}, {args.youth:,} youth, {args.workers} workers, "
          f"{args.connections} connections | req/s | bare page just before, req/s | share | "
          f"p50 ms | p99 ms | errors |{former_head[0]}")
    print(f"|---|---:|---:|---:|---:|---:|---:|{former_head[1]}")
    failed = 0
    for label, reference, row, former in rows:
        share = row["rps"] / reference["rps"]
        ok = share >= GOAL_SHARE and row["p99"] < GOAL_P99_MS and not row["errors"] \
            and not reference["errors"]
        failed += not ok
        print(f"| {label} | {row['rps']:.0f} | {reference['rps']:.0f} | "
              f"{share:.2f}{'' if ok else ' ✗'} | {row['p50']:.0f} | {row['p99']:.0f} | "
              f"{row['errors']}{_bare_errors(reference)} |" + (
                  f" {former['rps']:.0f} | {row['rps'] / former['rps']:.2f} |" if former else ""))
    print(f"\n{len(rows) - failed} of {len(rows)} pages meet the goal (share >= {GOAL_SHARE}, "
          f"p99 < {GOAL_P99_MS} ms, no error).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

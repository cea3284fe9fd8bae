"""Search speed: name-prefix and code search among 100,000 beneficiaries of one CSO.

Goal: a name-prefix search answers in under 100 ms. Run: `make bench` or
`.venv/bin/python bench/search.py [--count 100000] [--queries 300] [--database URL]`.
The synthetic registry is generated once (deterministic) and kept in
/tmp/bladi-bench-<count>.db for later runs (SQLite); with --database it is built there.
All the young people belong to one CSO: the worst case for a search, which only ever
looks inside the user's own CSO.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _build(app, count: int) -> None:
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from bladi_cases.demo import seed_demo_beneficiaries
    from bladi_cases.extensions import db
    from bladi_cases.models import Beneficiary
    from bladi_cases.seed import seed_demo

    with app.app_context():
        upgrade()
        seed_demo()
        db.session.commit()
        have = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary)) or 0
        started = time.perf_counter()
        while have < count:
            batch = min(1000, count - have)
            seed_demo_beneficiaries(batch, seed=42 + have, org_codes=["BA"])
            db.session.commit()
            have += batch
            print(f"generated {have}", file=sys.stderr, flush=True)
        print(f"generation: {time.perf_counter() - started:.0f} s", file=sys.stderr)


def _two_names(rng, names) -> str:
    script = rng.randint(0, 1)  # 0 Arabic, 1 Latin
    given = rng.choice(names[rng.choice(("female", "male"))])[script]
    return f"{given[:3]} {rng.choice(names['family'])[script][:3]}"


def main() -> int:
    """Build (once) and measure; prints a Markdown table of latencies in milliseconds."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--database")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.gettempdir()}/bladi-bench-{args.count}.db"
    os.environ.update(BLADI_ENV="development", DATABASE_URL=url,
                      BLADI_INSTANCE_PATH=str(Path(tempfile.gettempdir()) / "bladi-bench"))

    import sqlalchemy as sa

    from bladi_cases import create_app
    from bladi_cases.demo import _names
    from bladi_cases.extensions import db
    from bladi_cases.models import Beneficiary, Organization, User
    from bladi_cases.seed import DEMO_USERS
    from bladi_cases.services.auth import sessions as auth_sessions
    from bladi_cases.services.beneficiaries.search import search

    app = create_app({"WTF_CSRF_ENABLED": False})
    _build(app, args.count)
    with app.app_context():
        org = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary)
                                  .where(Beneficiary.organization_id == org.id))
        worker = db.session.scalars(sa.select(User).where(
            User.email == DEMO_USERS[0].email)).one()
        rng = random.Random(7)
        names = _names()
        pool = [n for kind in ("female", "male", "family") for pair in names[kind] for n in pair]
        long_names = [n for n in pool if len(n.replace(" ", "")) > 10] or pool
        cases = {
            "name prefix, 2 letters": lambda: rng.choice(pool)[:2],
            "name prefix, 3-4 letters": lambda: rng.choice(pool)[:rng.randint(3, 4)],
            "first + last name prefixes": lambda: _two_names(rng, names),
            "whole long name word (> 10 letters)": lambda: rng.choice(long_names),
            "code": lambda: f"BA-{rng.randint(1, total):04d}",
        }
        print(f"| query ({total:,} young people in the CSO, {args.queries} queries each) "
              "| median ms | p95 ms | max ms | mean matches |")
        print("|---|---:|---:|---:|---:|")
        for label, make_query in cases.items():
            timings, sizes = [], []
            for _ in range(args.queries):
                query = make_query()
                started = time.perf_counter()
                page = search(worker, q=query)
                timings.append((time.perf_counter() - started) * 1000)
                sizes.append(page.total)
                db.session.rollback()
            print(f"| {label} | {statistics.median(timings):.1f} | "
                  f"{_percentile(timings, .95):.1f} | {max(timings):.1f} | "
                  f"{statistics.mean(sizes):,.0f} |")
        client = app.test_client()
        token = auth_sessions.start(worker, "bench")  # a live login session, as after a login
        db.session.commit()
        with client.session_transaction() as session:
            session["_user_id"] = worker.get_id()
            session[auth_sessions.TOKEN_KEY] = token
        timings = []
        for _ in range(min(args.queries, 100)):
            started = time.perf_counter()
            response = client.get("/beneficiaries/", query_string={"q": rng.choice(pool)[:3]})
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        print(f"| whole list page (search, decrypt 25 names, audit, render) | "
              f"{statistics.median(timings):.1f} | {_percentile(timings, .95):.1f} | "
              f"{max(timings):.1f} | 25 |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

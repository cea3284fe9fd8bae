"""Concurrency on the embedded database: a real gunicorn serving the SQLite demo database,
many requests at once from one field worker.

Run: `make bench` or `.venv/bin/python bench/concurrency.py [--workers 4] [--threads 12]
[--rounds 10] [--hold 2]`. The demo instance (as `make run` seeds it, 400 youth) is built
once into /tmp/bladi-bench-concurrency/seeded and copied for each run. Prints a Markdown
table: requests, answers other than what the URL answers alone, latency p50/p99/max.

Scenarios:
- the pages and API GETs a field worker uses all day (tests/load_support.py `Page.core`),
  then every GET URL their role may open (`pages_of`), `threads` threads each asking for
  each of them `rounds` times in a shuffled order;
- /beneficiaries/ alone, 12 threads x 10 requests (the list writes an audit entry);
- the field app's three downloads in parallel (activities, surveys, cases), 10 times;
- the donor's exports (tracking table XLSX and CSV, microdata) in a loop while 12 threads
  load pages;
- another program holding the write lock for `hold` seconds at a time, 1 s apart, while 12
  threads load pages.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import load_support as load  # noqa: E402
from tests.browser_support import _env, gunicorn, seed_demo_instance  # noqa: E402

HOME = Path(tempfile.gettempdir()) / "bladi-bench-concurrency"


def _seeded() -> Path:
    seeded = HOME / "seeded"
    if not (seeded / "bladi.db").exists():
        shutil.rmtree(seeded, ignore_errors=True)
        seeded.mkdir(parents=True)
        print("seeding the demo instance...", file=sys.stderr, flush=True)
        seed_demo_instance(seeded)
    return seeded


def _fresh_copy() -> Path:
    instance = HOME / "run"
    shutil.rmtree(instance, ignore_errors=True)
    shutil.copytree(_seeded(), instance)
    return instance


def _app(instance: Path):
    import os

    os.environ.update(_env(instance))
    from bladi_cases import create_app

    return create_app()


def _row(name: str, answers: list[load.Answer], expected: dict, seconds: float) -> str:
    s = load.summary(answers, expected)
    wrong = ", ".join(f"{n}x {status}" for status, n in sorted(s["by_status"].items()))
    return (f"| {name} | {s['requests']:,} | {s['errors']}{f' ({wrong})' if wrong else ''} | "
            f"{s['p50_ms']:,} | {s['p99_ms']:,} | {s['max_ms']:,} | {seconds:.0f} |")


def main() -> int:
    """Start gunicorn on a fresh copy of the demo instance and run every scenario."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--hold", type=float, default=2.0,
                        help="seconds another program holds the write lock at a time")
    args = parser.parse_args()
    instance = _fresh_copy()
    database = instance / "bladi.db"
    app = _app(instance)
    pages, left_out = load.pages_of(app, database, load.WORKER[0])
    paths = [p.path for p in pages]
    options = ["--workers", str(args.workers), "--worker-class", args.worker_class,
               "--timeout", "120"]
    rows = []
    with gunicorn(instance, *options) as base:
        worker = load.log_in(base, *load.WORKER)
        donor = load.log_in(base, *load.DONOR)
        expected = load.alone(paths, base, worker)

        core = [p.path for p in pages if p.core]
        started = time.perf_counter()
        answers = load.together(core, base, worker, args.threads, args.rounds)
        rows.append(_row(f"the {len(core)} pages and API GETs of the day, {args.threads} "
                         f"threads x {args.rounds} each", answers, expected,
                         time.perf_counter() - started))

        started = time.perf_counter()
        answers = load.together(paths, base, worker, args.threads, args.rounds)
        rows.append(_row(f"all {len(paths)} field-worker GET URLs, {args.threads} threads x "
                         f"{args.rounds} each", answers, expected, time.perf_counter() - started))

        started = time.perf_counter()
        answers = load.together(["/beneficiaries/"], base, worker, 12, 10)
        rows.append(_row("/beneficiaries/, 12 threads x 10", answers, expected,
                         time.perf_counter() - started))

        started = time.perf_counter()
        answers, failed_runs = [], 0
        for run in range(10):
            batch = load.together(list(load.FIELD_DOWNLOADS), base, worker, 3, 1, seed=run)
            failed_runs += bool(load.unexpected(batch, expected))
            answers += batch
        rows.append(_row(f"field app's 3 parallel downloads x 10 ({failed_runs} of 10 runs "
                         "failed)", answers, expected, time.perf_counter() - started))

        from bladi_cases.services.reports.indicators import Period

        year = Period.containing(date.today()).fiscal_year
        exports = [f"/reports/exports/tracking-{year}.xlsx",
                   f"/reports/exports/tracking-{year}.csv",
                   f"/reports/exports/microdata-{year}.csv"]
        export_answers: list[load.Answer] = []

        def download(stop):
            opener = load._opener()
            while not stop.is_set():
                for path in exports:
                    export_answers.append(load.ask_for_file(opener, base, path, donor))

        started = time.perf_counter()
        with load.in_background(download):
            answers = load.together(core, base, worker, 12, 2, seed=7)
        rows.append(_row("pages of the day (12 threads x 2 each) while the donor downloads "
                         "exports", answers, expected, time.perf_counter() - started))
        rows.append(_row("  the exports themselves", export_answers,
                         {p: 200 for p in exports}, time.perf_counter() - started))

        held: list[float] = []
        started = time.perf_counter()
        with load.in_background(lambda stop: load.hold_write_lock(database, args.hold, stop,
                                                                 held)):
            answers = load.together(core, base, worker, 12, 2, seed=11)
        rows.append(_row(f"pages of the day (12 threads x 2 each) while another program holds "
                         f"the write lock {args.hold:g} s at a time, 1 s apart ({len(held)} "
                         "times)", answers, expected, time.perf_counter() - started))

    not_200 = sorted(f"{path} {status}" for path, status in expected.items() if status != 200)
    print(f"gunicorn {' '.join(options)}; SQLite demo database (400 youth); "
          f"{len(paths)} URLs, of which answering other than 200 alone: {not_200 or 'none'}")
    for line in left_out:
        print(f"left out: {line}")
    print()
    print("| scenario | requests | errors | p50 ms | p99 ms | max ms | s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

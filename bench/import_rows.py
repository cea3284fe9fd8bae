"""Import speed: check and import a spreadsheet of 10,000 young people (the largest allowed).

Run: `.venv/bin/python bench/import_rows.py [--rows 10000] [--database URL] [--phases]`
(the database must be empty: the bench migrates and seeds it). Builds the file with the
demo generator (synthetic names), then times the two phases the import page runs: checking
every row (validation and duplicate search) and writing them all in one transaction.
Prints a Markdown table of the totals.

With `--phases`, also where the time goes: each step's functions are wrapped with a timer
(under 0.1 s for 10,000 rows); the steps add up to the total.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Phases:
    """Seconds spent in wrapped functions, by step; a step's time excludes the wrapped calls
    made inside it (the rows an insert encrypts while it sends them count as encryption)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # time of wrapped calls inside each running one

    def wrap(self, module, name: str, step) -> None:
        """Time every call of module.name under `step` (a name, or a function of the call's
        arguments giving one); nothing if there is no such function (an older version of the
        code, measured for comparison: its time then counts as "the rest")."""
        function = getattr(module, name, None)
        if function is None:
            return

        def timed(*args, **kwargs):
            inner = self._inner
            inner.append(0.0)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                key = step(*args, **kwargs) if callable(step) else step
                self.seconds[key] += elapsed - inner.pop()
                if inner:
                    inner[-1] += elapsed

        setattr(module, name, timed)


def _instrument(phases: Phases) -> None:
    from bladi_cases.privacy import crypto
    from bladi_cases.services.beneficiaries import imports, registry

    inserts = {"beneficiary_name_index": "name-index inserts"}
    phases.wrap(imports, "_duplicates", "duplicate lookup (one query)")
    phases.wrap(crypto.FieldCipher, "encrypt", "encryption of identifying fields (AES-GCM)")
    phases.wrap(registry, "_name_key", "blind indexes: duplicate-check keys")
    phases.wrap(registry, "_name_digests", "blind indexes: name-prefix digests")
    phases.wrap(registry, "_name_index_rows", "blind indexes: name-prefix digests")  # before
    phases.wrap(registry, "allocate_sequences", "row inserts (youth, consent, enrolment)")
    phases.wrap(registry, "_insert_many", lambda table, *_a: inserts.get(
        table.name, "row inserts (youth, consent, enrolment)"))
    phases.wrap(imports, "refresh_statistics", "planner statistics (ANALYZE)")
    phases.wrap(imports, "record", "audit entry")


def main() -> int:
    """Time check_file and import_rows on a generated CSV."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database")
    parser.add_argument("--phases", action="store_true",
                        help="time each step of the check and the write")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bladi-import-bench-"))
    os.environ.update(BLADI_ENV="development", BLADI_INSTANCE_PATH=str(tmp),
                      DATABASE_URL=args.database or f"sqlite:///{tmp / 'import.db'}")

    import sqlalchemy as sa
    from flask_migrate import upgrade

    from bladi_cases import create_app
    from bladi_cases.demo import _delegations, _names, demo_registration
    from bladi_cases.extensions import db
    from bladi_cases.models import Organization
    from bladi_cases.seed import seed_demo
    from bladi_cases.services.beneficiaries import imports as importer

    phases = Phases()
    if args.phases:
        _instrument(phases)
    app = create_app({"WTF_CSRF_ENABLED": False})
    with app.app_context():
        upgrade()
        seed_demo()
        db.session.commit()
        org = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
        rng, names, delegations = random.Random(3), _names(), _delegations()
        header = [key for key, _label in importer.COLUMNS]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for _ in range(args.rows):
            values = demo_registration(rng, org, list(org.sites), names, delegations,
                                       date.today())
            values["site"] = values["site"].name if values["site"] else ""
            values["consent_scopes"] = ",".join(values["consent_scopes"])
            writer.writerow(["" if values.get(k) is None else values[k] for k in header])
        data = buffer.getvalue().encode("utf-8-sig")
        started, cpu_started = time.perf_counter(), time.process_time()
        check = importer.check_file(org, "bench.csv", data)
        checked = time.perf_counter()
        in_check = dict(phases.seconds)
        phases.seconds.clear()
        codes = importer.import_rows(None, org, check, set(check.duplicates))
        db.session.commit()
        written, cpu = time.perf_counter(), time.process_time() - cpu_started
        in_write = dict(phases.seconds)
        database = db.engine.dialect.name
    print(f"database: {database}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print("| rows | file size | check (s) | import (s) | total (s) | rows/s | "
          "duplicate rows skipped | CPU of this process (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.rows:,} | {len(data) / 1e6:.1f} MB | {checked - started:.1f} | "
          f"{written - checked:.1f} | {written - started:.1f} | "
          f"{len(codes) / (written - started):.0f} | {len(check.duplicates)} | {cpu:.1f} |")
    if not args.phases:
        return 0
    print()
    lookup = in_check.get("duplicate lookup (one query)", 0.0)
    steps = [("check", "reading, parsing and validating the rows", checked - started - lookup),
             ("check", "duplicate lookup (keys of every row, one query)", lookup)]
    steps += [("write", step, seconds) for step, seconds in sorted(
        in_write.items(), key=lambda item: -item[1])]
    steps.append(("write", "the rest (building the rows, the commit)",
                  written - checked - sum(in_write.values())))
    print("| phase | step | seconds | share |")
    print("|---|---|---:|---:|")
    for phase, step, seconds in steps:
        print(f"| {phase} | {step} | {seconds:.2f} | {seconds / (written - started):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

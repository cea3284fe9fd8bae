"""Import speed: check and import a spreadsheet of 10,000 young people (the largest allowed).

Run: `.venv/bin/python bench/import_rows.py [--rows 10000] [--database URL]`. Builds the
file with the demo generator (synthetic names), then times the two phases the import page
runs: checking every row (validation and duplicate search) and writing them all in one
transaction. Prints a Markdown table.
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
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    """Time check_file and import_rows on a generated CSV."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database")
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
        started = time.perf_counter()
        check = importer.check_file(org, "bench.csv", data)
        checked = time.perf_counter()
        codes = importer.import_rows(None, org, check, set(check.duplicates))
        db.session.commit()
        written = time.perf_counter()
    print("| rows | file size | check (s) | import (s) | total (s) | rows/s | "
          "duplicate rows skipped |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.rows:,} | {len(data) / 1e6:.1f} MB | {checked - started:.1f} | "
          f"{written - checked:.1f} | {written - started:.1f} | "
          f"{len(codes) / (written - started):.0f} | {len(check.duplicates)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

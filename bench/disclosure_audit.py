"""How long the disclosure audit of a year's release takes where it has work to do.

On the 100,000-youth data of bench/reporting.py every figure is large and nothing is hidden,
so the audit there is a formality. The demo data (`make run`: 330 youth over 11 CSOs) is the
hard case: small CSOs, primary cells in most tables, and the integer programs of the audit
(docs/PRIVACY.md) run until no hidden figure is narrowed. This builds the demo on a fresh
SQLite file, then times, for each fiscal year with youth, the release built with the audit
(no stored protection) and again from the snapshot that keeps what the audit hid (what every
page does). Run: `.venv/bin/python bench/disclosure_audit.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    """Seed the demo, then time the audit of each year."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bladi-audit-"))
    os.environ.update(BLADI_ENV="development", DATABASE_URL=f"sqlite:///{folder / 'demo.db'}",
                      BLADI_INSTANCE_PATH=str(folder))

    from flask_migrate import upgrade

    from bladi_cases import create_app
    from bladi_cases.services.reports.release import build, first_year, year_figures

    app = create_app()
    with app.app_context():
        upgrade()
    # The demo exactly as `make run` seeds it.
    done = app.test_cli_runner().invoke(args=["seed", "demo", "--beneficiaries", "330"])
    assert done.exit_code == 0, done.output
    k = app.config["BLADI_SMALL_CELL_K"]
    print("| fiscal year | figures | hidden | audit, no snapshot (median) | from the snapshot |")
    print("|---|---:|---:|---:|---:|")
    with app.test_request_context():
        from datetime import date

        from bladi_cases.services.reports.indicators import Period

        for year in range(first_year(), Period.containing(date.today()).fiscal_year + 1):
            payload = year_figures(year)
            audits, reuses = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                audited = build(payload, year, k)
                audits.append(time.perf_counter() - started)
                kept = {**payload, "protection": {str(k): audited.release.protection()}}
                started = time.perf_counter()
                build(kept, year, k)
                reuses.append(time.perf_counter() - started)
            shown = audited.release._shown
            hidden = sum(1 for text in shown.values() if text == "…")
            print(f"| FY{year} | {len(shown)} | {hidden} ({100 * hidden / len(shown):.1f}%) | "
                  f"{statistics.median(audits) * 1000:.0f} ms | "
                  f"{statistics.median(reuses) * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

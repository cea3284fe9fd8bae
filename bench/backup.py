"""Backup speed: `backup create`, `backup verify` and `backup restore` on 100,000 youth.

Run: `.venv/bin/python bench/backup.py [--count 100000] [--database SQLITE_URL]
[--postgres URL]`. The registry is built by bench/search.py's builder (kept in
/tmp/bladi-bench-<count>.db, or --database, for later runs). With --postgres (an empty
database), it is migrated and filled with a copy of the SQLite rows (much faster than
generating them again), then measured too. Each step calls the service the `flask backup`
commands call; the restore goes into a new empty database (a temporary SQLite file, or a
PostgreSQL database created and dropped here). Prints a Markdown table per database.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _measure(app, live) -> list[tuple[str, float, str]]:
    """Create, verify and restore a backup of `live`; (step, seconds, detail) rows."""
    import sqlalchemy as sa

    from bladi_cases.privacy import cipher_from_config
    from bladi_cases.services import backups

    rows = []
    with tempfile.TemporaryDirectory(prefix="bladi-bench-backup-") as tmp:
        out = Path(tmp) / "bench.bladi"
        started = time.perf_counter()
        manifest = backups.create_backup(live, out)
        rows.append(("backup create", time.perf_counter() - started,
                     f"{manifest.rows:,} rows in {len(manifest.tables)} tables; file "
                     f"{out.stat().st_size / 1e6:,.0f} MB"))
        started = time.perf_counter()
        result = backups.verify_backup(out, cipher_from_config(app.config),
                                       Path(app.extensions["migrate"].directory), live)
        assert result.ok, result.checks
        rows.append(("backup verify", time.perf_counter() - started,
                     next(c.detail for c in result.checks if c.name == "decryption")))
        drop = None
        if live.get_backend_name() == "sqlite":
            target = sa.engine.make_url(f"sqlite:///{Path(tmp) / 'restored.db'}")
        else:
            target = live.set(database=f"bladi_bench_restore_{secrets.token_hex(4)}")
            drop = sa.create_engine(live, isolation_level="AUTOCOMMIT")
            with drop.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
        try:
            started = time.perf_counter()
            backups.restore_backup(out, target)
            rows.append(("backup restore, into an empty database",
                         time.perf_counter() - started, "row counts checked"))
        finally:
            if drop is not None:
                with drop.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE "{target.database}" WITH (FORCE)'))
                drop.dispose()
    return rows


def _copy_to_postgres(source_url, postgres_url: str) -> None:
    """Migrate the empty PostgreSQL database, then copy every row of the SQLite one."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from bladi_cases import create_app
    from bladi_cases.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": postgres_url})
    with app.app_context():
        upgrade()
        target = db.engine
        source = sa.create_engine(source_url)
        with source.connect() as read, target.begin() as write:
            for table in db.metadata.sorted_tables:
                batch = []
                for row in read.execute(sa.select(table)).mappings():
                    batch.append(dict(row))
                    if len(batch) == 5000:
                        write.execute(table.insert(), batch)
                        batch = []
                if batch:
                    write.execute(table.insert(), batch)
        source.dispose()


def _table(title: str, rows) -> None:
    print(f"| {title} | seconds | |")
    print("|---|---:|---|")
    for label, seconds, detail in rows:
        print(f"| {label} | {seconds:.1f} | {detail} |")


def main() -> int:
    """Build (once), then time create, verify and restore on SQLite (and PostgreSQL)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--database", help="SQLite URL of the built registry")
    parser.add_argument("--postgres", help="an empty PostgreSQL database to measure too")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.gettempdir()}/bladi-bench-{args.count}.db"
    os.environ.update(BLADI_ENV="development", DATABASE_URL=url,
                      BLADI_INSTANCE_PATH=str(Path(tempfile.gettempdir()) / "bladi-bench"))

    import sqlalchemy as sa
    from search import _build

    from bladi_cases import create_app
    from bladi_cases.extensions import db
    from bladi_cases.models import Beneficiary

    app = create_app()
    _build(app, args.count)
    with app.app_context():
        youth = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary))
        live = db.engine.url
        db.session.remove()
        _table(f"SQLite ({youth:,} young people)", _measure(app, live))
    if args.postgres:
        started = time.perf_counter()
        _copy_to_postgres(url, args.postgres)
        print(f"\n(copied into PostgreSQL in {time.perf_counter() - started:.0f} s)\n",
              file=sys.stderr)
        postgres = create_app({"SQLALCHEMY_DATABASE_URI": args.postgres})
        with postgres.app_context():
            _table(f"PostgreSQL ({youth:,} young people)", _measure(postgres, db.engine.url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

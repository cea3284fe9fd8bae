"""Backups that restore: a consistent copy of the live database, restored only into an
empty database, and verified by restoring it into a scratch database.

A backup file is a tar archive of two members:

- `manifest.json`: the format, when it was made, the kind of database, its Alembic
  revision, the row count of every table (read in the same snapshot as the copy) and the
  SHA-256 of the copy;
- the copy: `database.sqlite3` (the SQLite online backup API, gzip-compressed in the
  archive) or `database.pgdump` (`pg_dump -Fc` run inside the snapshot the counts were read
  in, so counts and copy agree while the application keeps writing).

The data key is never written: encrypted columns stay encrypted, so a backup is
readable only with the BLADI_DATA_KEY kept apart from it. `verify` proves both halves: the
copy restores, and a sample of its encrypted values decrypts with the key configured now.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.engine import URL, make_url

from ..extensions import db
from ..models import JobStage
from ..models.common import encrypted_columns
from ..privacy import DataKeyError, FieldCipher
from . import jobs

FORMAT = 1
MANIFEST = "manifest.json"
PAYLOADS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
SAMPLE_PER_COLUMN = 25  # encrypted values decrypted per column by `verify`
_CHUNK = 1 << 20


class BackupError(Exception):
    """A backup cannot be made, read, restored or verified: the message says why and what
    to do (the command line prints it as it is)."""


@dataclass
class Manifest:
    """What a backup holds, written next to the copy (never a key, never a password)."""

    format: int
    created_at: str
    dialect: str
    revision: str | None
    tables: dict[str, int]
    payload: str
    sha256: str
    size: int
    server_version: str | None = None

    @property
    def rows(self) -> int:
        """All rows of all tables."""
        return sum(self.tables.values())


@dataclass
class Check:
    """One verification and its outcome."""

    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    """What `verify_backup` found, check by check."""

    manifest: Manifest
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(check.ok for check in self.checks)


# --- Databases ---------------------------------------------------------------------------

def _dialect(url: URL) -> str:
    name = url.get_backend_name()
    if name not in PAYLOADS:
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {name}.")
    return name


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("An in-memory SQLite database has nothing to back up or restore "
                          "into: give a database file.")
    return Path(url.database)


def _table_counts(conn: sa.Connection) -> dict[str, int]:
    """Every table of the database's default schema and its number of rows."""
    names = sorted(sa.inspect(conn).get_table_names())
    return {name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name)))
            .scalar_one() for name in names}


def _revision(conn: sa.Connection, tables) -> str | None:
    if "alembic_version" not in tables:
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _object_count(url: URL) -> int:
    """How many tables and views the database holds (0: it is empty)."""
    if _dialect(url) == "sqlite":
        path = _sqlite_path(url)
        if not path.exists() or path.stat().st_size == 0:
            return 0
        try:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                return conn.execute("SELECT count(*) FROM sqlite_master WHERE type IN ('table', "
                                    "'view') AND name NOT LIKE 'sqlite_%'").fetchone()[0]
        except sqlite3.DatabaseError:
            raise BackupError(f"{path} is not a SQLite database: give an empty or new "
                              "file.") from None
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%'")).scalar_one()
    except sa.exc.OperationalError as exc:
        raise BackupError(f"Cannot connect to the database: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- PostgreSQL tools --------------------------------------------------------------------

def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} was not found on the PATH. Install the PostgreSQL client "
                          f"tools of the server's major version (Debian: apt-get install "
                          f"postgresql-client), then run this again.")
    return found


def _conninfo(url: URL) -> str:
    """A libpq connection string without the password (it goes in PGPASSWORD, never on a
    command line that `ps` shows)."""
    parts = {"host": url.host, "port": url.port, "user": url.username, "dbname": url.database}
    parts.update({k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()})

    def quoted(value) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={quoted(value)}" for key, value in parts.items()
                    if value not in (None, ""))


def _run_pg(tool: str, url: URL, *args: str) -> None:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    try:
        done = subprocess.run([_pg_tool(tool), *args, f"--dbname={_conninfo(url)}"], env=env,
                              capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(f"{tool} could not be started: {exc}") from None
    if done.returncode != 0:
        message = " ".join(done.stderr.strip().splitlines()[-3:]) or f"exit {done.returncode}"
        raise BackupError(f"{tool} failed: {message}")


# --- Files -------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_archive(out: Path, manifest: Manifest, payload: Path) -> None:
    """Write the archive beside `out`, readable by its owner only, then move it into place
    (a backup interrupted half-way never looks like a finished one)."""
    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        mode = "w:gz" if manifest.dialect == "sqlite" else "w"  # a pg_dump -Fc is compressed
        with os.fdopen(descriptor, "wb") as raw, tarfile.open(
                fileobj=raw, mode=mode, **({"compresslevel": 1} if mode == "w:gz" else {})
        ) as archive:
            body = json.dumps(asdict(manifest), indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
            archive.addfile(info, io.BytesIO(body))
            archive.add(payload, arcname=manifest.payload, recursive=False)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def open_backup(path: Path) -> Iterator[tuple[Manifest, Path]]:
    """The manifest and the copy of a backup file, unpacked into a private temporary
    folder (deleted afterwards); refused when it is not a whole, undamaged backup."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file.")
    with tempfile.TemporaryDirectory(prefix="bladi-backup-") as folder:
        try:
            with tarfile.open(path, "r:*") as archive:
                manifest = _read_manifest(archive, path)
                member = archive.getmember(manifest.payload)
                if not member.isfile():
                    raise KeyError(manifest.payload)
                payload = Path(folder) / manifest.payload
                with archive.extractfile(member) as source, payload.open("wb") as target:
                    shutil.copyfileobj(source, target, _CHUNK)
        except (tarfile.TarError, KeyError, EOFError, OSError, ValueError) as exc:
            raise BackupError(f"{path} is not a readable BLADI backup (damaged or "
                              f"incomplete: {type(exc).__name__}).") from None
        if _sha256(payload) != manifest.sha256:
            raise BackupError(f"{path} is damaged: its database copy does not match the "
                              "checksum in its manifest.")
        yield manifest, payload


def _read_manifest(archive: tarfile.TarFile, path: Path) -> Manifest:
    try:
        raw = json.loads(archive.extractfile(archive.getmember(MANIFEST)).read(1 << 20))
        if isinstance(raw.get("format"), int) and raw["format"] > FORMAT:
            raise BackupError(f"{path} was made by a newer version of BLADI Cases (backup "
                              f"format {raw['format']}); update the application first.")
        manifest = Manifest(**raw)
    except (KeyError, AttributeError, TypeError, ValueError):
        raise BackupError(f"{path} is not a BLADI backup (no readable {MANIFEST}).") from None
    if manifest.dialect not in PAYLOADS or manifest.payload != PAYLOADS[manifest.dialect]:
        raise BackupError(f"{path} is not a BLADI backup (unknown content).")
    return manifest


# --- Create ------------------------------------------------------------------------------

def create_backup(database_url: str | URL, out: Path) -> Manifest:
    """Copy the live database into the backup file `out` (refused if it exists), while the
    application keeps running."""
    url, out = make_url(database_url), Path(out)
    if out.exists():
        raise BackupError(f"{out} already exists: give a new file name (a backup is never "
                          "overwritten).")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a folder.")
    maker = _create_sqlite if _dialect(url) == "sqlite" else _create_postgresql
    with tempfile.TemporaryDirectory(prefix="bladi-backup-", dir=out.parent) as folder:
        payload = Path(folder) / PAYLOADS[url.get_backend_name()]
        counts, revision, version = maker(url, payload)
        manifest = Manifest(
            format=FORMAT, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            dialect=url.get_backend_name(), revision=revision, tables=counts,
            payload=payload.name, sha256=_sha256(payload), size=payload.stat().st_size,
            server_version=version)
        _write_archive(out, manifest, payload)
    return manifest


def _create_sqlite(url: URL, payload: Path) -> tuple[dict[str, int], str | None, str]:
    source = _sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"There is no database at {source}.")
    # The online backup API copies a consistent snapshot while others read and write
    # (all pages in one step: a copy made in steps restarts whenever someone writes).
    try:
        with contextlib.closing(sqlite3.connect(source, timeout=60)) as live, \
                contextlib.closing(sqlite3.connect(payload)) as copy:
            live.backup(copy)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"The database at {source} cannot be copied: {exc}.") from None
    engine = sa.create_engine(f"sqlite:///{payload}", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            counts = _table_counts(conn)
            return counts, _revision(conn, counts), sqlite3.sqlite_version
    finally:
        engine.dispose()


def _create_postgresql(url: URL, payload: Path) -> tuple[dict[str, int], str | None, str]:
    _pg_tool("pg_dump")  # before opening anything: say at once that it is missing
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                # One snapshot for the counts and for pg_dump (--snapshot): they agree
                # however much the application writes meanwhile.
                snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
                counts = _table_counts(conn)
                revision = _revision(conn, counts)
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
                _run_pg("pg_dump", url, "--format=custom", f"--snapshot={snapshot}",
                        f"--file={payload}")
    except sa.exc.OperationalError as exc:
        raise BackupError(f"Cannot connect to the database: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    return counts, revision, version


# --- Restore -----------------------------------------------------------------------------

def restore_backup(path: Path, database_url: str | URL) -> Manifest:
    """Restore a backup into the database at `database_url`, which must be empty; then
    check that every table holds the rows the manifest counted."""
    url = make_url(database_url)
    with open_backup(path) as (manifest, payload):
        if manifest.dialect != _dialect(url):
            raise BackupError(f"This backup is of a {manifest.dialect} database; the target "
                              f"is {url.get_backend_name()}. Restore it into a "
                              f"{manifest.dialect} database.")
        objects = _object_count(url)
        if objects:
            raise BackupError(f"The target database is not empty ({objects} tables): restore "
                              "only into an empty database (create a new one, then point "
                              "DATABASE_URL at it).")
        _load(manifest, payload, url)
    problems = _compare_counts(manifest, url)
    if problems:
        raise BackupError("Restored, but the row counts differ from the backup's: "
                          + "; ".join(problems))
    return manifest


def _load(manifest: Manifest, payload: Path, url: URL) -> None:
    if manifest.dialect == "sqlite":
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(payload)) as copy, \
                contextlib.closing(sqlite3.connect(target)) as database:
            copy.backup(database)
        return
    _run_pg("pg_restore", url, "--exit-on-error", "--single-transaction", "--no-owner",
            "--no-privileges", str(payload))


def _compare_counts(manifest: Manifest, url: URL) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            found = _table_counts(conn)
    finally:
        engine.dispose()
    problems = [f"{name}: {found.get(name, 'missing')} rows, the backup has {count}"
                for name, count in manifest.tables.items() if found.get(name) != count]
    problems += [f"{name}: a table the backup does not have" for name in found
                 if name not in manifest.tables]
    return problems


# --- Verify ------------------------------------------------------------------------------

def verify_backup(path: Path, cipher: FieldCipher, migrations: Path,
                  server_url: str | URL | None = None) -> Verification:
    """Restore the backup into a scratch database (a temporary SQLite file, or a temporary
    PostgreSQL database on `server_url`'s server, dropped afterwards), then check its row
    counts against the manifest, its migration revision against the code's, and that a
    sample of every encrypted column decrypts with `cipher`."""
    started = time.perf_counter()
    with open_backup(path) as (manifest, payload):
        result = Verification(manifest)
        result.checks.append(Check("checksum", True, f"{manifest.size} bytes, SHA-256 matches"))
        with _scratch(manifest, payload, server_url) as scratch:
            result.checks.append(Check("restore", True, "restored into a scratch database"))
            problems = _compare_counts(manifest, scratch)
            result.checks.append(Check(
                "row counts", not problems, "; ".join(problems) if problems else
                f"{len(manifest.tables)} tables, {manifest.rows} rows, as counted"))
            result.checks.append(_check_revision(manifest, scratch, migrations))
            result.checks.append(_check_decryption(scratch, cipher))
    result.seconds = time.perf_counter() - started
    return result


@contextlib.contextmanager
def _scratch(manifest: Manifest, payload: Path, server_url) -> Iterator[URL]:
    if manifest.dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bladi-verify-") as folder:
            url = make_url(f"sqlite:///{Path(folder) / 'scratch.db'}")
            _load(manifest, payload, url)
            with contextlib.closing(sqlite3.connect(url.database)) as conn:
                state = conn.execute("PRAGMA quick_check").fetchone()[0]
            if state != "ok":
                raise BackupError(f"The restored copy is damaged (SQLite: {state}).")
            yield url
        return
    server = make_url(server_url) if server_url else None
    if server is None or server.get_backend_name() != "postgresql":
        raise BackupError("This is a PostgreSQL backup: verifying it needs a PostgreSQL "
                          "server to create a scratch database on (DATABASE_URL, or "
                          "--scratch-url).")
    name = f"bladi_verify_{os.getpid()}_{secrets.token_hex(4)}"  # whose, if one is left
    admin = sa.create_engine(server, poolclass=sa.pool.NullPool,
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise BackupError(f"Cannot create a scratch database on the PostgreSQL server (the "
                          f"account needs CREATEDB): {_first_line(exc)}") from None
    try:
        url = server.set(database=name)
        _load(manifest, payload, url)
        yield url
    finally:
        with admin.connect() as conn:
            # FORCE (PostgreSQL 13+) ends a connection left open by a failed step.
            force = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) >= 130000
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'
                                 + (" WITH (FORCE)" if force else "")))
        admin.dispose()


def _check_revision(manifest: Manifest, scratch: URL, migrations: Path) -> Check:
    engine = sa.create_engine(scratch, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            restored = _revision(conn, sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    script = ScriptDirectory(str(migrations))
    head = script.get_current_head()
    if restored != manifest.revision:
        return Check("migrations", False, f"the copy is at {restored}, its manifest says "
                                          f"{manifest.revision}")
    if restored == head:
        return Check("migrations", True, f"at {head}, the code's head")
    known = {rev.revision for rev in script.walk_revisions()}
    if restored in known:
        return Check("migrations", True, f"at {restored}, older than the code's head {head}: "
                                         "run `flask db upgrade` after restoring it")
    return Check("migrations", False, f"at {restored}, a revision this code does not know "
                                      f"(head {head}): restore it with the version of the "
                                      "application that made it")


def _check_decryption(scratch: URL, cipher: FieldCipher) -> Check:
    """Decrypt a random sample of every encrypted column (found through the models'
    registry, `encrypted_columns`) with the configured key."""
    engine = sa.create_engine(scratch, poolclass=sa.pool.NullPool)
    checked, failures, columns = 0, [], 0
    try:
        with engine.connect() as conn:
            present = {name: {c["name"] for c in sa.inspect(conn).get_columns(name)}
                       for name in sa.inspect(conn).get_table_names()}
            for model, names in encrypted_columns().items():
                table = model.__table__
                key = list(table.primary_key.columns)
                for name in names:
                    column = model.__mapper__.columns[name]
                    if column.name not in present.get(table.name, ()):
                        continue  # an older revision without this column
                    columns += 1
                    rows = conn.execute(sa.select(*key, column).where(column.is_not(None))
                                        .order_by(sa.func.random()).limit(SAMPLE_PER_COLUMN))
                    for *ids, token in rows:
                        checked += 1
                        try:
                            cipher.decrypt(token)
                        except DataKeyError:
                            failures.append(f"{table.name} row {'/'.join(map(str, ids))}, "
                                            f"column {column.name}")
    finally:
        engine.dispose()
    if failures:
        return Check("decryption", False, f"{len(failures)} of {checked} sampled values do "
                     "not decrypt with the configured BLADI_DATA_KEY (the backup was made "
                     "under another key?): " + ", ".join(failures[:5]))
    return Check("decryption", True, f"{checked} sampled values of {columns} encrypted "
                                     "columns decrypt with the configured BLADI_DATA_KEY")


# --- As a background job, and every night from the scheduler ------------------------------

def backup_folder() -> Path:
    """Where the app's own backups go: BLADI_BACKUP_DIR, or the instance folder's backups/
    (on several nodes, a folder they share: the nightly backup runs on one of them)."""
    folder = Path(current_app.config.get("BLADI_BACKUP_DIR") or
                  Path(current_app.instance_path) / "backups")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# The app's own backup files: bladi-<UTC date>-<time>-<random>.tar. Only these are ever
# deleted by `prune_backups`; the name's time orders them. Written by `own_backup_name`,
# read by `_own_backups`, both from these three (the pattern's digits stand for
# _NAME_TIME: tests/test_jobs.py reads a written name back, and fails if they part).
_NAME_TIME = "%Y%m%d-%H%M%S"
_NAME_RANDOM_BYTES = 3
_OWN_BACKUP = re.compile(rf"bladi-(\d{{8}}-\d{{6}})-[0-9a-f]{{{2 * _NAME_RANDOM_BYTES}}}\.tar")


def own_backup_name(made: datetime) -> str:
    """The file name of one of the app's own backups made at `made` (UTC)."""
    return f"bladi-{made.astimezone(UTC).strftime(_NAME_TIME)}-" \
        f"{secrets.token_hex(_NAME_RANDOM_BYTES)}.tar"


def _backup_now(progress=None) -> tuple[Path, Manifest]:
    folder = backup_folder()
    out = folder / own_backup_name(datetime.now(UTC))
    if progress:
        progress(JobStage.COPIED, 0, 1)
    manifest = create_backup(db.engine.url, out)
    if progress:
        progress(JobStage.COPIED, 1, 1)
    prune_backups(folder, current_app.config["BLADI_BACKUP_KEEP"], written=out)
    return out, manifest


def _own_backups(folder: Path) -> list[tuple[datetime, Path]]:
    """The app's own backup files in `folder` with the time in their names, oldest first
    (a name of that form whose date is no date, 30 February say, is not one of them)."""
    found = []
    for path in folder.iterdir():
        match = _OWN_BACKUP.fullmatch(path.name)
        if match and path.is_file():
            try:
                made = datetime.strptime(match.group(1), _NAME_TIME).replace(tzinfo=UTC)
            except ValueError:
                continue
            found.append((made, path))
    return sorted(found)


def prune_backups(folder: Path, keep: int, written: Path | None = None) -> list[Path]:
    """Delete the app's own backups in `folder` beyond the newest `keep` (by the time in
    their names, which a copy does not change as it may a file's date), once a new one is
    written: a nightly backup must not fill the disk. Other files, and the backup just
    `written`, are never deleted; `keep` 0 keeps everything. Returns what was deleted."""
    if keep <= 0:
        return []
    own = _own_backups(folder)
    deleted = []
    for _made, path in own[:max(len(own) - keep, 0)]:
        if path != written:
            try:
                path.unlink(missing_ok=True)  # another node may have pruned it already
            except OSError as exc:  # the new backup is written: say so, and go on
                current_app.logger.warning("backup %s not deleted: %s", path, exc)
                continue
            deleted.append(path)
    return deleted


# Not stoppable while it runs: it reports after its one long step, the file written.
@jobs.job_kind("backups.create", _l("Backup"), max_attempts=2, back="admin.maintenance",
               back_label=_l("Maintenance"), stoppable=False)
def backup_job(job, progress) -> jobs.Outcome:
    """A backup file in the backup folder, as `flask backup create` writes it. A retry
    writes a new file (never overwrites one): at worst two backups of the same moment."""
    try:
        out, manifest = _backup_now(progress)
    except BackupError as refused:
        raise jobs.JobFailed([str(refused)]) from refused
    return jobs.Outcome(message=_("Backup written: %(name)s (%(n)d rows).", name=str(out),
                                  n=manifest.rows), data={"file": str(out)})


NIGHTLY_AFTER_HOURS = 20


@jobs.every(3600, "backup")
def nightly_backup() -> bool:
    """Once a day (checked every hour), when BLADI_BACKUP_DIR is set: a backup, by one
    node, unless the folder holds one of the app's own made in the last
    NIGHTLY_AFTER_HOURS hours (by the time in its name)."""
    if not current_app.config.get("BLADI_BACKUP_DIR"):
        return False
    with jobs.only_one("backup", 6 * 3600) as mine:
        if not mine:
            return False
        recent = datetime.now(UTC) - timedelta(hours=NIGHTLY_AFTER_HOURS)
        if any(made > recent for made, _path in _own_backups(backup_folder())):
            return False
        _backup_now()
        return True

"""Backups that restore, through the `flask backup` commands: a round trip on SQLite and on
PostgreSQL (scratch databases made and dropped here), a copy consistent while someone
writes, the key never in the file, a non-empty target refused, and damaged files, a wrong
key and unknown migrations reported."""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

from bladi_cases import create_app
from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, Organization, Role, User
from bladi_cases.privacy import FieldCipher, new_key, parse_keys
from bladi_cases.seed import seed_reference
from bladi_cases.services import backups
from bladi_cases.services.beneficiaries.registry import register
from bladi_cases.services.cases import cases as case_service

from .conftest import registration

KEY = new_key()
NAMES = ["أميرة", "سلمى", "وسيم"]


@contextlib.contextmanager
def _session_on(engine):
    """The services write through db.session, which the test suite binds to its own
    database: bind it to `engine` for a while."""
    original = db.session
    db.session = scoped_session(sessionmaker(bind=engine))
    try:
        yield
    finally:
        db.session.remove()
        db.session = original


def _app(url: str, key: str = KEY):
    return create_app({"BLADI_ENV": "testing", "TESTING": True, "SERVER_NAME": "bladi.test",
                       "SQLALCHEMY_DATABASE_URI": url, "BLADI_DATA_KEY": key})


def _source(url: str):
    """An app on its own database: migrated, reference data, three youth (encrypted names,
    consents), a case with a note (encrypted text)."""
    source = _app(url)
    with source.app_context():
        upgrade()
        with _session_on(db.engine):
            seed_reference()
            ba = db.session.scalars(sa.select(Organization).where(
                Organization.code == "BA")).one()
            worker = User(email="w@example.tn", display_name="W", role=Role.FIELD_WORKER,
                          organization_id=ba.id, password_hash="x")
            db.session.add(worker)
            youth = [register(None, ba, registration(first_name_ar=name), confirmed_new=True)
                     for name in NAMES]
            case = case_service.open_case(worker, youth[0], {"workers": [worker]})
            case_service.add_note(worker, case, {"kind": "meeting", "text": "ملاحظة سرية"})
            db.session.commit()
        db.engine.dispose()
    return source


@pytest.fixture(scope="module")
def _built(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("built") / "live.db"
    _source(f"sqlite:///{path}")
    return path


@pytest.fixture
def live(_built, tmp_path) -> tuple[str, object]:
    """A copy of the built SQLite database (its URL) and an app on it."""
    for suffix in ("", "-wal"):
        if Path(f"{_built}{suffix}").exists():
            shutil.copy(f"{_built}{suffix}", tmp_path / f"live.db{suffix}")
    url = f"sqlite:///{tmp_path / 'live.db'}"
    return url, _app(url)


def _invoke(app, *args):
    # The suite's app context is pushed for every test, and a command runs in the current
    # app's context if there is one: push this app's.
    with app.app_context():
        return app.test_cli_runner().invoke(args=["backup", *args])


def _counts(url) -> dict[str, int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return backups._table_counts(conn)
    finally:
        engine.dispose()


def _names(url) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    cipher = FieldCipher(parse_keys(KEY))
    try:
        with engine.connect() as conn:
            return [cipher.decrypt(token) for token in conn.scalars(
                sa.select(Beneficiary.first_name_ar_enc).order_by(Beneficiary.id))]
    finally:
        engine.dispose()


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:*") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def _assert_no_key(path: Path, readable_payload: bytes) -> None:
    """Neither the key as configured nor its raw bytes are anywhere in the backup."""
    raw = path.read_bytes()
    members = _members(path)
    for key in parse_keys(KEY):
        for needle in (key, base64.urlsafe_b64decode(key), key.rstrip(b"=")):
            assert needle not in raw
            assert all(needle not in body for body in members.values())
            assert needle not in readable_payload
    assert "BLADI_DATA_KEY" not in members[backups.MANIFEST].decode()


def _round_trip(source, source_url: str, empty_url: str, tmp_path: Path) -> Path:
    """What every database must do: create, verify, refuse a non-empty target, restore."""
    out = tmp_path / "nightly.bladi"
    created = _invoke(source, "create", "--out", str(out))
    assert created.exit_code == 0, created.output
    assert "It holds no key" in created.output
    assert out.stat().st_mode & 0o077 == 0, "readable by its owner only"
    manifest = json.loads(_members(out)[backups.MANIFEST])
    assert manifest["tables"] == _counts(source_url)
    assert manifest["tables"]["beneficiary"] == 3 and manifest["revision"]
    again = _invoke(source, "create", "--out", str(out))
    assert again.exit_code == 1 and "already exists" in again.output

    verified = _invoke(source, "verify", str(out))
    assert verified.exit_code == 0, verified.output
    assert "FAILED" not in verified.output and "ok     decryption:" in verified.output
    assert "ok     migrations: at " in verified.output and "the code's head" in verified.output
    assert " 0 sampled" not in verified.output

    refused = _invoke(source, "restore", str(out))
    assert refused.exit_code == 1 and "not empty" in refused.output
    assert _counts(source_url) == manifest["tables"], "nothing written into it"

    target = _app(empty_url)
    restored = _invoke(target, "restore", str(out))
    assert restored.exit_code == 0, restored.output
    assert _counts(empty_url) == manifest["tables"]
    assert _names(empty_url) == NAMES, "the restored copy decrypts with the same key"
    return out


# --- SQLite ------------------------------------------------------------------------------

def test_sqlite_round_trip(tmp_path, live):
    source_url, source = live
    out = _round_trip(source, source_url, f"sqlite:///{tmp_path / 'new' / 'restored.db'}",
                      tmp_path)
    payload = _members(out)[backups.PAYLOADS["sqlite"]]
    assert payload.startswith(b"SQLite format 3")
    _assert_no_key(out, payload)
    assert gzip.decompress(out.read_bytes())  # one gzip stream: the archive is compressed


def test_verify_with_another_key_names_what_does_not_decrypt(tmp_path, live):
    _url, source = live
    out = tmp_path / "b.bladi"
    assert _invoke(source, "create", "--out", str(out)).exit_code == 0
    other = _app(f"sqlite:///{tmp_path / 'other.db'}", key=new_key())
    result = _invoke(other, "verify", str(out))
    assert result.exit_code == 1
    assert "FAILED decryption" in result.output and "beneficiary row" in result.output
    assert "did not verify" in result.output


def test_a_backup_at_an_older_or_unknown_migration(tmp_path, app, live):
    source_url, _source_app = live
    engine = sa.create_engine(source_url)
    migrations = Path(app.extensions["migrate"].directory)
    for revision, ok, words in (("0006", True, "run `flask db upgrade`"),
                                ("9999", False, "does not know")):
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        out = tmp_path / f"{revision}.bladi"
        backups.create_backup(source_url, out)
        result = backups.verify_backup(out, FieldCipher(parse_keys(KEY)), migrations)
        [check] = [c for c in result.checks if c.name == "migrations"]
        assert (check.ok, result.ok) == (ok, ok) and words in check.detail
    engine.dispose()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not_a_backup", "no_manifest",
                                    "newer_format", "missing"])
def test_damaged_or_foreign_files_are_refused_with_a_reason(tmp_path, live, damage):
    source_url, _source_app = live
    good = tmp_path / "good.bladi"
    backups.create_backup(source_url, good)
    bad = tmp_path / "bad.bladi"
    members = _members(good)
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[:5000])
    elif damage == "not_a_backup":
        bad.write_bytes(b"hello, I am a spreadsheet")
    elif damage == "missing":
        bad = tmp_path / "nowhere.bladi"
    else:
        manifest = json.loads(members[backups.MANIFEST])
        payload = members[backups.PAYLOADS["sqlite"]]
        if damage == "flipped":
            payload = payload[:4096] + bytes([payload[4096] ^ 1]) + payload[4097:]
        if damage == "newer_format":
            manifest["format"] = backups.FORMAT + 1
        files = {backups.PAYLOADS["sqlite"]: payload}
        if damage != "no_manifest":
            files[backups.MANIFEST] = json.dumps(manifest).encode()
        with tarfile.open(bad, "w:gz") as archive:
            for name, body in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(body)
                archive.addfile(info, io.BytesIO(body))
    expected = {"truncated": "not a readable BLADI backup", "flipped": "is damaged",
                "not_a_backup": "not a readable BLADI backup",
                "no_manifest": "not a BLADI backup", "newer_format": "newer version",
                "missing": "no such backup file"}[damage]
    target = _app(f"sqlite:///{tmp_path / 'empty.db'}")
    for command in ("verify", "restore"):
        result = _invoke(target, command, str(bad))
        assert result.exit_code == 1 and expected in result.output, result.output
    assert not (tmp_path / "empty.db").exists() or _counts(
        f"sqlite:///{tmp_path / 'empty.db'}") == {}, "nothing half-restored"


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path, live):
    source_url, _source_app = live
    out = tmp_path / "b.bladi"
    backups.create_backup(source_url, out)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database " * 400)
    with pytest.raises(backups.BackupError, match="is not a SQLite database"):
        backups.restore_backup(out, f"sqlite:///{junk}")
    with pytest.raises(backups.BackupError, match="cannot be copied"):
        backups.create_backup(f"sqlite:///{junk}", tmp_path / "c.bladi")
    assert not (tmp_path / "c.bladi").exists()
    assert junk.read_bytes() == b"not a database " * 400, "left as it was"


def test_sqlite_copy_is_consistent_while_someone_writes(tmp_path, live):
    source_url, _source_app = live
    _keep_writing_during(source_url, lambda: backups.create_backup(source_url,
                                                                   tmp_path / "b.bladi"))
    result = backups.verify_backup(tmp_path / "b.bladi", FieldCipher(parse_keys(KEY)),
                                   _migrations())
    assert result.ok, result.checks


def test_a_missing_pg_dump_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(backups.BackupError, match="pg_dump was not found.*postgresql-client"):
        backups.create_backup("postgresql+psycopg://nobody@127.0.0.1:1/none",
                              tmp_path / "b.bladi")
    assert not (tmp_path / "b.bladi").exists()


def _migrations() -> Path:
    return Path(__file__).resolve().parent.parent / "migrations"


def _keep_writing_during(url: str, work) -> None:
    """Run `work` while another connection inserts rows as fast as it can."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    filler = sa.Table("filler", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("note", sa.String(10)))
    filler.create(engine)
    stop, written = threading.Event(), []

    def write():
        with engine.connect() as conn:
            while not stop.is_set():
                with conn.begin():
                    conn.execute(filler.insert().values(note="x"))
                written.append(1)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 20:  # the writer is under way
            stop.wait(0.01)
        work()
        assert not stop.is_set()
    finally:
        stop.set()
        writer.join()
        engine.dispose()
    assert len(written) > 20, "rows were written while the backup ran"


# --- PostgreSQL --------------------------------------------------------------------------

def _postgres_server() -> str | None:
    """A PostgreSQL server to make scratch databases on: TEST_DATABASE_URL's, else the
    local one. None (skip) when there is none and pg_dump; under CI=true, a failure."""
    url = os.environ.get("TEST_DATABASE_URL") or ""
    if not url.startswith("postgresql"):
        url = os.environ.get("BLADI_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"
                                                    "/postgres")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    problem = None if shutil.which("pg_dump") and shutil.which("pg_restore") else \
        "pg_dump/pg_restore are not installed"
    if problem is None:
        try:
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
        except sa.exc.SQLAlchemyError as exc:
            problem = f"PostgreSQL at {url} is unreachable ({type(exc).__name__})"
    if problem and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {problem}")
    if problem:
        pytest.skip(problem)
    return url


@pytest.fixture
def postgres_databases():
    """Two scratch databases (live and empty) on the PostgreSQL server, dropped after."""
    server = make_url(_postgres_server())
    admin = sa.create_engine(server, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    names = [f"bladi_backup_test_{secrets.token_hex(4)}_{n}" for n in ("live", "empty")]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield [server.set(database=name).render_as_string(hide_password=False)
               for name in names]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            left = conn.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname "
                                        "LIKE :mine"), {"mine": f"bladi_verify_{os.getpid()}_%"}
                                ).scalar_one()
        admin.dispose()
        assert left == 0, "verify dropped its scratch database"


@pytest.mark.postgres
def test_postgresql_round_trip(tmp_path, postgres_databases):
    live, empty = postgres_databases
    source = _source(live)
    out = _round_trip(source, live, empty, tmp_path)
    payload = Path(tmp_path / "dump")
    payload.write_bytes(_members(out)[backups.PAYLOADS["postgresql"]])
    script = subprocess.run(["pg_restore", "--file=-", str(payload)], capture_output=True,
                            check=True).stdout
    assert b"CREATE TABLE public.beneficiary" in script
    _assert_no_key(out, script)


@pytest.mark.postgres
def test_postgresql_copy_is_consistent_while_someone_writes(tmp_path, postgres_databases):
    live, _empty = postgres_databases
    _source(live)
    _keep_writing_during(live, lambda: backups.create_backup(live, tmp_path / "b.bladi"))
    result = backups.verify_backup(tmp_path / "b.bladi", FieldCipher(parse_keys(KEY)),
                                   _migrations(), server_url=live)
    assert result.ok, result.checks

"""Command line: `flask --app wsgi seed|users|keys ...`."""

from __future__ import annotations

import secrets
import sys
import time
from datetime import date
from pathlib import Path

import click
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_babel import force_locale

from .config import new_data_key
from .demo import (
    seed_demo_activities,
    seed_demo_beneficiaries,
    seed_demo_cases,
    seed_demo_responses,
)
from .extensions import db
from .i18n import BABEL_LOCALES
from .models import Beneficiary, Organization, Role, User
from .privacy import cipher_from_config, parse_keys
from .seed import seed_demo, seed_reference
from .services import ValidationError, jobs
from .services import admin as admin_service
from .services.audit import Action, record
from .services.auth import normalize_email
from .services.backups import BackupError, create_backup, restore_backup, verify_backup
from .services.beneficiaries import imports as importer
from .services.files import csv_bytes
from .services.keys import rebuild_blind_indexes, rotate_keys, verify_keys
from .services.reports import exports
from .services.reports.indicators import Period
from .services.reports.release import refresh
from .services.reports.reports import reporting_years
from .services.surveys.surveys import import_version
from .transactions import write_transaction

seed_cli = AppGroup("seed", help="Load reference or demo data (idempotent).")
users_cli = AppGroup("users", help="Manage staff accounts.")
keys_cli = AppGroup("keys", help="Encryption keys.")


@seed_cli.command("reference")
def seed_reference_command():
    """The 24 governorates, the 11 BLADI CSOs, the partners and the donor."""
    counts = seed_reference()
    db.session.commit()
    click.echo(f"Reference data loaded ({counts['governorates']} governorates and "
               f"{counts['organizations']} organisations added).")


@seed_cli.command("demo")
@click.option("--force", is_flag=True, help="Allow in production (never do this with real data).")
@click.option("--beneficiaries", "beneficiary_count", type=click.IntRange(0, 1_000_000),
              default=0, help="Also generate this many synthetic young people.")
@click.option("--seed", "random_seed", default=1, show_default=True,
              help="Random seed: the same seed gives the same young people.")
@click.option("--if-empty", is_flag=True,
              help="Generate young people only when the registry is empty (make run).")
def seed_demo_command(force: bool, beneficiary_count: int, random_seed: int, if_empty: bool):
    """Demo sites and one account per role, printed with their passwords."""
    if current_app.config["BLADI_ENV"] == "production" and not force:
        raise click.ClickException("Refusing to create demo accounts in production "
                                   "(BLADI_ENV=production). Use --force to override.")
    demo_users = seed_demo()
    db.session.commit()
    if if_empty and db.session.scalar(db.select(db.func.count()).select_from(Beneficiary)):
        beneficiary_count = 0
    if beneficiary_count:
        seed_demo_beneficiaries(beneficiary_count, random_seed)
        db.session.commit()
        click.echo(f"{beneficiary_count} synthetic young people added (seed {random_seed}).")
    sessions = seed_demo_activities(random_seed)
    db.session.commit()
    if sessions:
        click.echo(f"Demo activities added, with {sessions} sessions of attendance.")
    cases = seed_demo_cases(random_seed)
    db.session.commit()
    if cases:
        click.echo(f"{cases} demo case files added.")
    responses = seed_demo_responses(random_seed)
    db.session.commit()
    if responses:
        click.echo(f"{responses} demo survey responses added.")
    click.echo("Demo accounts (email / password / role / organisation):")
    for demo in demo_users:
        click.echo(f"  {demo.email:28} {demo.password:18} {demo.role.value:13} {demo.org or '-'}")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--org", "org_code", help="Organisation code (required for CSO roles).")
@click.option("--lang", type=click.Choice(["ar", "fr", "en"]))
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(email, display_name, role, org_code, lang, password_stdin):
    """Create an account; without --password-stdin a password is generated and printed."""
    org = None
    if org_code:
        org = db.session.scalars(
            db.select(Organization).where(Organization.code == org_code.upper())).first()
        if org is None:
            raise click.ClickException(f"No organisation with code {org_code!r}.")
    generated = not password_stdin
    password = secrets.token_urlsafe(18) if generated else sys.stdin.readline().rstrip("\n")
    try:
        user, _ = admin_service.create_user(
            None, email=email, display_name=display_name, role=role, organization=org,
            preferred_language=lang, password=password)
    except ValidationError as failure:
        db.session.rollback()
        raise click.ClickException(str(failure)) from failure
    db.session.commit()
    click.echo(f"Created {user.email} ({user.role}).")
    if generated:
        click.echo(f"Password: {password}")


@users_cli.command("list")
def list_users_command():
    """Every account with its role, organisation and state."""
    for user in db.session.scalars(db.select(User).order_by(User.email)):
        org = user.organization.code if user.organization else "-"
        state = "active" if user.active else "inactive"
        click.echo(f"{user.email:40} {user.role:13} {org:10} {state}")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user_command(email):
    """Deactivate an account: it cannot log in and its sessions end."""
    user = db.session.scalars(db.select(User).where(User.email == normalize_email(email))).first()
    if user is None:
        raise click.ClickException(f"No account with email {email!r}.")
    admin_service.set_user_active(None, user, False)
    db.session.commit()
    click.echo(f"Deactivated {user.email}.")


@keys_cli.command("generate")
def generate_key_command():
    """Print a new random BLADI_DATA_KEY."""
    click.echo(new_data_key())


@keys_cli.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def rotate_keys_command(batch_size: int):
    """Re-encrypt everything under the first key of BLADI_DATA_KEY (new,old), online."""
    keys = parse_keys(current_app.config["BLADI_DATA_KEY"])
    if len(keys) < 2:
        click.echo("BLADI_DATA_KEY holds one key: re-encrypting under it. To rotate, set "
                   "BLADI_DATA_KEY=NEW,OLD (new key first) on every process, then run this.")
    counts = rotate_keys(batch_size, progress=lambda table, n: click.echo(f"  {table}: {n}"))
    click.echo("Re-encrypted: " + ", ".join(f"{table} {n}" for table, n in counts.items())
               + ".")
    _report_verification(verify_keys(batch_size), after_rotation=True)


@keys_cli.command("reindex")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def reindex_command(batch_size: int):
    """Rebuild every youth's name search digests and duplicate-check keys (after an upgrade
    whose release notes ask for it: the rules that compare names changed)."""
    click.echo(f"Name indexes rebuilt for {rebuild_blind_indexes(batch_size)} youth.")


@keys_cli.command("verify")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def verify_keys_command(batch_size: int):
    """Check that every encrypted value decrypts under the first key of BLADI_DATA_KEY alone."""
    _report_verification(verify_keys(batch_size), after_rotation=False)


def _report_verification(result, after_rotation: bool) -> None:
    """Say what decrypts under the newest key alone; exit 1 naming what does not."""
    counts = ", ".join(f"{table} {n}" for table, n in result.values.items())
    if result.ok:
        click.echo(f"Verified: every encrypted value decrypts under the newest key alone "
                   f"({counts} values).")
        if after_rotation:
            click.echo("You may now remove the old key from BLADI_DATA_KEY.")
        return
    for failure in result.failures:
        click.echo(f"  {failure}", err=True)
    if result.failed > len(result.failures):
        click.echo(f"  ... and {result.failed - len(result.failures)} more", err=True)
    raise click.ClickException(
        f"{result.failed} encrypted value(s) do not decrypt under the newest key alone "
        f"(decrypted: {counts}). Keep the old key in BLADI_DATA_KEY"
        + (" and run `keys rotate` again." if after_rotation else
           ": put it back (NEW,OLD) and run `keys rotate`."))


surveys_cli = AppGroup("surveys", help="Survey definitions.")


@surveys_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--org", "org_code", help="Code of the CSO that owns it (default: program-wide).")
@click.option("--publish", is_flag=True, help="Publish the imported version.")
def import_survey_command(path, org_code, publish):
    """Import an XLSForm as a new version of its survey."""
    org = None
    if org_code:
        org = db.session.scalars(
            db.select(Organization).where(Organization.code == org_code.upper())).first()
        if org is None:
            raise click.ClickException(f"No organisation with code {org_code!r}.")
    try:
        version = import_version(None, Path(path).read_bytes(), org, publish, Path(path).name)
    except ValidationError as failure:
        db.session.rollback()
        raise click.ClickException("Not imported:\n  " + "\n  ".join(
            str(m) for msgs in failure.errors.values() for m in msgs)) from None
    db.session.commit()
    state = "published" if version.published_at else "draft"
    click.echo(f"Imported {version.survey.code} version {version.number} ({state}).")


export_cli = AppGroup("export", help="The donor's files, through the anonymiser.")


def _check_fiscal_year(fiscal_year: int) -> int:
    """The year, if the award has figures for it (as on the report pages)."""
    years = reporting_years()
    if fiscal_year not in years:
        raise click.ClickException(f"There are no figures for FY{fiscal_year}: choose a "
                                   f"fiscal year from {years.start} to {years.stop - 1}.")
    return fiscal_year


@export_cli.command("indicators")
@click.option("--fy", "fiscal_year", type=int, required=True, help="US fiscal year (Oct-Sep).")
@click.option("--quarter", type=click.IntRange(1, 4), help="Only check that quarter's status.")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), default="xlsx")
@click.option("--lang", type=click.Choice(["ar", "fr", "en"]), default="en")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), required=True)
def export_indicators_command(fiscal_year, quarter, fmt, lang, out):
    """The indicator tracking table, exactly as the donor downloads it."""
    _check_fiscal_year(fiscal_year)
    k = current_app.config["BLADI_SMALL_CELL_K"]
    with force_locale(BABEL_LOCALES[lang]):
        body = (exports.tracking_xlsx([fiscal_year], lang, k) if fmt == "xlsx"
                else csv_bytes(exports.tracking_rows(fiscal_year, lang, k)))
    Path(out).write_bytes(body)
    _audit_export({"file": f"tracking.{fmt}", "fy": fiscal_year, "by": "command line"})
    state = exports.approved(fiscal_year)
    if quarter and not state[quarter]:
        click.echo(f"Note: FY{fiscal_year} Q{quarter} is not approved for every CSO.")
    click.echo(f"Wrote {out}.")


def _audit_export(detail: dict) -> None:
    """Audit an export once it is written: its reading ended first, then a short write
    transaction of its own (on SQLite, a read transaction that goes on to write fails if the
    app wrote in the meantime)."""
    db.session.commit()
    with write_transaction():
        record(Action.EXPORT_DOWNLOADED, detail=detail)
        db.session.commit()


@export_cli.command("microdata")
@click.option("--fy", "fiscal_year", type=int, required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), required=True)
def export_microdata_command(fiscal_year, out):
    """De-identified microdata (k-anonymous), exactly as the donor downloads it."""
    _check_fiscal_year(fiscal_year)
    k = current_app.config["BLADI_SMALL_CELL_K"]
    with open(out, "wb") as handle:
        for chunk in exports.microdata_csv(fiscal_year, k):
            handle.write(chunk)
    _audit_export({"file": "microdata", "fy": fiscal_year, "by": "command line"})
    click.echo(f"Wrote {out}.")


beneficiaries_cli = AppGroup("beneficiaries", help="The beneficiary registry.")


@beneficiaries_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--org", "org_code", required=True, help="Code of the CSO the youth belong to.")
@click.option("--allow-duplicates", is_flag=True,
              help="Import rows that look like registered youth as new people.")
@click.option("--skip-duplicates", is_flag=True, help="Leave such rows out.")
def import_beneficiaries_command(path, org_code, allow_duplicates, skip_duplicates):
    """Import a CSV or XLSX file (the template's columns), all rows or none."""
    org = db.session.scalars(
        db.select(Organization).where(Organization.code == org_code.upper())).first()
    if org is None or not org.is_funded_cso:
        raise click.ClickException(f"No funded CSO with code {org_code!r}.")
    try:
        check = importer.check_file(org, Path(path).name, Path(path).read_bytes())
    except importer.ImportRefused as refused:
        db.session.rollback()
        raise click.ClickException(
            "Nothing imported:\n  " + "\n  ".join(refused.messages)) from None
    if check.duplicates and not (allow_duplicates or skip_duplicates):
        db.session.rollback()
        lines = [f"row {n}: " + ", ".join(getattr(c, "code", str(c)) for c in found)
                 for n, found in check.duplicates.items()]
        raise click.ClickException("Possible duplicates (use --skip-duplicates or "
                                   "--allow-duplicates):\n  " + "\n  ".join(lines))
    skip = set(check.duplicates) if skip_duplicates else set()
    codes = importer.import_rows(None, org, check, skip)
    db.session.commit()
    click.echo(f"Imported {len(codes)} young people into {org.code}"
               + (f" ({len(skip)} duplicate rows skipped)." if skip else "."))


jobs_cli = AppGroup("jobs", help="Background jobs: the worker, the scheduler, the sweep.")


@jobs_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop once the queue is empty.")
def jobs_worker_command(burst: bool):
    """Run queued jobs from Redis (REDIS_URL) until stopped: one per process; run several
    for several at once, on any node."""
    from rq import SimpleWorker

    client = jobs.redis_client()
    if client is None:
        raise click.ClickException("REDIS_URL is not set: jobs run inside the web process.")
    # SimpleWorker runs each job in this process, whose app (engine, keys, catalogs) is
    # loaded once; a job whose worker dies is retried by the sweep.
    SimpleWorker([jobs.QUEUE_NAME], connection=client).work(burst=burst)


@jobs_cli.command("scheduler")
def jobs_scheduler_command():
    """Enqueue the periodic work (RQ's CronScheduler): every kind declared with
    `jobs.every`. Run one per node; the work itself runs once at a time across nodes."""
    from rq.cron import CronScheduler

    client = jobs.redis_client()
    if client is None:
        raise click.ClickException("REDIS_URL is not set: run `flask jobs sweep` and "
                                   "`flask reports refresh` from cron instead.")
    scheduler = CronScheduler(connection=client)
    for name, seconds in jobs.PERIODIC.items():
        scheduler.register(jobs.periodic, queue_name=jobs.QUEUE_NAME, args=(name,),
                           interval=seconds, job_timeout=3600)
    scheduler.start()


@jobs_cli.command("sweep")
def jobs_sweep_command():
    """Retry jobs whose worker died, expire old files and waiting uploads, delete ended
    login sessions (the scheduler does it every minute)."""
    counts = jobs.sweep()
    click.echo(", ".join(f"{name}: {n}" for name, n in counts.items()))


@jobs_cli.command("run")
@click.argument("name")
def jobs_run_command(name: str):
    """Run one periodic task now, by its name (sweep, figures, backup, statistics): what the
    scheduler does on Redis, for cron on a machine without it."""
    if name not in jobs.PERIODIC:
        raise click.BadParameter(f"one of {', '.join(sorted(jobs.PERIODIC))}",
                                 param_hint="NAME")
    click.echo(f"{name}: {jobs.periodic(name)}")


reports_cli = AppGroup("reports", help="Upward reporting.")


@reports_cli.command("refresh")
@click.option("--fy", "fiscal_year", type=int, help="US fiscal year (default: the current one).")
def reports_refresh_command(fiscal_year):
    """Recompute a fiscal year's figures for the dashboards (run it from cron every few
    minutes on a large installation, so no reviewer waits for the computation)."""
    fiscal_year = _check_fiscal_year(fiscal_year or Period.containing(date.today()).fiscal_year)
    started = time.perf_counter()
    refresh(fiscal_year)
    db.session.commit()
    click.echo(f"FY{fiscal_year} figures refreshed in {time.perf_counter() - started:.1f} s.")


backup_cli = AppGroup("backup", help="Backups: create online, restore into an empty "
                                     "database, verify in a scratch database.")


def _backup_step(step, *args):
    """Run one backup service call; its refusal is the command's error message."""
    try:
        return step(*args)
    except BackupError as failure:
        raise click.ClickException(str(failure)) from None


@backup_cli.command("create")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The backup file to write (never overwritten).")
def backup_create_command(out: Path):
    """Copy the live database into a backup file while the application runs (SQLite's
    backup API, or pg_dump -Fc for PostgreSQL). The data key is not in it."""
    started = time.perf_counter()
    manifest = _backup_step(create_backup, db.engine.url, out)
    click.echo(f"Backup written to {out} ({out.stat().st_size / 1e6:.1f} MB) in "
               f"{time.perf_counter() - started:.1f} s: {len(manifest.tables)} tables, "
               f"{manifest.rows} rows, migration {manifest.revision}. It holds no key: keep "
               "BLADI_DATA_KEY apart from it, or it cannot be read.")


@backup_cli.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_restore_command(path: Path):
    """Restore a backup into the configured database, which must be empty."""
    db.engine.dispose()  # nothing of ours holds the target open while it is written
    manifest = _backup_step(restore_backup, path, db.engine.url)
    click.echo(f"Restored {path} (made {manifest.created_at}): {len(manifest.tables)} tables, "
               f"{manifest.rows} rows, as counted in the backup.")
    head = ScriptDirectory(current_app.extensions["migrate"].directory).get_current_head()
    if manifest.revision != head:
        click.echo(f"The backup is at migration {manifest.revision}, this code at {head}: run "
                   "`flask --app wsgi db upgrade` before starting the application.")


@backup_cli.command("verify")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scratch-url", help="PostgreSQL server for the scratch database "
                                    "(default: the configured database's server).")
def backup_verify_command(path: Path, scratch_url: str | None):
    """Restore a backup into a scratch database (dropped afterwards) and check its row
    counts, its migration, and that its encrypted values decrypt with BLADI_DATA_KEY."""
    result = _backup_step(verify_backup, path, cipher_from_config(current_app.config),
                          Path(current_app.extensions["migrate"].directory),
                          scratch_url or db.engine.url)
    for check in result.checks:
        click.echo(f"  {'ok' if check.ok else 'FAILED':6} {check.name}: {check.detail}")
    if not result.ok:
        raise click.ClickException(f"{path} did not verify: do not count on it.")
    click.echo(f"Verified {path} in {result.seconds:.1f} s: it restores.")


def init_cli(app: Flask) -> None:
    """Register the command groups on the app."""
    for group in (seed_cli, users_cli, keys_cli, beneficiaries_cli, surveys_cli, export_cli,
                  reports_cli, jobs_cli, backup_cli):
        app.cli.add_command(group)

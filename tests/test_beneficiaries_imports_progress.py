"""Spreadsheet import: the progress it reports while checking and writing (background jobs
show it as a bar), and its bulk writes being all or nothing."""

from __future__ import annotations

import csv
import io
import random
from datetime import date

import pytest
import sqlalchemy as sa

from bladi_cases.demo import _delegations, _names, demo_registration
from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, BeneficiaryNameIndex, Consent, Organization
from bladi_cases.services.beneficiaries import imports as importer
from bladi_cases.services.beneficiaries import registry


def _file(org, rows: int) -> bytes:
    rng, names, delegations = random.Random(7), _names(), _delegations()
    header = [key for key, _label in importer.COLUMNS]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for _ in range(rows):
        values = demo_registration(rng, org, list(org.sites), names, delegations, date.today())
        values["site"] = values["site"].name if values["site"] else ""
        values["consent_scopes"] = ",".join(values["consent_scopes"])
        writer.writerow(["" if values.get(k) is None else values[k] for k in header])
    return buffer.getvalue().encode("utf-8")


def _check_reports(reports: list, stage: str, total: int, every: int) -> None:
    assert reports, "progress was never reported"
    assert {s for s, _done, _total in reports} == {stage}
    assert {t for _s, _done, t in reports} == {total}
    done = [d for _s, d, _t in reports]
    assert done == sorted(set(done)), "counts only increase"
    assert done[-1] == total, "the last report is the whole file"
    assert all(b - a >= every for a, b in zip([0, *done[:-2]], done[:-1], strict=True)), \
        "at most one report per step of rows (and the last)"


def test_check_and_import_report_increasing_progress(org, monkeypatch):
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 3)
    monkeypatch.setattr(importer, "IMPORT_BATCH", 4)
    youth_org = org("BA")
    reports = []
    check = importer.check_file(youth_org, "youth.csv", _file(youth_org, 11),
                                progress=lambda *report: reports.append(report))
    _check_reports(reports, "checked", 11, 3)
    assert [d for _s, d, _t in reports] == [3, 6, 9, 11]

    reports.clear()
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary))
    skip = set(list(check.duplicates)[:1])
    codes = importer.import_rows(None, youth_org, check, skip,
                                 progress=lambda *report: reports.append(report))
    written = 11 - len(skip)
    _check_reports(reports, "written", written, 4)
    assert [d for _s, d, _t in reports] == [*range(4, written, 4), written]
    assert len(codes) == written
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Beneficiary)) == \
        before + written
    assert db.session.scalar(sa.select(sa.func.count(sa.distinct(
        BeneficiaryNameIndex.beneficiary_id))).join(Beneficiary).where(
        Beneficiary.code.in_(codes))) == written


def test_progress_is_optional(org):
    youth_org = org("BA")
    check = importer.check_file(youth_org, "youth.csv", _file(youth_org, 3))
    assert len(importer.import_rows(None, youth_org, check, set(check.duplicates))) == \
        3 - len(check.duplicates)


def test_a_failure_in_a_later_batch_leaves_nothing_written(org, monkeypatch):
    youth_org = org("BA")
    check = importer.check_file(youth_org, "youth.csv", _file(youth_org, 11))
    monkeypatch.setattr(importer, "IMPORT_BATCH", 4)
    db.session.commit()

    def counts():
        return [db.session.scalar(sa.select(sa.func.count()).select_from(model))
                for model in (Beneficiary, Consent, BeneficiaryNameIndex)] + [
            db.session.scalar(sa.select(Organization.beneficiary_counter).where(
                Organization.id == youth_org.id))]

    before = counts()
    written = registry.write_prepared
    calls = []

    def fail_on_the_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return written(*args)

    monkeypatch.setattr(registry, "write_prepared", fail_on_the_second)
    with pytest.raises(RuntimeError):
        importer.import_rows(None, youth_org, check, set())
    db.session.rollback()
    assert counts() == before

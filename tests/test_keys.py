"""Key rotation without downtime, and synthetic demo data."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, Consent, Organization, Role
from bladi_cases.privacy import DataKeyError, FieldCipher, new_key, parse_keys
from bladi_cases.services.beneficiaries.registry import decrypt_identity_unaudited
from bladi_cases.services.beneficiaries.search import search


def test_rotation_keeps_search_working_and_retires_the_old_key(app, make_user,
                                                               make_beneficiary, monkeypatch):
    old = app.config["BLADI_DATA_KEY"]
    youth = make_beneficiary("BA", first_name_ar="بثينة", guardian_name="نجاة",
                             consent_given_by="self")
    worker = make_user(Role.FIELD_WORKER, "BA")
    old_token = youth.first_name_ar_enc
    fresh = new_key()
    monkeypatch.setitem(app.config, "BLADI_DATA_KEY", f"{fresh},{old}")
    # Deployed with NEW,OLD but not yet rotated: reads and searches still work.
    assert decrypt_identity_unaudited(youth).first_name_ar == "بثينة"
    assert [b.code for b in search(worker, q="بثي").items] == [youth.code]
    result = app.test_cli_runner().invoke(args=["keys", "rotate", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    db.session.refresh(youth)
    assert youth.first_name_ar_enc != old_token
    monkeypatch.setitem(app.config, "BLADI_DATA_KEY", fresh)  # the old key is gone
    assert decrypt_identity_unaudited(youth).first_name_ar == "بثينة"
    assert [b.code for b in search(worker, q="بثي").items] == [youth.code]
    only_new = FieldCipher(parse_keys(fresh))
    for consent in db.session.scalars(sa.select(Consent)):
        only_new.decrypt(consent.giver_name_enc)
    with pytest.raises(DataKeyError):
        FieldCipher(parse_keys(old)).decrypt(youth.first_name_ar_enc)


def test_seed_demo_beneficiaries_is_deterministic(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed", "demo", "--beneficiaries", "22", "--seed", "5"])
    assert result.exit_code == 0, result.output
    rows = db.session.scalars(sa.select(Beneficiary).order_by(Beneficiary.id)).all()[-22:]
    csos = {b.organization_id for b in rows}
    assert len(csos) == 11
    first = [(b.sex, b.birth_year, b.governorate_code, decrypt_identity_unaudited(b).full_name)
             for b in rows]
    ages = {date.today().year - b.birth_year for b in rows}
    assert min(ages) >= 9 and max(ages) <= 30
    ba = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
    assert all(b.governorate_code == "TN-61" for b in rows if b.organization_id == ba.id)
    db.session.rollback()
    # Same seed, same young people (names, sexes, birth years, places).
    from bladi_cases.demo import seed_demo_beneficiaries

    seed_demo_beneficiaries(22, 5, today=date.today())
    again = db.session.scalars(sa.select(Beneficiary).order_by(Beneficiary.id)).all()[-22:]
    assert [(b.sex, b.birth_year, b.governorate_code, decrypt_identity_unaudited(b).full_name)
            for b in again] == first

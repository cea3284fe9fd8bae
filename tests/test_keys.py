"""Key rotation without downtime, and synthetic demo data."""

from __future__ import annotations

import re
from datetime import date

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from bladi_cases.extensions import db
from bladi_cases.models import (
    AuditEntry,
    Beneficiary,
    CaseNote,
    Consent,
    Organization,
    Role,
    SurveyResponse,
)
from bladi_cases.models.common import encrypted_columns
from bladi_cases.privacy import (
    DataKeyError,
    FieldCipher,
    UndecryptableValueError,
    new_key,
    parse_keys,
)
from bladi_cases.services.beneficiaries.registry import decrypt_identity_unaudited
from bladi_cases.services.beneficiaries.rights import youth_link
from bladi_cases.services.beneficiaries.search import search
from bladi_cases.services.cases import cases as case_service
from bladi_cases.services.surveys import surveys as survey_service

from .conftest import get_file, login, text_of
from .free_text import (
    FIRST_LATIN,
    check_every_encrypted_column_is_filled,
    decrypted_everything,
    mentions,
    register_named_youth,
    write_everywhere,
)


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
    # Every identity was decrypted to do it: the audit log says so (no actor: the command
    # line), the rotation with its counts and the name digests rebuilt with theirs.
    done = {entry.action: entry for entry in db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action.in_(["keys_rotated", "names_reindexed"])))}
    assert done["keys_rotated"].actor_id is None
    assert done["keys_rotated"].detail["rewritten"]["beneficiary"] >= 1
    assert done["names_reindexed"].detail["youth"] >= 1
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


# --- Encrypted columns declare themselves; rotation covers them all and verifies ----------

# Encrypted columns that belong to no one youth, so erasure does not find them by the youth:
# a staff account's second-factor secret; a job's files (an upload, an export), which may
# name many youth, and which erasure deletes for the whole CSO (services/jobs.forget_files).
NOT_A_YOUTHS = {"user_account", "job"}


def test_every_binary_or_enc_column_is_declared_encrypted():
    """A LargeBinary or `*_enc` column outside `encrypted_columns()` would be skipped by
    rotation (lost at step 4) and by erasure: declare it with `encrypted_column()`."""
    declared = {(model.__tablename__, name) for model, names in encrypted_columns().items()
                for name in names}
    binary = {(table.name, column.name) for table in db.metadata.tables.values()
              for column in table.columns
              if isinstance(column.type, sa.LargeBinary) or column.name.endswith("_enc")}
    assert binary == declared, binary ^ declared
    assert {"case_note", "case_note_version", "case_goal", "referral", "case_transfer",
            "survey_response", "survey_draft", "beneficiary", "consent"} <= {
        table for table, _name in declared}
    for model in encrypted_columns():
        assert youth_link(model.__table__) is not None or model.__tablename__ in NOT_A_YOUTHS, (
            f"{model.__tablename__}: erasure cannot tell whose values these are")


def _cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_the_readme_rotation_keeps_every_encrypted_value(app, client, make_user, org,
                                                         monkeypatch):
    """The four steps of the README, through the CLI: generate, NEW,OLD, rotate, NEW alone;
    then every encrypted field reads back, on the pages too."""
    worker = make_user(Role.FIELD_WORKER, "BA")
    youth = register_named_youth(org("BA"))
    written = write_everywhere(worker, youth, org("ACEC"))
    db.session.commit()
    check_every_encrypted_column_is_filled(youth)
    before = decrypted_everything()
    old = app.config["BLADI_DATA_KEY"]

    code, new = _cli(app, "keys", "generate")                        # 1
    new = new.strip()
    assert code == 0 and len(parse_keys(new)) == 1
    monkeypatch.setitem(app.config, "BLADI_DATA_KEY", f"{new},{old}")  # 2
    code, output = _cli(app, "keys", "rotate", "--batch-size", "2")    # 3
    assert code == 0, output
    assert "Verified: every encrypted value decrypts under the newest key alone" in output
    for model in encrypted_columns():
        assert re.search(rf"\b{model.__tablename__} [1-9]\d*\b", output), model
    monkeypatch.setitem(app.config, "BLADI_DATA_KEY", new)             # 4

    db.session.expire_all()
    assert decrypted_everything() == before
    assert decrypt_identity_unaudited(youth).first_name_latin == FIRST_LATIN
    case = written.case
    note = db.session.scalars(sa.select(CaseNote).where(CaseNote.case_id == case.id)).one()
    assert case_service.note_text(note) == mentions("edited note")
    assert case_service.text_of(note.versions[0], "text_enc") == mentions("first note")
    response = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.beneficiary_id == youth.id)).one()
    assert survey_service.response_answers(response)["comments"] == mentions("comment")
    assert _cli(app, "keys", "verify")[0] == 0
    # The old key alone reads nothing any more.
    monkeypatch.setitem(app.config, "BLADI_DATA_KEY", old)
    code, output = _cli(app, "keys", "verify")
    assert code == 1 and "case_note row" in output
    monkeypatch.setitem(app.config, "BLADI_DATA_KEY", new)
    login(client, worker)
    page = text_of(client.get(f"/cases/{case.uuid}"))
    assert mentions("goal") in page and mentions("outcome") in page
    assert mentions("edited note") in page
    assert mentions("agreed to move") in text_of(client.get("/cases/transfers"))
    export = get_file(client, f"/surveys/{written.version.survey.uuid}/responses.csv")
    assert mentions("comment") in export.get_data(as_text=True)


def test_values_written_as_fernet_tokens_read_and_rotate_to_aes_gcm(app, make_user, org):
    """A database written before the change to AES-GCM holds Fernet tokens in every
    encrypted column: they read as before, and `keys rotate` with the same single key
    rewrites every one of them in the new form."""
    worker = make_user(Role.FIELD_WORKER, "BA")
    youth = register_named_youth(org("BA"))
    write_everywhere(worker, youth, org("ACEC"))
    db.session.commit()
    before = decrypted_everything()
    key = app.config["BLADI_DATA_KEY"]
    c, legacy = FieldCipher(parse_keys(key)), Fernet(key.encode())
    rewritten = 0
    for model, names in encrypted_columns().items():
        for row in db.session.execute(sa.select(model.id, *[getattr(model, n) for n in names])):
            tokens = {name: legacy.encrypt(c.decrypt(token).encode())
                      for name, token in zip(names, row[1:], strict=True) if token is not None}
            if tokens:
                db.session.execute(sa.update(model).where(model.id == row[0]).values(tokens))
                rewritten += len(tokens)
    db.session.commit()
    db.session.expire_all()
    assert rewritten >= len(encrypted_columns())
    assert decrypted_everything() == before

    code, output = _cli(app, "keys", "rotate")
    assert code == 0, output
    db.session.expire_all()
    for model, names in encrypted_columns().items():
        for row in db.session.execute(sa.select(*[getattr(model, n) for n in names])):
            assert all(bytes(t).startswith(b"v2.") for t in row if t is not None), model
    assert decrypted_everything() == before


def test_a_value_the_new_key_cannot_read_is_named_never_empty(app, client, make_user, org,
                                                              make_beneficiary, make_case,
                                                              monkeypatch, caplog):
    worker = make_user(Role.FIELD_WORKER, "BA")
    case, _provider = make_case(make_beneficiary("BA"), worker)
    note = db.session.scalars(sa.select(CaseNote).where(CaseNote.case_id == case.id)).one()
    stranger = FieldCipher(parse_keys(new_key()))  # a key nobody configured
    note.text_enc = stranger.encrypt("نص")
    db.session.commit()
    old = app.config["BLADI_DATA_KEY"]
    monkeypatch.setitem(app.config, "BLADI_DATA_KEY", f"{new_key()},{old}")
    code, output = _cli(app, "keys", "rotate")
    assert code == 1
    assert f"case_note row {note.id}, column text_enc" in output
    assert "Keep the old key" in output and "Verified" not in output
    with pytest.raises(UndecryptableValueError, match=rf"case_note row {note.id}, column"):
        case_service.note_text(note)
    login(client, worker)
    caplog.clear()
    assert client.get(f"/cases/{case.uuid}").status_code == 500  # not a page with a blank
    assert f"case_note row {note.id}, column text_enc" in caplog.text


def test_rotation_never_puts_back_a_value_a_request_rewrote(app, make_user, make_beneficiary,
                                                           make_case, monkeypatch):
    """Rotation reads a batch, then rewrites it: a note edited in between (under the new key)
    keeps its new text, rotated again rather than replaced by the stale token."""
    from bladi_cases.services import keys

    worker = make_user(Role.FIELD_WORKER, "BA")
    case, _provider = make_case(make_beneficiary("BA"), worker)
    note = db.session.scalars(sa.select(CaseNote).where(CaseNote.case_id == case.id)).one()
    old = app.config["BLADI_DATA_KEY"]
    monkeypatch.setitem(app.config, "BLADI_DATA_KEY", f"{new_key()},{old}")
    stale = next(row for batch in keys._batches(CaseNote, ("text_enc",), 10)  # rotation
                 for row in batch if row[0] == note.id)                       # read this
    case_service.edit_note(worker, note, "نص جديد")           # a request, meanwhile
    db.session.commit()
    assert keys._rotate_row(CaseNote, ("text_enc",), stale, case_service.cipher()) == 1
    db.session.expire_all()
    assert case_service.note_text(note) == "نص جديد"

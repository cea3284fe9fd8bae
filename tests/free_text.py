"""A youth whose name is written into every field that can hold it, through the services the
pages use: what the erasure, "no plaintext in the database" and key rotation tests start
from. `check_every_encrypted_column_is_filled` fails when a model declares an encrypted
column that `write_everywhere` does not fill yet: add it here, and those tests cover it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import Beneficiary, Case, Organization, Survey, SurveyVersion, User
from bladi_cases.models.common import encrypted_columns
from bladi_cases.services.auth import second_factor
from bladi_cases.services.beneficiaries.registry import cipher, register
from bladi_cases.services.beneficiaries.rights import rows_of_youth
from bladi_cases.services.cases import cases as case_service
from bladi_cases.services.cases import transfers
from bladi_cases.services.surveys import surveys as survey_service

# A distinctive name, in both scripts, that appears nowhere in the demo or reference data.
FIRST_AR, LAST_AR = "زبيدة", "الخميري"
FIRST_LATIN, LAST_LATIN = "Zoubeida", "Khemiri"
NAME_WORDS = (FIRST_AR, LAST_AR, FIRST_LATIN, LAST_LATIN)
GUARDIAN = "فطومة الخميري"
SURVEY_ANSWERS = {"situation": "working", "has_job": "yes", "job_hours": "40",
                  "activities": ["sport"], "w1": "4", "w2": "2", "w3": "5", "w4": "3",
                  "w5": "1", "trust_staff": "5"}


def name_forms() -> list[bytes]:
    """Every way the name's words can sit in a database file: UTF-8, and JSON's \\u escapes
    (JSON columns keep non-ASCII text escaped)."""
    forms = []
    for word in NAME_WORDS:
        forms.append(word.encode())
        escaped = json.dumps(word)[1:-1]
        forms += [escaped.encode(), escaped.upper().replace("\\U", "\\u").encode()]
    return list(dict.fromkeys(forms))


def mentions(text: str) -> str:
    """A sentence naming the youth in both scripts."""
    return f"{FIRST_AR} {LAST_AR} ({FIRST_LATIN} {LAST_LATIN}) {text}"


@dataclass
class Written:
    """What write_everywhere made."""

    youth: Beneficiary
    case: Case
    version: SurveyVersion


def _birth_date() -> date:
    """16 years and 40 days ago (a minor: a guardian consents)."""
    today = date.today()
    return date(today.year - 16, today.month, min(today.day, 28)) - timedelta(days=40)


def register_named_youth(org: Organization) -> Beneficiary:
    """A 16-year-old with the distinctive name, a guardian's consent, phone and address."""
    return register(None, org, {
        "first_name_ar": FIRST_AR, "last_name_ar": LAST_AR, "first_name_latin": FIRST_LATIN,
        "last_name_latin": LAST_LATIN, "sex": "female",
        "birth_date": _birth_date(),
        "governorate_code": "TN-61", "setting_kind": "youth_centre", "phone": "98 765 432",
        "address": f"نهج {LAST_AR} 7", "guardian_name": GUARDIAN,
        "guardian_phone": "22 333 444", "guardian_relationship": "الأم",
        "consent_given_by": "guardian", "consent_method": "signed_form",
        "consent_scopes": ["participation", "surveys"]}, confirmed_new=True)


def write_everywhere(worker: User, youth: Beneficiary, to_org: Organization) -> Written:
    """Write the youth's name into every free-text field of their record, as the pages do:
    a goal, a confidential note edited once (its history), a referral's outcome, a
    transfer's consent note, a survey's text answer and a half-filled draft; and start the
    worker's second factor (its secret is encrypted too)."""
    case = case_service.open_case(worker, youth, {"workers": [worker]})
    case_service.add_goal(worker, case, {"description": mentions("goal")})
    note = case_service.add_note(worker, case, {"kind": "home_visit", "confidential": True,
                                                "text": mentions("first note")})
    case_service.edit_note(worker, note, mentions("edited note"))
    referral = case_service.add_referral(worker, case, {"service_type": "employment"})
    case_service.update_referral(worker, referral, "made", date.today(), mentions("outcome"))
    transfers.request_transfer(worker, case, to_org, mentions("agreed to move"))
    survey = db.session.scalars(sa.select(Survey).where(Survey.organization_id.is_(None))
                                .order_by(Survey.id)).first()
    version = survey.current
    survey_service.submit(worker, version, youth, "baseline",
                          {**SURVEY_ANSWERS, "comments": mentions("comment")}, uuid.uuid4())
    draft = survey_service.draft_for(worker, version, youth, "endline")
    survey_service.save_page(draft, version.definition, ["comments"],
                             {"comments": mentions("draft")}, "en")
    # Not the youth's: the worker's second-factor secret, the one encrypted column of staff.
    second_factor.begin_enrolment(worker)
    _jobs_keeping_files(worker, youth, survey)
    return Written(youth, case, version)


def _jobs_keeping_files(worker: User, youth: Beneficiary, survey: Survey) -> None:
    """The files the CSO's background jobs keep: the survey's responses exported (the
    comment names the youth), and a spreadsheet of the youth again, kept while its import
    waits for a decision on the possible duplicate (the uploaded file, the page's data)."""
    from bladi_cases.services import jobs
    from bladi_cases.services.beneficiaries import imports as importer

    values = {"first_name_ar": FIRST_AR, "last_name_ar": LAST_AR,
              "first_name_latin": FIRST_LATIN, "last_name_latin": LAST_LATIN,
              "sex": "female", "birth_date": _birth_date().isoformat(),
              "governorate_code": "TN-61", "setting_kind": "youth_centre",
              "consent_given_by": "guardian", "guardian_name": GUARDIAN,
              "guardian_relationship": "الأم", "consent_method": "signed_form",
              "consent_scopes": "participation"}
    labels = dict(zip((key for key, _label in importer.COLUMNS),
                      importer.header_labels("en"), strict=True))
    sheet = (",".join(labels[k] for k in values) + "\r\n"
             + ",".join(values.values()) + "\r\n").encode("utf-8-sig")
    manager = db.session.scalars(sa.select(User).where(
        User.organization_id == worker.organization_id, User.role == "cso_manager")).first()
    db.session.flush()
    jobs.start("surveys.responses", worker, {"survey_id": survey.id, "fmt": "csv",
                                             "lang": "en", "repeat": None})
    jobs.start("beneficiaries.import", manager or worker, data=sheet, data_name="again.csv",
               active_key=importer.file_key(youth.organization, sheet))
    db.session.commit()  # the jobs run once committed (at once, in the tests)
    jobs.dispatch_committed()


def check_every_encrypted_column_is_filled(youth: Beneficiary) -> None:
    """Every column the models declare encrypted holds a value of this youth (or, in a
    table of no youth's data, a value)."""
    for model, names in encrypted_columns().items():
        rows = rows_of_youth(model, youth.id)
        for name in names:
            filled = db.session.scalar(sa.select(sa.func.count()).select_from(model).where(
                sa.true() if rows is None else rows, getattr(model, name).is_not(None)))
            assert filled, (f"{model.__tablename__}.{name} is declared encrypted but "
                            "tests/free_text.py does not write it")


def decrypted_everything() -> str:
    """Every encrypted value of the database, decrypted with the configured keys, in the
    order of the rows' ids (PostgreSQL returns rows rewritten by an UPDATE in another order
    when none is asked for)."""
    c, texts = cipher(), []
    for model, names in encrypted_columns().items():
        for row in db.session.execute(sa.select(*(getattr(model, n) for n in names))
                                      .order_by(model.id)):
            texts += [c.decrypt(token) for token in row if token is not None]
    return "\n".join(texts)


def every_table_dump() -> str:
    """Every row of every table, as text (any database)."""
    dump = []
    for table in db.metadata.sorted_tables:
        dump += [repr(tuple(row)) for row in db.session.execute(sa.select(table))]
    return "\n".join(dump)

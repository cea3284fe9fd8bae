"""Registering and keeping the record of a young person: validation, encryption, consent,
enrolment, duplicates, and the rights of access and erasure."""

from __future__ import annotations

import itertools
import operator
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from ...extensions import db
from ...models import (
    Beneficiary,
    BeneficiaryNameIndex,
    Consent,
    ConsentGiver,
    ConsentScope,
    Enrolment,
    ExitReason,
    Organization,
    Site,
)
from ...privacy import DataKeyError, FieldCipher, UndecryptableValueError, cipher_from_config
from .. import ValidationError
from ..audit import Action, record
from .validation import check_consent, validate_registration

PREFIX_MAX = 10  # name prefixes indexed up to this length (longer ones are re-checked)

IDENTITY_FIELDS = ("first_name_ar", "last_name_ar", "first_name_latin", "last_name_latin",
                   "birth_date", "phone", "guardian_name", "guardian_phone", "address")
# What `Identity.full_name` needs.
NAME_FIELDS = IDENTITY_FIELDS[:4]


def revealable_columns(fields: tuple[str, ...] = NAME_FIELDS) -> tuple:
    """The columns a Core row needs so that `reveal_many` can decrypt `fields` of it (the
    name by default): the youth's id and code, the CSO that owns the row (the check that
    the reader is of that CSO) and the encrypted columns. Every listing that names youth
    selects these, all from `beneficiary` itself, so the owner checked is the row's own
    and a new identity field needs no list to be extended by hand."""
    return (Beneficiary.id, Beneficiary.code, Beneficiary.organization_id,
            *(getattr(Beneficiary, f"{name}_enc") for name in fields))


def cipher() -> FieldCipher:
    """The field cipher for the configured BLADI_DATA_KEY."""
    return cipher_from_config(current_app.config)


def decrypt_field(row, attribute: str, c: FieldCipher | None = None,
                  table: str | None = None) -> str | None:
    """The plain text of one encrypted attribute (`..._enc`) of a loaded row; None when it
    holds nothing. A value that no configured key decrypts raises UndecryptableValueError naming
    the table, the row and the column: never shown as an empty field. `table`: the table's
    name when `row` is a Core row (an object knows its own)."""
    token = getattr(row, attribute)
    if token is None:
        return None
    try:
        return (c or cipher()).decrypt(token)
    except DataKeyError:
        raise UndecryptableValueError(table or row.__tablename__, row.id, attribute) from None


@dataclass
class Identity:
    """The decrypted identifying fields of one beneficiary (never stored like this)."""

    first_name_ar: str | None = None
    last_name_ar: str | None = None
    first_name_latin: str | None = None
    last_name_latin: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    guardian_name: str | None = None
    guardian_phone: str | None = None
    address: str | None = None

    @property
    def full_name(self) -> str:
        """Arabic name, then the Latin one in parentheses when both exist."""
        arabic = " ".join(p for p in (self.first_name_ar, self.last_name_ar) if p)
        latin = " ".join(p for p in (self.first_name_latin, self.last_name_latin) if p)
        if arabic and latin:
            return f"{arabic} ({latin})"
        return arabic or latin


def decrypt_identity_unaudited(beneficiary: Beneficiary,
                               fields: tuple[str, ...] = IDENTITY_FIELDS,
                               c: FieldCipher | None = None) -> Identity:
    """Decrypt a row's identity with no audit entry: only for the system's own work on the
    ciphertext (key rotation, re-keying after a transfer), never to show it to a person;
    `reveal` is the way for that. `fields`: only these (the others stay None).
    `beneficiary` may be a Core row with the `..._enc` columns of `fields`, `id`."""
    c = c or cipher()
    values = {}
    for name in fields:
        raw = decrypt_field(beneficiary, f"{name}_enc", c, Beneficiary.__tablename__)
        values[name] = date.fromisoformat(raw) if name == "birth_date" and raw else raw
    return Identity(**values)


def reveal(beneficiary: Beneficiary, actor, purpose: str = "view") -> Identity:
    """Decrypt one youth's identity for a user of the owning CSO, and audit the read."""
    if not actor.is_cso_staff or actor.organization_id != beneficiary.organization_id:
        raise PermissionError("identities are decrypted only for the owning CSO")
    identity = decrypt_identity_unaudited(beneficiary)
    record(Action.BENEFICIARY_VIEWED, actor=actor, obj=beneficiary,
           detail={"code": beneficiary.code, "purpose": purpose})
    return identity


def reveal_many(beneficiaries: list[Beneficiary], actor, purpose: str = "list",
                fields: tuple[str, ...] = IDENTITY_FIELDS):
    """Decrypt the identities shown on one page (a list), with one audit entry naming them.
    A page that shows only names passes `fields=NAME_FIELDS`: each field is one decryption,
    and a roster of 25 has no use for 125 phone numbers and addresses. The youth may be
    objects or Core rows (`id`, `code`, `organization_id` and the fields' `..._enc`)."""
    if not beneficiaries:
        return {}
    # current_user is a proxy, resolved again on each use: once, not once per row.
    actor = getattr(actor, "_get_current_object", lambda: actor)()
    if not actor.is_cso_staff or any(actor.organization_id != b.organization_id
                                     for b in beneficiaries):
        raise PermissionError("identities are decrypted only for the owning CSO")
    record(Action.BENEFICIARIES_LISTED, actor=actor, organization_id=actor.organization_id,
           detail={"codes": [b.code for b in beneficiaries], "purpose": purpose})
    c = cipher()
    return {b.id: decrypt_identity_unaudited(b, fields, c) for b in beneficiaries}


# --- Writing -----------------------------------------------------------------------------

def name_purpose(org_id: int) -> str:
    """The blind-index purpose of a CSO's name prefixes (searches use it too)."""
    # Per-CSO purpose: the same name in two CSOs gives unrelated digests.
    return f"name:{org_id}"


def _name_key(c: FieldCipher, org_id: int, first: str | None, last: str | None) -> str | None:
    if not (first and last):
        return None
    return c.blind_index(f"{first} {last}", f"fullname:{org_id}")


def _identity_value(identity, name: str):
    return identity.get(name) if isinstance(identity, dict) else getattr(identity, name)


def _set_name_keys(beneficiary: Beneficiary, identity, c: FieldCipher) -> None:
    """The duplicate-check keys of the full names, under the row's CSO."""
    org_id = beneficiary.organization_id
    beneficiary.name_key_ar = _name_key(c, org_id, _identity_value(identity, "first_name_ar"),
                                        _identity_value(identity, "last_name_ar"))
    beneficiary.name_key_latin = _name_key(c, org_id,
                                           _identity_value(identity, "first_name_latin"),
                                           _identity_value(identity, "last_name_latin"))


def _encrypted_identity(identity: dict, c: FieldCipher) -> dict:
    """The encrypted columns of an identity (`..._enc`) and its plain birth year and month."""
    columns = {}
    for name in IDENTITY_FIELDS:
        value = identity.get(name)
        if isinstance(value, date):
            value = value.isoformat()
        columns[f"{name}_enc"] = c.encrypt(value)
    birth = identity["birth_date"]
    columns["birth_year"], columns["birth_month"] = birth.year, birth.month
    return columns


def _encrypt_identity(beneficiary: Beneficiary, identity: dict, c: FieldCipher) -> None:
    """Encrypt the identity onto the row, with its duplicate-check keys."""
    for name, value in _encrypted_identity(identity, c).items():
        setattr(beneficiary, name, value)
    _set_name_keys(beneficiary, identity, c)


def _name_digests(org_id: int, identity, c: FieldCipher) -> list[str]:
    """The name-index digests (prefixes of every name word) of one youth, in order."""
    names = " ".join(_identity_value(identity, n) or "" for n in (
        "first_name_ar", "last_name_ar", "first_name_latin", "last_name_latin"))
    return sorted(c.prefix_indexes(names, name_purpose(org_id), max_len=PREFIX_MAX))


def _name_index_rows(beneficiary: Beneficiary, identity, c: FieldCipher) -> list[dict]:
    org_id = beneficiary.organization_id
    return [{"beneficiary_id": beneficiary.id, "digest": digest, "organization_id": org_id}
            for digest in _name_digests(org_id, identity, c)]


def write_blind_indexes(beneficiary: Beneficiary, identity, c: FieldCipher) -> None:
    """The one writer of a registered youth's blind indexes, under the newest key and the
    row's CSO: the duplicate-check keys of the full names and the prefix digests of every
    name (after an edit, a key rotation, or a transfer to another CSO). A new registration
    gets the same digests from `create_validated`, many rows in one insert."""
    _set_name_keys(beneficiary, identity, c)
    db.session.flush()  # the row (its CSO may just have changed) before its index rows
    db.session.execute(sa.delete(BeneficiaryNameIndex)
                       .where(BeneficiaryNameIndex.beneficiary_id == beneficiary.id))
    rows = _name_index_rows(beneficiary, identity, c)
    if rows:
        db.session.execute(sa.insert(BeneficiaryNameIndex), rows)


def _duplicate_keys(org: Organization, identity: dict,
                    variants: list[FieldCipher] | None = None) -> set[str]:
    keys = set()
    for variant in variants or cipher().index_variants():
        keys |= {_name_key(variant, org.id, identity["first_name_ar"], identity["last_name_ar"]),
                 _name_key(variant, org.id, identity["first_name_latin"],
                           identity["last_name_latin"])}
    keys.discard(None)
    return keys


def find_duplicates_many(org: Organization, identities: list[dict]) -> list[list[Beneficiary]]:
    """For each identity: youth of the same CSO with the same normalised name (either
    script) and birth year. One query for a whole spreadsheet, not one per row."""
    variants = cipher().index_variants()  # one cipher per key, not one per row
    wanted = [_duplicate_keys(org, i, variants) if i.get("birth_date") else set()
              for i in identities]
    all_keys = set().union(*wanted)
    by_key: dict[str, list[Beneficiary]] = {}
    if all_keys:
        # The digests are written into the SQL as literals (hex strings, nothing to escape):
        # 20,000 bound parameters would pass SQLite's limit, and one query beats 50 chunks.
        keys = sa.bindparam("duplicate_keys", sorted(all_keys), expanding=True,
                            literal_execute=True)
        years = sorted({i["birth_date"].year for i in identities if i.get("birth_date")})
        for found in db.session.scalars(sa.select(Beneficiary).where(
                Beneficiary.organization_id == org.id, Beneficiary.erased_at.is_(None),
                Beneficiary.birth_year.in_(years),
                sa.or_(Beneficiary.name_key_ar.in_(keys),
                       Beneficiary.name_key_latin.in_(keys)))):
            for key in {found.name_key_ar, found.name_key_latin} - {None}:
                by_key.setdefault(key, []).append(found)
    results = []
    for identity, keys in zip(identities, wanted, strict=True):
        matches = {b.id: b for key in keys for b in by_key.get(key, [])
                   if b.birth_year == identity["birth_date"].year}
        results.append(list(matches.values()))
    return results


def find_duplicates(org: Organization, identity: dict, governorate: str | None,
                    exclude_id: int | None = None) -> list[Beneficiary]:
    """Same CSO, same normalised name (either script) and birth year; same governorate first."""
    [found] = find_duplicates_many(org, [identity])
    found = [b for b in found if b.id != exclude_id]
    return sorted(found, key=lambda b: (b.governorate_code != governorate, b.code))


class PossibleDuplicates(Exception):  # noqa: N818 (a signal to the caller, not an error)
    """Raised by register() when youth with the same name and birth year already exist."""

    def __init__(self, candidates: list[Beneficiary]):
        super().__init__(", ".join(b.code for b in candidates))
        self.candidates = candidates


def allocate_sequences(org: Organization, count: int) -> int:
    """Reserve `count` consecutive code numbers; returns the first.

    One UPDATE takes the row lock, so concurrent registrations get distinct numbers.
    """
    last = db.session.execute(
        sa.update(Organization).where(Organization.id == org.id)
        .values(beneficiary_counter=Organization.beneficiary_counter + count)
        .returning(Organization.beneficiary_counter)).scalar_one()
    return last - count + 1


@dataclass
class PreparedRegistrations:
    """The work of writing validated registrations that needs no database: encryption and
    blind indexes (apart from the inserts, so each can be measured: bench/import_rows.py)."""

    youth: list[dict]  # the beneficiary rows, but their code numbers
    consents: list[dict | None]  # the consent of each (None: none), but its beneficiary_id
    enrolments: list[dict | None]  # the first enrolment of each, likewise
    digests: list[list[str]]  # the name-prefix digests of each


def prepare_validated(org_id: int, actor_id: int | None, validated: list[tuple],
                      public_ids: list | None, c: FieldCipher) -> PreparedRegistrations:
    """Encrypt and index registrations that passed validate_registration (no database)."""
    prepared = PreparedRegistrations([], [], [], [])
    for (identity, plain, consent), public_id in zip(
            validated, public_ids or [None] * len(validated), strict=True):
        prepared.youth.append({
            **{name: value for name, value in plain.items() if name != "site"},
            **_encrypted_identity(identity, c),
            "name_key_ar": _name_key(c, org_id, identity.get("first_name_ar"),
                                     identity.get("last_name_ar")),
            "name_key_latin": _name_key(c, org_id, identity.get("first_name_latin"),
                                        identity.get("last_name_latin")),
            "organization_id": org_id, "created_by_id": actor_id,
            "uuid": public_id if public_id is not None else uuid.uuid4()})
        prepared.consents.append(None if consent is None else {
            **_consent_row(actor_id, org_id, consent, c), "uuid": uuid.uuid4()})
        prepared.enrolments.append(None if plain["site"] is None else {
            "organization_id": org_id, "site_id": plain["site"].id,
            "start_date": plain["first_contact_date"], "uuid": uuid.uuid4()})
        prepared.digests.append(_name_digests(org_id, identity, c))
    return prepared


def write_prepared(org: Organization, prepared: PreparedRegistrations) -> list[tuple[int, str]]:
    """Insert prepared registrations with the next code numbers of their CSO, in the current
    transaction; their (id, code), in order.

    Core inserts of many rows each (one statement per table, not one ORM object per row):
    the session does not hold the new rows."""
    count = len(prepared.youth)
    if not count:
        return []
    first = allocate_sequences(org, count)
    sequences = range(first, first + count)
    table = Beneficiary.__table__
    _insert_many(table, ({**row, "sequence": sequence, "code": _code(org, sequence)}
                         for row, sequence in zip(prepared.youth, sequences, strict=True)))
    # Their ids by their code numbers (reserved above, so only these rows have them): one
    # query on the unique index, where RETURNING would make SQLite insert row by row.
    id_of = dict(db.session.execute(sa.select(table.c.sequence, table.c.id).where(
        table.c.organization_id == org.id, table.c.sequence.between(first, sequences[-1]))).all())
    ids = [id_of[sequence] for sequence in sequences]
    for model, rows in ((Consent, prepared.consents), (Enrolment, prepared.enrolments)):
        _insert_many(model.__table__, ({**row, "beneficiary_id": beneficiary_id}
                                       for beneficiary_id, row in zip(ids, rows, strict=True)
                                       if row is not None))
    _insert_many(BeneficiaryNameIndex.__table__, (
        {"beneficiary_id": beneficiary_id, "digest": digest, "organization_id": org.id}
        for beneficiary_id, digests in zip(ids, prepared.digests, strict=True)
        for digest in digests))
    return [(beneficiary_id, _code(org, sequence))
            for beneficiary_id, sequence in zip(ids, sequences, strict=True)]


def insert_validated(actor, org: Organization, validated: list[tuple],
                     public_ids: list | None = None) -> list[tuple[int, str]]:
    """Write beneficiaries whose (identity, plain, consent) already passed
    validate_registration: codes, encryption, consent, first enrolment, name index.
    Returns their (id, code), in the order given; the session does not hold the new rows
    (`create_validated` loads them). `public_ids` gives their UUIDs when a client made them
    (the offline app); else random."""
    return write_prepared(org, prepare_validated(org.id, getattr(actor, "id", None),
                                                 validated, public_ids, cipher()))


def _code(org: Organization, sequence: int) -> str:
    return f"{org.code}-{sequence:04d}"


def _insert_many(table: sa.Table, rows: Iterable[dict]) -> None:
    """Insert many rows (dicts with the same keys) of one table in the current transaction,
    with what SQLAlchemy's executemany would send (each column type's conversion, Python-side
    defaults such as created_at filled per row), handed to the driver directly.

    The ORM's unit of work, then Core's executemany, spent most of an import's time on
    per-row bookkeeping: on SQLite the driver's own executemany, on PostgreSQL COPY (a
    third of executemany's time for the 150,000 name-index rows of 10,000 youth)."""
    rows = iter(rows)
    head = next(rows, None)
    if head is None:
        return
    connection = db.session.connection()
    dialect = connection.dialect
    fast = dialect.driver == "psycopg" or dialect.paramstyle == "qmark"
    if not fast:  # another driver: Core's executemany
        connection.execute(sa.insert(table), [head, *rows])
        return
    given = [column for column in table.columns if column.key in head]
    defaulted = [column for column in table.columns if column.key not in head
                 and column.default is not None and column.default.is_callable]
    columns = given + defaulted
    convert = [(index, process) for index, process in enumerate(
        column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns)
        if process is not None]
    pick = operator.itemgetter(*(column.key for column in given))
    defaults = [column.default.arg for column in defaulted]

    def values(row: dict) -> tuple:
        if not convert and not defaults:  # the name index: plain numbers and text
            return pick(row)
        out = [*pick(row), *(default(None) for default in defaults)]
        for index, process in convert:
            if out[index] is not None:
                out[index] = process(out[index])
        return tuple(out)

    quote = dialect.identifier_preparer
    names = ", ".join(quote.quote(column.name) for column in columns)
    every = (values(row) for row in itertools.chain([head], rows))
    if dialect.driver == "psycopg":
        cursor = connection.connection.dbapi_connection.cursor()
        with cursor, cursor.copy(f"COPY {quote.format_table(table)} ({names}) FROM STDIN") as copy:
            for row in every:
                copy.write_row(row)
    else:
        connection.exec_driver_sql(f"INSERT INTO {quote.format_table(table)} ({names}) "
                                   f"VALUES ({', '.join('?' * len(columns))})", list(every))


def create_validated(actor, org: Organization, validated: list[tuple],
                     public_ids: list | None = None) -> list[Beneficiary]:
    """`insert_validated`, then the new rows loaded as objects (in the order given), for
    callers that go on with them (a registration, the offline app)."""
    ids = [beneficiary_id for beneficiary_id, _code in insert_validated(
        actor, org, validated, public_ids)]
    loaded = {b.id: b for b in db.session.scalars(
        sa.select(Beneficiary).where(Beneficiary.id.in_(ids)))} if ids else {}
    return [loaded[beneficiary_id] for beneficiary_id in ids]


def register(actor, org: Organization, values: dict, *, confirmed_new: bool = False,
             today: date | None = None, audit: bool = True,
             beneficiary_uuid=None) -> Beneficiary:
    """Create a beneficiary (with consent and first enrolment) after every check passed.

    Raises ValidationError (nothing written) or PossibleDuplicates unless `confirmed_new`.
    `beneficiary_uuid` is the public id a phone gave the record (see services/sync.py).
    """
    today = today or date.today()
    identity, plain, consent = validate_registration(values, org, today)
    if not confirmed_new:
        candidates = find_duplicates(org, identity, plain["governorate_code"])
        if candidates:
            raise PossibleDuplicates(candidates)
    [beneficiary] = create_validated(actor, org, [(identity, plain, consent)],
                                     [beneficiary_uuid])
    if audit:
        record(Action.BENEFICIARY_CREATED, actor=actor, obj=beneficiary,
               detail={"code": beneficiary.code})
    return beneficiary


def _consent_row(actor_id: int | None, org_id: int, consent: dict, c: FieldCipher) -> dict:
    """The columns of a recorded consent (the guardian's name encrypted)."""
    return {"organization_id": org_id, "given_by": consent["given_by"],
            "giver_name_enc": c.encrypt(consent["giver_name"] if consent["given_by"]
                                        == ConsentGiver.GUARDIAN else None),
            "relationship_to_youth": consent["relationship_to_youth"],
            "authority": consent["authority"], "given_on": consent["given_on"],
            "method": consent["method"], "scopes": sorted(consent["scopes"]),
            "recorded_by_id": actor_id, "withdrawn_on": None}


def _add_consent(actor, beneficiary: Beneficiary, consent: dict) -> Consent:
    row = Consent(beneficiary=beneficiary, **_consent_row(
        getattr(actor, "id", None), beneficiary.organization_id, consent, cipher()))
    db.session.add(row)
    return row


def update(actor, beneficiary: Beneficiary, values: dict, today: date | None = None):
    """Edit the record; collection beyond the minimal record needs a valid consent."""
    refuse_if_erased(beneficiary)
    today = today or date.today()
    values = {**values, "consent_given_by": None, "site": None}
    identity, plain, _consent = validate_registration(
        values, beneficiary.organization, today, consent_on_file=beneficiary.current_consent)
    plain.pop("site")
    for name, value in plain.items():
        setattr(beneficiary, name, value)
    c = cipher()
    _encrypt_identity(beneficiary, identity, c)
    write_blind_indexes(beneficiary, identity, c)
    db.session.flush()
    record(Action.BENEFICIARY_UPDATED, actor=actor, obj=beneficiary,
           detail={"code": beneficiary.code})
    return beneficiary


def refuse_if_erased(beneficiary: Beneficiary) -> None:
    """Refuse any change to an erased record (its identity is gone for good)."""
    if beneficiary.erased_at is not None:
        raise ValidationError.one("", _("This record was erased; it cannot be changed."))


def record_consent(actor, beneficiary: Beneficiary, values: dict, today: date | None = None):
    """Record a new consent (for example after a withdrawal, or when turning 18)."""
    refuse_if_erased(beneficiary)
    today = today or date.today()
    errors: dict[str, list[str]] = {}
    birth = decrypt_identity_unaudited(beneficiary).birth_date
    consent = check_consent({**values, "consent_given_by": values.get("consent_given_by") or ""},
                            birth=birth, setting_kind=beneficiary.setting_kind, today=today,
                            errors=errors)
    if consent is None and not errors:
        errors["consent_given_by"] = [_("This field is required.")]
    if errors:
        raise ValidationError(errors)
    row = _add_consent(actor, beneficiary, consent)
    db.session.flush()
    beneficiary.consents.sort(key=lambda c: (c.given_on, c.id or 0), reverse=True)
    record(Action.CONSENT_RECORDED, actor=actor, obj=beneficiary, detail={"scopes": row.scopes})
    return row


def withdraw_consent(actor, beneficiary: Beneficiary, on: date, today: date | None = None):
    """Record that consent was withdrawn: collection stops and the record is flagged."""
    today = today or date.today()
    consent = beneficiary.current_consent
    if consent is None or consent.withdrawn_on is not None:
        raise ValidationError.one("", _("There is no valid consent to withdraw."))
    if not isinstance(on, date) or on > today or on < consent.given_on:
        raise ValidationError.one("withdrawn_on", _(
            "Give a date between the consent and today."))
    consent.withdrawn_on = on
    db.session.flush()
    record(Action.CONSENT_WITHDRAWN, actor=actor, obj=beneficiary)
    return consent


def enrol(actor, beneficiary: Beneficiary, site: Site | None, start: date,
          today: date | None = None) -> Enrolment:
    """Enrol a youth at one of the CSO's sites (needs consent to take part)."""
    refuse_if_erased(beneficiary)
    today = today or date.today()
    errors: dict[str, list[str]] = {}
    if site is None or beneficiary.organization not in site.organizations:
        errors["site"] = [_("Unknown site: choose one of your CSO's sites.")]
    if not isinstance(start, date) or start > today:
        errors["start_date"] = [_("Give a date that is not in the future.")]
    if not beneficiary.allows(ConsentScope.PARTICIPATION):
        errors.setdefault("site", []).append(
            _("Enrolment needs consent to take part in activities."))
    if errors:
        raise ValidationError(errors)
    enrolment = Enrolment(beneficiary=beneficiary, organization_id=beneficiary.organization_id,
                          site=site, start_date=start)
    db.session.add(enrolment)
    db.session.flush()
    record(Action.ENROLMENT_STARTED, actor=actor, obj=beneficiary, detail={"site": str(site.uuid)})
    return enrolment


def end_enrolment(actor, enrolment: Enrolment, end: date, reason: str,
                  today: date | None = None) -> Enrolment:
    """Close an enrolment with its exit reason."""
    today = today or date.today()
    errors: dict[str, list[str]] = {}
    if enrolment.end_date is not None:
        errors[""] = [_("This enrolment has already ended.")]
    if not isinstance(end, date) or end > today or end < enrolment.start_date:
        errors["end_date"] = [_("Give a date between the start of the enrolment and today.")]
    if reason not in {r.value for r in ExitReason}:
        errors["exit_reason"] = [_("Choose a value from the list.")]
    if errors:
        raise ValidationError(errors)
    enrolment.end_date, enrolment.exit_reason = end, reason
    db.session.flush()
    record(Action.ENROLMENT_ENDED, actor=actor, obj=enrolment.beneficiary,
           detail={"reason": reason})
    return enrolment


def form_data(beneficiary: Beneficiary, actor) -> dict:
    """The current record as edit-form data (decrypted for the owning CSO, audited)."""
    identity = reveal(beneficiary, actor, purpose="edit")
    data = {f.name: getattr(identity, f.name) for f in fields(identity)}
    data.update(sex=beneficiary.sex, governorate_code=beneficiary.governorate_code,
                setting_kind=beneficiary.setting_kind, delegation=beneficiary.delegation,
                school_status=beneficiary.school_status or "",
                disability={True: "yes", False: "no"}.get(beneficiary.disability, ""),
                first_contact_date=beneficiary.first_contact_date)
    return data


@dataclass
class TimelineEvent:
    """One dated line of a youth's history."""

    on: date
    kind: str
    detail: dict


def timeline(beneficiary: Beneficiary) -> list[TimelineEvent]:
    """The youth's history, newest first: registration, consents, enrolments.

    Later features (attendance, surveys, case events) add their events here.
    """
    events = [TimelineEvent(beneficiary.first_contact_date, "first_contact", {})]
    for consent in beneficiary.consents:
        events.append(TimelineEvent(consent.given_on, "consent", {"consent": consent}))
        if consent.withdrawn_on:
            events.append(TimelineEvent(consent.withdrawn_on, "consent_withdrawn",
                                        {"consent": consent}))
    for enrolment in beneficiary.enrolments:
        events.append(TimelineEvent(enrolment.start_date, "enrolled", {"enrolment": enrolment}))
        if enrolment.end_date:
            events.append(TimelineEvent(enrolment.end_date, "exited", {"enrolment": enrolment}))
    if beneficiary.erased_at:
        events.append(TimelineEvent(beneficiary.erased_at.date(), "erased", {}))
    return sorted(events, key=lambda e: e.on, reverse=True)

"""The registration rules: what makes a beneficiary record, its consent and its first
enrolment acceptable. Used by the form, the spreadsheet import and the demo generator;
writes nothing."""

from __future__ import annotations

from datetime import date

import phonenumbers
from flask_babel import gettext as _

from ...extensions import db
from ...models import (
    Consent,
    ConsentGiver,
    ConsentMethod,
    ConsentScope,
    Governorate,
    Organization,
    SchoolStatus,
    Sex,
    Site,
)
from ...models.admin import SiteKind
from .. import ValidationError
from ..inputs import name_problems

MIN_AGE, MAX_AGE, ADULT_AGE = 8, 35, 18
NAME_MAX, ADDRESS_MAX, DELEGATION_MAX, PERSON_MAX = 60, 200, 80, 120
NAME_FIELDS = ("first_name_ar", "last_name_ar", "first_name_latin", "last_name_latin")
# Beyond the minimal record: collected only under a valid consent.
EXTENDED_FIELDS = ("phone", "address", "guardian_phone", "delegation", "school_status",
                   "disability", "site")


def age_on(birth: date, day: date) -> int:
    """Age in whole years on a day."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def normalize_phone(raw: str | None) -> str | None:
    """A Tunisian phone number in E.164 (+216XXXXXXXX), or ValueError."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, "TN")
    except phonenumbers.NumberParseException as exc:
        raise ValueError(raw) from exc
    if number.country_code != 216 or not phonenumbers.is_valid_number(number):
        raise ValueError(raw)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _text(values: dict, name: str, limit: int, errors: dict) -> str | None:
    value = values.get(name)
    value = value.strip() if isinstance(value, str) else value
    if value and len(value) > limit:
        errors.setdefault(name, []).append(_("At most %(n)d characters.", n=limit))
    return value or None


def _check_identity(values: dict, today: date, errors: dict) -> dict:
    clean = {name: _text(values, name, NAME_MAX, errors) for name in NAME_FIELDS}
    clean["guardian_name"] = _text(values, "guardian_name", PERSON_MAX, errors)
    for name in (*NAME_FIELDS, "guardian_name"):
        if problems := name_problems(clean[name]):
            errors.setdefault(name, []).extend(problems)
    has_arabic = clean["first_name_ar"] and clean["last_name_ar"]
    has_latin = clean["first_name_latin"] and clean["last_name_latin"]
    if not (has_arabic or has_latin):
        errors.setdefault("first_name_ar", []).append(
            _("Give the first and last name, in Arabic or in Latin letters."))
    birth = values.get("birth_date")
    if not isinstance(birth, date):
        errors.setdefault("birth_date", []).append(_("Give the date of birth."))
    elif birth > today:
        errors.setdefault("birth_date", []).append(_("The date of birth is in the future."))
    elif not MIN_AGE <= age_on(birth, today) <= MAX_AGE:
        errors.setdefault("birth_date", []).append(
            _("The age must be between %(low)d and %(high)d years.", low=MIN_AGE, high=MAX_AGE))
    clean["birth_date"] = birth if isinstance(birth, date) else None
    for name in ("phone", "guardian_phone"):
        try:
            clean[name] = normalize_phone(values.get(name))
        except ValueError:
            errors.setdefault(name, []).append(
                _("Not a Tunisian phone number (8 digits, e.g. 98 123 456)."))
    clean["address"] = _text(values, "address", ADDRESS_MAX, errors)
    return clean


def _check_plain(values: dict, org: Organization, today: date, errors: dict) -> dict:
    clean = {}
    choices = {"sex": Sex, "setting_kind": SiteKind, "school_status": SchoolStatus}
    for name, enum in choices.items():
        value = values.get(name) or None
        if value is not None and value not in {m.value for m in enum}:
            errors.setdefault(name, []).append(_("Choose a value from the list."))
        clean[name] = value
    for name in ("sex", "setting_kind"):
        if clean[name] is None and name not in errors:
            errors.setdefault(name, []).append(_("This field is required."))
    governorate = values.get("governorate_code") or None
    if governorate is None or db.session.get(Governorate, governorate) is None:
        errors.setdefault("governorate_code", []).append(_("Choose a governorate from the list."))
    clean["governorate_code"] = governorate
    clean["delegation"] = _text(values, "delegation", DELEGATION_MAX, errors)
    disability = values.get("disability")
    clean["disability"] = None if disability in (None, "") else bool(disability)
    first_contact = values.get("first_contact_date") or today
    if not isinstance(first_contact, date):
        errors.setdefault("first_contact_date", []).append(_("Give a valid date."))
    elif first_contact > today:
        errors.setdefault("first_contact_date", []).append(_("This date is in the future."))
    clean["first_contact_date"] = first_contact
    site = values.get("site")
    if site is not None and (not isinstance(site, Site) or org not in site.organizations):
        errors.setdefault("site", []).append(_("Unknown site: choose one of your CSO's sites."))
    clean["site"] = site
    return clean


def check_consent(values: dict, *, birth: date | None, setting_kind: str | None,
                  today: date, errors: dict) -> dict | None:
    """Validate the consent part of a form; None when no consent is recorded."""
    given_by = values.get("consent_given_by") or None
    if given_by is None:
        return None
    if given_by not in {g.value for g in ConsentGiver}:
        errors.setdefault("consent_given_by", []).append(_("Choose a value from the list."))
        return None
    minor = birth is not None and age_on(birth, today) < ADULT_AGE
    if minor and given_by == ConsentGiver.SELF:
        errors.setdefault("consent_given_by", []).append(
            _("Under 18: consent is given by a parent or guardian, or by the authority "
              "with custody."))
    if birth is not None and not minor and given_by != ConsentGiver.SELF:
        errors.setdefault("consent_given_by", []).append(
            _("From 18 on, the young person gives their own consent."))
    clean = {"given_by": given_by,
             "giver_name": _text(values, "guardian_name", PERSON_MAX, errors),
             "relationship_to_youth": _text(values, "guardian_relationship", 60, errors),
             "authority": _text(values, "consent_authority", 200, errors)}
    if given_by == ConsentGiver.GUARDIAN:
        for name, key in (("guardian_name", "giver_name"),
                          ("guardian_relationship", "relationship_to_youth")):
            if not clean[key]:
                errors.setdefault(name, []).append(_("Required when a guardian consents."))
    needs_authority = given_by == ConsentGiver.AUTHORITY or (
        minor and setting_kind == SiteKind.REHABILITATION_CENTRE)
    if needs_authority and not clean["authority"]:
        errors.setdefault("consent_authority", []).append(
            _("Name the centre or authority that authorised the participation."))
    method = values.get("consent_method") or None
    if method not in {m.value for m in ConsentMethod}:
        errors.setdefault("consent_method", []).append(_("Choose how consent was given."))
    given_on = values.get("consent_date") or today
    if not isinstance(given_on, date) or given_on > today:
        errors.setdefault("consent_date", []).append(_("Give a date that is not in the future."))
    scopes = list(values.get("consent_scopes") or [])
    if not scopes or any(s not in {c.value for c in ConsentScope} for s in scopes):
        errors.setdefault("consent_scopes", []).append(_("Tick what the consent covers."))
    clean.update(method=method, given_on=given_on, scopes=scopes)
    return clean


def validate_registration(values: dict, org: Organization, today: date | None = None,
                          *, consent_on_file: Consent | None = None):
    """Check a registration (form or spreadsheet row); returns (identity, plain, consent) or
    raises ValidationError with messages per field. Writes nothing."""
    today = today or date.today()
    errors: dict[str, list[str]] = {}
    identity = _check_identity(values, today, errors)
    plain = _check_plain(values, org, today, errors)
    consent = check_consent(values, birth=identity["birth_date"],
                            setting_kind=plain["setting_kind"], today=today, errors=errors)
    covered = consent is not None or (consent_on_file is not None
                                      and consent_on_file.withdrawn_on is None)
    if not covered:
        for name in EXTENDED_FIELDS:
            value = identity.get(name, plain.get(name))
            if value not in (None, "", False):
                errors.setdefault(name, []).append(
                    _("Record consent before collecting more than the minimal record."))
    elif plain["site"] is not None and "participation" not in (
            consent["scopes"] if consent else consent_on_file.scopes):
        errors.setdefault("site", []).append(
            _("Enrolment needs consent to take part in activities."))
    if errors:
        raise ValidationError(errors)
    return identity, plain, consent


"""JSON Schemas (OpenAPI 3.0 dialect) of what the API's views take and return. The views
name them with @documented; openapi.py turns views and schemas into the OpenAPI document,
so the contract is written once, next to the code that keeps it."""

from __future__ import annotations

from ...services.field.sync import MAX_RECORDS, RECORD_TYPES

_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_UUID = {"type": "string", "format": "uuid"}
_NUUID = {"type": "string", "format": "uuid", "nullable": True}
_DATE = {"type": "string", "format": "date"}
_NDATE = {"type": "string", "format": "date", "nullable": True}


def _object(properties: dict, required: list | None = None, **extra) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required, **extra}


def _list(item: dict) -> dict:
    return {"type": "array", "items": item}


_CHOICES = _list(_object({"value": _STR, "label": _STR}))

SESSION_DATA = _object({
    "activity": _UUID, "date": _DATE,
    "duration_minutes": {"type": "integer", "nullable": True, "minimum": 1, "maximum": 720},
    "attendance": {"type": "object", "description": "beneficiary uuid -> status",
                   "additionalProperties": {"type": "string",
                                            "enum": ["present", "absent", "excused"]}},
}, required=["activity", "date", "attendance"])

REGISTRATION_DATA = _object({
    **{name: _NSTR for name in ("first_name_ar", "last_name_ar", "first_name_latin",
                                "last_name_latin", "phone", "delegation", "address",
                                "guardian_name", "guardian_relationship", "guardian_phone",
                                "consent_authority")},
    "sex": {"type": "string", "enum": ["female", "male"]},
    "birth_date": _DATE, "governorate_code": {"type": "string", "example": "TN-61"},
    "setting_kind": {"type": "string",
                     "enum": ["rehabilitation_centre", "youth_centre", "school"]},
    "school_status": _NSTR, "disability": {"type": "boolean", "nullable": True},
    "first_contact_date": _NDATE, "consent_given_by": _NSTR, "consent_method": _NSTR,
    "consent_date": _NDATE, "consent_scopes": _list(_STR),
    "site": {**_NUUID, "description": "a site of /registration-options: enrols the youth there"},
    "activity": {**_NUUID, "description": "an activity of /activities: enrols the youth in it "
                 "from first_contact_date, so a later session of the batch may name them"},
    "confirmed_new": {"type": "boolean",
                      "description": "true: register even if possible duplicates exist"},
}, required=["sex", "birth_date", "governorate_code", "setting_kind"])

SURVEY_RESPONSE_DATA = _object({
    "version": {**_UUID, "description": "a version id of /surveys (older versions too)"},
    "youth": _NUUID, "wave": _NSTR, "answers": {"type": "object"},
}, required=["version", "answers"])

CASE_NOTE_DATA = _object({
    "case": _UUID, "kind": _STR, "text": _STR, "due_date": _NDATE, "note_date": _NDATE,
    "confidential": {"type": "boolean"},
}, required=["case", "kind", "text"])

FOLLOW_UP_DATA = _object({"note": _UUID, "done_on": _DATE})

_DATA = {"session": SESSION_DATA, "registration": REGISTRATION_DATA,
         "survey_response": SURVEY_RESPONSE_DATA, "case_note": CASE_NOTE_DATA,
         "follow_up": FOLLOW_UP_DATA}


def _record(kind: str) -> dict:
    return _object({"uuid": {**_UUID, "description": "made by the phone (uuid4)"},
                    "type": {"type": "string", "enum": [kind]},
                    "base_version": _NSTR, "data": _DATA[kind]},
                   required=["uuid", "type", "data"])


SCHEMAS: dict[str, dict] = {
    "OpenAPIDocument": {"type": "object", "description": "an OpenAPI 3.0 document"},
    "Error": _object({"error": {**_STR, "description": "a stable code: not_found, "
                                "unauthorized, csrf_failed..."},
                      "message": {**_STR, "description": "in the user's language"}}),
    "Me": _object({
        "user": _object({"id": _UUID, "name": _STR, "role": _STR, "language": _STR}),
        "organization": _object({"code": _STR, "name": _STR}, nullable=True),
        "csrf_token": {**_STR, "description": "send it back as the X-CSRFToken header"},
        "server_time": {"type": "string", "format": "date-time"}}),
    "Activities": _object({"activities": _list(_object({
        "id": _UUID, "name": _STR, "kind": _STR, "site": _STR,
        "default_duration_minutes": {"type": "integer"},
        "weekdays": _list({"type": "integer", "description": "Monday = 0"}),
        "roster": _list(_object({"id": _UUID, "code": _STR, "name": {
            **_NSTR, "description": "only on the user's own activities"}}))}))}),
    "SessionsToday": _object({"date": _DATE, "sessions": _list(_object({
        "activity": _UUID, "activity_name": _STR, "date": _DATE,
        "recorded": {"type": "boolean"}, "session": _NUUID}))}),
    "Surveys": _object({"surveys": _list(_object({
        "id": {**_UUID, "description": "the version's id: data.version of a response"},
        "survey": _STR, "title": _STR, "number": {"type": "integer"},
        "definition": {"type": "object", "description": "the stored definition"}}))}),
    "RegistrationOptions": _object({
        "sites": _list(_object({"id": _UUID, "name": _STR, "kind": _STR})),
        "governorates": _list(_object({"code": _STR, "name": _STR})),
        "default_governorate": _NSTR,
        **{name: _CHOICES for name in ("sex", "setting_kinds", "school_statuses",
                                       "consent_given_by", "consent_methods",
                                       "consent_scopes", "waves", "note_kinds")},
        "required": _list(_STR), "name_required": _list(_list(_STR)),
        "min_age": {"type": "integer"}, "max_age": {"type": "integer"},
        "adult_age": {"type": "integer"}}),
    "Cases": _object({"cases": _list(_object({
        "id": _UUID, "youth_id": _UUID, "youth_code": _STR,
        "youth_name": {**_NSTR, "description": "only on the cases the user is assigned to"},
        "follow_ups_due": _list(_object({"id": {**_UUID, "description": "the note's id"},
                                         "due_date": _DATE}))}))}),
    "SyncRequest": _object({"records": {
        "type": "array", "maxItems": MAX_RECORDS,
        "items": {"oneOf": [{"$ref": f"#/components/schemas/{kind.title().replace('_', '')}"
                                     "Record"} for kind in RECORD_TYPES]}}}),
    "SyncResponse": _object({"results": _list(_object({
        "uuid": _NSTR,
        "status": {"type": "string",
                   "enum": ["stored", "already_stored", "conflict", "rejected"]},
        "reason": {**_NSTR, "description": "in the user's language"},
        "field_errors": {"type": "object", "nullable": True,
                         "additionalProperties": _list(_STR)},
        "id": {**_NSTR, "description": "the record's public id on the server"}}))}),
    **{f"{kind.title().replace('_', '')}Record": _record(kind) for kind in RECORD_TYPES},
}

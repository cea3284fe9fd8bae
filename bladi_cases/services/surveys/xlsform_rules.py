"""What the XLSForm import honours and what it refuses: pyxform's own header and type spellings,
normalised the way pyxform normalises them, then sorted into handled, no effect, or refused.

Every column pyxform knows (its aliases and the slots of its question, choice and survey
classes) and every question type it knows is classified here, explicitly, so that nothing a
form asks for is silently dropped: tests/test_surveys_xlsform.py walks pyxform's lists and
checks each one is in one of the sets below. A column pyxform does not know is ignored, as
pyxform and ODK ignore it (KoboToolbox exports carry such columns, e.g. `$kuid`).
"""

from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pyxform import aliases, constants
from pyxform.parsing.sheet_headers import clean_text_values, process_header
from pyxform.question import MultipleChoiceQuestion, Option
from pyxform.question_type_dictionary import QUESTION_TYPE_DICT
from pyxform.survey import Survey
from pyxform.xls2json import RE_BEGIN_CONTROL, RE_END_CONTROL, RE_SELECT

LANGS = ("ar", "fr", "en")
# Names a language column may use instead of a "(code)" suffix, lower-cased.
LANGUAGE_NAMES = {
    "ar": "ar", "arabic": "ar", "العربية": "ar", "عربي": "ar", "arabe": "ar",
    "fr": "fr", "french": "fr", "français": "fr", "francais": "fr",
    "en": "en", "english": "en", "anglais": "en", "الإنجليزية": "en", "الانجليزية": "en",
}  # fmt: skip
_CODE = re.compile(r"\(\s*([A-Za-z]{2,3})(?:[-_]\w+)?\s*\)\s*$")

PLAIN_TYPES = ("text", "integer", "decimal", "date", "note", "time", "datetime", "range",
               "acknowledge", "calculate")
# Metadata: no question is shown; the value is stored with the response (definition "meta").
META_TYPES = ("start", "end", "today", "username", "deviceid")
SUPPORTED_TYPES = (
    "text, integer, decimal, date, time, datetime, range, acknowledge, calculate, note, "
    "select_one LIST, select_multiple LIST, begin_group, end_group, begin_repeat, "
    "end_repeat, "
    "start, end, today, username, deviceid"
)

# Columns, by pyxform's de-aliased name ("bind::relevant" for ("bind", "relevant")).
SURVEY_HANDLED = {
    "type", "name", "label", "hint", "bind::relevant", "bind::constraint",
    "bind::jr:constraintMsg", "bind::required", "bind::readonly", "bind::calculate",
    "bind::jr:requiredMsg", "default", "parameters", "choice_filter", "control::jr:count",
    "trigger",
    # ODK Aggregate's constraint message: used as the constraint message when the row has
    # none (as Collect shows it then), else without effect.
    "bind::jr:noAppErrorString",
}  # fmt: skip
# How a widget looks, not what it stores: an appearance (table-list included: pyxform's
# generated label note and header row are left out, the group keeps its label) and the
# height of a text box (control::rows).
SURVEY_NO_EFFECT = {"control::appearance", "control::rows"}
SURVEY_REFUSED = {
    "bind::entities:saveto", "control::autoplay",
    "media", "media::image", "media::big-image", "media::audio", "media::video",
    "guidance_hint", "instance",
    "instance::odk:tag", "sms_field", "sms_option", "sms_separator", "sms_allow_media",
    "sms_date_format", "sms_datetime_format", "sms_response", "actions", "query",
    "itemset", "list_name", "choices", "extra_data", "parent", "bind", "control",
}  # fmt: skip
CHOICES_HANDLED = {"list_name", "name", "label"}
CHOICES_REFUSED = {
    "media", "media::image", "media::big-image", "media::audio", "media::video",
    "sms_option", "extra_data", "parent",
}  # fmt: skip
SETTINGS_HANDLED = {
    "title", "id_string", "version", "default_language", "allow_choice_duplicates",
    "bladi_title",  # per-language titles our export writes; pyxform ignores the column
    "add_none_option",  # a choice "none" in every select_multiple, as pyxform adds it
}  # fmt: skip
SETTINGS_NO_EFFECT = {
    "name", "style", "instance_name", "clean_text_values", "auto_send", "auto_delete",
    "omit_instanceID", "namespaces", "instance_xmlns",
    # ODK Tables' flat instance: pyxform writes no group elements in the XForm's instance and
    # ANDs each group's relevance into its questions', which is how the app already applies
    # a group's relevance; answers here are keyed by question name, never by path.
    "flat",
}  # fmt: skip
SETTINGS_REFUSED = {
    "public_key", "submission_url", "client_editable", "attribute",
    "sms_keyword", "sms_allow_media", "sms_date_format", "sms_datetime_format",
    "sms_response", "sms_separator", "sms_field", "prefix", "delimiter", "entity_version",
    "setgeopoint_by_triggering_ref", "setvalues_by_triggering_ref", "file_name",
    "bind", "control", "hint", "label", "media", "instance", "choices", "children",
    "extra_data", "parent", "type",
}  # fmt: skip
# Out of scope on purpose (issue 17 lets media stay out): a form using one of these is
# refused, and that is the declared answer, not a gap. Keys as a Refusal's `feature`: the
# column key, or the question type as pyxform spells it. Everything else refused is "not
# supported yet"; tests/test_surveys_corpus.py holds the corpus to this list.
# The key of a column other XForm clients read as an attribute (bind::saveIncomplete,
# control::bodyAttribute, body::x, instance::odk:tag): pyxform copies it into the XForm as is.
CUSTOM_ATTRIBUTE = "custom-attribute"
_ATTRIBUTE_PREFIXES = ("bind", "control", "instance")  # pyxform reads "body::" as "control::"
# Metadata read from the phone (pyxform's jr:preloadParams), by the key it is refused under.
_PHONE_PROPERTIES = ("phonenumber", "simserial", "subscriberid", "uri:phonenumber",
                     "uri:simserial", "uri:subscriberid", "uri:deviceid")
OUT_OF_SCOPE = frozenset({
    "media", "media::image", "media::big-image", "media::audio", "media::video",
    "control::autoplay",
    "image", "audio", "video", "file", "osm", "background-audio", "barcode",
    "geopoint", "geotrace", "geoshape", "start-geopoint", "background-geopoint",
    # Why each group below is out of scope: README, "Out of scope, refused at import, and why".
    # ODK SMS submission: not a channel of this app.
    "sms_keyword", "sms_separator", "sms_allow_media", "sms_date_format",
    "sms_datetime_format", "sms_option", "sms_field", "sms_response",
    # Where ODK clients send and how they encrypt: this app is the server and encrypts
    # identifying text itself; attributes written for other clients' XForms.
    "submission_url", "public_key", "attribute", CUSTOM_ATTRIBUTE,
    # The staff phone's identifiers: not collected (privacy); deviceid is supported.
    "phonenumber", "simserial", "subscriberid", "uri:phonenumber", "uri:simserial",
    "uri:subscriberid", "uri:deviceid",
    # Files the form does not carry (like media): external choices, pulldata(), search().
    "select_one_external", "sheet::external_choices", "pulldata", "search",
})  # fmt: skip
TRANSLATED = {"label", "hint", "bind::jr:constraintMsg", "bind::jr:requiredMsg", "title",
              "bladi_title", "bind::jr:noAppErrorString"}

SHEETS = {
    # sheet: (pyxform's aliases, pyxform's known columns, handled, no effect)
    "survey": (aliases.survey_header,
               {s for s in MultipleChoiceQuestion.get_slot_names() if not s.startswith("_")},
               SURVEY_HANDLED, SURVEY_NO_EFFECT),
    "choices": (aliases.list_header, set(Option.get_slot_names()), CHOICES_HANDLED, set()),
    "settings": (aliases.settings_header,
                 {s for s in Survey.get_slot_names() if not s.startswith("_")},
                 SETTINGS_HANDLED, SETTINGS_NO_EFFECT),
}  # fmt: skip
# Where our flat row keys come from (the rest of the parser reads these keys).
FLAT_NAMES = {
    "bind::relevant": "relevant", "bind::constraint": "constraint",
    "bind::jr:constraintMsg": "constraint_message", "bind::required": "required",
    "bind::readonly": "read_only", "title": "form_title", "id_string": "form_id",
    "bind::calculate": "calculation", "bind::jr:requiredMsg": "required_message",
    "control::jr:count": "repeat_count", "bind::jr:noAppErrorString": "no_app_error",
}  # fmt: skip


class Column:
    """One header of a sheet as pyxform reads it: its de-aliased key, its language if any,
    and why it is refused (None when it is handled, has no effect or is unknown to pyxform)."""

    def __init__(self, sheet: str, header: str, double_colon: bool):
        header_aliases, known, handled, no_effect = SHEETS[sheet]
        self.header = header
        new, tokens = process_header(header, double_colon, header_aliases, known)
        self.known = new != header or tokens[0] in known or tokens[0] in header_aliases or \
            to_key(tokens[0]) in handled | no_effect
        if tokens[0] in ("bind", "control", "media", "instance") and len(tokens) > 1:
            self.key, rest = f"{tokens[0]}::{tokens[1]}", tokens[2:]
        else:  # pyxform gives a known column its own spelling (omit_instanceID)
            self.key = tokens[0] if tokens[0] in known else to_key(tokens[0])
            rest = tokens[1:]
        self.language = "::".join(rest) or None
        self.refusal = None
        if not self.known:
            # "label:English" in a sheet that otherwise uses "::" is not read by pyxform.
            first = to_key(re.split(r":+", header, maxsplit=1)[0])
            if first != to_key(header) and first in handled:
                self.refusal = "language-syntax"
        elif self.key not in handled | no_effect:
            self.refusal = "column"
        elif self.language is not None and self.key not in TRANSLATED:
            self.refusal = "column"

    @property
    def flat(self) -> str | None:
        """The key the parser reads ("label::ar", "relevant", "form_id"), or None to skip."""
        if not self.known or self.refusal:
            return None
        base = FLAT_NAMES.get(self.key, self.key)
        return f"{base}::{language_code(self.language)}" if self.language else base


class Refusal(str):
    """A refusal message (text in the user's language) that also says, machine-readably,
    which feature it refuses: a column key ("media::image"), a question type ("geopoint"),
    or "language-syntax"; compare with OUT_OF_SCOPE."""

    feature: str

    def __new__(cls, text: str, feature: str) -> Refusal:
        message = super().__new__(cls, text)
        message.feature = feature
        return message


def type_feature(kind: str) -> str:
    """The feature a refused type stands for: pyxform's own name for it ("gps" ->
    "geopoint"), or the family of a select or control ("or_other", "begin_repeat")."""
    kind = " ".join(kind.split())
    kind = aliases._type_alias_map.get(kind, kind)
    select = RE_SELECT.match(kind)
    if re.match(r"select[ _]one[ _]external\b", kind):
        return "select_one_external"
    if select:
        if select.group("specify_other"):
            return "or_other"
        command = select.group("select_command")
        return command if command in aliases.select_from_file else "select"
    begin = RE_BEGIN_CONTROL.match(kind) or RE_END_CONTROL.match(kind)
    if begin:
        control = aliases.control.get(begin.group("type"), begin.group("type"))
        return "loop" if control == constants.LOOP or "loop" in kind else f"begin_{control}"
    spec = QUESTION_TYPE_DICT.get(kind) or {}
    bind = (spec.get("bind") or {}).get("type")
    media = (spec.get("control") or {}).get("mediatype") or ""
    preload = (spec.get("bind") or {}).get("jr:preloadParams")
    if preload in _PHONE_PROPERTIES:  # "get sim id" -> "simserial"
        return preload
    if kind in ("start-geopoint", "background-geopoint", "background-audio"):
        return kind
    if bind in ("geopoint", "geotrace", "geoshape", "barcode"):
        return bind  # "gps", "location", "q geopoint"…
    if bind == "binary" and media:  # "photo", "add image prompt"… -> image; application/*
        family = media.split("/")[0]
        return "file" if family == "application" else family
    return kind


def to_key(text: str) -> str:
    """pyxform's snake_case of a header's first part."""
    return "_".join(text.split()).lower()


def language_code(tag: str | None) -> str | None:
    """"Arabic (ar)" -> "ar"; "Français" -> "fr"; an unknown language -> its lower-cased tag."""
    if not tag:
        return None
    match = _CODE.search(tag)
    code = (match.group(1) if match else tag).strip().lower()
    return LANGUAGE_NAMES.get(code, code)


def clean(value: str, sheet: str, strip_whitespace: bool) -> str:
    """A cell as pyxform reads it: straight quotes, and on the survey sheet (unless the
    settings say clean_text_values: no) runs of whitespace collapsed."""
    return clean_text_values(value, strip_whitespace=strip_whitespace and sheet == "survey")


# Types pyxform defines as another type plus defaults (question_type_dictionary): "trigger"
# is the older name of acknowledge (same control, a trigger); "phone number" is a text
# question whose bind carries a digits-only constraint and a hint. As in pyxform, a row's
# own constraint or hint replaces the default one.
TYPE_DEFAULTS = {
    "trigger": {"type": "acknowledge"},
    "phone number": {
        "type": "text",
        "constraint": QUESTION_TYPE_DICT["phone number"]["bind"]["constraint"],
        "hint": _l("Enter numbers only."),
    },
}


def type_defaults(kind: str) -> dict:
    """The constraint and hint a type brings when the row gives none (TYPE_DEFAULTS)."""
    kind = aliases._type_alias_map.get(" ".join(kind.split()), " ".join(kind.split()))
    return {k: v for k, v in TYPE_DEFAULTS.get(kind, {}).items() if k != "type"}


def question_type(kind: str) -> tuple[str, str | None] | None:
    """A type as written -> (our type, choice list) for the types we handle, else None.

    Our types: the PLAIN_TYPES, the META_TYPES, "select_one", "select_multiple",
    "begin_group", "end_group", "begin_repeat", "end_repeat".
    """
    kind = " ".join(kind.split())
    kind = aliases._type_alias_map.get(kind, kind)  # pyxform's own table
    select = RE_SELECT.match(kind)
    if select:
        command = aliases.select.get(select.group("select_command"))
        if kind.startswith("select one external") \
                or select.group("select_command") in aliases.select_from_file:
            return None
        if command == constants.SELECT_ONE:
            return "select_one", select.group("list_name")
        if command == constants.SELECT_ALL_THAT_APPLY:
            return "select_multiple", select.group("list_name")
        return None
    begin, end = RE_BEGIN_CONTROL.match(kind), RE_END_CONTROL.match(kind)
    if begin and aliases.control.get(begin.group("type")) == constants.GROUP \
            and not begin.group("list_name"):
        return "begin_group", None
    if end and aliases.control.get(end.group("type")) == constants.GROUP:
        return "end_group", None
    if begin and aliases.control.get(begin.group("type")) == constants.REPEAT \
            and not begin.group("list_name"):
        return "begin_repeat", None
    if end and aliases.control.get(end.group("type")) == constants.REPEAT:
        return "end_repeat", None
    if kind in aliases.select or kind not in QUESTION_TYPE_DICT:
        return None
    if kind in TYPE_DEFAULTS:
        return TYPE_DEFAULTS[kind]["type"], None
    for plain in PLAIN_TYPES + META_TYPES:
        if QUESTION_TYPE_DICT[kind] == QUESTION_TYPE_DICT[plain]:
            return plain, None
    return None


def or_other(kind: str) -> bool:
    """Whether a select type ends in "or_other" (or "or specify other"): pyxform then adds a
    choice "other" and a text question "<name>_other" shown when it is selected."""
    kind = " ".join(kind.split())
    select = RE_SELECT.match(aliases._type_alias_map.get(kind, kind))
    return bool(select and select.group("specify_other"))


def where(sheet: str, row: int, column: str) -> str:
    """The place a message points at, in the user's language."""
    return _("%(sheet)s sheet, row %(row)d, column “%(column)s”",
             sheet=sheet, row=row, column=column)


def refusal_message(column: Column, sheet: str, row: int) -> str:
    """Why a column used on `row` is refused, in the user's language."""
    place = where(sheet, row, column.header)
    if column.refusal == "language-syntax":
        return Refusal(_("%(where)s: this column is not read as a translation; write it as "
                         "label::English (en).", where=place), "language-syntax")
    feature = column_feature(column.key)
    if feature in OUT_OF_SCOPE:
        return out_of_scope(place, column.key, feature)
    return Refusal(_("%(where)s: this column (%(feature)s) is not supported yet; remove it "
                     "or leave it empty.", where=place, feature=column.key), column.key)


def column_feature(key: str) -> str:
    """The feature a refused column stands for: its key, or CUSTOM_ATTRIBUTE for an
    attribute pyxform only copies into the XForm for other clients."""
    if key.split("::")[0] in _ATTRIBUTE_PREFIXES and "::" in key \
            and key not in SURVEY_REFUSED | SURVEY_HANDLED | SURVEY_NO_EFFECT \
            or key.startswith("instance::"):
        return CUSTOM_ATTRIBUTE
    return key


def out_of_scope(where_text: str, what: str, feature: str) -> str:
    """The message for something this app declares out of scope (OUT_OF_SCOPE; the README
    says why), at `where_text`, in the user's language."""
    return Refusal(_("%(where)s: “%(what)s” is not supported by this app; remove it.",
                     where=where_text, what=what), feature)


def type_refused(sheet: str, row: int, kind: str) -> str:
    """The message for a question type we do not handle, in the user's language."""
    if type_feature(kind) in OUT_OF_SCOPE:
        return out_of_scope(where(sheet, row, "type"), kind, type_feature(kind))
    return Refusal(_("%(where)s: the type “%(type)s” is not supported (supported: "
                     "%(supported)s).", where=where(sheet, row, "type"), type=kind,
                     supported=SUPPORTED_TYPES), type_feature(kind))


def value_refused(sheet: str, row: int, header: str, value: str,
                  feature: str | None = None) -> str:
    """The message for a value a column cannot take here (e.g. a default computed from
    other answers, a range parameter that is not a number); its feature is `feature`, else
    the column's key."""
    if feature in OUT_OF_SCOPE:
        return out_of_scope(where(sheet, row, header), value, feature)
    return Refusal(_("%(where)s: “%(value)s” is not supported yet in this column.",
                     where=where(sheet, row, header), value=value),
                   feature or to_key(re.split(r":+", header, maxsplit=1)[0]))


def place(sheet: str, row: int | None = None) -> str:
    """The sheet (and row) a message points at, in the user's language; `where` starts
    with the same words, so `place_of` finds the row of either."""
    if row is None:
        return _("%(sheet)s sheet", sheet=sheet)
    return _("%(sheet)s sheet, row %(row)d", sheet=sheet, row=row)


_SHEET_MARK, _ROW_MARK = "\x01", 987654321  # stand-ins, to read `place` back as a pattern


def place_of(message: str) -> str:
    """The place a message starts with, as `place` writes it in the user's language
    ("survey sheet, row 4"), or "" if none; compared to find messages about one row."""
    for template in (place(_SHEET_MARK, _ROW_MARK), place(_SHEET_MARK)):
        pattern = re.escape(template).replace(_SHEET_MARK, r"\w+") \
            .replace(str(_ROW_MARK), r"\d+")
        match = re.match(pattern, message)
        if match:
            return match.group(0)
    return ""


# pyxform's own texts (English) for the problems forms most often have, read back into a
# message in the user's language; anything else is quoted after a translated lead.
_PYXFORM_TEXTS = (
    ("no_survey", re.compile(r"You must have a sheet named 'survey'")),
    ("unknown_type", re.compile(r"Unknown question type '(?P<type>[^']*)'")),
    ("duplicate_name", re.compile(r"the 'name' value '(?P<name>[^']*)' is (?:invalid|problematic)"
                                  r"\. (?:Questions|The name is a case-insensitive)")),
    ("duplicate_choice", re.compile(r"Choice names must be unique")),
    ("unmatched_end", re.compile(r"Unmatched 'end_(?P<type>\w+)'")),
    ("unmatched_begin", re.compile(r"Unmatched 'begin_(?P<type>\w+)'\. No matching "
                                   r"'end_\w+' was found for the name '(?P<name>[^']*)'")),
)


def pyxform_message(sheet: str, row: int | None, text: str) -> str:
    """A problem pyxform (the XLSForm reference converter) found, in the user's language:
    a common one told in our words, any other with pyxform's own text quoted."""
    where = place(sheet, row)
    for kind, pattern in _PYXFORM_TEXTS:
        found = pattern.search(text)
        if found is None:
            continue
        if kind == "no_survey":
            return _("%(where)s: the workbook has no sheet named 'survey'",
                     where=place("survey"))
        if kind == "unknown_type":
            return _("%(where)s: the question type “%(type)s” is not an XLSForm type.",
                     where=where, type=found["type"])
        if kind == "duplicate_name":
            return _("%(where)s: the name “%(name)s” is used twice in the same group (names "
                     "differing only in capitals count as the same).", where=where,
                     name=found["name"])
        if kind == "duplicate_choice":
            return _("%(where)s: a choice name appears twice in the same list.", where=where)
        if kind == "unmatched_end":
            return _("%(where)s: this end_%(type)s has no matching begin_%(type)s.",
                     where=where, type=found["type"])
        return _("%(where)s: the %(type)s “%(name)s” is never closed (no matching "
                 "end_%(type)s).", where=where, type=found["type"], name=found["name"])
    return _("%(where)s: The form could not be read by pyxform (the XLSForm reference "
             "converter): “%(detail)s”", where=where, detail=text)

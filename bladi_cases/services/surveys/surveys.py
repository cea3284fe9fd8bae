"""Surveys: importing and publishing versions, filling page by page with a draft, retry-safe
submission with scores, responses and their export, baseline -> endline change."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ...extensions import db
from ...models import (
    Beneficiary,
    ConsentScope,
    JobStage,
    Organization,
    Role,
    Survey,
    SurveyDraft,
    SurveyResponse,
    SurveyVersion,
    User,
    Wave,
)
from ...models.common import in_language, utcnow
from ...models.surveys import SINGLE_WAVES
from ...policy import may, scoped
from ...transactions import after_render, in_read_request
from .. import ValidationError, inputs, jobs
from ..audit import Action, record
from ..beneficiaries.registry import cipher, decrypt_field
from ..retries import prior_record
from . import logic
from . import xlsform_rules as rules
from .xlsform import XLSFormError, parse_xlsform

# --- Definitions -------------------------------------------------------------------------

def import_version(actor: User | None, data: bytes, org: Organization | None,
                   publish: bool = False, filename: str | None = None) -> SurveyVersion:
    """Parse an XLSForm and store it as the next version of its survey (by form_id and owner).

    A published version never changes: importing again makes a new version. A form without
    a form_id is named after `filename`, as pyxform names it.
    """
    return store_version(actor, parsed_form(data, filename), org, publish)


def parsed_form(data: bytes, filename: str | None = None) -> dict:
    """An XLSForm's definition, its expressions checked; ValidationError on the upload."""
    try:
        definition = parse_xlsform(data, filename)
    except XLSFormError as error:
        raise ValidationError({"upload": error.messages}) from None
    _check_expressions(definition)
    return definition


def store_version(actor: User | None, definition: dict, org: Organization | None,
                  publish: bool = False) -> SurveyVersion:
    """Store a parsed definition as the next version of its survey (see import_version)."""
    org_id = getattr(org, "id", None)
    survey = db.session.scalars(sa.select(Survey).where(
        Survey.code == definition["form_id"],
        Survey.organization_id.is_(None) if org_id is None
        else Survey.organization_id == org_id)).first()
    if survey is None:
        survey = Survey(code=definition["form_id"], organization_id=org_id)
        db.session.add(survey)
    survey.title = definition.get("title") or {"en": definition["form_id"]}
    number = 1 + max((v.number for v in survey.versions), default=0)
    version = SurveyVersion(survey=survey, number=number, definition=definition,
                            created_by_id=getattr(actor, "id", None))
    db.session.add(version)
    db.session.flush()
    record(Action.SURVEY_IMPORTED, actor=actor, obj=survey, organization_id=org_id,
           detail={"version": number})
    if publish:
        publish_version(actor, version)
    return version


def survey_list(user) -> list[sa.Row]:
    """The surveys `user` may see, by code, each with the number of its current version
    (None when none is published): one statement, the versions and their definitions left
    unread (the list read all of them, a statement per survey)."""
    return db.session.execute(scoped(Survey, user).add_columns(
        Survey.current_number.label("current_number")).order_by(Survey.code)).all()


_PULLDATA = re.compile(r"\bpulldata\s*\(")


def _check_expressions(definition: dict) -> None:
    """Evaluate every relevant and constraint once, so an expression we cannot evaluate
    (an unsupported function, a typo) is refused at import, not in the field."""
    problems = []
    # A question of a repeat is read in an entry, as it will be.
    sample = {name: [{}] for name in logic.repeats(definition)}
    slots = {q["name"]: logic.slot(q["repeat"], 1, q["name"]) if q.get("repeat")
             else q["name"] for q in definition["questions"]}
    # A group inside a repeat is read in an entry too, as one of its questions.
    inner = {g: slots[q["name"]] for q in reversed(definition["questions"]) if q.get("repeat")
             for g in logic.group_chain(definition, q.get("group"))
             if g != q["repeat"] and q["repeat"] in logic.group_chain(definition, g)}
    items = [(g, inner.get(g["name"])) for g in definition.get("groups", [])] + \
        [(q, slots[q["name"]]) for q in definition["questions"]]
    for item, current in items:
        for key in ("relevant", "constraint", "calculation", "required_if", "repeat_count",
                    "trigger_calculation"):
            expression = item.get(key)
            if not expression:
                continue
            try:
                logic.evaluate(expression, sample, definition, current=current)
            except logic.LogicError as error:
                column = "calculation" if key == "trigger_calculation" else key
                where = rules.where("survey", item["row"], column) if item.get("row") else \
                    _("%(where)s, group “%(name)s”", where=rules.place("survey"),
                      name=item.get("name"))
                if _PULLDATA.search(expression):  # reads a CSV file the form does not carry
                    problems.append(rules.out_of_scope(where, "pulldata()", "pulldata"))
                    continue
                problems.append(rules.Refusal(
                    _("%(where)s: the %(column)s “%(expression)s” cannot be evaluated: "
                      "“%(detail)s”", where=where, column=column, expression=expression,
                      detail=error.message), f"expression::{key}"))
    filtered = {q["choice_filter"]: q for q in definition["questions"] if q.get("choice_filter")}
    if filtered and not problems:  # the other expressions evaluate: try each filter
        try:
            logic.choices_for(definition, {})
        except logic.LogicError as error:
            row = filtered.get(error.expression, {}).get("row")
            where = rules.where("survey", row, "choice_filter") if row else \
                rules.place("survey")
            problems.append(rules.Refusal(
                _("%(where)s: the %(column)s “%(expression)s” cannot be evaluated: "
                  "“%(detail)s”", where=where, column="choice_filter",
                  expression=error.expression, detail=error.message),
                "expression::choice_filter"))
    if problems:
        raise ValidationError({"upload": problems})


def publish_version(actor: User | None, version: SurveyVersion) -> SurveyVersion:
    """Make a version the one new responses use (earlier responses keep theirs).

    Who may is the policy's rule (a CSO's survey: that CSO's managers only); the view has
    already answered 404/403 through `get_or_404`, so a refusal here is a program error.
    The command line (no actor) publishes any survey."""
    if actor is not None and not may(actor, version, "publish"):
        raise PermissionError("a CSO's survey is published by that CSO's managers only")
    if version.published_at is None:
        version.published_at = utcnow()
        db.session.flush()
        record(Action.SURVEY_PUBLISHED, actor=actor, obj=version.survey,
               organization_id=version.survey.organization_id,
               detail={"version": version.number})
    return version


def owner_for(actor: User) -> Organization | None:
    """Whose survey an import makes: a CSO manager's own CSO; authors' are program-wide."""
    return actor.organization if actor.role == Role.CSO_MANAGER else None


# --- Filling -----------------------------------------------------------------------------

def check_can_fill(version: SurveyVersion, youth: Beneficiary | None, wave: str | None) -> None:
    """Refuse a response that the rules forbid before any answer is typed."""
    if version.published_at is None:
        raise ValidationError.one("", _("This version is not published."))
    if youth is None:
        if wave:
            raise ValidationError.one("wave", _("A wave needs a young person."))
        return
    if wave not in {w.value for w in Wave}:
        raise ValidationError.one("wave", _("Choose a wave from the list."))
    if not youth.allows(ConsentScope.SURVEYS):
        raise ValidationError.one("", _("This young person has no valid consent to surveys."))
    if wave in SINGLE_WAVES and db.session.scalar(sa.select(sa.func.count()).select_from(
            SurveyResponse).where(SurveyResponse.survey_id == version.survey_id,
                                  SurveyResponse.beneficiary_id == youth.id,
                                  SurveyResponse.wave == wave)):
        raise ValidationError.one("wave", _("This young person already has this wave for "
                                            "this survey."))


def draft_for(actor: User, version: SurveyVersion, youth: Beneficiary | None,
              wave: str | None) -> SurveyDraft:
    """The user's draft for this survey, youth and wave (created empty the first time)."""
    who = (SurveyDraft.beneficiary_id == youth.id) if youth else \
        SurveyDraft.beneficiary_id.is_(None)
    when = (SurveyDraft.wave == wave) if wave else SurveyDraft.wave.is_(None)
    draft = db.session.scalars(sa.select(SurveyDraft).where(
        SurveyDraft.user_id == actor.id, SurveyDraft.version_id == version.id, who,
        when)).first()
    if draft is None:
        draft = SurveyDraft(user_id=actor.id, organization_id=actor.organization_id,
                            version_id=version.id, beneficiary_id=getattr(youth, "id", None),
                            wave=wave, response_uuid=str(uuid.uuid4()))
        # A new draft starts with the questions' defaults and the time it began (start).
        started = {m["name"]: _timestamp(utcnow()) for m in version.definition.get("meta", [])
                   if m["type"] == "start"}
        draft.answers_enc = _sealed({**logic.defaults(version.definition), **started})
        if in_read_request():
            # Showing the first page (a GET) writes the draft once the page is built (on
            # SQLite in a short write transaction): written now, in the reading transaction,
            # it would fail on SQLite whenever another writer (a job) committed since the
            # page began.
            after_render(lambda: db.session.add(draft))
        else:
            db.session.add(draft)
            db.session.flush()
    return draft


def save_page(draft: SurveyDraft, definition: dict, names: list[str], posted: dict,
              lang: str) -> dict[str, str]:
    """Keep a page's answers in the draft (always: back/next never lose them) and return
    that page's errors."""
    answers = draft_answers(draft)
    before = dict(answers)
    fixed = {q["name"] for q in definition["questions"]
             if q.get("read_only") or logic.computed(q)}
    inside = {q["name"]: q["repeat"] for q in definition["questions"] if q.get("repeat")}
    for name in names:
        if name in fixed or name in inside:
            continue  # shown, not typed: it keeps its default or is computed
        answers[name] = posted.get(name, [] if _multiple(definition, name) else "")
    for repeat in {inside[n] for n in names if n in inside and inside[n] in posted}:
        # The entries as posted (see `repeat_values`), each over what the draft had (so
        # read-only answers stay).
        old = logic.entries(answers, repeat)
        answers[repeat] = [
            {**(old[i] if i < len(old) else logic.new_entry(definition, repeat)),
             **{k: v for k, v in entry.items() if k not in fixed}}
            for i, entry in enumerate(posted.get(repeat) or [])]
    logic.fire_triggers(definition, before, answers)
    draft.answers_enc = _sealed(answers)
    db.session.flush()
    return logic.validate(definition, answers, names, lang)


def change_entries(draft: SurveyDraft, definition: dict, repeat: str, add: bool) -> None:
    """Add an entry to a repeat of the draft (up to logic.MAX_ENTRIES), or remove its last
    one. A repeat with a repeat_count has the entries its count says: nothing changes."""
    group = logic.repeats(definition).get(repeat)
    if group is None or group.get("repeat_count"):
        return
    answers = draft_answers(draft)
    found = logic.entries(answers, repeat)
    if add and len(found) < logic.MAX_ENTRIES:
        found.append(logic.new_entry(definition, repeat))
    elif not add and found:
        found.pop()
    answers[repeat] = found
    draft.answers_enc = _sealed(answers)
    db.session.flush()


def _sealed(answers: dict) -> bytes | None:
    """Answers as one encrypted JSON object (None when there are none)."""
    return cipher().encrypt(json.dumps(answers, ensure_ascii=False, sort_keys=True)) \
        if answers else None


def _unsealed(row, attribute: str) -> dict:
    raw = decrypt_field(row, attribute)
    return json.loads(raw) if raw else {}


def draft_answers(draft: SurveyDraft) -> dict:
    """The answers typed so far in a draft, decrypted (the user's own draft)."""
    return _unsealed(draft, "answers_enc")


def response_answers(response: SurveyResponse) -> dict:
    """Every answer of a response, the text answers decrypted (callers loaded the response
    through the policy: the collecting CSO's staff only). A repeat's entries are joined
    entry by entry: their text answers are stored apart, encrypted, like the others."""
    answers = dict(response.answers)
    for name, value in _unsealed(response, "text_answers_enc").items():
        plain = answers.get(name)
        if isinstance(value, list) and isinstance(plain, list):
            answers[name] = [{**(plain[i] if i < len(plain) else {}), **entry}
                             for i, entry in enumerate(value)] + plain[len(value):]
        else:
            answers[name] = value
    return answers


def _text_names(definition: dict) -> set[str]:
    """The questions answered in free text, which can name the youth: stored encrypted
    (a calculation may join such texts)."""
    return {q["name"] for q in definition["questions"] if q["type"] in ("text", "calculate")}


def _split_texts(definition: dict, cleaned: dict) -> tuple[dict, dict]:
    """(plain, written): the cleaned answers without and with the free-text ones. A
    repeat's entries are split the same way, entry by entry (an entry index is kept in
    both, so they join again in `response_answers`)."""
    texts, repeats = _text_names(definition), logic.repeats(definition)
    plain, written = {}, {}
    for name, value in cleaned.items():
        if name in repeats:
            plain[name] = [{k: v for k, v in e.items() if k not in texts} for e in value]
            sealed = [{k: v for k, v in e.items() if k in texts} for e in value]
            if any(sealed):
                written[name] = sealed
        elif name in texts:
            written[name] = value
        else:
            plain[name] = value
    return plain, written


def _timestamp(moment) -> str:
    return moment.replace(microsecond=0, tzinfo=None).isoformat()


def _meta_values(definition: dict, actor: User, answers: dict, day: date,
                 device: str | None) -> dict:
    """The metadata stored with a response: start from the draft (or the client), the
    others set by the server when the response is stored."""
    now = _timestamp(utcnow())
    values = {}
    for item in definition.get("meta", []):
        kind, given = item["type"], answers.get(item["name"])
        if kind == "start":
            values[item["name"]] = given if isinstance(given, str) and given else now
        elif kind == "end":
            values[item["name"]] = now
        elif kind == "today":
            values[item["name"]] = day.isoformat()
        elif kind == "username":
            values[item["name"]] = actor.email
        elif kind == "deviceid":
            values[item["name"]] = device or "web"
    return values


def works_offline(definition: dict) -> bool:
    """Whether the offline field app can fill this definition. An allow-list of what
    static/js/field.js renders and evaluates: a key or type it does not know (a calculation,
    a repeat, metadata... see xlsform.py's docstring, or any key added later) makes the
    survey online-only, where the server computes and checks everything."""
    return (set(definition) <= OFFLINE_KEYS
            and all(set(g) <= OFFLINE_GROUP_KEYS for g in definition.get("groups", []))
            and all(q["type"] in OFFLINE_TYPES and set(q) <= OFFLINE_QUESTION_KEYS
                    and "${" not in json.dumps([q.get("label"), q.get("hint")])
                    for q in definition["questions"]))


OFFLINE_TYPES = ("text", "integer", "decimal", "date", "note", "select_one", "select_multiple",
                 "likert", "yes_no")
OFFLINE_KEYS = frozenset({"title", "form_id", "version", "groups", "questions", "scales",
                          "default_language"})
OFFLINE_GROUP_KEYS = frozenset({"name", "label", "relevant"})
OFFLINE_QUESTION_KEYS = frozenset({"name", "type", "label", "hint", "required", "relevant",
                                   "constraint", "constraint_message", "choices", "group",
                                   "row"})


def _multiple(definition: dict, name: str) -> bool:
    return any(q["name"] == name and q["type"] == "select_multiple"
               for q in definition["questions"])


def submit(actor: User, version: SurveyVersion, youth: Beneficiary | None, wave: str | None,
           answers: dict, response_uuid, lang: str = "en",
           today: date | None = None, device: str | None = None
           ) -> tuple[SurveyResponse, bool]:
    """Store a response once. Returns (response, created); raises ValidationError with
    answer errors, or RetryConflict when the UUID was used for other answers. The
    definition's metadata (start, end...) is stored with it, `device` as its deviceid."""
    definition = version.definition
    key = uuid.UUID(str(response_uuid))
    meta = {m["name"] for m in definition.get("meta", [])}
    # The metadata differ between two sendings of the same response: not in the digest.
    cleaned = {k: v for k, v in logic.clean(definition, answers).items() if k not in meta}
    plain, written = _split_texts(definition, cleaned)
    # The digest covers the plain answers only: a hash of the text answers would let anyone
    # holding the database confirm a guessed name. Those are compared decrypted.
    digest = hashlib.sha256(json.dumps([version.id, getattr(youth, "id", None), wave, plain],
                                       sort_keys=True).encode()).hexdigest()
    existing = prior_record(SurveyResponse, key, actor, same=lambda stored: (
        stored.content_hash == digest and _unsealed(stored, "text_answers_enc") == written))
    if existing is not None:
        return existing, False
    errors = logic.validate(definition, answers, None, lang)
    if errors:
        raise ValidationError({name: [message] for name, message in errors.items()})
    check_can_fill(version, youth, wave)
    day = today or date.today()
    response = SurveyResponse(
        uuid=key, organization_id=actor.organization_id, version_id=version.id,
        survey_id=version.survey_id, beneficiary_id=getattr(youth, "id", None), wave=wave,
        answers={**plain, **_meta_values(definition, actor, answers, day, device)},
        text_answers_enc=_sealed(written),
        scores=logic.scores(definition, cleaned), content_hash=digest,
        submitted_by_id=actor.id, submitted_on=day)
    db.session.add(response)
    db.session.execute(sa.delete(SurveyDraft).where(SurveyDraft.user_id == actor.id,
                                                    SurveyDraft.response_uuid == str(key)))
    db.session.flush()
    record(Action.SURVEY_SUBMITTED, actor=actor, obj=response,
           detail={"survey": version.survey.code, "wave": wave})
    return response, True


# --- Reading -----------------------------------------------------------------------------

@dataclass
class ScoreChange:
    """A scale's baseline and endline scores for one youth."""

    survey: Survey
    scale: dict
    baseline: float | None
    endline: float | None

    @property
    def change(self) -> float | None:
        """Endline minus baseline, when both exist."""
        if self.baseline is None or self.endline is None:
            return None
        return round(self.endline - self.baseline, 2)


def score_changes(responses: list[SurveyResponse]) -> list[ScoreChange]:
    """Baseline -> endline change of each scale, from one youth's responses."""
    changes = []
    by_survey: dict[int, dict[str, SurveyResponse]] = {}
    for response in responses:
        if response.wave in SINGLE_WAVES:
            by_survey.setdefault(response.survey_id, {})[response.wave] = response
    for waves in by_survey.values():
        any_response = next(iter(waves.values()))
        for scale in any_response.version.definition.get("scales", []):
            base, end = waves.get(Wave.BASELINE), waves.get(Wave.ENDLINE)
            changes.append(ScoreChange(any_response.survey, scale,
                                       base.scores.get(scale["name"]) if base else None,
                                       end.scores.get(scale["name"]) if end else None))
    return changes


def _label(item: dict, lang: str, fallback: str | None = None) -> str:
    """An item's label in `lang`, else in the form's default language `fallback`."""
    return in_language(item.get("label"), lang, item.get("name", ""), fallback)


def _export_definition(survey: Survey, responses: list[SurveyResponse]) -> dict:
    return survey.current.definition if survey.current else responses[0].version.definition


def _cell(question: dict, value, lang: str, fallback: str | None = None):
    """An answer as an export cell: choice labels in `lang`, a select_multiple joined."""
    choices = {c["name"]: _label(c, lang, fallback) for c in question.get("choices", [])}
    if isinstance(value, list):
        value = ", ".join(choices.get(v, v) for v in value)
    elif value is not None and choices:
        value = choices.get(str(value), value)
    return "" if value is None else value


def export_rows(survey: Survey, responses: list[SurveyResponse], codes: dict[int, str],
                lang: str) -> list[list]:
    """A table of responses: one column per question (labels in `lang`), then the scores;
    written as CSV or XLSX by services/files.py (which neutralises formulas). A survey
    with repeats gets a first column, the response's id, which `export_repeat_rows`
    repeats on each entry (their answers are not in this table)."""
    definition = _export_definition(survey, responses)
    fallback = definition.get("default_language")
    questions = [q for q in definition["questions"] if q["type"] != "note"
                 and not q.get("repeat")] + \
        [{"name": m["name"]} for m in definition.get("meta", [])]
    scales = definition.get("scales", [])
    linked = bool(logic.repeats(definition))
    header = [_("Code"), _("Wave"), _("Date"), _("Version")] + \
        [_label(q, lang, fallback) for q in questions] + [_label(s, lang, fallback) for s in scales]
    rows = [[_("Response"), *header] if linked else header]
    for response in responses:
        row = [codes.get(response.beneficiary_id, ""), response.wave or "",
               response.submitted_on.isoformat(), response.version.number]
        answers = response_answers(response)
        row += [_cell(q, answers.get(q["name"]), lang, fallback) for q in questions]
        row += [response.scores.get(s["name"]) for s in scales]
        rows.append([str(response.uuid), *row] if linked else row)
    return rows


def export_repeat_rows(survey: Survey, responses: list[SurveyResponse],
                       codes: dict[int, str], lang: str) -> list[tuple[str, list[list]]]:
    """Each repeat's entries in long format, as (repeat name, table): one row per entry
    with the response's id (as in `export_rows`), code, wave, the entry's number (from
    1), then one column per question of the repeat. XLSX puts each on its own sheet; CSV
    gives one file per repeat."""
    definition = _export_definition(survey, responses)
    fallback = definition.get("default_language")
    tables = []
    for name in logic.repeats(definition):
        questions = [q for q in definition["questions"]
                     if q.get("repeat") == name and q["type"] != "note"]
        rows = [[_("Response"), _("Code"), _("Wave"), _("Entry"),
                 *[_label(q, lang, fallback) for q in questions]]]
        for response in responses:
            answers = response_answers(response)
            for number, entry in enumerate(logic.entries(answers, name), start=1):
                rows.append([str(response.uuid), codes.get(response.beneficiary_id, ""),
                             response.wave or "", number,
                             *[_cell(q, entry.get(q["name"]), lang, fallback) for q in questions]])
        tables.append((name, rows))
    return tables


# --- An XLSForm imported by a background job -----------------------------------------------

def start_import(actor: User, data: bytes, filename: str | None, publish: bool):
    """Queue the import of an uploaded XLSForm (a file over the size limit is refused at
    once, with the form's message: it is never kept)."""
    if len(data) > inputs.MAX_UPLOAD_BYTES:
        parsed_form(data, filename)
    return jobs.start("surveys.import", actor, {"publish": bool(publish)}, data=data,
                      data_name=filename)


@jobs.job_kind("surveys.import", _l("Import of a survey (XLSForm)"), back="surveys.show",
               back_label=_l("Open the survey"), again="surveys.import_survey",
               again_label=_l("Upload a corrected file"))
def import_job(job, progress) -> jobs.Outcome:
    """Parse and check the form (reading only), then store it as a new version."""
    from ...models import User

    progress(JobStage.CHECKED, 0, 1)
    try:
        definition = parsed_form(jobs.input_of(job), job.input_name)
    except ValidationError as refused:
        raise jobs.JobFailed([str(m) for msgs in refused.errors.values() for m in msgs]) \
            from refused
    progress(JobStage.CHECKED, 1, 1)

    def write(outcome: jobs.Outcome) -> None:
        actor = db.session.get(User, job.user_id)
        version = store_version(actor, definition, owner_for(actor), job.params["publish"])
        outcome.message = _("Version %(n)d imported.", n=version.number)
        outcome.data = {"back_args": {"survey_id": str(version.survey.uuid)}}

    return jobs.Outcome(write=write)


# --- The responses as a file, made by a background job -------------------------------------

def codes_of(responses: list[SurveyResponse], user: User) -> dict[int, str]:
    """The codes of the youth these responses are about, among those `user` may see."""
    from ...models import Beneficiary
    from ...policy import scoped

    ids = {r.beneficiary_id for r in responses if r.beneficiary_id}
    if not ids:
        return {}
    return dict(db.session.execute(scoped(Beneficiary, user).with_only_columns(
        Beneficiary.id, Beneficiary.code).where(Beneficiary.id.in_(ids))).all())


def repeat_names(survey: Survey) -> set[str]:
    """The repeats of every version of a survey (each can be exported on its own)."""
    return {name for version in survey.versions for name in logic.repeats(version.definition)}


@jobs.job_kind("surveys.responses", _l("Export of survey responses"), back="surveys.index",
               back_label=_l("Surveys"))
def responses_job(job, progress) -> jobs.Outcome:
    """A survey's responses that the person who asked may see (policy.scoped), as CSV or
    XLSX with labels in their language; one repeat's entries alone with `repeat`."""
    from ...models import User
    from ...policy import scoped
    from .. import files

    actor = db.session.get(User, job.user_id)
    params = job.params
    survey = db.session.scalars(scoped(Survey, actor).where(
        Survey.id == params["survey_id"])).first()
    if survey is None:
        raise jobs.JobFailed([_("This survey is no longer available to you.")])
    responses = db.session.scalars(scoped(SurveyResponse, actor).where(
        SurveyResponse.survey_id == survey.id).order_by(SurveyResponse.id)).all()
    progress(JobStage.ROWS, 0, len(responses))
    codes = codes_of(responses, actor)
    lang, fmt, wanted = params["lang"], params["fmt"], params.get("repeat")
    rows = export_rows(survey, responses, codes, lang)
    repeats = export_repeat_rows(survey, responses, codes, lang)
    progress(JobStage.ROWS, len(responses), len(responses))
    if wanted is not None and wanted not in dict(repeats):
        raise jobs.JobFailed([_("This survey has no repeat called %(name)s.", name=wanted)])
    if fmt == "csv":
        if wanted is not None:
            return jobs.Outcome(result=files.csv_bytes(dict(repeats)[wanted]),
                                result_name=f"{survey.code}-{wanted}.csv",
                                result_mimetype=files.CSV_MIMETYPE)
        return jobs.Outcome(result=files.csv_bytes(rows),
                            result_name=f"{survey.code}-responses.csv",
                            result_mimetype=files.CSV_MIMETYPE)
    sheets = [files.Sheet(survey.code, rows, rtl=lang == "ar")] + \
        [files.Sheet(repeat, table, rtl=lang == "ar") for repeat, table in repeats]
    return jobs.Outcome(result=files.xlsx_bytes(sheets),
                        result_name=f"{survey.code}-responses.xlsx",
                        result_mimetype=files.XLSX_MIMETYPE)

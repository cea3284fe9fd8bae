"""Filling a survey on a phone: one page per group, skip logic evaluated on the server for
every page (and, with JavaScript, as answers change), a draft, a review, one submission."""

from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...extensions import db
from ...i18n import ui_language
from ...models import Beneficiary, Survey
from ...policy import Perm, get_or_404, requires
from ...services.retries import RetryConflict
from ...services.surveys import logic
from ...services.surveys import surveys as service
from .. import attempt, flash_refusal
from . import bp


def _context(survey_id):
    """The survey's current version, the youth and wave from the query string, the draft."""
    survey = get_or_404(Survey, survey_id, current_user)
    version = survey.current
    if version is None:
        abort(404)
    youth_id = request.args.get("beneficiary")
    youth = get_or_404(Beneficiary, youth_id, current_user) if youth_id else None
    wave = request.args.get("wave") or None
    return survey, version, youth, wave


def _pages(definition: dict, answers: dict) -> list[dict]:
    """The pages that have at least one visible question, or a shown repeat (which may
    have no entry yet)."""
    shown = logic.visible(definition, answers)
    inside = {q["name"]: q["repeat"] for q in definition["questions"] if q.get("repeat")}
    return [p for p in logic.pages(definition)
            if any(shown.get(inside.get(n, n)) for n in p["questions"])]


def _values(definition: dict, names: list[str]) -> dict:
    """The posted answers of `names`; a repeat's as a list of entries, as many as the page
    had (its hidden field "<repeat>/count"), each field named by its slot key."""
    multiple = {q["name"] for q in definition["questions"] if q["type"] == "select_multiple"}
    inside = {q["name"]: q["repeat"] for q in definition["questions"] if q.get("repeat")}

    def read(field: str, name: str):
        return request.form.getlist(field) if name in multiple else \
            request.form.get(field, "").strip()

    values = {n: read(n, n) for n in names if n not in inside}
    for repeat in {inside[n] for n in names if n in inside}:
        if f"{repeat}/count" not in request.form:
            continue
        try:
            count = max(0, min(int(request.form[f"{repeat}/count"]), logic.MAX_ENTRIES))
        except ValueError:
            count = 0
        values[repeat] = [{n: read(logic.slot(repeat, i, n), n) for n in names
                           if inside.get(n) == repeat} for i in range(1, count + 1)]
    return values


def _keys(definition: dict, names: list[str], values: dict) -> list[str]:
    """The keys of a page's questions: a question of a repeat has one per entry of the
    (effective) answers `values`, and the repeat its own."""
    keys: list[str] = []
    for question in definition["questions"]:
        if question["name"] not in names:
            continue
        repeat = question.get("repeat")
        if not repeat:
            keys.append(question["name"])
            continue
        if repeat not in keys:
            keys.append(repeat)
        keys += [logic.slot(repeat, i, question["name"])
                 for i in range(1, len(logic.entries(values, repeat)) + 1)]
    return keys


@bp.route("/<uuid:survey_id>/fill", methods=["GET", "POST"])
@requires(Perm.SURVEYS_FILL)
def fill(survey_id):
    """One page of the survey; `nav` says where to go (next, back, review, submit)."""
    survey, version, youth, wave = _context(survey_id)
    _checked, failure = attempt(lambda: service.check_can_fill(version, youth, wave))
    if failure is not None:
        flash_refusal(failure)
        return redirect(url_for("beneficiaries.show", beneficiary_id=youth.uuid) if youth
                        else url_for(".show", survey_id=survey.uuid))
    definition, lang = version.definition, ui_language()
    draft = service.draft_for(current_user, version, youth, wave)
    answers = service.draft_answers(draft)
    pages = _pages(definition, answers)
    try:
        index = max(0, min(int(request.args.get("page", 0)), len(pages)))
    except ValueError:
        index = 0
    errors, notice = {}, None
    if request.method == "POST":
        nav = request.form.get("nav", "next")
        names = pages[index]["questions"] if index < len(pages) else []
        offered = logic.choices_for(definition, answers)  # as the page was shown
        errors = service.save_page(draft, definition, names, _values(definition, names), lang)
        answers = service.draft_answers(draft)
        pages = _pages(definition, answers)
        if nav == "back":
            return _go(survey, youth, wave, max(0, index - 1))
        if nav.startswith(("add:", "remove:")):
            # A repeat without repeat_count: the worker adds or removes its last entry.
            action, _sep, repeat = nav.partition(":")
            service.change_entries(draft, definition, repeat, action == "add")
            return _go(survey, youth, wave, index)
        if nav == "submit":
            return _submit(survey, version, youth, wave, draft, lang)
        # Without JavaScript, an answer may reveal a question of this same page: show the
        # page again with it rather than skipping it, and do not fail a question the worker
        # has not seen yet (it is checked when the page comes back, and again at submission).
        displayed = set(request.form.get("shown", "").split())
        now_shown = logic.visible(definition, answers)
        notes = {q["name"] for q in definition["questions"] if q["type"] == "note"}
        keys = _keys(definition, names, logic.effective(definition, answers))
        revealed = [k for k in keys if now_shown.get(k) and k not in displayed
                    and k.rsplit("/", 1)[-1] not in notes]
        # A cascading select whose choices an answer of this page changed: shown again too.
        now_offered = logic.choices_for(definition, answers)
        revealed += [n for n in names if now_shown.get(n) and n in displayed
                     and now_offered.get(n) != offered.get(n)]
        if "shown" in request.form:
            errors = {n: e for n, e in errors.items() if n in displayed and n not in revealed}
        if not errors and not revealed:
            return _go(survey, youth, wave, index + 1)
        if revealed:
            notice = _("Your answers opened new questions on this page: answer them, "
                       "then press Next.")
    if index >= len(pages):
        return _review(survey, version, youth, wave, draft, pages, lang)
    shown = logic.visible(definition, answers)
    offered = logic.choices_for(definition, answers)
    questions = [{**q, "choices": offered[q["name"]]} if q["name"] in offered else q
                 for q in definition["questions"] if q["name"] in pages[index]["questions"]]
    values = logic.effective(definition, answers)
    # Computed answers show their value; typed ones what was typed, even if hidden now.
    answers = {**answers, **{q["name"]: values.get(q["name"]) for q in questions
                             if q.get("calculation")}}
    keys = _keys(definition, pages[index]["questions"], values)
    return render_template("surveys/fill.html", survey=survey, version=version, youth=youth,
                           wave=wave, page=pages[index], index=index,
                           count=len(pages), questions=questions, shown=shown,
                           steps=_layout(definition, questions, shown),
                           entries=_entries(definition, questions, answers, values, errors,
                                            shown),
                           max_entries=logic.MAX_ENTRIES,
                           displayed=[k for k in keys if shown.get(k)],
                           answers=answers, values=values, interpolate=logic.interpolate,
                           text=logic.texts_in(definition, lang),
                           errors=errors, notice=notice, lang=lang), \
        (422 if errors else 200)


def _entries(definition: dict, questions: list[dict], answers: dict, values: dict,
             errors: dict, shown: dict) -> dict[str, list[dict]]:
    """The entries of each repeat on the page, as the fill page writes them: for each, its
    number, the answers its labels read (`values`) and its fields (the question under its
    slot key, the answer typed, or computed, its error and whether it is hidden)."""
    result: dict[str, list[dict]] = {}
    for repeat in dict.fromkeys(q["repeat"] for q in questions if q.get("repeat")):
        typed, counted = logic.entries(answers, repeat), logic.entries(values, repeat)
        inner = [q for q in questions if q.get("repeat") == repeat]
        result[repeat] = []
        for number, entry in enumerate(counted, start=1):
            own = typed[number - 1] if number <= len(typed) else {}
            fields = []
            for question in inner:
                key = logic.slot(repeat, number, question["name"])
                value = entry.get(question["name"]) if question.get("calculation") \
                    else own.get(question["name"], entry.get(question["name"]))
                fields.append({"q": {**question, "name": key}, "value": value,
                               "error": errors.get(key), "hidden": not shown.get(key)})
            result[repeat].append({"number": number, "values": {**values, **entry},
                                   "fields": fields,
                                   "steps": _entry_steps(definition, repeat, fields)})
    return result


def _entry_steps(definition: dict, repeat: str, fields: list[dict]) -> list[tuple]:
    """An entry's fields as steps to write, like `_layout`: ("open", group, hidden),
    ("field", field), ("close",); the groups inside the repeat become fieldsets, hidden
    when none of their questions shows in this entry."""
    groups = {g["name"]: g for g in definition.get("groups", [])}
    chains = []
    for field in fields:
        chain = logic.group_chain(definition, field["q"].get("group"))
        chains.append(chain[chain.index(repeat) + 1:] if repeat in chain else [])
    steps: list[tuple] = []
    open_now: list[str] = []
    for field, chain in zip(fields, chains, strict=True):
        common = 0
        while common < min(len(chain), len(open_now)) and chain[common] == open_now[common]:
            common += 1
        steps += [("close",)] * (len(open_now) - common)
        for group in chain[common:]:
            hidden = not any(not f["hidden"] for f, c in zip(fields, chains, strict=True)
                             if group in c)
            steps.append(("open", groups.get(group, {"name": group}), hidden))
        open_now = chain
        steps.append(("field", field))
    steps += [("close",)] * len(open_now)
    return steps


def _layout(definition: dict, questions: list[dict], shown: dict) -> list[tuple]:
    """A page as steps to write: ("open", group, hidden), ("question", q), ("close",) and
    ("repeat", repeat, hidden) where a repeat's entries go; nested groups become fieldsets
    (the page is their top-level group). A fieldset is hidden when none of its questions
    shows."""
    groups = {g["name"]: g for g in definition.get("groups", [])}
    chains = {q["name"]: logic.group_chain(definition, q.get("group"))[1:] for q in questions}
    for question in questions:
        chain = chains[question["name"]]
        if question.get("repeat"):
            # The repeat and the groups inside it are written by "repeat", in each entry
            # (a top-level repeat is the page, so not in the chain: its groups are).
            inner = logic.group_chain(definition, question.get("group"))
            inner = inner[inner.index(question["repeat"]):] \
                if question["repeat"] in inner else []
            chain[:] = [g for g in chain if g not in inner]
    steps: list[tuple] = []
    open_now: list[str] = []
    written: set[str] = set()
    for question in questions:
        chain = chains[question["name"]]
        common = 0
        while common < min(len(chain), len(open_now)) and chain[common] == open_now[common]:
            common += 1
        steps += [("close",)] * (len(open_now) - common)
        for group in chain[common:]:
            hidden = not any(shown.get(n) for n, c in chains.items() if group in c)
            steps.append(("open", groups.get(group, {"name": group}), hidden))
        open_now = chain
        repeat = question.get("repeat")
        if repeat and repeat not in written:
            written.add(repeat)
            steps.append(("repeat", groups.get(repeat, {"name": repeat}),
                          not shown.get(repeat)))
        elif not repeat:
            steps.append(("question", question))
    steps += [("close",)] * len(open_now)
    return steps


def _go(survey, youth, wave, page: int):
    args = {"page": page}
    if youth:
        args.update(beneficiary=youth.uuid, wave=wave)
    return redirect(url_for(".fill", survey_id=survey.uuid, **args))


def _review(survey, version, youth, wave, draft, pages, lang, errors=None, status=200):
    definition, answers = version.definition, service.draft_answers(draft)
    shown = logic.visible(definition, answers)
    questions = [q for q in definition["questions"] if shown.get(q["name"])
                 and q["type"] != "note"]
    values = logic.effective(definition, answers)  # calculations as they will be stored
    return render_template("surveys/review.html", survey=survey, youth=youth, wave=wave,
                           questions=questions, answers=values, values=values,
                           repeats=_review_repeats(definition, values, shown, errors or {},
                                                   lang),
                           interpolate=logic.interpolate, text=logic.texts_in(definition, lang),
                           errors=errors or {}, lang=lang, count=len(pages),
                           uuid=draft.response_uuid), status


def _review_repeats(definition: dict, values: dict, shown: dict, errors: dict,
                    lang: str) -> list[dict]:
    """The shown repeats as the review lists them: each entry's shown answers as
    (label, answer as text, error), choice labels in `lang`."""
    result = []
    for name, group in logic.repeats(definition).items():
        if not shown.get(name):
            continue
        text = logic.texts_in(definition, lang)
        label = text(group.get("label"), name)
        inner = [q for q in definition["questions"]
                 if q.get("repeat") == name and q["type"] != "note"]
        entries = []
        for number, entry in enumerate(logic.entries(values, name), start=1):
            rows = []
            for question in inner:
                key = logic.slot(name, number, question["name"])
                if not shown.get(key):
                    continue
                choices = {str(c["name"]): text(c.get("label"), str(c["name"]))
                           for c in question.get("choices") or []}
                value = entry.get(question["name"])
                parts = value if isinstance(value, list) else [value] if value else []
                rows.append((logic.interpolate(
                    text(question.get("label"), question["name"]),
                    {**values, **entry}),
                    ", ".join(choices.get(str(v), str(v)) for v in parts), errors.get(key)))
            entries.append({"label": f"{label} {number}", "rows": rows})
        result.append({"label": label, "entries": entries, "error": errors.get(name)})
    return result


def _submit(survey, version, youth, wave, draft, lang):
    try:
        stored, failure = attempt(lambda: service.submit(
            current_user, version, youth, wave, service.draft_answers(draft),
            request.form.get("response_uuid") or draft.response_uuid, lang))
    except RetryConflict:
        db.session.rollback()
        flash(_("These answers were already sent with other content: they were not saved. "
                "Check the record."), "error")
        return _review(survey, version, youth, wave, draft,
                       _pages(version.definition, service.draft_answers(draft)), lang, {},
                       409)
    if failure is not None:
        errors = {k: " ".join(str(m) for m in v) for k, v in failure.errors.items()}
        return _review(survey, version, youth, wave, draft,
                       _pages(version.definition, service.draft_answers(draft)), lang,
                       errors, 422)
    _response, created = stored
    flash(_("Survey saved.") if created else _("This survey was already saved."), "success")
    if youth:
        return redirect(url_for("beneficiaries.show", beneficiary_id=youth.uuid))
    return redirect(url_for(".show", survey_id=survey.uuid))


@bp.post("/<uuid:survey_id>/visibility")
@requires(Perm.SURVEYS_FILL)
def visibility(survey_id):
    """Which questions show, for the answers on screen (JavaScript asks as they change)."""
    survey, version, youth, wave = _context(survey_id)
    draft = service.draft_for(current_user, version, youth, wave)
    definition = version.definition
    names = [q["name"] for q in definition["questions"]]
    on_screen = {n: v for n, v in _values(definition, names).items()
                 if n in request.form or n + "[]" in request.form
                 or f"{n}/count" in request.form}
    return jsonify(logic.visible(definition, {**service.draft_answers(draft), **on_screen}))

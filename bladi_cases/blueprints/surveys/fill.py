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
    """The pages that have at least one visible question."""
    shown = logic.visible(definition, answers)
    return [p for p in logic.pages(definition) if any(shown.get(n) for n in p["questions"])]


def _values(definition: dict, names: list[str]) -> dict:
    multiple = {q["name"] for q in definition["questions"] if q["type"] == "select_multiple"}
    return {n: request.form.getlist(n) if n in multiple else request.form.get(n, "").strip()
            for n in names}


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
        if nav == "submit":
            return _submit(survey, version, youth, wave, draft, lang)
        # Without JavaScript, an answer may reveal a question of this same page: show the
        # page again with it rather than skipping it, and do not fail a question the worker
        # has not seen yet (it is checked when the page comes back, and again at submission).
        displayed = set(request.form.get("shown", "").split())
        now_shown = logic.visible(definition, answers)
        notes = {q["name"] for q in definition["questions"] if q["type"] == "note"}
        revealed = [n for n in names
                    if now_shown.get(n) and n not in displayed and n not in notes]
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
    return render_template("surveys/fill.html", survey=survey, version=version, youth=youth,
                           wave=wave, page=pages[index], index=index,
                           count=len(pages), questions=questions, shown=shown,
                           displayed=[q["name"] for q in questions if shown.get(q["name"])],
                           answers=answers, values=values, interpolate=logic.interpolate,
                           errors=errors, notice=notice, lang=lang), \
        (422 if errors else 200)


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
                           interpolate=logic.interpolate,
                           errors=errors or {}, lang=lang, count=len(pages),
                           uuid=draft.response_uuid), status


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
                 if n in request.form or n + "[]" in request.form}
    return jsonify(logic.visible(definition, {**service.draft_answers(draft), **on_screen}))

"""Views of the cases blueprint: the case file and the small forms that change it."""

from __future__ import annotations

from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...extensions import db
from ...i18n import ui_language
from ...models import (
    Beneficiary,
    Case,
    CaseGoal,
    CaseNote,
    Organization,
    OrgKind,
    Outcome,
    Referral,
    Role,
    ServiceProvider,
    User,
)
from ...policy import Perm, get_or_404, requires, scoped
from ...services.audit import Action, record
from ...services.beneficiaries.registry import reveal
from ...services.cases import cases as service
from .. import form_action, form_page, run_action, safe_next
from . import bp
from .forms import (
    GoalForm,
    GoalStatusForm,
    NoteEditForm,
    NoteForm,
    OpenCaseForm,
    OutcomeForm,
    ReferralForm,
    ReferralUpdateForm,
    StatusForm,
    TransferForm,
)


def _staff():
    return db.session.scalars(scoped(User, current_user).where(
        User.active.is_(True), User.role.in_([Role.FIELD_WORKER, Role.CSO_MANAGER]))
        .order_by(User.display_name)).all()


def _providers():
    return db.session.scalars(scoped(ServiceProvider, current_user).where(
        ServiceProvider.active.is_(True)).order_by(ServiceProvider.name)).all()


def _assessment(form) -> tuple[dict, list]:
    chosen = set(form.needs.data or [])
    needs = {}
    for need in chosen:
        try:
            needs[need] = int(request.form.get(f"priority-{need}", 2))
        except ValueError:
            needs[need] = 0  # refused by the service with a message
    workers = [u for u in _staff() if u.id in set(form.workers.data or [])]
    return needs, workers


def _prepare_assessment(form, case=None):
    form.workers.choices = [(u.id, u.display_name) for u in _staff()]
    if case is not None and request.method == "GET":
        form.needs.data = [n.need for n in case.needs]
        form.workers.data = [u.id for u in case.workers]
        form.risk_level.data = case.risk_level or ""
    return form


@bp.get("/")
@requires(Perm.CASES)
def index():
    """The CSO's cases (open ones first); 'mine' shows the user's."""
    query = scoped(Case, current_user).order_by(Case.status == "closed", Case.opened_on.desc())
    if request.args.get("mine"):
        query = query.where(Case.workers.any(User.id == current_user.id))
    cases = db.session.scalars(query.limit(200)).all()
    return render_template("cases/index.html", cases=cases, today=date.today())


@bp.route("/new/<uuid:beneficiary_id>", methods=["GET", "POST"])
@requires(Perm.CASES)
def new(beneficiary_id):
    """Open a case for a youth of the CSO."""
    youth = get_or_404(Beneficiary, beneficiary_id, current_user, "edit")
    form = _prepare_assessment(OpenCaseForm())
    if request.method == "GET":
        form.workers.data = [current_user.id]

    def open_case():
        needs, workers = _assessment(form)
        return service.open_case(current_user, youth, {
            "opened_on": form.opened_on.data, "needs": needs,
            "risk_level": form.risk_level.data, "workers": workers})

    if done := form_action(form, open_case):
        flash(_("Case opened."), "success")
        return redirect(url_for(".show", case_id=done.value.uuid))
    return form_page("cases/new.html", form, youth=youth)


@bp.get("/<uuid:case_id>")
@requires(Perm.CASES)
def show(case_id):
    """The case file. Reading it is audited."""
    case = get_or_404(Case, case_id, current_user)
    identity = reveal(case.beneficiary, current_user, purpose="case")
    record(Action.CASE_VIEWED, actor=current_user, obj=case)
    notes = db.session.scalars(scoped(CaseNote, current_user).where(
        CaseNote.case_id == case.id).order_by(CaseNote.note_date.desc(),
                                              CaseNote.id.desc())).all()
    goal_form = GoalForm(prefix="goal")
    goal_form.responsible.choices = [("", "—")] + [(str(u.id), u.display_name)
                                                   for u in _staff()]
    referral_form = ReferralForm(prefix="referral")
    referral_form.provider.choices = [("", "—")] + [(str(p.uuid), p.name) for p in _providers()]
    transfer_form = TransferForm(prefix="transfer")
    transfer_form.to_organization.choices = [("", "—")] + [
        (o.code, o.name(ui_language()))
        for o in db.session.scalars(scoped(Organization, current_user).where(
            Organization.kind == OrgKind.FUNDED_CSO, Organization.active.is_(True),
            Organization.id != case.organization_id).order_by(Organization.code))]
    return render_template(
        "cases/show.html", case=case, identity=identity, notes=notes,
        note_text=service.note_text, text_of=service.text_of,
        show_risk=service.can_see_risk(current_user, case),
        assessment=_prepare_assessment(OpenCaseForm(), case),
        status_form=StatusForm(prefix="status"), goal_form=goal_form,
        goal_status=GoalStatusForm(), note_form=NoteForm(prefix="note"),
        referral_form=referral_form, referral_update=ReferralUpdateForm(),
        outcome_form=OutcomeForm(prefix="outcome"), transfer_form=transfer_form,
        today=date.today(), transitions=service.TRANSITIONS)


def _back(case, anchor: str):
    return redirect(url_for(".show", case_id=case.uuid, _anchor=anchor))


def _run(case, anchor: str, done: str, action, *args):
    """Run one service action from a small form, then back to the case's section."""
    run_action(done, action, *args)
    return _back(case, anchor)


def _form_or_flash(form) -> bool:
    if form.validate_on_submit():
        return True
    flash(" ".join(str(m) for msgs in form.errors.values() for m in msgs), "error")
    return False


@bp.post("/<uuid:case_id>/assessment")
@requires(Perm.CASES)
def assessment(case_id):
    """Update needs, risk level and assigned workers."""
    case = get_or_404(Case, case_id, current_user, "edit")
    form = _prepare_assessment(OpenCaseForm())
    if not _form_or_flash(form):
        return _back(case, "needs")
    needs, workers = _assessment(form)
    risk = form.risk_level.data if service.can_see_risk(current_user, case) else case.risk_level
    return _run(case, "needs", _("Saved."), service.update_assessment, current_user, case,
                needs, risk, workers)


@bp.post("/<uuid:case_id>/status")
@requires(Perm.CASES)
def status(case_id):
    """Change the case's status (closing needs a reason)."""
    case = get_or_404(Case, case_id, current_user, "edit")
    form = StatusForm(prefix="status")
    if not _form_or_flash(form):
        return _back(case, "status")
    return _run(case, "status", _("Status changed."), service.change_status, current_user,
                case, form.status.data, form.reason.data or None)


@bp.post("/<uuid:case_id>/goals")
@requires(Perm.CASES)
def add_goal(case_id):
    """Add a goal to the case plan."""
    case = get_or_404(Case, case_id, current_user, "edit")
    form = GoalForm(prefix="goal")
    form.responsible.choices = [("", "—")] + [(str(u.id), u.display_name) for u in _staff()]
    if not _form_or_flash(form):
        return _back(case, "plan")
    responsible = next((u for u in _staff() if str(u.id) == form.responsible.data), None)
    return _run(case, "plan", _("Goal added."), service.add_goal, current_user, case, {
        "description": form.description.data, "target_date": form.target_date.data,
        "responsible": responsible})


@bp.post("/goals/<uuid:goal_id>")
@requires(Perm.CASES)
def goal_status(goal_id):
    """Record a goal's progress."""
    goal = get_or_404(CaseGoal, goal_id, current_user, "edit")
    form = GoalStatusForm()
    if not _form_or_flash(form):
        return _back(goal.case, "plan")
    return _run(goal.case, "plan", _("Saved."), service.set_goal_status, current_user, goal,
                form.status.data)


@bp.post("/<uuid:case_id>/notes")
@requires(Perm.CASES)
def add_note(case_id):
    """Add a note (encrypted; confidential if ticked)."""
    case = get_or_404(Case, case_id, current_user, "edit")
    form = NoteForm(prefix="note")
    if not _form_or_flash(form):
        return _back(case, "notes")
    return _run(case, "notes", _("Note added."), service.add_note, current_user, case,
                dict(form.data))


@bp.route("/notes/<uuid:note_id>", methods=["GET", "POST"])
@requires(Perm.CASES)
def edit_note(note_id):
    """Correct a note; earlier texts stay in its history."""
    note = get_or_404(CaseNote, note_id, current_user, "edit")
    form = NoteEditForm(data={"text": service.note_text(note)} if request.method == "GET"
                        else None)
    if form_action(form, lambda: service.edit_note(current_user, note, form.text.data)):
        flash(_("Note saved."), "success")
        return _back(note.case, "notes")
    return form_page("cases/note.html", form, note=note, text_of=service.text_of)


@bp.post("/notes/<uuid:note_id>/done")
@requires(Perm.CASES)
def note_done(note_id):
    """Close a note's follow-up."""
    note = get_or_404(CaseNote, note_id, current_user, "edit")
    service.mark_done(current_user, note)
    flash(_("Follow-up done."), "success")
    return redirect(safe_next(request.form.get("next")) if request.form.get("next")
                    else url_for(".show", case_id=note.case.uuid))


@bp.post("/<uuid:case_id>/referrals")
@requires(Perm.CASES)
def add_referral(case_id):
    """Refer the youth to a service."""
    case = get_or_404(Case, case_id, current_user, "edit")
    form = ReferralForm(prefix="referral")
    form.provider.choices = [("", "—")] + [(str(p.uuid), p.name) for p in _providers()]
    if not _form_or_flash(form):
        return _back(case, "referrals")
    provider = next((p for p in _providers() if str(p.uuid) == form.provider.data), None)
    return _run(case, "referrals", _("Referral added."), service.add_referral, current_user,
                case, {"service_type": form.service_type.data, "provider": provider,
                       "proposed_on": form.proposed_on.data, "due_date": form.due_date.data})


@bp.post("/referrals/<uuid:referral_id>")
@requires(Perm.CASES)
def update_referral(referral_id):
    """Move a referral on (made, accepted, completed...)."""
    referral = get_or_404(Referral, referral_id, current_user, "edit")
    form = ReferralUpdateForm()
    if not _form_or_flash(form):
        return _back(referral.case, "referrals")
    return _run(referral.case, "referrals", _("Saved."), service.update_referral,
                current_user, referral, form.status.data, form.on.data, form.outcome.data)


@bp.post("/<uuid:case_id>/outcomes")
@requires(Perm.CASES)
def add_outcome(case_id):
    """Record an outcome (a job, training completed...)."""
    case = get_or_404(Case, case_id, current_user, "edit")
    form = OutcomeForm(prefix="outcome")
    if not _form_or_flash(form):
        return _back(case, "outcomes")
    yes_no = {"yes": True, "no": False}
    return _run(case, "outcomes", _("Outcome recorded."), service.add_outcome, current_user,
                case, {"kind": form.kind.data, "on_date": form.on_date.data,
                       "sector": form.sector.data, "formal": yes_no.get(form.formal.data),
                       "full_time": yes_no.get(form.full_time.data)})


@bp.post("/outcomes/<uuid:outcome_id>/check")
@requires(Perm.CASES)
def outcome_check(outcome_id):
    """Record the 3- or 6-month follow-up of an outcome."""
    outcome = get_or_404(Outcome, outcome_id, current_user, "edit")
    try:
        months = int(request.form.get("months", 0))
    except ValueError:
        months = 0
    return _run(outcome.case, "outcomes", _("Saved."), service.record_check, current_user,
                outcome, months, request.form.get("still") == "yes")

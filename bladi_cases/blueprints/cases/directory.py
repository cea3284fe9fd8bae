"""Service providers of the CSO's directory, and case transfers between CSOs."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...extensions import db
from ...i18n import ui_language
from ...models import Case, CaseTransfer, Organization, ServiceProvider
from ...policy import Perm, get_or_404, requires, scoped
from ...services import ValidationError
from ...services.admin import governorate_choices
from ...services.cases import cases as service
from ...services.cases import transfers
from .. import form_action, form_page, run_action
from . import bp
from .forms import DecisionForm, ProviderForm, TransferForm


@bp.get("/providers")
@requires(Perm.CASES)
def providers():
    """The CSO's directory of services to refer youth to."""
    rows = db.session.scalars(scoped(ServiceProvider, current_user).order_by(
        ServiceProvider.active.desc(), ServiceProvider.name)).all()
    return render_template("cases/providers.html", providers=rows, lang=ui_language())


def _provider_form(provider=None):
    form = ProviderForm(obj=provider)
    form.governorate_code.choices = list(governorate_choices(ui_language()))
    if provider is None and request.method == "GET":
        form.governorate_code.data = current_user.organization.governorate_code
    return form


@bp.route("/providers/new", methods=["GET", "POST"], defaults={"provider_id": None})
@bp.route("/providers/<uuid:provider_id>", methods=["GET", "POST"])
@requires(Perm.CASES)
def provider(provider_id):
    """Add or edit a provider."""
    record = get_or_404(ServiceProvider, provider_id, current_user, "edit") \
        if provider_id else None
    form = _provider_form(record)
    if form_action(form, lambda: service.save_provider(
            current_user, current_user.organization_id, dict(form.data), record)):
        flash(_("Saved."), "success")
        return redirect(url_for(".providers"))
    return form_page("cases/provider.html", form, provider=record)


@bp.post("/<uuid:case_id>/transfer")
@requires(Perm.CASES)
def request_transfer(case_id):
    """Ask another funded CSO to take the youth and the case."""
    case = get_or_404(Case, case_id, current_user, "edit")
    form = TransferForm(prefix="transfer")
    target = db.session.scalars(scoped(Organization, current_user).where(
        Organization.code == (form.to_organization.data or ""))).first()
    form.to_organization.choices = [(form.to_organization.data, "")]

    def request_transfer():
        _refuse_expired(form)
        transfers.request_transfer(current_user, case, target, form.consent_note.data)

    run_action(_("Transfer requested: the other CSO's manager will answer."), request_transfer)
    return redirect(url_for(".show", case_id=case.uuid, _anchor="transfer"))


def _refuse_expired(form) -> None:
    if not form.validate_on_submit():
        raise ValidationError({"": [_("The form has expired. Reload the page.")]})


@bp.get("/transfers")
@requires(Perm.CASES)
def transfer_list():
    """Transfers asked by the CSO and asked of it (its manager answers those)."""
    rows = db.session.scalars(scoped(CaseTransfer, current_user).order_by(
        CaseTransfer.id.desc()).limit(200)).all()
    orgs = {o.id: o for o in db.session.scalars(scoped(Organization, current_user))}
    return render_template("cases/transfers.html", transfers=rows, orgs=orgs,
                           lang=ui_language(), form=DecisionForm(), text_of=service.text_of)


@bp.post("/transfers/<uuid:transfer_id>")
@requires(Perm.CASES)
def decide(transfer_id):
    """Accept or reject a transfer (the receiving CSO's manager)."""
    transfer = get_or_404(CaseTransfer, transfer_id, current_user, "decide")
    accept = request.form.get("decision") == "accept"

    def decide_transfer():
        _refuse_expired(DecisionForm())
        transfers.decide_transfer(current_user, transfer, accept)

    run_action(_("Transfer accepted: the young person is now in your CSO.") if accept
               else _("Transfer rejected."), decide_transfer)
    return redirect(url_for(".transfer_list"))

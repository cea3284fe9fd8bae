"""Views of the beneficiaries blueprint. Every record is loaded through the policy; every
page that shows decrypted identities goes through services.beneficiaries.registry.reveal*()."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import joinedload

from ...errors import render_error
from ...extensions import db
from ...fragments import url_maker
from ...i18n import ui_language
from ...models import (
    Beneficiary,
    BeneficiaryStatus,
    Enrolment,
    Sex,
    Site,
)
from ...policy import Perm, get_or_404, kept_statement, requires, scoped
from ...services.activities import participation
from ...services.admin import governorate_choices
from ...services.beneficiaries import registry as service
from ...services.beneficiaries import rights
from ...services.beneficiaries.record import record_page
from ...services.beneficiaries.search import AGE_BANDS, MAX_QUERY, age_band_of, search
from ...services.files import download
from .. import form_action, form_page, page_number, page_size, run_action
from ..limits import export_limit
from . import bp
from .forms import (
    BeneficiaryForm,
    ConfirmCodeForm,
    ConsentForm,
    EndEnrolmentForm,
    EnrolForm,
    RegistrationForm,
    WithdrawForm,
)


def _sites():
    """The active sites of the user's CSO, by name: read once per request (a form page
    asks for them several times), the statement built once per user."""
    if "_bladi_sites" not in g:
        g._bladi_sites = db.session.scalars(kept_statement(
            "beneficiaries.sites", current_user, lambda who: scoped(Site, who).where(
                Site.active.is_(True)).order_by(Site.name))).all()
    return g._bladi_sites


def _site_by_uuid(value):
    if not value:
        return None
    found = next((s for s in _sites() if str(s.uuid) == value), None)
    return found if found is not None else "unknown"


@dataclass(frozen=True)
class RegistrationChoices:
    """What a registration form offers and starts from, read from the database: the
    governorates in the user's language, the CSO's own (most youth live where their CSO
    works), the CSO's active sites, and the first site's setting."""

    governorates: tuple[tuple[str, str], ...]
    governorate: str | None
    sites: tuple[tuple[str, str], ...]
    setting_kind: str | None


def registration_choices() -> RegistrationChoices:
    """The choices and starting values of the registration form (`prepare_form`), which the
    field page keys its content by without building the form."""
    lang = ui_language()
    sites = _sites()
    return RegistrationChoices(
        governorate_choices(lang),
        current_user.organization.governorate_code,
        (("", "—"), *((str(s.uuid), s.name) for s in sites)),
        sites[0].kind if sites else None)


def prepare_form(form, with_site: bool, choices: RegistrationChoices | None = None):
    """Governorate and site choices of a registration or record form (also the offline
    field page's registration form), starting from the CSO's own governorate."""
    choices = choices or registration_choices()
    form.governorate_code.choices = list(choices.governorates)
    if request.method == "GET" and not form.governorate_code.data:
        form.governorate_code.data = choices.governorate
        if choices.setting_kind and with_site:
            form.setting_kind.data = choices.setting_kind
    if with_site:
        form.site.choices = list(choices.sites)
    return form


def _values(form) -> dict:
    values = dict(form.data)
    values["disability"] = {"yes": True, "no": False}.get(values.get("disability"))
    if "site" in values:
        values["site"] = _site_by_uuid(values["site"])
    return values


@bp.get("/")
@requires(Perm.BENEFICIARIES)
def index():
    """Search the CSO's young people: code, name prefix, site, status, age band."""
    query = request.args.get("q", "")
    if len(query) > MAX_QUERY:
        return render_error(400, message=_("Search for at most %(n)d characters.",
                                           n=MAX_QUERY))
    # The filter's choices: two columns, not whole sites (the statement kept per user:
    # `policy.kept_statement`).
    sites = db.session.execute(kept_statement(
        "beneficiaries.site_choices", current_user, lambda who: scoped(Site, who)
        .with_only_columns(Site.id, Site.uuid, Site.name).where(Site.active.is_(True))
        .order_by(Site.name))).all()
    site = next((s for s in sites if str(s.uuid) == request.args.get("site")), None)
    results = search(current_user, q=query, site=site,
                     status=request.args.get("status"), age_band=request.args.get("age"),
                     page=page_number(request.args.get("page")), per_page=page_size())
    identities = service.reveal_many(results.items, current_user, fields=service.NAME_FIELDS)
    filters = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("beneficiaries/index.html", results=results,
                           rows=_list_rows(results.items, identities, date.today()),
                           sites=sites, age_bands=AGE_BANDS, filters=filters,
                           query_max=MAX_QUERY)


@dataclass(frozen=True, slots=True)
class _ListRow:
    """What one line of the list shows, ready to print."""

    href: str
    code: str
    name: str
    sex: str
    age_band: str
    status: str
    consent_withdrawn: bool
    erased: bool


_YOUTH_URL = url_maker("beneficiaries.show", "beneficiary_id")


def _list_rows(items, identities: dict, today: date) -> list[_ListRow]:
    """The lines of the list: links made from one url_for, labels translated once."""
    sex, status = Sex.labeller(), BeneficiaryStatus.labeller()
    rows = []
    for b in items:
        who = identities.get(b.id)
        rows.append(_ListRow(
            _YOUTH_URL(beneficiary_id=b.uuid), b.code, (who.full_name if who else "") or "—",
            sex(b.sex), age_band_of(b, today) or "", status(b.status), b.consent_withdrawn,
            b.erased_at is not None))
    return rows


@bp.route("/new", methods=["GET", "POST"])
@requires(Perm.BENEFICIARIES)
def new():
    """Register a young person, with consent and a first site, checking for duplicates."""
    form = prepare_form(RegistrationForm(), with_site=True)
    candidates = []
    try:
        done = form_action(form, lambda: service.register(
            current_user, current_user.organization, _values(form),
            confirmed_new=form.confirmed_new.data == "1"))
    except service.PossibleDuplicates as found:
        done, candidates = None, found.candidates
    if done:
        flash(_("Registered as %(code)s.", code=done.value.code), "success")
        return redirect(url_for(".show", beneficiary_id=done.value.uuid))
    identities = service.reveal_many(candidates, current_user, purpose="duplicate_check")
    return form_page("beneficiaries/new.html", form, candidates=candidates,
                     identities=identities)


@bp.get("/<uuid:beneficiary_id>")
@requires(Perm.BENEFICIARIES)
def show(beneficiary_id):
    """The record and its timeline."""
    # The youth's governorate (the page names it) with the youth: one statement fewer.
    beneficiary = get_or_404(Beneficiary, beneficiary_id, current_user, "view",
                             joinedload(Beneficiary.governorate), kept_as="record.youth")
    page = record_page(beneficiary, current_user, date.today())
    return render_template(
        "beneficiaries/show.html", b=beneficiary, identity=page.identity, today=page.today,
        timeline=page.timeline, cases=page.cases, surveys=page.surveys,
        responses=page.responses, changes=page.changes, lang=ui_language(),
        withdraw_form=WithdrawForm(), enrol_form=_prepare_enrol(EnrolForm()),
        end_form=_end_form(), age_band=page.age_band,
        participations=page.participations, link=_RecordLinks(beneficiary.uuid),
        enrolment_slot=ENROLMENT_SLOT)


# The record page's links, made from one url_for per process each (`url_maker`): by name,
# the maker and which of its arguments are the youth's uuid and the other record's (the
# enrolment, activity, survey or case the link is about).
_RECORD_LINKS = {
    "edit": (url_maker("beneficiaries.edit", "beneficiary_id"), "beneficiary_id", None),
    "withdraw": (url_maker("beneficiaries.withdraw", "beneficiary_id"), "beneficiary_id", None),
    "consent": (url_maker("beneficiaries.consent", "beneficiary_id"), "beneficiary_id", None),
    "end_enrolment": (url_maker("beneficiaries.end_enrolment", "beneficiary_id",
                                "enrolment_id"), "beneficiary_id", "enrolment_id"),
    "enrol": (url_maker("beneficiaries.enrol", "beneficiary_id"), "beneficiary_id", None),
    "activity": (url_maker("activities.show", "activity_id"), None, "activity_id"),
    # The wave is put in its place by the template (a plain word).
    "fill": (url_maker("surveys.fill", "survey_id", "beneficiary", wave="WAVE"),
             "beneficiary", "survey_id"),
    "case": (url_maker("cases.show", "case_id"), None, "case_id"),
    "new_case": (url_maker("cases.new", "beneficiary_id"), "beneficiary_id", None),
    "access_request": (url_maker("beneficiaries.access_request", "beneficiary_id"),
                       "beneficiary_id", None),
    "erase": (url_maker("beneficiaries.erase", "beneficiary_id"), "beneficiary_id", None),
}


class _RecordLinks:
    """`link(name)` and `link(name, other_uuid)` in the record's template."""

    def __init__(self, youth_uuid):
        self.youth = youth_uuid

    def __call__(self, name: str, other=None) -> str:
        make, youth, about = _RECORD_LINKS[name]
        ids = {} if youth is None else {youth: self.youth}
        if about is not None:
            ids[about] = other
        return make(**ids)


# Stands for an enrolment's uuid in the ids of the end form's fields (`_end_form`).
ENROLMENT_SLOT = "enrolment-slot"


def _end_form():
    """The form that ends an enrolment, its fields rendered once for every open enrolment
    of the record: their ids (and their labels' `for`) carry ENROLMENT_SLOT, which the
    template replaces with each enrolment's uuid, so that each label names its own input
    (the same id twice sent a screen reader, and a tap on the label, to the first form).
    The fields' names stay: the form posted reads them as before."""
    form = EndEnrolmentForm()
    for bound in form:  # every field the form has, but its CSRF token (hidden, no label)
        if bound.type != "CSRFTokenField":
            bound.id = bound.label.field_id = f"{bound.name}-{ENROLMENT_SLOT}"
    return form


def _prepare_enrol(form):
    form.site.choices = [("", "—")] + [(str(s.uuid), s.name) for s in _sites()]
    return form


@bp.route("/<uuid:beneficiary_id>/edit", methods=["GET", "POST"])
@requires(Perm.BENEFICIARIES)
def edit(beneficiary_id):
    """Correct or complete the record."""
    beneficiary = get_or_404(Beneficiary, beneficiary_id, current_user, "edit")
    if beneficiary.erased_at:
        abort(404)
    form = BeneficiaryForm(obj=beneficiary) if request.method == "POST" else BeneficiaryForm(
        data=service.form_data(beneficiary, current_user))
    prepare_form(form, with_site=False)
    if form_action(form, lambda: service.update(current_user, beneficiary, _values(form))):
        flash(_("Record saved."), "success")
        return redirect(url_for(".show", beneficiary_id=beneficiary.uuid))
    return form_page("beneficiaries/edit.html", form, b=beneficiary)


@bp.route("/<uuid:beneficiary_id>/consent", methods=["GET", "POST"])
@requires(Perm.BENEFICIARIES)
def consent(beneficiary_id):
    """Record a new consent."""
    beneficiary = get_or_404(Beneficiary, beneficiary_id, current_user, "edit")
    form = ConsentForm()
    if form_action(form, lambda: service.record_consent(current_user, beneficiary,
                                                        dict(form.data))):
        flash(_("Consent recorded."), "success")
        return redirect(url_for(".show", beneficiary_id=beneficiary.uuid))
    return form_page("beneficiaries/consent.html", form, b=beneficiary)


@bp.post("/<uuid:beneficiary_id>/consent/withdraw")
@requires(Perm.BENEFICIARIES)
def withdraw(beneficiary_id):
    """Record the withdrawal of consent."""
    beneficiary = get_or_404(Beneficiary, beneficiary_id, current_user, "edit")
    form = WithdrawForm()
    form.validate_on_submit()
    run_action(_("Withdrawal recorded."), service.withdraw_consent, current_user, beneficiary,
               form.withdrawn_on.data or date.today())
    return redirect(url_for(".show", beneficiary_id=beneficiary.uuid))


@bp.post("/<uuid:beneficiary_id>/enrol")
@requires(Perm.BENEFICIARIES)
def enrol(beneficiary_id):
    """Enrol the youth at a site of the CSO."""
    beneficiary = get_or_404(Beneficiary, beneficiary_id, current_user, "edit")
    form = _prepare_enrol(EnrolForm())
    form.validate_on_submit()
    site = _site_by_uuid(form.site.data)
    run_action(_("Enrolled."), service.enrol, current_user, beneficiary,
               None if site == "unknown" else site, form.start_date.data or date.today())
    return redirect(url_for(".show", beneficiary_id=beneficiary.uuid))


@bp.post("/<uuid:beneficiary_id>/enrolments/<uuid:enrolment_id>/end")
@requires(Perm.BENEFICIARIES)
def end_enrolment(beneficiary_id, enrolment_id):
    """End an enrolment with its exit reason."""
    beneficiary = get_or_404(Beneficiary, beneficiary_id, current_user, "edit")
    enrolment = get_or_404(Enrolment, enrolment_id, current_user, "view")
    if enrolment.beneficiary_id != beneficiary.id:
        abort(404)
    form = EndEnrolmentForm()
    form.validate_on_submit()
    run_action(_("Enrolment ended."), service.end_enrolment, current_user, enrolment,
               form.end_date.data or date.today(), form.exit_reason.data)
    return redirect(url_for(".show", beneficiary_id=beneficiary.uuid))


# The rights routes are open to CSO staff at the route level so that another CSO's record
# answers 404 (not 403) to everyone; get_or_404 then requires the manager's permission.
@bp.route("/<uuid:beneficiary_id>/access-request", methods=["GET", "POST"])
@requires(Perm.BENEFICIARIES)
@export_limit
def access_request(beneficiary_id):
    """Produce the complete record of one youth as a readable file (typed confirmation)."""
    beneficiary = get_or_404(Beneficiary, beneficiary_id, current_user, "access_request")
    form = ConfirmCodeForm()
    done = form_action(form, lambda: rights.access_record(current_user, beneficiary,
                                                          form.confirm.data))
    if done:
        html = render_template("beneficiaries/access_export.html", **done.value,
                               participations=participation.for_beneficiary(beneficiary))
        return download(html, f"{beneficiary.code}-record.html", "text/html; charset=utf-8")
    return form_page("beneficiaries/rights.html", form, b=beneficiary, kind="access")


@bp.route("/<uuid:beneficiary_id>/erase", methods=["GET", "POST"])
@requires(Perm.BENEFICIARIES)
def erase(beneficiary_id):
    """Erase a youth's identifying data, keeping de-identified rows (typed confirmation)."""
    beneficiary = get_or_404(Beneficiary, beneficiary_id, current_user, "erase")
    form = ConfirmCodeForm()
    if form_action(form, lambda: rights.erase(current_user, beneficiary, form.confirm.data)):
        flash(_("The identifying data of %(code)s was erased.", code=beneficiary.code),
              "success")
        return redirect(url_for(".show", beneficiary_id=beneficiary.uuid))
    return form_page("beneficiaries/rights.html", form, b=beneficiary, kind="erase")

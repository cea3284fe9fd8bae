"""Views of the admin blueprint: organisations, sites, staff accounts."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...extensions import db
from ...i18n import ui_language
from ...models import Organization, OrgKind, Role, Site, User
from ...models.auth import CSO_ROLES
from ...policy import Perm, get_or_404, may, requires, scoped
from ...services import admin as admin_service
from ...services import jobs
from ...services.auth import issue_reset, second_factor
from ...services.backups import backup_folder
from .. import form_action, form_page, page_number, page_size, run_action
from . import bp
from .forms import ConfirmForm, EmergencyResetForm, OrganizationForm, SiteForm, UserForm


def _governorate_choices(optional: bool):
    return ([("", "—")] if optional else []) + list(
        admin_service.governorate_choices(ui_language()))


def _orgs(user, kinds=None):
    query = scoped(Organization, user).order_by(Organization.code)
    if kinds:
        query = query.where(Organization.kind.in_(kinds))
    return db.session.scalars(query).all()


# --- Organisations -----------------------------------------------------------------------

@bp.get("/organizations")
@requires(Perm.ORGS_MANAGE)
def organizations():
    """Every organisation, grouped by kind."""
    return render_template("admin/organizations.html", organizations=_orgs(current_user))


def _org_form(org=None):
    form = OrganizationForm(obj=org)
    form.governorate_code.choices = _governorate_choices(optional=True)
    return form


@bp.route("/organizations/new", methods=["GET", "POST"])
@requires(Perm.ORGS_MANAGE)
def new_organization():
    """Create an organisation."""
    form = _org_form()
    done = form_action(form, lambda: admin_service.create_organization(current_user, form.data))
    if done:
        flash(_("Organisation %(code)s created.", code=done.value.code), "success")
        return redirect(url_for("admin.organizations"))
    return form_page("admin/organization_form.html", form, organization=None)


@bp.route("/organizations/<code>/edit", methods=["GET", "POST"])
@requires(Perm.ORGS_MANAGE)
def edit_organization(code: str):
    """Edit an organisation."""
    org = get_or_404(Organization, code, current_user, "edit")
    form = _org_form(org)
    if form_action(form, lambda: admin_service.update_organization(current_user, org, form.data)):
        flash(_("Organisation %(code)s saved.", code=org.code), "success")
        return redirect(url_for("admin.organizations"))
    return form_page("admin/organization_form.html", form, organization=org)


# --- Sites -------------------------------------------------------------------------------

@bp.get("/sites")
@requires(Perm.SITES_MANAGE)
def sites():
    """Every site with the CSOs working there."""
    rows = db.session.scalars(scoped(Site, current_user).order_by(Site.name)).all()
    return render_template("admin/sites.html", sites=rows)


def _site_form(site=None):
    form = SiteForm(obj=site)
    if site is not None and request.method == "GET":
        form.organizations.data = [o.id for o in site.organizations]
    form.governorate_code.choices = _governorate_choices(optional=False)
    form.organizations.choices = [
        (o.id, f"{o.code} — {o.name(ui_language())}")
        for o in _orgs(current_user, [OrgKind.FUNDED_CSO])
    ]
    return form


def _site_values(form) -> dict:
    values = dict(form.data)
    chosen = set(form.organizations.data or [])
    values["organizations"] = [o for o in _orgs(current_user) if o.id in chosen]
    return values


@bp.route("/sites/new", methods=["GET", "POST"])
@requires(Perm.SITES_MANAGE)
def new_site():
    """Create a site."""
    form = _site_form()
    if form_action(form, lambda: admin_service.create_site(current_user, _site_values(form))):
        flash(_("Site saved."), "success")
        return redirect(url_for("admin.sites"))
    return form_page("admin/site_form.html", form, site=None)


@bp.route("/sites/<uuid:site_id>/edit", methods=["GET", "POST"])
@requires(Perm.SITES_MANAGE)
def edit_site(site_id):
    """Edit a site."""
    site = get_or_404(Site, site_id, current_user, "edit")
    form = _site_form(site)
    if form_action(form, lambda: admin_service.update_site(current_user, site, _site_values(form))):
        flash(_("Site saved."), "success")
        return redirect(url_for("admin.sites"))
    return form_page("admin/site_form.html", form, site=site)


# --- Staff accounts ----------------------------------------------------------------------

@bp.get("/users")
@requires(Perm.USERS_MANAGE)
def users():
    """Staff accounts the user manages (a CSO manager: their CSO's), paginated."""
    query = scoped(User, current_user).order_by(User.active.desc(), User.display_name)
    role = request.args.get("role")
    if role in {r.value for r in Role}:
        query = query.where(User.role == role)
    page = db.paginate(query, page=page_number(request.args.get("page")),
                       per_page=page_size(), error_out=False)
    return render_template("admin/users.html", page=page, role=role)


def _user_form(user=None):
    form = UserForm(obj=user)
    if user is not None and request.method == "GET":
        form.organization.data = user.organization_id or 0
    if current_user.role == Role.CSO_MANAGER:
        form.role.choices = [(r.value, r.label) for r in CSO_ROLES]
        form.organization.choices = [(current_user.organization_id,
                                      current_user.organization.name(ui_language()))]
    else:
        form.organization.choices = [(0, "—")] + [
            (o.id, f"{o.code} — {o.name(ui_language())}") for o in _orgs(current_user)]
    return form


def _chosen_org(form):
    wanted = form.organization.data
    return next((o for o in _orgs(current_user) if o.id == wanted), None)


@bp.route("/users/new", methods=["GET", "POST"])
@requires(Perm.USERS_MANAGE)
def new_user():
    """Create a staff account; shows the one-time code to hand to the new user."""
    form = _user_form()
    done = form_action(form, lambda: admin_service.create_user(
        current_user, email=form.email.data, display_name=form.display_name.data,
        role=form.role.data, organization=_chosen_org(form),
        preferred_language=form.preferred_language.data))
    if done:
        user, code = done.value
        return render_template("admin/reset_code.html", account=user, code=code, new=True)
    return form_page("admin/user_form.html", form, account=None)


@bp.route("/users/<uuid:user_id>", methods=["GET", "POST"])
@requires(Perm.USERS_MANAGE)
def edit_user(user_id):
    """Edit a staff account; deactivate, reactivate or issue a reset code from here. An
    administrator sees a CSO account its managers manage without the form: deactivating
    it and an emergency reset are all they may do."""
    user = get_or_404(User, user_id, current_user, "view")
    editable = may(current_user, user, "edit")
    if request.method == "POST" and not editable:
        abort(403)
    form = _user_form(user)
    if editable and form_action(form, lambda: admin_service.update_user(
            current_user, user, email=form.email.data, display_name=form.display_name.data,
            role=form.role.data, organization=_chosen_org(form),
            preferred_language=form.preferred_language.data)):
        flash(_("Account saved."), "success")
        return redirect(url_for("admin.users"))
    return form_page("admin/user_form.html", form, account=user, confirm=ConfirmForm(),
                     editable=editable)


@bp.post("/users/<uuid:user_id>/active")
@requires(Perm.USERS_MANAGE)
def set_user_active(user_id):
    """Deactivate or reactivate an account (form field `active` = 0 or 1)."""
    user = get_or_404(User, user_id, current_user, "deactivate")
    if not ConfirmForm().validate_on_submit() or request.form.get("active") not in ("0", "1"):
        abort(400)
    active = request.form["active"] == "1"
    run_action(_("Account reactivated.") if active else _("Account deactivated."),
               admin_service.set_user_active, current_user, user, active)
    return redirect(url_for("admin.edit_user", user_id=user.uuid))


@bp.post("/users/<uuid:user_id>/reset")
@requires(Perm.USERS_MANAGE)
def issue_user_reset(user_id):
    """Issue a one-time password reset code, valid 24 hours, to hand to the user."""
    user = get_or_404(User, user_id, current_user, "edit")
    if not ConfirmForm().validate_on_submit() or not user.active:
        abort(400)
    code = issue_reset(user, current_user)
    return render_template("admin/reset_code.html", account=user, code=code, new=False)


@bp.post("/users/<uuid:user_id>/second-factor/reset")
@requires(Perm.USERS_MANAGE)
def reset_second_factor(user_id):
    """Clear an account's second factor (a lost phone): it enrols again at its next login.
    A manager resets their field workers'; an administrator a manager's or a non-CSO
    account's (policy: `reset_second_factor`)."""
    user = get_or_404(User, user_id, current_user, "reset_second_factor")
    if not ConfirmForm().validate_on_submit():
        abort(400)
    run_action(_("The second factor was reset: the person sets it up again at their next "
                 "login."), second_factor.reset, current_user, user)
    return redirect(url_for("admin.edit_user", user_id=user.uuid))


@bp.route("/users/<uuid:user_id>/emergency-reset", methods=["GET", "POST"])
@requires(Perm.USERS_MANAGE)
def emergency_reset(user_id):
    """An administrator's reset of a CSO account, with a reason shown to its managers."""
    user = get_or_404(User, user_id, current_user, "emergency_reset")
    form = EmergencyResetForm()
    done = form_action(form, lambda: admin_service.emergency_reset(
        current_user, user, form.reason.data))
    if done:
        return render_template("admin/reset_code.html", account=user, code=done.value,
                               new=False, emergency=True)
    return form_page("admin/emergency_reset.html", form, account=user)


# --- Maintenance: key rotation and backups, as background jobs ----------------------------

MAINTENANCE_JOBS = {"rotate": "keys.rotate", "backup": "backups.create"}


@bp.route("/maintenance", methods=["GET", "POST"])
@requires(Perm.MAINTENANCE)
def maintenance():
    """Start a key rotation or a backup; each runs as a job whose page shows its progress."""
    form = ConfirmForm()
    kind = MAINTENANCE_JOBS.get(request.form.get("action", ""))
    if request.method == "POST" and form.validate_on_submit() and kind:
        job = jobs.start(kind, current_user)
        return redirect(url_for("jobs.show", job_id=job.uuid))
    recent = [j for j in jobs.finished_recently(current_user, 20)
              if j.kind in MAINTENANCE_JOBS.values()]
    return render_template("admin/maintenance.html", form=form, recent=recent,
                           kinds=jobs.KINDS, backup_dir=backup_folder()), (
        400 if request.method == "POST" else 200)

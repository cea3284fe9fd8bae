"""Forms of the cases blueprint. User, provider and CSO choices are set by the views."""

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional

from ...models import TitledEnum
from ...models.cases import (
    CaseStatus,
    ClosureReason,
    GoalStatus,
    Need,
    NoteKind,
    OutcomeKind,
    ReferralStatus,
    RiskLevel,
    ServiceType,
)
from .. import Form
from ..admin.forms import CheckboxListField


def _optional(enum: type[TitledEnum]):
    return [("", "—")] + enum.choices()


class AssessmentForm(Form):
    """Needs (with a priority each, read by the view), risk level and assigned workers."""

    needs = CheckboxListField(_l("Needs"), choices=Need.choices())
    risk_level = SelectField(_l("Risk level"), choices=_optional(RiskLevel), default="",
                             description=_l("Seen only by the assigned workers and the "
                                            "manager."))
    workers = CheckboxListField(_l("Assigned workers"), choices=[], coerce=int)


class OpenCaseForm(AssessmentForm):
    """Opening a case."""

    opened_on = DateField(_l("Opened on"), validators=[Optional()])


class StatusForm(Form):
    """A status change, with the closure reason when closing."""

    status = SelectField(_l("New status"), choices=CaseStatus.choices())
    reason = SelectField(_l("Reason for closing"), choices=_optional(ClosureReason),
                         default="")


class GoalForm(Form):
    """A goal of the case plan."""

    description = StringField(_l("Goal"), validators=[InputRequired(), Length(max=300)],
                              render_kw={"dir": "auto"})
    target_date = DateField(_l("Target date"), validators=[Optional()])
    responsible = SelectField(_l("Responsible"), choices=[], default="")


class GoalStatusForm(Form):
    """A goal's progress."""

    status = SelectField(_l("Status"), choices=GoalStatus.choices())


class NoteForm(Form):
    """A case note."""

    note_date = DateField(_l("Date"), validators=[Optional()])
    kind = SelectField(_l("Type"), choices=NoteKind.choices())
    text = TextAreaField(_l("Note"), validators=[InputRequired(), Length(max=5000)],
                         render_kw={"dir": "auto", "rows": 4})
    confidential = BooleanField(_l("Confidential: only me and the CSO manager"))
    due_date = DateField(_l("Follow up on"), validators=[Optional()])


class NoteEditForm(Form):
    """Correcting a note's text (the previous text is kept)."""

    text = TextAreaField(_l("Note"), validators=[InputRequired(), Length(max=5000)],
                         render_kw={"dir": "auto", "rows": 6})


class ReferralForm(Form):
    """A referral to a service."""

    service_type = SelectField(_l("Service"), choices=_optional(ServiceType), default="")
    provider = SelectField(_l("Provider"), choices=[], default="")
    proposed_on = DateField(_l("Proposed on"), validators=[Optional()])
    due_date = DateField(_l("Follow up on"), validators=[Optional()])


class ReferralUpdateForm(Form):
    """A referral moving on."""

    status = SelectField(_l("Status"), choices=ReferralStatus.choices())
    on = DateField(_l("On"), validators=[Optional()])
    outcome = StringField(_l("Result"), validators=[Optional(), Length(max=300)],
                          render_kw={"dir": "auto"})


class OutcomeForm(Form):
    """A result for the youth."""

    kind = SelectField(_l("Outcome"), choices=OutcomeKind.choices())
    on_date = DateField(_l("Date"), validators=[Optional()])
    sector = StringField(_l("Sector"), validators=[Optional(), Length(max=100)],
                         render_kw={"dir": "auto"})
    formal = SelectField(_l("Contract"), default="", choices=[
        ("", "—"), ("yes", _l("Formal")), ("no", _l("Informal"))])
    full_time = SelectField(_l("Time"), default="", choices=[
        ("", "—"), ("yes", _l("Full time")), ("no", _l("Part time"))])


class TransferForm(Form):
    """Asking another CSO to take the case."""

    to_organization = SelectField(_l("Transfer to"), choices=[], default="")
    consent_note = StringField(_l("How the young person (or guardian) agreed"),
                               validators=[Optional(), Length(max=300)],
                               render_kw={"dir": "auto"})


class ProviderForm(Form):
    """A service provider of the CSO's directory."""

    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)],
                       render_kw={"dir": "auto"})
    service_type = SelectField(_l("Service"), choices=ServiceType.choices())
    governorate_code = SelectField(_l("Governorate"), choices=[])
    phone = TelField(_l("Phone"), validators=[Optional(), Length(max=30)],
                     render_kw={"dir": "ltr"})
    address = StringField(_l("Address"), validators=[Optional(), Length(max=200)],
                          render_kw={"dir": "auto"})
    active = BooleanField(_l("Active"), default=True)


class DecisionForm(Form):
    """Accept or reject (the button pressed says which); only the CSRF token is checked."""

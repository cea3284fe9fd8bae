"""Forms of the beneficiaries blueprint. Site and governorate choices are set by the view."""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, HiddenField, RadioField, SelectField, StringField, TelField
from wtforms.validators import InputRequired, Length, Optional

from ...models import (
    ConsentGiver,
    ConsentMethod,
    ConsentScope,
    ExitReason,
    SchoolStatus,
    Sex,
    SiteKind,
    TitledEnum,
)
from .. import Form
from ..admin.forms import CheckboxListField

_RTL, _LTR = {"dir": "rtl"}, {"dir": "ltr"}


def _optional_choices(enum: type[TitledEnum], empty=None):
    return [("", empty or "—")] + enum.choices()


class ConsentFields:
    """Who consented, how, when, and to what."""

    consent_given_by = SelectField(
        _l("Consent given by"),
        choices=_optional_choices(ConsentGiver, _l("Not recorded yet")), default="")
    guardian_name = StringField(_l("Guardian name"), validators=[Optional(), Length(max=120)],
                                render_kw={"dir": "auto", "autocomplete": "off"})
    guardian_relationship = StringField(
        _l("Relationship to the young person"), validators=[Optional(), Length(max=60)],
        description=_l("Mother, father, legal guardian..."), render_kw={"dir": "auto"})
    guardian_phone = TelField(_l("Guardian phone"), validators=[Optional(), Length(max=30)],
                              render_kw={**_LTR, "inputmode": "tel", "autocomplete": "off"})
    consent_authority = StringField(
        _l("Authorising centre or authority"), validators=[Optional(), Length(max=200)],
        description=_l("Required for a minor in a rehabilitation centre."),
        render_kw={"dir": "auto"})
    consent_method = SelectField(_l("Consent method"),
                                 choices=_optional_choices(ConsentMethod), default="")
    consent_date = DateField(_l("Consent date"), validators=[Optional()])
    consent_scopes = CheckboxListField(_l("Consent covers"),
                                       choices=ConsentScope.choices(),
                                       default=["participation"])


class BeneficiaryForm(Form):
    """The record of a young person (without consent and enrolment: see RegistrationForm)."""

    first_name_ar = StringField(_l("First name (Arabic)"),
                                validators=[Optional(), Length(max=60)],
                                render_kw={**_RTL, "autocomplete": "off", "lang": "ar"})
    last_name_ar = StringField(_l("Last name (Arabic)"), validators=[Optional(), Length(max=60)],
                               render_kw={**_RTL, "autocomplete": "off", "lang": "ar"})
    first_name_latin = StringField(_l("First name (Latin letters)"),
                                   validators=[Optional(), Length(max=60)],
                                   render_kw={**_LTR, "autocomplete": "off"})
    last_name_latin = StringField(_l("Last name (Latin letters)"),
                                  validators=[Optional(), Length(max=60)],
                                  render_kw={**_LTR, "autocomplete": "off"})
    sex = RadioField(_l("Sex"), choices=Sex.choices(),
                     validators=[InputRequired(message=_l("This field is required."))])
    birth_date = DateField(_l("Date of birth"), validators=[Optional()])
    governorate_code = SelectField(_l("Governorate of residence"), choices=[])
    setting_kind = SelectField(_l("Setting"), choices=SiteKind.choices())
    phone = TelField(_l("Phone"), validators=[Optional(), Length(max=30)],
                     render_kw={**_LTR, "inputmode": "tel", "autocomplete": "off"})
    delegation = StringField(_l("Delegation"), validators=[Optional(), Length(max=80)],
                             render_kw={"dir": "auto"})
    school_status = SelectField(_l("School status"),
                                choices=_optional_choices(SchoolStatus), default="")
    disability = SelectField(_l("Disability"),
                             choices=[("", "—"), ("yes", _l("Yes")), ("no", _l("No"))],
                             default="")
    address = StringField(_l("Address"), validators=[Optional(), Length(max=200)],
                          render_kw={"dir": "auto", "autocomplete": "off"})
    first_contact_date = DateField(_l("Date of first contact"), validators=[Optional()])


class RegistrationForm(BeneficiaryForm, ConsentFields):
    """Registering a young person: the record, the consent and a first site."""

    site = SelectField(_l("Enrol at site"), choices=[], default="")
    confirmed_new = HiddenField(default="")


class ConsentForm(ConsentFields, Form):
    """Recording a new consent on an existing record."""


class WithdrawForm(Form):
    """The date consent was withdrawn."""

    withdrawn_on = DateField(_l("Withdrawn on"), validators=[Optional()])


class EnrolForm(Form):
    """Enrolling a youth at a site."""

    site = SelectField(_l("Site"), choices=[])
    start_date = DateField(_l("Start date"), validators=[Optional()])


class EndEnrolmentForm(Form):
    """Ending an enrolment."""

    end_date = DateField(_l("End date"), validators=[Optional()])
    exit_reason = SelectField(_l("Reason"), choices=_optional_choices(ExitReason),
                              default="")


class ConfirmCodeForm(Form):
    """A typed confirmation: the youth's code."""

    confirm = StringField(_l("Type the code to confirm"),
                          validators=[InputRequired(), Length(max=30)], render_kw=_LTR)


class ImportForm(Form):
    """A spreadsheet to import."""

    upload = FileField(_l("Spreadsheet (.csv or .xlsx, up to 5 MB, 10,000 rows)"),
                       validators=[FileRequired(message=_l("Choose a file."))])


class ImportConfirmForm(Form):
    """Decisions on possible duplicates (radio buttons `row-N`: "new" imports the row,
    "skip" does not); the form itself carries the CSRF token."""

"""Forms of the admin blueprint. Choices that come from the database are set by the view."""

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    EmailField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from ...models import OrgKind, Role, SiteKind
from .. import Form


def _language_choices():
    return [("", _l("Automatic")), ("ar", "العربية"), ("fr", "Français"), ("en", "English")]


class OrganizationForm(Form):
    """An organisation's identity and place."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=20)],
                       description=_l("Short unique code, e.g. BA. Used as the prefix of "
                                     "beneficiary codes."),
                       render_kw={"dir": "ltr", "autocapitalize": "characters"})
    name_ar = StringField(_l("Name in Arabic"), validators=[DataRequired(), Length(max=200)],
                          render_kw={"dir": "rtl"})
    name_fr = StringField(_l("Name in French"), validators=[DataRequired(), Length(max=200)],
                          render_kw={"dir": "ltr"})
    name_en = StringField(_l("Name in English"), validators=[DataRequired(), Length(max=200)],
                          render_kw={"dir": "ltr"})
    acronym = StringField(_l("Acronym"), validators=[Optional(), Length(max=30)])
    kind = SelectField(_l("Kind"), choices=OrgKind.choices())
    governorate_code = SelectField(_l("Governorate"), choices=[], validate_choice=True)
    locality = StringField(_l("Locality"), validators=[Optional(), Length(max=120)],
                           render_kw={"dir": "auto"})
    active = BooleanField(_l("Active"), default=True)


class CheckboxListField(SelectMultipleField):
    """Several choices shown as checkboxes (usable without JavaScript on a phone)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SiteForm(Form):
    """A site and the CSOs working there."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)],
                       render_kw={"dir": "auto"})
    kind = SelectField(_l("Setting"), choices=SiteKind.choices())
    governorate_code = SelectField(_l("Governorate"), choices=[])
    locality = StringField(_l("Locality"), validators=[Optional(), Length(max=120)],
                           render_kw={"dir": "auto"})
    organizations = CheckboxListField(_l("CSOs working here"), choices=[], coerce=int)
    active = BooleanField(_l("Active"), default=True)


class UserForm(Form):
    """A staff account. The organisation and role lists depend on who is editing."""

    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)],
                               render_kw={"dir": "auto"})
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)],
                       render_kw={"dir": "ltr"})
    role = SelectField(_l("Role"), choices=Role.choices())
    organization = SelectField(_l("Organisation"), choices=[], coerce=int)
    preferred_language = SelectField(_l("Language"), choices=_language_choices())


class ConfirmForm(Form):
    """An empty form: a POST button with its CSRF token."""


class EmergencyResetForm(Form):
    """An administrator's emergency reset of a CSO account: the reason its managers read."""

    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=500)],
                           render_kw={"dir": "auto", "rows": 3},
                           description=_l("The CSO's managers are shown this, with your "
                                          "name and the date, on their next login."))

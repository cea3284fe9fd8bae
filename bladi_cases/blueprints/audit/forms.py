"""Filters of the audit log (a GET form: bookmarkable, no CSRF needed)."""

from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional

from .. import Form


class AuditFilterForm(Form):
    """What to look for in the log."""

    class Meta:
        csrf = False

    action = SelectField(_l("Action"), choices=[], validators=[Optional()])
    organization = SelectField(_l("Organisation"), choices=[], validators=[Optional()])
    actor = StringField(_l("User email"), validators=[Optional(), Length(max=254)],
                        render_kw={"dir": "ltr"})
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])

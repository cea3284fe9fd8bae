"""Forms of the surveys blueprint (answers are read from the page by the views)."""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField

from .. import Form


class ImportSurveyForm(Form):
    """An XLSForm to import as a new version."""

    upload = FileField(_l("XLSForm (.xlsx or .xls)"),
                       validators=[FileRequired(_l("Choose a file."))])
    publish = BooleanField(_l("Publish this version now"))


class ConfirmForm(Form):
    """A button with its CSRF token."""

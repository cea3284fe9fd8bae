"""Import templates: a CSV and an XLSX (with a help sheet) in the user's language."""

from __future__ import annotations

from flask_babel import force_locale
from flask_babel import gettext as _
from openpyxl.utils import get_column_letter

from ...i18n import BABEL_LOCALES
from ...models import (
    ConsentGiver,
    ConsentMethod,
    ConsentScope,
    Organization,
    SchoolStatus,
    Sex,
    SiteKind,
)
from ..files import Sheet, csv_bytes, xlsx_bytes
from .imports import COLUMNS, header_labels, site_options


def template_csv(lang: str) -> bytes:
    """A CSV template: headers in the user's language, UTF-8 with BOM (Excel opens Arabic)."""
    return csv_bytes([header_labels(lang)])


def template_xlsx(lang: str, org: Organization) -> bytes:
    """An XLSX template: a data sheet with headers, and a help sheet of accepted values."""
    rtl = lang == "ar"
    data = Sheet("data", [header_labels(lang)], rtl=rtl,
                 widths={get_column_letter(i): 22 for i in range(1, len(COLUMNS) + 1)})
    with force_locale(BABEL_LOCALES.get(lang, BABEL_LOCALES["en"])):
        rows = [[_("Column"), _("Accepted values")]]
        labels = dict(COLUMNS)
        for key, enum in [
            ("sex", Sex), ("setting_kind", SiteKind), ("school_status", SchoolStatus),
            ("consent_given_by", ConsentGiver), ("consent_method", ConsentMethod),
            ("consent_scopes", ConsentScope),
        ]:
            rows.append([str(labels[key]), " / ".join(str(m.label) for m in enum)])
        rows.append([str(labels["site"]), " / ".join(s.name for s in site_options(org))])
        rows.append([str(labels["birth_date"]), "2010-03-25 / 25/03/2010"])
        rows.append([str(labels["disability"]), _("Yes") + " / " + _("No")])
        rows.append([str(labels["consent_scopes"]), _("Several values separated by commas.")])
        return xlsx_bytes([data, Sheet("help", rows, rtl=rtl, widths={"A": 32, "B": 90})])

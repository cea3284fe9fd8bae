"""Import templates: a CSV and an XLSX (with a help sheet) in the user's language."""

from __future__ import annotations

import csv
import io

import openpyxl
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
from .imports import COLUMNS, header_labels, site_options


def template_csv(lang: str) -> bytes:
    """A CSV template: headers in the user's language, UTF-8 with BOM (Excel opens Arabic)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(header_labels(lang))
    return buffer.getvalue().encode("utf-8-sig")


def template_xlsx(lang: str, org: Organization) -> bytes:
    """An XLSX template: a data sheet with headers, and a help sheet of accepted values."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "data"
    sheet.append(header_labels(lang))
    sheet.sheet_view.rightToLeft = lang == "ar"
    for index in range(1, len(COLUMNS) + 1):
        sheet.column_dimensions[get_column_letter(index)].width = 22
    help_sheet = workbook.create_sheet("help")
    help_sheet.sheet_view.rightToLeft = lang == "ar"
    with force_locale(BABEL_LOCALES.get(lang, BABEL_LOCALES["en"])):
        help_sheet.append([_("Column"), _("Accepted values")])
        rows = [
            ("sex", Sex), ("setting_kind", SiteKind), ("school_status", SchoolStatus),
            ("consent_given_by", ConsentGiver), ("consent_method", ConsentMethod),
            ("consent_scopes", ConsentScope),
        ]
        labels = dict(COLUMNS)
        for key, enum in rows:
            help_sheet.append([str(labels[key]), " / ".join(str(m.label) for m in enum)])
        help_sheet.append([str(labels["site"]), " / ".join(s.name for s in site_options(org))])
        help_sheet.append([str(labels["birth_date"]), "2010-03-25 / 25/03/2010"])
        help_sheet.append([str(labels["disability"]), _("Yes") + " / " + _("No")])
        help_sheet.append([str(labels["consent_scopes"]),
                           _("Several values separated by commas.")])
    help_sheet.column_dimensions["A"].width = 32
    help_sheet.column_dimensions["B"].width = 90
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()

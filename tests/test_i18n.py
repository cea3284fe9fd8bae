"""Languages: choice order, direction, formatting, and complete, fresh catalogs."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bladi_cases.extensions import db
from bladi_cases.models import Role

from .conftest import _clear_g, login

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"


def _html_tag(response) -> str:
    html = response.get_data(as_text=True)
    return html[html.index("<html"):html.index(">", html.index("<html")) + 1]


def test_arabic_is_the_default(client):
    assert _html_tag(client.get("/login")) == '<html lang="ar" dir="rtl">'


@pytest.mark.parametrize("header,expected", [
    ("fr-FR,fr;q=0.9", '<html lang="fr" dir="ltr">'),
    ("en-US,en;q=0.8", '<html lang="en" dir="ltr">'),
    ("de-DE", '<html lang="ar" dir="rtl">'),
])
def test_accept_language(client, header, expected):
    assert _html_tag(client.get("/login", headers={"Accept-Language": header})) == expected


def test_cookie_beats_accept_language_and_preference_beats_cookie(client, make_user):
    client.set_cookie("lang", "en", domain="bladi.test")
    assert 'lang="en"' in _html_tag(client.get("/login", headers={"Accept-Language": "fr"}))
    user = make_user(Role.FIELD_WORKER, preferred_language="fr")
    login(client, user)
    assert 'lang="fr"' in _html_tag(client.get("/"))


def test_switcher_sets_cookie_and_saves_preference(client, make_user):
    response = client.post("/language", data={"lang": "fr", "next": "/login"})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "lang=fr" in response.headers["Set-Cookie"]
    assert 'lang="fr"' in _html_tag(client.get("/login"))
    user = make_user(Role.FIELD_WORKER)
    login(client, user)
    client.post("/language", data={"lang": "en", "next": "https://evil.example/"})
    db.session.refresh(user)
    assert user.preferred_language == "en"
    # Unknown languages are ignored, not stored.
    client.post("/language", data={"lang": "xx"})
    db.session.refresh(user)
    assert user.preferred_language == "en"


def test_every_page_has_the_switcher_and_french_strings(client):
    page = client.get("/login", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Se connecter" in page or "Connexion" in page
    assert 'name="lang" value="ar"' in page and 'name="lang" value="en"' in page


def test_dates_and_numbers_use_western_digits_day_first(app):
    from flask_babel import format_date, format_decimal

    with app.test_request_context(headers={"Accept-Language": "ar"}):
        _clear_g()  # Flask-Babel caches the locale on g, shared with the test's app context
        shown = format_date(date(2026, 11, 29), "short")
        assert shown.replace("\u200f", "").startswith("29") and "٢" not in shown
        assert format_decimal(12345) in ("12.345", "12345", "12,345")
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        _clear_g()
        assert format_date(date(2026, 11, 29), "short").startswith("29/11")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        _clear_g()
        assert format_date(date(2026, 11, 29), "short").startswith("29/11")
        assert format_date(date(2026, 11, 29), "medium").startswith("29 Nov")


@pytest.mark.parametrize("lang", ["ar", "fr"])
def test_catalog_is_complete(lang):
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    missing = [m.id for m in catalog if m.id and (
        m.fuzzy or not m.string or (isinstance(m.string, tuple) and not all(m.string)))]
    assert missing == [], f"{lang}: untranslated or fuzzy: {missing[:10]}"
    problems = [(m.id, errs) for m, errs in catalog.check()]
    assert problems == [], problems


def test_catalogs_are_not_stale(tmp_path):
    """Every string in the code is in the catalogs, and the catalogs hold nothing obsolete."""
    pot = tmp_path / "fresh.pot"
    subprocess.run([Path(sys.executable).parent / "pybabel", "extract", "-F", "babel.cfg",
                    "-k", "_l", "-k", "lazy_gettext", "-o", str(pot), "."],
                   cwd=ROOT, check=True, capture_output=True)
    with pot.open("rb") as handle:
        fresh = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    for lang in ("ar", "fr", "en"):
        with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
            catalog = read_po(handle)
        known = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
        assert sorted(fresh - known) == [], f"{lang}: run `make update-catalogs` and translate"
        assert sorted(known - fresh) == [], f"{lang}: obsolete messages; run update-catalogs"


@pytest.mark.parametrize("language, message", [("ar", "هذا الحقل مطلوب."),
                                               ("fr", "Ce champ est requis."),
                                               ("en", "This field is required.")])
def test_wtforms_own_messages_follow_the_request_language(app, language, message):
    """WTForms' own messages come from its catalogue, read once per process
    (i18n.WTFormsMessages), in each request's language."""
    from flask_wtf import FlaskForm
    from wtforms import StringField
    from wtforms.validators import DataRequired

    class Form(FlaskForm):
        class Meta:
            csrf = False

        name = StringField(validators=[DataRequired()])

    from bladi_cases import i18n

    hits = i18n._wtforms_catalogue.cache_info().hits
    for _ in range(2):  # the second request reads the kept catalogue
        with app.test_request_context("/login", method="POST", data={},
                                      headers={"Accept-Language": language}):
            app.preprocess_request()
            form = Form()
            assert not form.validate()
            assert form.name.errors == [message]
    assert i18n._wtforms_catalogue.cache_info().hits > hits


@pytest.mark.parametrize("lang", ["ar", "fr", "en"])
def test_the_formatters_for_many_values_write_what_flask_babel_writes(app, lang):
    """`date_formatter` and `number_formatter` (the calendar's and the roster's, which look
    the format and locale up once) give Flask-Babel's own text in every language."""
    from datetime import date

    from flask_babel import force_locale, format_date, format_decimal

    from bladi_cases.i18n import BABEL_LOCALES, date_formatter, number_formatter

    with app.test_request_context(), force_locale(BABEL_LOCALES[lang]):
        spelled, decimal = date_formatter(), number_formatter()
        for day in (date(2026, 1, 5), date(2027, 11, 30)):
            assert spelled(day) == format_date(day)
        for value in (0, 1.5, 1234.25, 12.0):
            assert decimal(value) == format_decimal(value)

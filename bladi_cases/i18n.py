"""Language choice and locale-aware formatting (Flask-Babel wrapped in one place)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date

from babel import Locale, dates, numbers, support
from flask import has_request_context, request
from flask_babel import format_date, format_datetime, format_decimal, get_babel, get_locale
from flask_login import current_user
from wtforms.i18n import messages_path

LANGUAGES = ("ar", "fr", "en")
# Babel locales used for formatting: Western digits and the day first in all three
# (ar_TN, fr_TN, and en_GB rather than en_US).
BABEL_LOCALES = {"ar": "ar_TN", "fr": "fr_TN", "en": "en_GB"}
LANGUAGE_NAMES = {"ar": "العربية", "fr": "Français", "en": "English"}
COOKIE_NAME = "lang"


def chosen_language() -> str:
    """The UI language: saved preference -> cookie -> Accept-Language -> Arabic.

    Outside a request (the command line) messages are in English, for the operator.
    """
    if not has_request_context():
        return "en"
    lang = None
    user = current_user._get_current_object() if current_user else None
    if user is not None and user.is_authenticated and user.preferred_language in LANGUAGES:
        lang = user.preferred_language
    if lang is None and request.cookies.get(COOKIE_NAME) in LANGUAGES:
        lang = request.cookies[COOKIE_NAME]
    if lang is None:
        lang = request.accept_languages.best_match(LANGUAGES)
    return lang or "ar"


def select_locale() -> str:
    """Flask-Babel's locale selector."""
    return BABEL_LOCALES[chosen_language()]


def ui_language() -> str:
    """The two-letter UI language of the current request (for `name_<lang>` fields)."""
    locale = get_locale()
    return locale.language if locale is not None else "ar"


def text_direction() -> str:
    """'rtl' or 'ltr' for the current locale, as Babel knows it."""
    locale = get_locale() or Locale.parse("ar_TN")
    return locale.text_direction


def date_formatter() -> Callable[[date], str]:
    """`flask_babel.format_date` for a page that formats many dates (a calendar): the same
    format (the app's `date` format) and the request's locale, each looked up once, not per
    date."""
    formats, locale = get_babel().instance.date_formats, get_locale()
    pattern = formats["date"]
    if pattern in ("short", "medium", "full", "long"):
        pattern = formats[f"date.{pattern}"] or pattern
    return functools.partial(dates.format_date, format=pattern, locale=locale)


def number_formatter() -> Callable[[float], str]:
    """`flask_babel.format_decimal` for a page that formats many numbers: the request's
    locale looked up once."""
    return functools.partial(numbers.format_decimal, locale=get_locale())


def template_helpers() -> dict:
    """Names every template can use."""
    return {
        "ui_language": ui_language,
        "text_direction": text_direction,
        "LANGUAGE_NAMES": LANGUAGE_NAMES,
        "format_date": format_date,
        "format_datetime": format_datetime,
        "format_number": format_decimal,
    }


@functools.cache
def _wtforms_catalogue(locale: str) -> support.Translations:
    """WTForms' own messages ("This field is required."…) in one locale, read once."""
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class WTFormsMessages:
    """WTForms' own messages in the request's language, for Flask-WTF.

    Flask-WTF reads the catalogue from disk on the first form of every request (0.4 ms,
    for a file that never changes while the app runs); it takes the one it finds on the
    request instead, so this object is put there (`init_i18n`) and picks the catalogue of
    the request's locale, read once per process, at each message."""

    def ugettext(self, string: str) -> str:
        return _wtforms_catalogue(str(get_locale())).ugettext(string)

    def ungettext(self, singular: str, plural: str, n: int) -> str:
        return _wtforms_catalogue(str(get_locale())).ungettext(singular, plural, n)


WTFORMS_MESSAGES = WTFormsMessages()

"""Coded values carry their own translated titles (TitledEnum.__titles__): every member has
one, every title is translated, templates reach them as `enums.<Name>`, and no hand-kept
label dict comes back beside an enum."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask_babel import force_locale

from bladi_cases.models import Sex, titled_enums

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bladi_cases"
ENUMS = titled_enums()
# The only label collections left, each for something that is not a set of stored codes:
# weekday names indexed by number (Monday = 0).
ALLOWED_LABEL_COLLECTIONS = {"WEEKDAY_LABELS"}


def _catalog(lang: str) -> dict:
    with (ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return {m.id: m for m in read_po(handle) if m.id}


def test_the_enums_are_found_without_a_list():
    assert {"Sex", "Role", "CaseStatus", "ServiceType", "RiskLevel", "BeneficiaryStatus",
            "Wave", "ReportStatus", "GroupAgeBand"} <= set(ENUMS)
    assert all(ENUMS[name].__name__ == name for name in ENUMS)


@pytest.mark.parametrize("enum", list(ENUMS.values()), ids=list(ENUMS))
def test_every_member_has_a_title_and_every_title_a_member(enum):
    values = [member.value for member in enum]
    assert [v for v in values if v not in enum.__titles__] == [], "members without a title"
    assert [k for k in enum.__titles__ if k not in values] == [], "titles without a member"
    assert [value for value, _label in enum.choices()] == values  # member order


@pytest.mark.parametrize("lang", ["ar", "fr"])
def test_every_title_is_translated(app, lang):
    catalog = _catalog(lang)
    problems = []
    for name, enum in ENUMS.items():
        for member in enum:
            title = member.label
            if isinstance(title, str):
                # A plain string is only for titles that read the same in every language.
                if any(char.isalpha() for char in title):
                    problems.append(f"{name}.{member.name}: {title!r} is not translatable")
                continue
            with force_locale("en"):
                msgid = str(title)
            message = catalog.get(msgid)
            if message is None or not message.string or message.fuzzy:
                problems.append(f"{name}.{member.name}: {msgid!r} untranslated in {lang}")
                continue
            with force_locale(lang):
                if str(title) != message.string:
                    problems.append(f"{name}.{member.name}: {msgid!r} does not render "
                                    f"as the {lang} catalog says (run `make translations`)")
    assert problems == []


def test_label_of_takes_raw_stored_values(app):
    with force_locale("fr"):
        assert str(Sex.label_of("female")) == str(Sex.FEMALE.label) == "Féminin"
    assert Sex.label_of("unknown") == "unknown"
    assert Sex.label_of(None) == ""
    assert list(Sex.labels()) == ["female", "male"]


def test_templates_see_every_enum_and_name_only_existing_ones(app):
    namespace = app.jinja_env.globals["enums"]
    assert {name: getattr(namespace, name) for name in ENUMS} == ENUMS
    used = {(path.relative_to(PACKAGE).as_posix(), name)
            for path in (PACKAGE / "templates").rglob("*.html")
            for name in re.findall(r"\benums\.(\w+)", path.read_text(encoding="utf-8"))}
    assert used, "the templates no longer use `enums`?"
    assert sorted((path, name) for path, name in used if name not in ENUMS) == []


def test_no_hand_kept_label_dicts():
    found = {(path.relative_to(ROOT).as_posix(), name)
             for path in PACKAGE.rglob("*.py")
             for name in re.findall(r"^\s*(\w*_LABELS)\s*=", path.read_text(encoding="utf-8"),
                                    re.M)}
    assert sorted(f for f in found if f[1] not in ALLOWED_LABEL_COLLECTIONS) == [], (
        "give the enum a __titles__ instead")
    assert len(ALLOWED_LABEL_COLLECTIONS) <= 3


def test_printed_labels_read_as_the_templates_print_them(app):
    """`printed` and `labeller` (views that put a label into text of their own): the title
    in the current language, unescaped; a stored value that is no member escaped; None
    empty. A labeller translates each value once, then gives the same text."""
    from flask import render_template_string
    from markupsafe import Markup

    with app.test_request_context(), force_locale("ar"):
        assert Sex.printed("female") == "أنثى" and isinstance(Sex.printed("female"), Markup)
        assert Sex.printed('<b>"x"</b>') == "&lt;b&gt;&#34;x&#34;&lt;/b&gt;"
        assert Sex.printed(None) == ""
        label = Sex.labeller()
        assert label("female") is label("female")
        for value in ("female", "male", '<i>', None):
            assert label(value) == Sex.printed(value) == render_template_string(
                "{{ enums.Sex.label_of(value) }}", value=value)

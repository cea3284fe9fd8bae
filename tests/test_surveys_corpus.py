"""The public XLSForm corpus (tests/data/xlsforms/) says where every form comes from.

Each form was written by others and is kept under its own licence: SOURCES.csv must name the
repository, the path in it, the release, the licence and the SHA-256 of every file, and list
no file that is missing. The importer's acceptance of the corpus is measured by
tests/xlsform_corpus.py.

Issue 17's rule: each form pyxform converts is accepted by the full import path, or refused
only for features declared out of scope in the app (xlsform_rules.OUT_OF_SCOPE: media and
geo, SMS, ODK submission and encryption settings, other clients' attributes, the phone's
identifiers, forms that need attached files; the README says why), each refusal carrying
its feature key. Forms refused today for
in-scope features still being built are strict xfails from the explicit list OPEN, so the
list must shrink as features land. Skip logic, constraints and calculations of scripted forms
are checked against the XForm in tests/test_browser_surveys_corpus.py.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import PurePosixPath

import pytest

from bladi_cases.services.surveys.xlsform_rules import OUT_OF_SCOPE
from tests.xlsform_corpus import CORPUS, forms, pyxform_check, read_sources

# Licences a form may come under; each one's text is kept in LICENSES/.
LICENCES = {"BSD-2-Clause": "BSD-2-Clause.", "MIT": "MIT."}
COLUMNS = ["file", "repository", "path", "release", "package", "licence", "sha256"]


def test_sources_has_the_expected_columns():
    with (CORPUS / "SOURCES.csv").open(encoding="utf-8") as fh:
        assert fh.readline().strip().split(",") == COLUMNS


def test_every_form_is_listed_once_with_its_origin_and_licence():
    rows = read_sources()
    listed = [row["file"] for row in rows]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    on_disk = {path.name for path in forms()}
    assert on_disk - set(listed) == set(), "forms missing from SOURCES.csv"
    assert set(listed) - on_disk == set(), "SOURCES.csv lists files that are not there"
    assert len(on_disk) >= 40
    for row in rows:
        assert all(row[column].strip() for column in COLUMNS), row
        assert "/" in row["repository"], row
        assert PurePosixPath(row["path"]).suffix == PurePosixPath(row["file"]).suffix, row
        assert row["licence"] in LICENCES, row


def test_forms_are_the_published_bytes():
    for row in read_sources():
        data = (CORPUS / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["file"]
        assert len(data) <= 1_000_000, row["file"]


def test_every_licence_used_has_its_text():
    texts = [path.name for path in (CORPUS / "LICENSES").iterdir()]
    for licence in {row["licence"] for row in read_sources()}:
        assert any(name.startswith(LICENCES[licence]) for name in texts), licence


# --- Acceptance: each pyxform-valid form is accepted, or refused only as out of scope ------

class StillOpenError(Exception):
    """A form refused only for in-scope features listed in OPEN (work still under way)."""


# (form, feature) refused today for a feature that is in scope (issue 17) but not built yet.
# A feature is a Refusal's key (xlsform_rules: a column key, a type, "language"…), or, for a
# message that names none, "?" and a piece of its English text. When one lands, its form's
# strict xfail flips (or the stale pair fails the test): shrink this list.
OPEN: dict[str, set[str]] = {}

# Forms pyxform converts only because it runs without ODK Validate: what they hold is not an
# expression at all, so refusing them is right (a refusal of any kind passes).
BROKEN = {
    "pyxform__bad_calc.xlsx": "the calculation is prose (“because pyxform doesn't know…”)",
    # pyxform writes the filter as is: itemset nodeset="instance('names_list')/root/item[
    # label::English != '']", whose items hold only <itextId> and <name>. `label::` is read
    # as an XPath axis, which JavaRosa refuses (ASTNodePathStep.validateAxisName knows only
    # the 13 XPath 1.0 axes), as the server's evaluator does ("axis 'label::' not found").
    "pyxform__bug_xl_date_ambiguous.xlsx": "a choice_filter “label::English != ''”",
}


@functools.cache
def _pyxform_valid() -> tuple[str, ...]:
    return tuple(path.name for path in forms() if pyxform_check(path)[0])


def _feature(message, listed: set[str]) -> str:
    """The message's feature key; for a message without one, the "?piece" of OPEN it holds,
    else "?" and its text."""
    key = getattr(message, "feature", None)
    if key:
        return key
    pieces = [p for p in listed if p.startswith("?") and p[1:] in str(message)]
    return pieces[0] if pieces else "?" + str(message)


def import_refusals(app, path) -> dict[str, list[str]]:
    """The full import path (import_version: parse, evaluate every expression, store; the
    test's transaction is rolled back), in English: the refusal messages by feature; {} if
    the form is accepted."""
    from bladi_cases.services import ValidationError
    from bladi_cases.services.surveys.surveys import import_version
    from bladi_cases.services.surveys.xlsform import XLSFormError, parse_xlsform

    by_feature: dict[str, list[str]] = {}
    with app.test_request_context(headers={"Accept-Language": "en"}):
        try:
            parse_xlsform(path.read_bytes(), path.name)  # every message (the page caps them)
            import_version(None, path.read_bytes(), None, filename=path.name)
        except XLSFormError as error:
            messages = error.messages
        except ValidationError as error:
            messages = [m for ms in error.errors.values() for m in ms]
        else:
            return {}
    for message in messages:
        by_feature.setdefault(_feature(message, OPEN.get(path.name, set())),
                              []).append(str(message))
    return by_feature


def _cases():
    for name in _pyxform_valid():
        marks = [pytest.mark.xfail(strict=True, raises=StillOpenError,
                                   reason=f"in scope, not built yet: {sorted(OPEN[name])}")
                 ] if name in OPEN else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", _cases())
def test_pyxform_valid_form_is_accepted_or_refused_only_as_out_of_scope(app, name):
    refused = import_refusals(app, CORPUS / name)
    if name in BROKEN:
        assert refused, f"{name} is accepted although {BROKEN[name]}"
        return
    unexpected = {f: ms for f, ms in refused.items() if f not in OUT_OF_SCOPE}
    listed = OPEN.get(name, set())
    other = {f: ms for f, ms in unexpected.items() if f not in listed}
    assert not other, f"{name} is refused for what is neither out of scope nor listed " \
        f"open: {other}"
    assert not listed - set(unexpected), \
        f"{name}: no longer refused for {sorted(listed - set(unexpected))}; shrink OPEN"
    if unexpected:
        raise StillOpenError(f"{name}: {sorted(unexpected)}")


def test_corpus_figures(app, record_property):
    """The figures the issue asks for (printed with -s, recorded in the JUnit report)."""
    valid = _pyxform_valid()
    outcome = {name: import_refusals(app, CORPUS / name) for name in valid}
    accepted = [n for n, r in outcome.items() if not r]
    broken = [n for n in outcome if n in BROKEN]
    out_of_scope = [n for n, r in outcome.items() if r and set(r) <= OUT_OF_SCOPE]
    still_open = [n for n, r in outcome.items() if set(r) - OUT_OF_SCOPE and n not in BROKEN]
    figures = {"forms": len(forms()), "pyxform_valid": len(valid), "accepted": len(accepted),
               "refused_out_of_scope": len(out_of_scope), "refused_open": len(still_open),
               "refused_not_xpath": len(broken)}
    for key, number in figures.items():
        record_property(key, number)
    print("\ncorpus:", figures)
    assert len(valid) >= 40
    assert sorted(still_open) == sorted(n for n in OPEN if n in valid)


def test_media_and_geo_types_are_refused_under_their_out_of_scope_key():
    from pyxform.question_type_dictionary import QUESTION_TYPE_DICT

    from bladi_cases.services.surveys.xlsform_rules import type_feature

    media = [k for k, v in QUESTION_TYPE_DICT.items()
             if (v.get("bind") or {}).get("type") in ("binary", "geopoint", "geotrace",
                                                      "geoshape", "barcode")
             and k != "audit"]
    assert "gps" in media and "add image prompt" in media
    assert {k: type_feature(k) for k in media if type_feature(k) not in OUT_OF_SCOPE} == {}
    assert type_feature("begin repeat") not in OUT_OF_SCOPE
    assert type_feature("select_one colors or_other") == "or_other"

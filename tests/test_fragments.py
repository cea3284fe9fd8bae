"""Parts of pages kept per process (bladi_cases/fragments.py): the URLs made from a pattern
are url_for's own, under any app root; a fragment is made once per key, not kept while
templates reload, and the kept ones are bounded."""

from __future__ import annotations

import uuid

import pytest
from flask import url_for

from bladi_cases import fragments


@pytest.mark.parametrize("root", ["", "/bladi", "/a/b"])
def test_a_url_from_its_pattern_is_url_fors_under_any_root(app, root):
    youth, survey = uuid.uuid4(), uuid.uuid4()
    make = fragments.url_maker("surveys.fill", "survey_id", "beneficiary", wave="WAVE")
    show = fragments.url_maker("beneficiaries.show", "beneficiary_id")
    with app.test_request_context("/", environ_overrides={"SCRIPT_NAME": root}):
        assert make(survey_id=survey, beneficiary=youth) == url_for(
            "surveys.fill", survey_id=survey, beneficiary=youth, wave="WAVE")
        assert show(beneficiary_id=youth) == url_for("beneficiaries.show",
                                                     beneficiary_id=youth)
        assert show(beneficiary_id=youth).startswith(root + "/")


def test_a_url_pattern_takes_at_most_three_record_ids():
    with pytest.raises(ValueError):
        fragments.url_maker("cases.show", "a", "b", "c", "d")


def test_a_fragment_is_made_once_per_key_and_the_kept_ones_are_bounded(app, monkeypatch):
    made: list[str] = []

    def render(text: str):
        return lambda: made.append(text) or f"<p>{text}</p>"

    monkeypatch.setattr(app.jinja_env, "auto_reload", False)
    monkeypatch.setattr(fragments, "FRAGMENT_LIMIT", 3)
    with app.test_request_context("/"):
        app.extensions.pop("bladi_fragments", None)
        for _round in range(2):
            assert fragments.kept_fragment("test", "a", render("a")) == "<p>a</p>"
            assert fragments.kept_fragment("test", "b", render("b")) == "<p>b</p>"
        assert made == ["a", "b"]
        for key in "cde":
            fragments.kept_fragment("test", key, render(key))
        assert len(app.extensions["bladi_fragments"]["test"]) <= 3
        # While templates reload when edited, nothing is kept.
        monkeypatch.setattr(app.jinja_env, "auto_reload", True)
        made.clear()
        fragments.kept_fragment("test", "z", render("z"))
        fragments.kept_fragment("test", "z", render("z"))
        assert made == ["z", "z"]

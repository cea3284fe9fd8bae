"""The password policy (ASVS V2.1): 12 characters or more of any kind, no composition rules,
refused when zxcvbn guesses it early (common passwords, patterns, the user's name or email,
the app's name), with zxcvbn's advice in the user's language."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import zxcvbn

from bladi_cases.extensions import db
from bladi_cases.models import Role
from bladi_cases.seed import DEMO_USERS
from bladi_cases.services.auth import passwords, strength
from bladi_cases.services.auth.passwords import MIN_PASSWORD_LENGTH, password_problems

from .conftest import TEST_PASSWORD, _clear_g, login, text_of

NAME, EMAIL = "Karim Ben Ali", "karim.benali@example.tn"


@pytest.fixture
def in_language(app):
    """Run the policy inside a request in a given language."""
    contexts = []

    def enter(lang: str):
        context = app.test_request_context(headers={"Accept-Language": lang})
        context.push()
        contexts.append(context)
        _clear_g()

    yield enter
    for context in reversed(contexts):
        context.pop()
    _clear_g()


@pytest.mark.parametrize("password", ["1234567890", "password12", "password1234",
                                      "qwertyuiopas", "aaaaaaaaaaaaaaaa", "abcdefghijklmnop",
                                      "bladi-cases-2024", "amideast1234"])
def test_common_and_guessable_passwords_are_refused(in_language, password):
    in_language("en")
    problems = password_problems(password, email=EMAIL, display_name=NAME)
    assert "This password is too easy to guess." in problems, problems


@pytest.mark.parametrize("password", ["karimbenali2024", "KarimBenAli!!!!", "karim.benali-1990",
                                      "benali.karim@1", "Karim Ben Ali 2026"])
def test_passwords_built_on_the_name_or_email_are_refused(in_language, password):
    in_language("en")
    assert password_problems(password, email=EMAIL, display_name=NAME)


def test_the_name_is_what_makes_it_guessable(in_language):
    in_language("en")
    assert password_problems("karimbenali2024") == [], "a stranger's name is no problem"
    assert "Avoid your name, your email and the name of the app." in password_problems(
        "karimbenali2024", display_name=NAME)


def test_eleven_characters_are_refused_twelve_are_enough(in_language):
    in_language("en")
    assert MIN_PASSWORD_LENGTH == 12
    assert password_problems("Qz7vR2pLmXw", email=EMAIL, display_name=NAME) == [
        "Use at least 12 characters."]
    assert password_problems("Qz7vR2pLmXwK", email=EMAIL, display_name=NAME) == []


@pytest.mark.parametrize("password", [
    "lantern copper river quietly",
    "صباح الياسمين في مدينة صفاقس القديمة",
    "the olive press by the old harbour smells of rain in november " * 3,
])
def test_long_passphrases_of_any_characters_are_accepted(in_language, password):
    in_language("en")
    assert password_problems(password, email=EMAIL, display_name=NAME) == []


def test_no_composition_rules(in_language):
    in_language("en")
    for password in ("lowercase words only here", "ALLUPPERCASE WORDS HERE TOO",
                     "7391 4826 5503 1948 2276"):
        assert password_problems(password) == [], password


def test_over_200_characters_is_refused_without_scoring(in_language, monkeypatch):
    in_language("en")
    monkeypatch.setattr(strength, "zxcvbn", lambda *a, **k: pytest.fail("scored"))
    assert password_problems("lantern copper " * 14) == ["Use at most 200 characters."]


def test_only_the_first_characters_are_scored(in_language, monkeypatch):
    """A crafted long password costs zxcvbn seconds: only SCORED_CHARS are given to it."""
    in_language("en")
    scored = []
    real = strength.zxcvbn

    def spy(password, **kwargs):
        scored.append(password)
        return real(password, **kwargs)

    monkeypatch.setattr(strength, "zxcvbn", spy)
    password_problems("4@8({[<3691!|70$5+%2" * 10)
    assert [len(p) for p in scored] == [strength.SCORED_CHARS]


def test_the_user_and_the_app_are_among_the_first_words_tried():
    words = strength.personal_words("Karim.BenAli+x@Example.tn", "  Karim   Ben Ali ")
    assert {"karim.benali+x@example.tn", "karim.benali+x", "karim", "benali", "ben", "ali",
            "karim ben ali", "karimbenali", "bladi", "bladi cases", "amideast"} <= set(words)
    assert all(len(w) >= 3 for w in words)


def test_the_advice_is_translated_into_arabic_and_french(in_language):
    in_language("ar")
    arabic = password_problems("password1234")
    assert arabic == ["كلمة المرور هذه سهلة التخمين.", "هذه كلمة مرور شائعة جدًا.",
                      "أضف كلمة أو كلمتين. الكلمات غير الشائعة أفضل."]
    assert password_problems("karimbenali2024", email=EMAIL, display_name=NAME)[0] == \
        "يجب ألا تتضمن كلمة المرور اسمك أو بريدك الإلكتروني."
    in_language("fr")
    french = password_problems("abcdefghijklmnop")
    assert "Ce mot de passe est trop facile à deviner." in french
    assert "Les suites comme « abc » ou « 6543 » sont faciles à deviner." in french


def _sentences_zxcvbn_can_say() -> set[str]:
    """Every string the installed zxcvbn passes to gettext in its feedback module."""
    source = Path(zxcvbn.__file__).with_name("feedback.py").read_text(encoding="utf-8")
    return {node.args[0].value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_"
            and node.args and isinstance(node.args[0], ast.Constant)}


def test_every_sentence_zxcvbn_can_say_is_translated(in_language):
    sentences = _sentences_zxcvbn_can_say()
    assert len(sentences) >= 25, "the feedback module was not read"
    assert sorted(sentences - set(strength.FEEDBACK)) == []
    for lang in ("ar", "fr"):
        in_language(lang)
        untranslated = [s for s in sentences if strength.translated(s) == s]
        assert untranslated == [], lang


def test_an_unknown_sentence_gets_a_general_hint(in_language):
    in_language("fr")
    assert strength.translated("Some advice a newer zxcvbn gives.") == \
        "Choisissez un mot de passe plus long, fait de quelques mots peu courants."


def test_the_passwords_we_ship_meet_the_policy(in_language):
    """Demo accounts (README, load tests, benchmarks) and the tests' default password."""
    in_language("en")
    for demo in DEMO_USERS:
        assert password_problems(demo.password, email=demo.email, display_name=demo.name) == []
    assert password_problems(TEST_PASSWORD, email="field_worker1@example.tn",
                             display_name="Tester field_worker 1") == []
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert all(f"| {demo.password} |" in readme for demo in DEMO_USERS)


def test_the_change_password_page_shows_the_advice_and_changes_nothing(client, make_user):
    user = make_user(Role.FIELD_WORKER, email="karim.benali@example.tn", display_name=NAME)
    before = user.password_hash
    login(client, user)
    response = client.post("/account/password", data={
        "current_password": TEST_PASSWORD, "new_password": "password1234",
        "confirm": "password1234"})
    assert response.status_code == 422
    page = text_of(response)
    assert "كلمة المرور هذه سهلة التخمين." in page and "هذه كلمة مرور شائعة جدًا." in page
    db.session.refresh(user)
    assert user.password_hash == before


def test_the_command_line_generates_a_password_that_meets_the_policy(in_language, monkeypatch):
    in_language("en")
    generated = []
    real = passwords.password_problems

    def spy(password, **kwargs):
        problems = real(password, **kwargs)
        generated.append(problems)
        return problems

    import bladi_cases.services.admin as admin_service

    monkeypatch.setattr(admin_service, "password_problems", spy)
    from flask import current_app

    result = current_app.test_cli_runner().invoke(args=[
        "users", "create", "--email", "generated@example.tn", "--name", "Generated Admin",
        "--role", "admin"])
    assert result.exit_code == 0, result.output
    assert generated == [[]]

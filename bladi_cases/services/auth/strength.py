"""How guessable a proposed password is (zxcvbn), and its advice in the user's language.

zxcvbn ships frequency lists of common passwords, words and names, and estimates how many
guesses an attacker needs, counting the user's own name and email (and the app's name) as
the first words to try. Its advice comes as fixed English sentences: each one it can
return is mapped here to a translated string (tests/test_auth_passwords.py reads the
installed package's feedback module and fails on any sentence missing from the map).
"""

from __future__ import annotations

import re
import threading

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from zxcvbn import zxcvbn

MIN_SCORE = 3  # zxcvbn's 0..4 scale: 3 is "safely unguessable" (at least 10^8 guesses)
# Words an attacker tries first against any account of this app.
APP_WORDS = ("bladi", "bladi cases", "bladicases", "bladi-cases", "amideast")
# zxcvbn's l33t matching grows steeply with length (a crafted 200-character password
# costs seconds of CPU); only the first characters are scored. A longer password whose
# start is hard to guess is at least as hard to guess as its start.
SCORED_CHARS = 48
# zxcvbn keeps the user inputs in module-level state while it runs: one run at a time.
_ZXCVBN_LOCK = threading.Lock()

FEEDBACK = {
    # warnings
    "Straight rows of keys are easy to guess.": _l("Straight rows of keys are easy to guess."),
    "Short keyboard patterns are easy to guess.":
        _l("Short keyboard patterns are easy to guess."),
    'Repeats like "aaa" are easy to guess.': _l('Repeats like "aaa" are easy to guess.'),
    'Repeats like "abcabcabc" are only slightly harder to guess than "abc".':
        _l('Repeats like "abcabcabc" are only slightly harder to guess than "abc".'),
    'Sequences like "abc" or "6543" are easy to guess.':
        _l('Sequences like "abc" or "6543" are easy to guess.'),
    "Recent years are easy to guess.": _l("Recent years are easy to guess."),
    "Dates are often easy to guess.": _l("Dates are often easy to guess."),
    "This is a top-10 common password.": _l("This is a top-10 common password."),
    "This is a top-100 common password.": _l("This is a top-100 common password."),
    "This is a very common password.": _l("This is a very common password."),
    "This is similar to a commonly used password.":
        _l("This is similar to a commonly used password."),
    "A word by itself is easy to guess.": _l("A word by itself is easy to guess."),
    "Names and surnames by themselves are easy to guess.":
        _l("Names and surnames by themselves are easy to guess."),
    "Common names and surnames are easy to guess.":
        _l("Common names and surnames are easy to guess."),
    # suggestions
    "Use a few words, avoid common phrases.": _l("Use a few words, avoid common phrases."),
    "No need for symbols, digits, or uppercase letters.":
        _l("No need for symbols, digits, or uppercase letters."),
    "Add another word or two. Uncommon words are better.":
        _l("Add another word or two. Uncommon words are better."),
    "Use a longer keyboard pattern with more turns.":
        _l("Use a longer keyboard pattern with more turns."),
    "Avoid repeated words and characters.": _l("Avoid repeated words and characters."),
    "Avoid sequences.": _l("Avoid sequences."),
    "Avoid recent years.": _l("Avoid recent years."),
    "Avoid years that are associated with you.": _l("Avoid years that are associated with you."),
    "Avoid dates and years that are associated with you.":
        _l("Avoid dates and years that are associated with you."),
    "Capitalization doesn't help very much.": _l("Capitalization doesn't help very much."),
    "All-uppercase is almost as easy to guess as all-lowercase.":
        _l("All-uppercase is almost as easy to guess as all-lowercase."),
    "Reversed words aren't much harder to guess.":
        _l("Reversed words aren't much harder to guess."),
    "Predictable substitutions like '@' instead of 'a' don't help very much.":
        _l("Predictable substitutions like '@' instead of 'a' don't help very much."),
}


def name_orders(display_name: str) -> list[str]:
    """The name's words joined in each order that starts somewhere in it: "Karim Ben Ali"
    gives karimbenali, benalikarim, alikarimben (names are written surname first too)."""
    parts = (display_name or "").casefold().split()
    return ["".join(parts[i:] + parts[:i]) for i in range(len(parts))]


def personal_words(email: str, display_name: str) -> list[str]:
    """The words of the user's email and name, and the app's names, for zxcvbn."""
    email = (email or "").casefold()
    local = email.split("@")[0]
    name = " ".join((display_name or "").casefold().split())
    words = [email, local, *re.split(r"[._+\-]+", local), name, *name_orders(name),
             *name.split(), *APP_WORDS]
    return [w for w in dict.fromkeys(words) if len(w) >= 3]


def translated(sentence: str) -> str:
    """zxcvbn's English advice in the user's language (a general hint if it is unknown)."""
    known = FEEDBACK.get(sentence)
    if known is not None:
        return str(known)
    return _("Choose a longer password made of a few uncommon words.")


def guessability_problems(password: str, *, email: str = "", display_name: str = "") -> list[str]:
    """Why zxcvbn finds the password too easy to guess, translated; [] when it is strong."""
    with _ZXCVBN_LOCK:
        result = zxcvbn(password[:SCORED_CHARS], user_inputs=personal_words(email, display_name),
                        max_length=SCORED_CHARS)
    if result["score"] >= MIN_SCORE:
        return []
    problems = [_("This password is too easy to guess.")]
    feedback = result["feedback"]
    if feedback.get("warning"):
        problems.append(translated(feedback["warning"]))
    if any(m.get("dictionary_name") == "user_inputs" for m in result["sequence"]):
        problems.append(_("Avoid your name, your email and the name of the app."))
    problems += [translated(s) for s in feedback.get("suggestions") or []]
    return list(dict.fromkeys(problems))

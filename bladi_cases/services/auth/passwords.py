"""Passwords: hashing (argon2id), the policy a new password must meet, and changing one."""

from __future__ import annotations

import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import gettext as _

from ...extensions import db
from ...models import User
from ...models.common import utcnow
from .. import ValidationError
from ..audit import Action, record
from .sessions import end_every_session
from .strength import guessability_problems, name_orders

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 200
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost one argon2 check and
# response time does not reveal which emails have accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))

def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively: store and look them up lower-cased."""
    return unicodedata.normalize("NFKC", (email or "").strip()).casefold()


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def password_problems(password: str, *, email: str = "", display_name: str = "") -> list[str]:
    """What is wrong with a proposed password, as messages in the user's language.

    The policy of ASVS V2.1 (NIST SP 800-63B): at least MIN_PASSWORD_LENGTH characters of any
    kind, no composition rules, and refused when an attacker would guess it early: a common
    password, a pattern, or one built on the user's name or email or the app's name
    (zxcvbn, in `strength.py`)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(_("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH))
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(_("Use at most %(n)d characters.", n=MAX_PASSWORD_LENGTH))
        return problems
    if _contains_identity(password, email, display_name):
        problems.append(_("The password must not contain your name or email."))
    problems += guessability_problems(password, email=email, display_name=display_name)
    return problems


def _contains_identity(password: str, email: str, display_name: str) -> bool:
    """Whether the password holds the user's whole name (in any order that starts somewhere
    in it) or email name, whatever separators it puts between the parts (zxcvbn misses
    "amal.trabelsi-2026" for Amal Trabelsi)."""
    def compact(text: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())

    typed = compact(password)
    identities = [compact(order) for order in name_orders(display_name)]
    identities.append(compact(normalize_email(email).split("@")[0]))
    return any(len(word) >= 4 and word in typed for word in identities)


def _check_password(user_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(user_hash, password)
    except (VerificationError, InvalidHashError):
        return False



def set_password(user: User, new_password: str) -> None:
    """Validate and store a new password; every existing session of the user ends."""
    problems = password_problems(new_password, email=user.email, display_name=user.display_name)
    if problems:
        raise ValidationError({"new_password": problems})
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    end_every_session(user)
    user.locked_until = None
    user.failed_login_count = 0
    db.session.flush()


def change_own_password(user: User, current_password: str, new_password: str) -> None:
    """A logged-in user changes their password (the current one is asked again)."""
    if not _check_password(user.password_hash, current_password):
        raise ValidationError.one("current_password", _("The current password is wrong."))
    set_password(user, new_password)
    record(Action.PASSWORD_CHANGED, actor=user, obj=user)

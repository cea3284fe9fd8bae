"""The second factor: time-based codes (TOTP, RFC 6238) from a phone app, and single-use
recovery codes for the day the phone is lost.

Who must use one is a setting (BLADI_2FA_ROLES, and `second_factor_required` on an account);
who may choose to is another (BLADI_2FA_OPTIONAL_ROLES). The shared secret is encrypted at
rest like any other `_enc` column; recovery codes are kept as hashes only. A code is valid
one step (30 s) either side of now, and a time step is accepted once only, however many
requests race with it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import unicodedata
from base64 import b32encode
from enum import StrEnum

import pyotp
import segno
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from pyotp import utils as otp_utils
from sqlalchemy.orm.attributes import set_committed_value

from ...extensions import db
from ...models import RecoveryCode, User
from ...models.common import utcnow
from .. import ValidationError
from ..audit import Action, record
from ..beneficiaries.registry import cipher, decrypt_field
from .login import count_failure, is_locked
from .sessions import end_every_session

ISSUER = "BLADI Cases"
RECOVERY_CODE_COUNT = 10
VALID_WINDOW = 1  # steps accepted either side of now: a phone's clock may be 30 s off
_RECOVERY_BYTES = 10  # 80 bits: 16 base32 characters, shown in 4 groups of 4


class Stage(StrEnum):
    """What a login needs once the password has passed."""

    CODE = "code"    # a code from the enrolled app (or a recovery code)
    ENROL = "enrol"  # the role requires a second factor and the account has none yet


def _clock() -> float:
    """Now, as a Unix time (tests replace it to stand at a chosen instant)."""
    return time.time()


# --- who --------------------------------------------------------------------------------

def is_required(user: User) -> bool:
    """Whether the account must use a second factor: its role requires one, or it was
    marked so (after a reset, say), whatever its role."""
    return bool(user.second_factor_required) \
        or user.role in current_app.config["BLADI_2FA_ROLES"]


def may_enrol(user: User) -> bool:
    """Whether the account may set up a second factor (it must, or its role may choose)."""
    return is_required(user) or user.role in current_app.config["BLADI_2FA_OPTIONAL_ROLES"]


def is_enrolled(user: User) -> bool:
    """Whether the account has a confirmed second factor."""
    return user.totp_secret_enc is not None and user.totp_confirmed_at is not None


def after_password(user: User) -> Stage | None:
    """What the login needs next, once the password has passed: a code, an enrolment, or
    nothing (None: the login is complete). An enrolment starts here, with a new secret, so
    that a secret shown to an earlier, abandoned attempt is never the one confirmed."""
    if is_enrolled(user):
        return Stage.CODE
    if is_required(user):
        begin_enrolment(user)
        return Stage.ENROL
    return None


# --- enrolment --------------------------------------------------------------------------

def begin_enrolment(user: User) -> str:
    """Give the account a new, unconfirmed secret (encrypted) and return it; it becomes the
    account's second factor once a first code confirms it."""
    if is_enrolled(user):
        raise ValidationError.one("", _("A second factor is already set up."))
    if not may_enrol(user):
        raise ValidationError.one("", _("Your role does not use a second factor."))
    secret = pyotp.random_base32()
    user.totp_secret_enc = cipher().encrypt(secret)
    user.totp_confirmed_at = None
    user.totp_last_step = None
    db.session.flush()
    return secret


def pending_secret(user: User) -> str | None:
    """The secret of an enrolment that a first code has not confirmed yet, or None."""
    if user.totp_confirmed_at is not None:
        return None
    return decrypt_field(user, "totp_secret_enc")


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// address a phone app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code of `uri` as inline SVG (black on white, with its quiet zone, so that it
    scans on a dark page too)."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")


def grouped(secret: str) -> str:
    """The secret in groups of four letters, for typing it into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def confirm_enrolment(user: User, code: str) -> list[str]:
    """Confirm a pending enrolment with a first code from the app; returns the recovery
    codes, to be shown once (only their hashes are kept)."""
    secret = pending_secret(user)
    if secret is None:
        raise ValidationError.one("", _("Start the set-up again."))
    if not _accept_totp(user, secret, _digits(code)):
        raise ValidationError.one("code", _(
            "This code does not match. Check the time on your phone and type the newest code."))
    user.totp_confirmed_at = utcnow()
    codes = _new_recovery_codes(user)
    record(Action.SECOND_FACTOR_ENROLLED, actor=user, obj=user)
    return codes


# --- logging in ---------------------------------------------------------------------------

def _locked(user: User) -> bool:
    return not user.active or is_locked(user)


def check_code(user: User, code: str) -> str | None:
    """Whether a code lets this account in, and how: "totp" for a code from its app (never
    the same time step twice), "recovery_code" for one of its unused recovery codes (spent
    here); None when refused. A wrong code counts toward the lockout like a wrong
    password, and a locked account passes nothing."""
    if _locked(user):
        record(Action.LOGIN_FAILED, actor=user, obj=user, detail={"reason": "locked"})
        return None
    method = _spend(user, code)
    if method is None:
        # Not counted when a parallel attempt locked the account meanwhile.
        reason = "bad_code" if count_failure(user) else "locked"
        record(Action.LOGIN_FAILED, actor=user, obj=user, detail={"reason": reason})
        return None
    record(Action.SECOND_FACTOR_PASSED, actor=user, obj=user, detail={"method": method})
    return method


def _spend(user: User, code: str) -> str | None:
    """Accept `code` once: 'totp' or 'recovery_code' for what it was, None when refused."""
    if not is_enrolled(user):
        return None
    digits = _digits(code)
    if len(digits) == 6:
        return "totp" if _accept_totp(user, decrypt_field(user, "totp_secret_enc"),
                                      digits) else None
    if _use_recovery_code(user, code):
        record(Action.RECOVERY_CODE_USED, actor=user, obj=user,
               detail={"left": recovery_codes_left(user)})
        return "recovery_code"
    return None


def _digits(code: str) -> str:
    """The code's digits in ASCII (an Arabic keyboard types ٠١٢...), spaces dropped; ""
    when it holds anything but digits and spaces."""
    code = "".join((code or "").split())
    if not code or not all(ch.isdecimal() for ch in code):
        return ""
    return "".join(str(unicodedata.decimal(ch)) for ch in code)


def _accept_totp(user: User, secret: str, digits: str) -> bool:
    """Whether `digits` is the app's code of a step within the window that no earlier
    code used; that step is then claimed."""
    if len(digits) != 6:
        return False
    totp = pyotp.TOTP(secret)
    now = totp.timecode(_clock())
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        if otp_utils.strings_equal(digits, totp.generate_otp(step)):
            return _claim_step(user, step)
    return False


def _claim_step(user: User, step: int) -> bool:
    """Record `step` as used, in one conditional UPDATE: of two requests racing with the
    same code, the database lets exactly one through (the other matches no row)."""
    claimed = db.session.execute(
        sa.update(User)
        .where(User.id == user.id,
               sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if claimed:
        set_committed_value(user, "totp_last_step", step)
    return claimed


# --- recovery codes -----------------------------------------------------------------------

def _normal_recovery(code: str) -> str:
    return "".join(ch for ch in (code or "").casefold() if ch.isascii() and ch.isalnum())


def _recovery_hash(code: str) -> str:
    # 80 random bits each: a plain SHA-256 cannot be reversed by trying them all.
    return hashlib.sha256(_normal_recovery(code).encode("ascii")).hexdigest()


def _new_recovery_codes(user: User) -> list[str]:
    """Replace the account's recovery codes with RECOVERY_CODE_COUNT new ones."""
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _n in range(RECOVERY_CODE_COUNT):
        raw = b32encode(secrets.token_bytes(_RECOVERY_BYTES)).decode("ascii").lower()
        codes.append("-".join(raw[i:i + 4] for i in range(0, len(raw), 4)))
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(code))
                       for code in codes)
    db.session.flush()
    return codes


def _use_recovery_code(user: User, code: str) -> bool:
    """Spend one unused recovery code of the account: exactly one request can."""
    if len(_normal_recovery(code)) != len(b32encode(bytes(_RECOVERY_BYTES))):
        return False
    return db.session.execute(
        sa.update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
               RecoveryCode.code_hash == _recovery_hash(code))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def recovery_codes_left(user: User) -> int:
    """How many of the account's recovery codes are still unused."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))


def renew_recovery_codes(user: User, code: str) -> list[str] | None:
    """New recovery codes for a logged-in user who types a current code from their app;
    the old ones stop working. None when the code is refused (counted toward the lockout,
    since new recovery codes would let whoever holds this session in without the phone)."""
    if _locked(user) or not is_enrolled(user) or not _accept_totp(
            user, decrypt_field(user, "totp_secret_enc"), _digits(code)):
        count_failure(user)
        record(Action.LOGIN_FAILED, actor=user, obj=user, detail={"reason": "bad_code"})
        return None
    codes = _new_recovery_codes(user)
    record(Action.RECOVERY_CODES_RENEWED, actor=user, obj=user)
    return codes


# --- resets -------------------------------------------------------------------------------

def reset(actor: User, user: User) -> None:
    """Clear an account's second factor (a lost phone): its secret and recovery codes go,
    its sessions end, and it must enrol again at its next login, whatever its role. Who
    may reset whom is the policy's `reset_second_factor` (the view loads through it)."""
    user.totp_secret_enc = None
    user.totp_confirmed_at = None
    user.totp_last_step = None
    user.second_factor_required = True
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_every_session(user)
    record(Action.SECOND_FACTOR_RESET, actor=actor, obj=user)

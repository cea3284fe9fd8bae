"""Field encryption (Fernet, with key rotation) and keyed blind indexes for searching.

BLADI_DATA_KEY holds one or more Fernet keys, newest first: the newest encrypts, all
decrypt, so a key can be rotated without re-encrypting every row at once. Blind indexes
are HMACs of normalised values, so equality/prefix search works without storing plaintext.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .normalize import normalize_text

_KEY_SPLIT = re.compile(r"[,\s]+")
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_INDEX_INFO = b"bladi-blind-index-v1"
_INDEX_HEX_LEN = 32


class DataKeyError(ValueError):
    """BLADI_DATA_KEY is missing or malformed, or data cannot be decrypted with it."""


class UndecryptableValueError(DataKeyError):
    """A stored value that no configured key decrypts, named by its table, row and column:
    a key removed too early, or damaged data, is an error to fix, never an empty field."""

    def __init__(self, table: str, row_id, column: str):
        super().__init__(f"{table} row {row_id}, column {column}: the value cannot be "
                         "decrypted with the configured BLADI_DATA_KEY (a key removed "
                         "before `keys rotate` finished, or damaged data)")
        self.table, self.row_id, self.column = table, row_id, column


def parse_keys(raw: str) -> list[bytes]:
    """Parse BLADI_DATA_KEY (comma/whitespace separated Fernet keys, newest first)."""
    parts = [part for part in _KEY_SPLIT.split(raw or "") if part]
    if not parts:
        raise DataKeyError("BLADI_DATA_KEY is empty; generate one with Fernet.generate_key()")
    keys = []
    for number, part in enumerate(parts, start=1):
        # Messages name the key's position only: never echo key material into logs.
        if not _URLSAFE_B64.fullmatch(part):
            raise DataKeyError(f"BLADI_DATA_KEY key #{number} is not url-safe base64")
        try:
            decoded = base64.urlsafe_b64decode(part)
        except (binascii.Error, ValueError):
            raise DataKeyError(f"BLADI_DATA_KEY key #{number} is not valid base64") from None
        if len(decoded) != 32:
            raise DataKeyError(
                f"BLADI_DATA_KEY key #{number} decodes to {len(decoded)} bytes, expected 32"
            )
        keys.append(part.encode("ascii"))
    return keys


class FieldCipher:
    """Encrypts/decrypts field values and computes blind indexes over them."""

    def __init__(self, keys: list[bytes]):
        if not keys:
            raise DataKeyError("FieldCipher needs at least one key")
        self._keys = list(keys)
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError):
            raise DataKeyError("a BLADI_DATA_KEY key is not a valid Fernet key") from None
        # A separate HMAC key derived from the newest key, so an index never reuses the
        # encryption key's material. Rotating the newest key therefore changes all indexes.
        self._index_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_INDEX_INFO
        ).derive(base64.urlsafe_b64decode(keys[0]))

    @property
    def key_count(self) -> int:
        """How many keys decrypt (the newest encrypts)."""
        return len(self._keys)

    def newest_only(self) -> FieldCipher:
        """A cipher of the newest key alone: what remains once the older keys are removed
        (verifying a rotation decrypts with it)."""
        return FieldCipher(self._keys[:1])

    def index_variants(self) -> list[FieldCipher]:
        """This cipher, then one per older key: searching with all of them finds rows whose
        blind indexes were written before a key rotation and not yet recomputed."""
        return [self] + [FieldCipher([key]) for key in self._keys[1:]]

    def encrypt(self, value: str | None) -> bytes | None:
        """Encrypt `value` under the newest key; None and "" give None."""
        if not value:
            return None
        return self._fernet.encrypt(value.encode("utf-8"))

    def decrypt(self, token: bytes | None) -> str | None:
        """Decrypt a token made with any configured key; None gives None."""
        if token is None:
            return None
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except InvalidToken:
            raise DataKeyError(
                "field value cannot be decrypted with the configured keys "
                "(wrong BLADI_DATA_KEY, or corrupted data)"
            ) from None

    def rotate(self, token: bytes | None) -> bytes | None:
        """Re-encrypt a token under the newest key; None gives None."""
        if token is None:
            return None
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken:
            raise DataKeyError(
                "field value cannot be decrypted with the configured keys, so cannot be rotated"
            ) from None

    def _mac(self, purpose: str, normalised: str) -> str:
        # The purpose prefix keeps indexes of different fields from being comparable.
        message = f"{purpose}\x00{normalised}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()[:_INDEX_HEX_LEN]

    def blind_index(self, value: str | None, purpose: str) -> str | None:
        """Keyed HMAC (32 hex chars) of the normalised value; None if it normalises to ""."""
        normalised = normalize_text(value)
        return self._mac(purpose, normalised) if normalised else None

    def prefix_indexes(
        self, value: str | None, purpose: str, min_len: int = 2, max_len: int = 6
    ) -> set[str]:
        """Blind indexes of each token's prefixes (min_len..max_len) and of long whole tokens."""
        prefix_purpose = purpose + ":prefix"
        indexes = set()
        for token in normalize_text(value).split():
            for length in range(min_len, min(max_len, len(token)) + 1):
                indexes.add(self._mac(prefix_purpose, token[:length]))
            if len(token) > max_len:
                indexes.add(self._mac(prefix_purpose, token))
        return indexes

    def prefix_query(self, query: str, purpose: str, max_len: int = 6) -> list[str]:
        """Indexes to look up for each query token of 2+ chars (matched against prefix_indexes).

        Tokens longer than max_len are looked up by their first max_len chars only, so the
        candidates are a superset: the caller must decrypt them and re-check the full token.
        """
        prefix_purpose = purpose + ":prefix"
        found: dict[str, None] = {}
        for token in normalize_text(query).split():
            if len(token) >= 2:
                found.setdefault(self._mac(prefix_purpose, token[:max_len]), None)
        return list(found)


@functools.lru_cache(maxsize=8)
def _cipher_for(raw: str) -> FieldCipher:
    return FieldCipher(parse_keys(raw))


def cipher_from_config(config: Mapping) -> FieldCipher:
    """Return the (cached) FieldCipher for config["BLADI_DATA_KEY"]."""
    return _cipher_for(config.get("BLADI_DATA_KEY") or "")


def new_key() -> str:
    """Return a fresh Fernet key suitable for BLADI_DATA_KEY."""
    return Fernet.generate_key().decode()

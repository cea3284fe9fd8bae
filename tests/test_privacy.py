"""Unit tests for bladi_cases.privacy: normalisation, field encryption, blind indexes."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.fernet import Fernet

from bladi_cases.privacy import (
    DataKeyError,
    FieldCipher,
    cipher_from_config,
    name_tokens,
    new_key,
    normalize_text,
    parse_keys,
)

KEY_A = new_key()
KEY_B = new_key()


def cipher(*keys: str) -> FieldCipher:
    return FieldCipher(parse_keys(",".join(keys)))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("أَحْمَد", "احمد"),
        ("إبراهيم", "ابراهيم"),
        ("آمنة", "امنه"),
        ("فاطمة", "فاطمه"),
        ("مُصْطَفَى", "مصطفي"),
        ("محـــمد", "محمد"),
        ("مسؤول", "مسوول"),
        ("رئيس", "رييس"),
        ("Héla  GHARBI", "hela gharbi"),
        ("Ben-Salah", "ben salah"),
        ("O'Neil", "o neil"),
        ("snake_case", "snake case"),
        ("٢٠٢٦", "2026"),
        ("۱۲۳", "123"),
        # Invisible format characters: zero-width space, non-joiner and joiner, soft
        # hyphen, word joiner, byte order mark.
        ("مح\u200bمد", "محمد"),
        ("مح\u200cمد\u200d", "محمد"),
        ("\ufeffMo\u00adha\u2060med", "mohamed"),
        ("  \t ", ""),
        (None, ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_equivalent_spellings():
    assert normalize_text("أَحْمَد") == normalize_text("احمد")
    assert normalize_text(normalize_text("Ḗlodie-Ça")) == normalize_text("Ḗlodie-Ça")


def test_name_tokens_distinct_in_order():
    assert name_tokens("Amal Trabelsi", None, "AMAL ben-Salah") == [
        "amal",
        "trabelsi",
        "ben",
        "salah",
    ]


def test_round_trip_including_arabic():
    c = cipher(KEY_A)
    for text in ["Amal Trabelsi", "فاطمة الزهراء", "+216 20 123 456"]:
        token = c.encrypt(text)
        assert isinstance(token, bytes)
        assert c.decrypt(token) == text
        assert text.encode() not in token


def test_encryptions_differ():
    c = cipher(KEY_A)
    assert c.encrypt("same") != c.encrypt("same")


def test_none_and_empty():
    c = cipher(KEY_A)
    assert c.encrypt(None) is None
    assert c.encrypt("") is None
    assert c.decrypt(None) is None
    assert c.rotate(None) is None
    assert c.blind_index(None, "name") is None
    assert c.blind_index(" - ", "name") is None
    assert c.prefix_indexes(None, "name") == set()


def test_rotation():
    old = cipher(KEY_A).encrypt("سلمى")
    both = cipher(KEY_B, KEY_A)
    assert both.decrypt(old) == "سلمى"
    rotated = both.rotate(old)
    assert cipher(KEY_B).decrypt(rotated) == "سلمى"
    with pytest.raises(DataKeyError):
        cipher(KEY_B).decrypt(old)


def test_values_are_aes_gcm_and_fernet_values_written_before_still_read():
    """New values are `v2.` + base64(key id, nonce, AES-GCM ciphertext and tag); a Fernet
    token written by an earlier version under any configured key still decrypts, and
    rotation rewrites it in the new form under the newest key."""
    token = cipher(KEY_A).encrypt("منى")
    assert token.startswith(b"v2.")
    raw = base64.urlsafe_b64decode(token[3:])
    assert len(raw) == 4 + 12 + len("منى".encode()) + 16
    legacy = Fernet(KEY_B.encode()).encrypt("منى".encode())
    both = cipher(KEY_A, KEY_B)
    assert both.decrypt(legacy) == "منى"
    assert both.decrypt(memoryview(legacy)) == "منى"  # as some drivers hand binary columns
    rotated = both.rotate(legacy)
    assert rotated.startswith(b"v2.")
    assert cipher(KEY_A).decrypt(rotated) == "منى"
    with pytest.raises(DataKeyError):
        cipher(KEY_A).decrypt(legacy)


def test_an_older_key_still_opens_its_values_until_removed():
    old = cipher(KEY_B).encrypt("Yassine")
    both = cipher(KEY_A, KEY_B)
    assert both.decrypt(old) == "Yassine"
    assert both.newest_only().decrypt(both.rotate(old)) == "Yassine"
    with pytest.raises(DataKeyError):
        both.newest_only().decrypt(old)


@pytest.mark.parametrize("damage", [
    lambda t: t[:-1] + bytes([t[-1] ^ 1]),          # a byte of the tag changed
    lambda t: t[:20] + bytes([t[20] ^ 2]) + t[21:],  # the nonce or the key id changed
    lambda t: t[:12],                                # cut short
    lambda t: b"v2.not base64 at all!",
    lambda t: b"v2.",
    lambda t: b"gAAAAAgarbage",                      # no Fernet token either
])
def test_a_damaged_value_is_an_error_never_a_wrong_name(damage):
    token = cipher(KEY_A).encrypt("Amal Trabelsi")
    with pytest.raises(DataKeyError, match="cannot be decrypted"):
        cipher(KEY_A).decrypt(damage(token))
    with pytest.raises(DataKeyError, match="cannot be rotated"):
        cipher(KEY_A).rotate(damage(token))


def test_wrong_key_raises():
    token = cipher(KEY_A).encrypt("secret")
    with pytest.raises(DataKeyError, match="cannot be decrypted"):
        cipher(KEY_B).decrypt(token)
    with pytest.raises(DataKeyError):
        cipher(KEY_B).rotate(token)


def test_parse_keys_accepts_several_separators():
    assert parse_keys(f" {KEY_A},\n{KEY_B} ") == [KEY_A.encode(), KEY_B.encode()]


@pytest.mark.parametrize(
    "raw",
    [
        "",
        " , \n",
        "not base64 at all!",
        base64.urlsafe_b64encode(b"x" * 16).decode(),
        f"{KEY_A},{base64.urlsafe_b64encode(b'y' * 31).decode()}",
        KEY_A[:-2] + "=",
    ],
)
def test_parse_keys_errors(raw):
    with pytest.raises(DataKeyError):
        parse_keys(raw)


def test_blind_index():
    c = cipher(KEY_A)
    index = c.blind_index("أحمد", "name")
    assert re.fullmatch(r"[0-9a-f]{32}", index)
    assert c.blind_index("احمد", "name") == index
    assert c.blind_index("  أَحْمَد ", "name") == index
    assert c.blind_index("أحمد", "guardian_name") != index
    assert c.blind_index("محمد", "name") != index
    assert cipher(KEY_B).blind_index("أحمد", "name") != index
    # Indexes follow the newest key only, so older keys listed after it do not change them.
    assert cipher(KEY_A, KEY_B).blind_index("أحمد", "name") == index


def test_prefix_indexes():
    c = cipher(KEY_A)
    expected = {c.blind_index(p, "name:prefix") for p in ["tr", "tra", "trab", "trabe", "trabel"]}
    expected.add(c.blind_index("trabelsi", "name:prefix"))
    assert c.prefix_indexes("Trabelsi", "name", max_len=6) == expected
    assert len(expected) == 6
    assert c.prefix_indexes("A", "name") == set()
    assert c.prefix_indexes("A", "name", min_len=1) == {c.blind_index("a", "name:prefix")}


def test_prefix_query():
    c = cipher(KEY_A)
    stored = c.prefix_indexes("Amal Trabelsi", "name")
    assert set(c.prefix_query("Trab", "name")) <= stored
    assert set(c.prefix_query("trabelsiya", "name")) <= stored  # caller re-checks after decrypt
    assert not set(c.prefix_query("Trab", "phone")) & stored
    assert c.prefix_query("A", "name") == []
    assert c.prefix_query("A Am", "name") == [c.blind_index("am", "name:prefix")]


def test_cipher_from_config_is_cached():
    config = {"BLADI_DATA_KEY": f"{KEY_A} {KEY_B}"}
    assert cipher_from_config(config) is cipher_from_config(dict(config))
    with pytest.raises(DataKeyError):
        cipher_from_config({})

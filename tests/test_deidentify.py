"""De-identified exports: only declared fields, age bands, per-export pseudonyms."""

from __future__ import annotations

from datetime import date

from bladi_cases.privacy.deidentify import age_band, deidentify

ROWS = [
    {"id": 1, "first_name": "أميرة", "phone": "+21698123456", "sex": "female",
     "birth_year": 2010, "birth_month": 5, "governorate": "TN-61", "note": "سر"},
    {"id": 2, "first_name": "Wassim", "phone": "", "sex": "male",
     "birth_year": 2003, "birth_month": 12, "governorate": "TN-11", "note": ""},
]


def test_only_declared_fields_pass_and_birth_becomes_a_band():
    out = deidentify(ROWS, keep=["sex", "governorate"], id_field="id",
                     birth_fields=("birth_year", "birth_month"), on=date(2026, 11, 29))
    assert set(out[0]) == {"sex", "governorate", "age_band", "pseudonym"}
    assert out[0]["age_band"] == "15-17" and out[1]["age_band"] == "18-24"
    dump = repr(out)
    for secret in ("أميرة", "Wassim", "98123456", "سر", "2010"):
        assert secret not in dump


def test_pseudonyms_hold_within_an_export_but_not_across():
    first = deidentify(ROWS, keep=[], id_field="id")
    again = deidentify(ROWS, keep=[], id_field="id")
    same_key = deidentify(ROWS, keep=[], id_field="id", export_key=b"k" * 32)
    assert first[0]["pseudonym"] != first[1]["pseudonym"]
    assert first[0]["pseudonym"] != again[0]["pseudonym"]
    assert same_key == deidentify(ROWS, keep=[], id_field="id", export_key=b"k" * 32)


def test_age_band_edges():
    on = date(2026, 11, 29)
    assert age_band(2016, 11, on) == "10-14"   # 10 this month
    assert age_band(2016, 12, on) == "other"   # still 9
    assert age_band(1997, 12, on) == "25-29"
    assert age_band(1996, 11, on) == "other"   # 30

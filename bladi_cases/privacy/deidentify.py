"""De-identification of row-level exports (the donor's de-identified data set).

`deidentify(rows, ...)` keeps only the fields an export declares safe, turns birth dates into
age bands, and replaces record ids by pseudonyms that hold within one export only (a random
key per export), so two exports cannot be joined on them. Names, phones, addresses, free
text and exact dates never pass: anything not declared is dropped (deny by default).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import date

DEFAULT_BANDS = ((10, 14), (15, 17), (18, 24), (25, 29))


def age_band(birth_year: int, birth_month: int, on: date,
             bands=DEFAULT_BANDS) -> str:
    """The age band of someone born in a year and month, on a day ("other" outside)."""
    months = (on.year - birth_year) * 12 + on.month - birth_month
    age = months // 12
    return next((f"{low}-{high}" for low, high in bands if low <= age <= high), "other")


def deidentify(rows: Iterable[dict], *, keep: Iterable[str], id_field: str | None = None,
               birth_fields: tuple[str, str] | None = None, on: date | None = None,
               bands=DEFAULT_BANDS, export_key: bytes | None = None) -> list[dict]:
    """Rows with only the `keep` fields, an age band instead of the birth year/month, and a
    per-export pseudonym instead of `id_field`."""
    key = export_key or secrets.token_bytes(32)
    on = on or date.today()
    keep = list(keep)
    output = []
    for row in rows:
        clean = {name: row.get(name) for name in keep}
        if birth_fields:
            year, month = (row.get(name) for name in birth_fields)
            clean["age_band"] = age_band(year, month, on, bands) if year and month else None
        if id_field:
            digest = hmac.new(key, str(row[id_field]).encode(), hashlib.sha256).hexdigest()
            clean["pseudonym"] = digest[:12]
        output.append(clean)
    return output

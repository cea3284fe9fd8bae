"""De-identification of row-level exports (the donor's de-identified data set).

`deidentify(rows, ...)` keeps only the fields an export declares safe, turns birth dates into
age bands, and replaces record ids by pseudonyms that hold within one export only (a random
key per export), so two exports cannot be joined on them. Names, phones, addresses, free
text and exact dates never pass: anything not declared is dropped (deny by default).

`k_anonymise` and `uniform_values` protect a file of such rows against an attacker who knows
a youth's profile (every descriptive column): every combination of those columns in the file
as written is shared by at least k rows, and within each, a sensitive column never takes a
single value (distinct l-diversity).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
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
            clean["pseudonym"] = pseudonym(row[id_field], key)
        output.append(clean)
    return output


def pseudonym(record_id, export_key: bytes) -> str:
    """A record's code in one export: the same id gives the same code under the same key
    only, and the key is drawn anew for each export."""
    return hmac.new(export_key, str(record_id).encode(), hashlib.sha256).hexdigest()[:12]


def wider_bands(bands=DEFAULT_BANDS) -> dict[str, str]:
    """Each age band's label -> the label of the wider band it joins when generalised: two
    neighbouring bands make one (10-14 and 15-17 make 10-17); an odd last band stays."""
    wider = {}
    for index in range(0, len(bands), 2):
        pair = bands[index:index + 2]
        for low, high in pair:
            wider[f"{low}-{high}"] = f"{pair[0][0]}-{pair[-1][1]}"
    return wider


Profile = tuple
Step = Callable[[Profile], Profile]


def k_anonymise(profiles: Sequence[Profile], k: int,
                steps: Sequence[Step]) -> tuple[list[Profile | None], list[int]]:
    """What to write for each row's profile (its quasi-identifiers, a tuple) so that every
    profile in the file AS WRITTEN is shared by at least k rows, and how far each row went.

    A row whose written profile is shared by fewer than k rows (a rare row) takes the next
    step; each step coarsens the result of the one before (the steps are cumulative). The
    rows that moved make new profiles, rare in turn or not, so this repeats over the whole
    file until no written profile is rare; a row still rare with no step left is left out
    (None). A profile only loses rows while it is rare, so a row once common stays so: the
    rare rows have always taken as many steps as each other, and those left out are left
    out together, when nobody else can join them (with a last step that makes every profile
    alike, fewer than k rows are ever left out). Local recoding: the rows of common
    profiles keep their detail. Returns the written profiles and each row's number of steps
    taken (len(steps) + 1: left out)."""
    written: list[Profile | None] = list(profiles)
    taken = [0] * len(written)
    sizes = Counter(written)
    rare = [i for i, profile in enumerate(written) if sizes[profile] < k]
    while rare:
        for i in rare:
            sizes[written[i]] -= 1
            written[i] = steps[taken[i]](written[i]) if taken[i] < len(steps) else None
            taken[i] += 1
            sizes[written[i]] += 1
        # Only the rows that moved can be rare now (see above).
        rare = [i for i in rare if written[i] is not None and sizes[written[i]] < k]
    # The file as written, checked as a whole before anything is published.
    final = Counter(profile for profile in written if profile is not None)
    if any(size < k for size in final.values()):
        raise RuntimeError("k-anonymisation left a rare profile")
    return written, taken


def uniform_values(rows: Iterable[tuple[Hashable, Sequence]], l_values: int = 2
                   ) -> dict[Hashable, frozenset[int]]:
    """For rows given as (class, sensitive values), the positions of the sensitive values
    that take fewer than `l_values` distinct values within a class, blanks (None, "") set
    aside, and at least one: whoever is known to be in that class would have that value
    revealed (distinct l-diversity fails), so it is to be blanked for the whole class.
    Classes where every sensitive value passes are absent."""
    seen: dict[Hashable, list[set]] = {}
    for key, values in rows:
        kept = seen.get(key)
        if kept is None:
            kept = seen[key] = [set() for _value in values]
        for found, value in zip(kept, values, strict=True):
            if value is not None and value != "" and len(found) < l_values:
                found.add(value)
    uniform = {key: frozenset(i for i, found in enumerate(kept)
                              if 0 < len(found) < l_values) for key, kept in seen.items()}
    return {key: positions for key, positions in uniform.items() if positions}

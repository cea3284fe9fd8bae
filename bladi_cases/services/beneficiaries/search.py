"""Finding beneficiaries: by code, name prefix (blind indexes), site, status and age band.

Everything starts from policy.scoped(Beneficiary, user), so a search can only ever see the
user's own CSO.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from ...extensions import db
from ...models import (
    Beneficiary,
    BeneficiaryNameIndex,
    BeneficiaryStatus,
    Enrolment,
    Site,
)
from ...policy import kept_statement, scoped
from ...privacy import name_tokens
from ...privacy.deidentify import DEFAULT_BANDS, age_band
from .registry import PREFIX_MAX, cipher, name_purpose, revealable_columns

AGE_BANDS = {f"{low}-{high}": (low, high) for low, high in DEFAULT_BANDS}
CODE_RE = re.compile(r"^[A-Za-z]+-?\d+$|^\d+$")
# Counting stops here: "more than 1,000" is all a person needs to add a letter, and an
# exact count of a two-letter prefix among 100,000 youth would cost more than the search.
COUNT_CAP = 1000
MAX_QUERY = 100  # characters of a search; a longer one is refused with a message
SEQUENCE_MAX = 2**31 - 1  # codes are numbered in a 32-bit column: no code is larger


@dataclass
class SearchPage:
    """One page of results, shaped like Flask-SQLAlchemy's pagination for the templates.
    `items` are rows, not objects: see `_page_rows` for their columns."""

    items: list[sa.Row]
    page: int
    per_page: int
    total: int
    capped: bool = False  # True when more than COUNT_CAP rows match (total is the cap)

    @property
    def pages(self) -> int:
        """How many pages there are."""
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        """True after the first page."""
        return self.page > 1

    @property
    def has_next(self) -> bool:
        """True before the last page."""
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        """The previous page number."""
        return self.page - 1

    @property
    def next_num(self) -> int:
        """The next page number."""
        return self.page + 1


def age_band_of(beneficiary: Beneficiary, today: date) -> str | None:
    """The default age band of a youth (month precision: the day of birth is encrypted)."""
    band = age_band(beneficiary.birth_year, beneficiary.birth_month, today)
    return None if band == "other" else band


def _age_band_filter():
    """Born within an age band: its bounds the parameters `band_from` and `band_to`, in
    months since year 0 (`_age_band_bounds`)."""
    birth_months = Beneficiary.birth_year * 12 + Beneficiary.birth_month - 1
    return birth_months.between(sa.bindparam("band_from", type_=sa.Integer()),
                                sa.bindparam("band_to", type_=sa.Integer()))


def _age_band_bounds(band: str, today: date) -> dict[str, int]:
    lo, hi = AGE_BANDS[band]
    now = today.year * 12 + today.month - 1
    return {"band_from": now - 12 * hi - 11, "band_to": now - 12 * lo}


def _status_filter(status: str):
    """Youth of a status on the day of the parameter `filter_today`."""
    return Beneficiary.status(sa.bindparam("filter_today", type_=sa.Date())) == status


def _token_digests(token: str, purpose: str) -> list[str]:
    """Digests to look up for one typed word, under every configured key.

    Words of up to PREFIX_MAX letters match any name word they begin; longer ones match a
    whole name word (the index keeps prefixes up to PREFIX_MAX letters and whole words).
    """
    digests = []
    for variant in cipher().index_variants():
        if len(token) > PREFIX_MAX:
            digests.append(variant.blind_index(token, purpose + ":prefix"))
        else:
            digests.append(variant.prefix_query(token, purpose, max_len=PREFIX_MAX)[0])
    return digests


def _name_digests(user, query: str) -> list[list[str]]:
    """The digests to look up for each typed word of two letters or more."""
    purpose = name_purpose(user.organization_id)
    return [_token_digests(token, purpose) for token in name_tokens(query) if len(token) >= 2]


def _name_filters(user, words: int):
    """One IN (...) per typed word: rows whose name has a word starting with it (the
    digests of word i the parameter `digests_i`). For a word looked up under several keys
    at once (during a key rotation); one key per word takes `_names_driven`."""
    return [Beneficiary.id.in_(
        scoped(BeneficiaryNameIndex, user).with_only_columns(
            BeneficiaryNameIndex.beneficiary_id).where(
            BeneficiaryNameIndex.digest.in_(sa.bindparam(f"digests_{i}", expanding=True))))
        for i in range(words)]


def _other_words(user, words: int) -> list:
    """The typed words after the first, one digest each (the parameter `digest_i`): the
    first word's index entry is of a youth among those whose name has each of them too.
    (Asked entry by entry instead, through the index's key, "mo ta" took 14 ms of SQLite
    at 100,000 youth; gathered once, 4 ms, and 8.7 ms before `_names_driven`.)"""
    return [BeneficiaryNameIndex.beneficiary_id.in_(
        scoped(BeneficiaryNameIndex, user).with_only_columns(
            BeneficiaryNameIndex.beneficiary_id).where(
            BeneficiaryNameIndex.digest == sa.bindparam(f"digest_{i}")))
        for i in range(1, words)]


def _names_driven(user, query: sa.Select, words: int, names_only: bool):
    """A name search read from the first word's index entries, in youth order (the
    index's own: CSO, digest, youth): the page is its first 25 entries, and the count stops
    at COUNT_CAP. Through `IN (...)` the database first gathered every youth whose name has
    the prefix (3,576 for "mo" among 100,000 youth: 0.9 ms of SQLite for the page, 1.6 ms
    for the count); read this way 0.05 and 0.1 ms. Returns the ids in order and what to
    count: for a search by names alone, the index entries themselves (a youth's entries
    are in the youth's CSO and go with an erasure: `rights.erase`; tests/test_beneficiaries
    checks that the two scopes are one criterion), else the youth they join."""
    index = scoped(BeneficiaryNameIndex, user)
    first_word = [index.whereclause, BeneficiaryNameIndex.digest == sa.bindparam("digest_0"),
                  *_other_words(user, words)]
    ids_only = (query.join(BeneficiaryNameIndex,
                           BeneficiaryNameIndex.beneficiary_id == Beneficiary.id)
                .where(*first_word).with_only_columns(BeneficiaryNameIndex.beneficiary_id)
                .order_by(BeneficiaryNameIndex.beneficiary_id.desc()))
    counted = (index.with_only_columns(BeneficiaryNameIndex.beneficiary_id).where(*first_word[1:])
               if names_only else ids_only.order_by(None))
    return ids_only, counted


def search(user, *, q: str = "", site: Site | None = None, status: str | None = None,
           age_band: str | None = None, page: int = 1, per_page: int = 25,
           today: date | None = None) -> SearchPage:
    """Beneficiaries of the user's CSO matching every given criterion, newest code first.

    The statements are kept per user and kind of search (`policy.kept_statement`: building
    them and their cache keys cost more than running them); what was typed or chosen, the
    day and the page are their parameters."""
    today = today or date.today()
    params: dict = {"status_today": today}
    shape: list = []  # what the statements are made of, besides the user's scopes
    q = (q or "").strip()
    if q and CODE_RE.match(q.replace(" ", "")):
        number = int(re.sub(r"\D", "", q)[:MAX_QUERY])
        if number > SEQUENCE_MAX:  # 40 digits overflow the database's integer: no such code
            return SearchPage([], page, per_page, 0)
        shape.append("code")
        params["sequence"] = number
    elif q:
        digests = _name_digests(user, q)
        if not digests:  # only one-letter words: nothing meaningful to look up
            return SearchPage([], page, per_page, 0)
        # One key per word (all but a key rotation's days): read from the index in youth
        # order (`_names_driven`).
        driven = all(len(found) == 1 for found in digests)
        shape.append(("names", len(digests), driven))
        params.update({f"digest_{i}": found[0] for i, found in enumerate(digests)} if driven
                      else {f"digests_{i}": found for i, found in enumerate(digests)})
    if site is not None:
        shape.append("site")
        params["site_id"] = site.id
    if status in {s.value for s in BeneficiaryStatus}:
        shape.append(("status", status))
        params["filter_today"] = today
    if age_band in AGE_BANDS:
        shape.append("age")
        params.update(_age_band_bounds(age_band, today))
    shape = tuple(shape)
    page_statement, count_statement = kept_statement(
        "beneficiaries.search", user, lambda who: _search_statements(who, shape), shape)

    def page_rows(number: int) -> list[sa.Row]:
        return db.session.execute(page_statement, {
            **params, "page_limit": per_page, "page_offset": (number - 1) * per_page}).all()

    rows = page_rows(page)
    if rows:
        total = rows[0].total
    else:  # no match, or a page past the last: count, then show the last page
        total = db.session.scalar(count_statement, params) if page > 1 else 0
    last = max(1, -(-min(total, COUNT_CAP) // per_page))
    if page > last:
        page = last
        rows = page_rows(page) if total else []
    return SearchPage(rows, page, per_page, min(total, COUNT_CAP), total > COUNT_CAP)


def _search_statements(user, shape: tuple) -> tuple[sa.Select, sa.Select]:
    """The statements of one kind of search (`shape`, as `search` makes it): one page of
    rows (`_page_rows`), and the (capped) count of all matches."""
    query, driven_words = scoped(Beneficiary, user), 0
    for part in shape:
        if part == "code":
            query = query.where(Beneficiary.sequence == sa.bindparam("sequence"))
        elif part == "site":
            query = query.where(sa.exists().where(
                Enrolment.beneficiary_id == Beneficiary.id,
                Enrolment.site_id == sa.bindparam("site_id")))
        elif part == "age":
            query = query.where(_age_band_filter())
        elif part[0] == "names" and part[2]:
            driven_words = part[1]  # joined below, once every other filter is in
        elif part[0] == "names":
            query = query.where(*_name_filters(user, part[1]))
        else:
            query = query.where(_status_filter(part[1]))
    # Newest first: ids grow with registration. Ids only, in the count and in choosing the
    # page: the database reads an index of the CSO's rows in id order (ix_beneficiary_org_id,
    # migration 0013), not 20,000 whole records (the page's rows are read by id after).
    if driven_words:
        ids_only, counted = _names_driven(user, query, driven_words, names_only=len(shape) == 1)
    else:
        ids_only = query.with_only_columns(Beneficiary.id).order_by(Beneficiary.id.desc())
        counted = ids_only.order_by(None)
    count = sa.select(sa.func.count()).select_from(
        counted.limit(COUNT_CAP + 1).subquery()).scalar_subquery()
    # One statement: the page's rows, each with the (capped) count of all matches.
    return _page_rows(ids_only, count), sa.select(count)


# What the list shows of each youth (the names still encrypted: `registry.reveal_many`).
_LISTED = (*revealable_columns(), Beneficiary.uuid, Beneficiary.sex, Beneficiary.birth_year,
           Beneficiary.birth_month, Beneficiary.erased_at)


@functools.cache
def _listed_columns() -> tuple:
    """The list's columns, built once (not per page): the shown columns, the youth's status
    and whether the newest consent was withdrawn (`Beneficiary.status` and
    `.consent_withdrawn` as SQL). The status needs the parameter `status_today`."""
    return (*_LISTED,
            Beneficiary.status(sa.bindparam("status_today", type_=sa.Date())).label("status"),
            Beneficiary.consent_withdrawn.label("consent_withdrawn"))


def _page_rows(ids_only, count) -> sa.Select:
    """One page of the list as rows (not objects): `_listed_columns()`, and `total`, the
    count of matches up to COUNT_CAP + 1. Parameters: `page_limit`, `page_offset`."""
    page_ids = ids_only.limit(sa.bindparam("page_limit", type_=sa.Integer())).offset(
        sa.bindparam("page_offset", type_=sa.Integer()))
    return (sa.select(*_listed_columns(), count.label("total"))
            .where(Beneficiary.id.in_(page_ids)).order_by(Beneficiary.id.desc()))

"""Tables of one period published together, suppressed consistently with each other.

A reviewer sees several tables of the same fiscal year, and the donor gets more: CSO by
quarter, CSO by setting, sex, age band, governorate. Some figures appear in more than one of
them (a CSO's year total is a margin of two tables; every disaggregation ends in the same
program total). If one table hides such a figure and another shows it, the first table's
protection is undone. A `Release` names every shared figure with the same id in each table,
suppresses each table, then hides in every table each figure hidden in any, again and again
until nothing changes (hiding only grows, so this ends).

Suppressing table by table is not enough when tables share several figures (two tables
with the same CSO totals can pin a hidden figure that neither pins alone), so `publish()`
then solves the whole release as one linear system and, for each hidden figure it still
determines, hides one more figure beside it, until none is determined.
tests/test_suppression_properties.py checks by linear programming, on random releases of the
shapes the reports publish, that no hidden figure can be worked out from what is shown. A
figure that is a sum of several published ones (a subtotal over chosen CSOs, a life-of-award
total over fiscal years) is shown only when every part is: `Release.sum_of`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from .attack import Facts, intervals
from .suppression import TOTAL, WITHHELD, PublishedTable, is_withheld, suppress, table_lines

FigureId = Hashable


@dataclass
class _Table:
    counts: dict[tuple[str, str], int]
    rows: list[str]
    columns: list[str]
    ids: Callable[[tuple[str, str]], FigureId | None]

    def keys(self) -> list[tuple[str, str]]:
        return [(r, c) for r in self.rows + [TOTAL] for c in self.columns + [TOTAL]]

    def value(self, key: tuple[str, str]) -> int:
        r, c = key
        rows = self.rows if r == TOTAL else [r]
        columns = self.columns if c == TOTAL else [c]
        return sum(int(self.counts.get((a, b), 0)) for a in rows for b in columns)


class Release:
    """A set of tables published together with small-cell suppression (k) that agrees
    across the tables: add them, then `publish()`."""

    def __init__(self, k: int):
        self.k = k
        self._tables: dict[str, _Table] = {}
        self._relations: list[tuple[dict[FigureId, int], int]] = []
        self._private: set[str] = set()  # tables used for protection only, never shown
        self._hidden: set = set()
        self.tables: dict[str, PublishedTable] = {}
        self._shown: dict[FigureId, str] = {}
        self._true: dict[FigureId, int] = {}

    def add(self, name: str, counts: dict[tuple[str, str], int], rows: list[str],
            columns: list[str], ids: Callable[[tuple[str, str]], FigureId | None]) -> None:
        """A table of true counts; `ids(key)` names the figure at a cell or total (TOTAL as
        row or column) when it also appears elsewhere, else returns None."""
        table = _Table(counts, list(rows), list(columns), ids)
        for key in table.keys():
            figure = ids(key)
            if figure is None:
                continue
            value = table.value(key)
            if self._true.setdefault(figure, value) != value:
                # Two tables disagree on one figure: a bug upstream, never publish it.
                raise ValueError(f"figure {figure!r} is {self._true[figure]} and {value}")
        self._tables[name] = table

    def known(self, figure: FigureId) -> bool:
        """Whether a named figure is part of the release."""
        return figure in self._true

    def keep_private(self, name: str) -> None:
        """A table whose figures are never shown (only whether they are hidden is used):
        left out of the attacker's knowledge."""
        self._private.add(name)

    def relate(self, terms: dict[FigureId, int], at_most: int = 0) -> None:
        """A fact a reader knows about named figures: sum(coefficient * figure) <= at_most
        (e.g. {year: 1, quarter: -1} <= 0 says a year is at least its quarter). Facts
        the true figures break are dropped: the reader would only mislead themselves."""
        if sum(c * self._true[f] for f, c in terms.items()) <= at_most:
            self._relations.append((dict(terms), at_most))

    def publish(self, protected: Iterable[str] | None = None) -> dict[str, PublishedTable]:
        """Suppress every table, sharing hidden figures until they agree, then check the
        tables together: a hidden figure that the published ones still determine (through
        relations that span tables, e.g. two tables with the same CSO totals), or that a
        reader can narrow to fewer than k-1 values (`narrowed`), gets one more figure
        hidden beside it, and everything runs again until none is left.

        `protected` is the `protection()` of an earlier publish of the same figures (kept
        in the year's snapshot): it is hidden from the start and the audit, the costly
        part, is not run again."""
        hidden: set = set()  # variables (see _variable) that must be hidden everywhere
        if protected is not None:
            by_repr = {repr(v): v for v in self._values()}
            hidden = {by_repr[r] for r in protected if r in by_repr}
        while True:
            while True:
                for name, table in self._tables.items():
                    forced = {key for key in table.keys()
                              if self._variable(name, table, key) in hidden}
                    self.tables[name] = suppress(table.counts, table.rows, table.columns,
                                                 k=self.k, forced=forced)
                found = {self._variable(name, table, key)
                         for name, table in self._tables.items()
                         for key in self.tables[name].primary | self.tables[name].complementary}
                if found <= hidden:
                    break
                hidden |= found
            partners = self._partners_for_determined(hidden)
            if not partners and protected is None:
                partners = self._partners_for_narrowed(hidden)
            if not partners:
                break
            hidden |= partners
        self._hidden = hidden
        self._shown = {}
        for name, table in self._tables.items():
            published = self.tables[name]
            for key in table.keys():
                figure = table.ids(key)
                if figure is not None:
                    self._shown[figure] = _display(published, key)
        return self.tables

    @staticmethod
    def _variable(name: str, table: _Table, key: tuple[str, str]):
        """What a cell or total is, across tables: its figure id, or itself."""
        figure = table.ids(key)
        return figure if figure is not None else (name, key)

    def _equations(self) -> list[tuple[list, object]]:
        """Every line of every table: (the cells' variables, the total's variable)."""
        equations = []
        for name, table in self._tables.items():
            for line in table_lines(table.rows, table.columns):
                equations.append(([self._variable(name, table, key) for key in line[:-1]],
                                  self._variable(name, table, line[-1])))
        return equations

    def _partners_for_determined(self, hidden: set) -> set:
        """For each hidden variable the published figures pin down exactly, a shown figure
        to hide beside it (the nearest, smallest one)."""
        values = {}
        for name, table in self._tables.items():
            for key in table.keys():
                values[self._variable(name, table, key)] = table.value(key)
        equations = self._equations()
        rows = []
        for cells, total in equations:
            row: dict = {}
            for variable, sign in [(v, 1) for v in cells] + [(total, -1)]:
                if variable in hidden:
                    row[variable] = (row.get(variable, 0) + sign) % _PRIME
            row = {v: c for v, c in row.items() if c}
            if row:
                rows.append(row)
        partners = set()
        for variable in _determined(rows):
            partners.add(self._nearest_shown(variable, equations, hidden, values))
        return partners

    def _values(self) -> dict:
        return {self._variable(name, table, key): table.value(key)
                for name, table in self._tables.items() for key in table.keys()}

    def _published(self) -> set:
        """The variables a reader sees (shown or as "…"): named figures of public tables."""
        return {self._variable(name, table, key) for name, table in self._tables.items()
                if name not in self._private for key in table.keys()
                if table.ids(key) is not None}

    def facts(self, hidden: set) -> Facts:
        """What a reader knows, as linear facts over the hidden figures and the sums they
        never see: every line of every public table adds up, shown figures are constants,
        a hidden one is at least 1 (zeros are shown), and the relations given by `relate`."""
        values, published = self._values(), self._published()
        facts = Facts()

        def unknown(variable) -> bool:
            return variable in hidden or variable not in published

        def split(terms: dict) -> tuple[dict, int]:
            free, constant = {}, 0
            for variable, coefficient in terms.items():
                if unknown(variable):
                    free[variable] = free.get(variable, 0) + coefficient
                else:
                    constant += coefficient * values[variable]
            return {v: c for v, c in free.items() if c}, constant

        for name, table in self._tables.items():
            if name in self._private:
                continue
            for line in table_lines(table.rows, table.columns):
                terms: dict = {}
                for key in line[:-1]:
                    variable = self._variable(name, table, key)
                    terms[variable] = terms.get(variable, 0) + 1
                total = self._variable(name, table, line[-1])
                terms[total] = terms.get(total, 0) - 1
                free, constant = split(terms)
                if free:
                    facts.equalities.append((free, -constant))
        for terms, at_most in self._relations:
            free, constant = split(terms)
            if free:
                facts.inequalities.append((free, at_most - constant))
        for variable in facts.unknowns():
            facts.lower[variable] = 1 if variable in hidden and variable in published else 0
        return facts

    def narrowed(self, hidden: set) -> set:
        """Hidden figures a reader can pin down more than "…" allows: those whose interval
        holds fewer than k-1 whole numbers, as few as a count of 1..k-1 (docs/PRIVACY.md
        says why the interval of a small count need not start at 1)."""
        published = self._published()
        targets = {v for v in hidden if v in published}
        return {variable for variable, (low, high)
                in intervals(self.facts(hidden), targets).items()
                if high - low + 1 < self.k - 1}

    def protection(self) -> list[str]:
        """What `publish()` hid, to publish the same figures again without the audit."""
        return sorted(repr(v) for v in self._hidden)

    def intervals(self) -> dict:
        """Every hidden figure's interval under the attacker model, after `publish()`."""
        targets = self._hidden & self._published()
        return intervals(self.facts(self._hidden), targets)

    def _partners_for_narrowed(self, hidden: set) -> set:
        """For each hidden figure a reader narrows too much, a shown figure to hide beside
        it (on a line or a relation through it)."""
        narrowed = self.narrowed(hidden)
        if not narrowed:
            return set()
        values, published = self._values(), self._published()
        links = self._equations() + [([v for v in terms], None)
                                     for terms, _at_most in self._relations]
        return {self._nearest_shown(v, links, hidden, values, published)
                for v in sorted(narrowed, key=repr)}

    @staticmethod
    def _nearest_shown(variable, equations, hidden: set, values: dict, choosable=None):
        """The smallest shown positive figure on a line through `variable`; if every one
        is hidden, on the lines through those, and so on outward."""
        frontier, seen = {variable}, {variable}
        while frontier:
            lines = [[v for v in cells + [total] if v is not None] for cells, total in equations
                     if frontier & set(cells + [total])]
            candidates = sorted((values[v], repr(v), v) for line in lines for v in line
                                if v not in hidden and values[v] > 0
                                and (choosable is None or v in choosable))
            if candidates:
                return candidates[0][2]
            frontier = {v for line in lines for v in line if v in hidden} - seen
            seen |= frontier
        # Everything around is hidden, and a fully hidden system pins nothing (its true
        # values are positive): reaching here is a bug, so refuse to publish.
        raise ValueError(f"cannot protect {variable!r}")

    def shown(self, figure: FigureId) -> str:
        """How a named figure is published: "12", "0" or "…"."""
        return self._shown[figure]

    def hidden(self, figure: FigureId) -> bool:
        """Whether a named figure is withheld."""
        return is_withheld(self._shown[figure])

    def true(self, figure: FigureId) -> int:
        """A figure's true count (for percentages, computed then hidden with the count)."""
        return self._true[figure]

    def sum_of(self, figures: Iterable[FigureId]) -> str:
        """The sum of several published figures, shown only when every one is shown (a
        sum over some hidden parts would give them away)."""
        figures = list(figures)
        if any(self.hidden(f) for f in figures):
            return WITHHELD
        return str(sum(self._true[f] for f in figures))


# Elimination modulo a large prime: exact for these small 0/1 systems, without fractions.
_PRIME = (1 << 61) - 1


def _determined(rows: list[dict]) -> set:
    """Variables fixed by a system of linear equations (each row: variable -> coefficient,
    modulo _PRIME): after Gauss-Jordan elimination, those alone in a row."""
    pivots: dict = {}  # pivot variable -> its row, normalised to coefficient 1
    for row in rows:
        row = dict(row)
        for variable, pivot_row in pivots.items():
            factor = row.get(variable)
            if factor:
                for v, c in pivot_row.items():
                    row[v] = (row.get(v, 0) - factor * c) % _PRIME
                row = {v: c for v, c in row.items() if c}
        if not row:
            continue
        variable = min(row, key=repr)
        inverse = pow(row[variable], _PRIME - 2, _PRIME)
        row = {v: c * inverse % _PRIME for v, c in row.items()}
        for other, other_row in pivots.items():
            factor = other_row.get(variable)
            if factor:
                for v, c in row.items():
                    other_row[v] = (other_row.get(v, 0) - factor * c) % _PRIME
                pivots[other] = {v: c for v, c in other_row.items() if c}
        pivots[variable] = row
    return {variable for variable, row in pivots.items() if len(row) == 1}


def _display(published: PublishedTable, key: tuple[str, str]) -> str:
    r, c = key
    if r == TOTAL and c == TOTAL:
        return published.grand_total
    if r == TOTAL:
        return published.column_totals[c]
    if c == TOTAL:
        return published.row_totals[r]
    return published.cells[key]

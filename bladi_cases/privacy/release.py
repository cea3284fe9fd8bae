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

    def publish(self) -> dict[str, PublishedTable]:
        """Suppress every table, sharing hidden figures until they agree, then check the
        tables together: a hidden figure that the published ones still determine (through
        relations that span tables, e.g. two tables with the same CSO totals) gets one
        more figure hidden beside it, and everything runs again until none is left."""
        hidden: set = set()  # variables (see _variable) that must be hidden everywhere
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
            if not partners:
                break
            hidden |= partners
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

    @staticmethod
    def _nearest_shown(variable, equations, hidden: set, values: dict):
        """The smallest shown positive figure on a line through `variable`; if every one
        is hidden, on the lines through those, and so on outward."""
        frontier, seen = {variable}, {variable}
        while frontier:
            lines = [cells + [total] for cells, total in equations
                     if frontier & set(cells + [total])]
            candidates = sorted((values[v], repr(v), v) for line in lines for v in line
                                if v not in hidden and values[v] > 0)
            if candidates:
                return candidates[0][2]
            frontier = {v for line in lines for v in line if v in hidden} - seen
            seen |= frontier
        # Everything around is hidden, and a fully hidden system pins nothing (its true
        # values are positive): reaching here is a bug, so refuse to publish.
        raise ValueError(f"cannot protect {variable!r}")

    def shown(self, figure: FigureId) -> str:
        """How a named figure is published: "12", "0", "<5" or "…"."""
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

"""Small-cell suppression for tables that leave the CSO (reviewers, the donor).

`suppress(counts, k)` takes a two-way table of true counts (e.g. sex x age band) and returns
what may be published: each cell of 1..k-1 is shown as "<k" (primary suppression), and more
cells are hidden (complementary suppression) until no hidden cell can be worked out from the
row and column totals: every row and column that hides something hides at least two entries
(its total counts as an entry). Zeros are shown: an empty cell tells nothing about a person.
Percentages must be computed from the true counts and hidden wherever their count is.

Limits (see the reporting issue): this protects one table against its own margins; keeping
several tables of the same period consistent with each other is not done here yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TOTAL = "__total__"


@dataclass
class PublishedTable:
    """A table ready to show: display strings, and which cells are hidden and why."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], str]          # (row, column) -> "12", "0", "<5" or "…"
    row_totals: dict[str, str]
    column_totals: dict[str, str]
    grand_total: str
    primary: set[tuple[str, str]] = field(default_factory=set)
    complementary: set[tuple[str, str]] = field(default_factory=set)

    def hidden(self, row: str, column: str) -> bool:
        """Whether a cell (or a total, with TOTAL as row or column) is not shown."""
        return (row, column) in self.primary or (row, column) in self.complementary


def _hidden_in_line(line: list[tuple[str, str]], hidden: set) -> list[tuple[str, str]]:
    return [key for key in line if key in hidden]


def _lines(rows: list[str], columns: list[str]) -> list[list[tuple[str, str]]]:
    """Each row and each column as its cells followed by its total (the totals' row too)."""
    lines = [[(r, c) for c in columns] + [(r, TOTAL)] for r in rows + [TOTAL]]
    lines += [[(r, c) for r in rows] + [(TOTAL, c)] for c in columns + [TOTAL]]
    return lines


def suppress(counts: dict[tuple[str, str], int], rows: list[str], columns: list[str],
             k: int = 5) -> PublishedTable:
    """Apply primary and complementary suppression to a table of true counts."""
    if k < 2:
        raise ValueError("k must be at least 2")
    value = {(r, c): int(counts.get((r, c), 0)) for r in rows for c in columns}
    for r in rows:
        value[(r, TOTAL)] = sum(value[(r, c)] for c in columns)
    for c in columns:
        value[(TOTAL, c)] = sum(value[(r, c)] for r in rows)
    value[(TOTAL, TOTAL)] = sum(value[(r, TOTAL)] for r in rows)
    if any(v < 0 for v in value.values()):
        raise ValueError("counts cannot be negative")

    primary = {key for key, v in value.items() if 0 < v < k}
    hidden = set(primary)
    lines = _lines(rows, columns)
    changed = True
    while changed:  # add complements until every line hides zero or at least two entries
        changed = False
        for line in lines:
            if len(_hidden_in_line(line, hidden)) != 1:
                continue
            # Hide the smallest other non-zero entry of the line (least information lost).
            # There always is one: a hidden entry is non-zero, so its line's total is too.
            candidates = sorted((value[key], key) for key in line
                                if key not in hidden and value[key] > 0)
            if candidates:
                hidden.add(candidates[0][1])
                changed = True

    def show(key) -> str:
        if key in primary:
            return f"<{k}"
        if key in hidden:
            return "…"
        return str(value[key])

    return PublishedTable(
        rows=list(rows), columns=list(columns),
        cells={(r, c): show((r, c)) for r in rows for c in columns},
        row_totals={r: show((r, TOTAL)) for r in rows},
        column_totals={c: show((TOTAL, c)) for c in columns},
        grand_total=show((TOTAL, TOTAL)), primary=primary, complementary=hidden - primary)


def percentage(numerator: int, denominator: int, hidden: bool) -> str:
    """A share computed from true counts, hidden when its count is."""
    if hidden or denominator == 0:
        return "…" if hidden else "—"
    return f"{round(100 * numerator / denominator)}%"

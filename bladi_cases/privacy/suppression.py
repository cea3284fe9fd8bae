"""Small-cell suppression for tables that leave the CSO (reviewers, the donor).

`suppress(counts, k)` takes a two-way table of true counts (e.g. sex x age band) and returns
what may be published: each cell of 1..k-1 is hidden (primary suppression), and more
cells are hidden (complementary suppression) until no hidden entry can be worked out from the
cells and totals that are shown. Seen as a graph whose nodes are the table's rows and columns
(the totals' row and column included) and whose edges are the hidden entries, an entry can be
recomputed exactly when it is a bridge (on no cycle); every hidden entry is positive, so on a
cycle it can move by one up and down with the others and stay consistent. So: first every
line hiding one entry hides a second one; then every bridge gets a rectangle of hidden
entries around it, the cheapest one, until none is left. tests/test_suppression_properties.py
checks it with a linear program on random tables. Zeros are shown: an empty cell tells
nothing about a person. Percentages are computed from the true counts and hidden wherever
their count is.

Several tables of one period that share figures (a CSO's year total is the margin of two
tables) are published together through `privacy.release.Release`, which hides a shared
figure in every table as soon as one of them hides it (`forced` below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TOTAL = "__total__"
WITHHELD = "…"  # every hidden figure, small or hidden to protect another: one symbol


def published(value: float, k: int | None, withheld: bool = False) -> str:
    """How one figure reads wherever it leaves the CSO (pages, exports, the template filter
    `published`): "…" for a count of 1..k-1 (never, when `k` is None) and for a figure
    withheld to protect another, else the number ("12", "0", "2.5"). One symbol for both,
    so a reader cannot tell a small count (1..k-1) from a larger hidden one."""
    if withheld or (k is not None and 0 < value < k):
        return WITHHELD
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def is_withheld(shown: str) -> bool:
    """Whether a published text stands for a hidden figure."""
    return shown == WITHHELD


@dataclass
class PublishedTable:
    """A table ready to show: display strings, and which cells are hidden and why."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], str]          # (row, column) -> "12", "0" or "…"
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


def table_lines(rows: list[str], columns: list[str]) -> list[list[tuple[str, str]]]:
    """Each row and each column as its cells followed by its total (the totals' row too)."""
    lines = [[(r, c) for c in columns] + [(r, TOTAL)] for r in rows + [TOTAL]]
    lines += [[(r, c) for r in rows] + [(TOTAL, c)] for c in columns + [TOTAL]]
    return lines


def suppress(counts: dict[tuple[str, str], int], rows: list[str], columns: list[str],
             k: int = 5, forced=frozenset()) -> PublishedTable:
    """Apply primary and complementary suppression to a table of true counts. `forced`
    entries (cells or totals) are hidden too, when not zero: another table published with
    this one hides the same figure."""
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
    hidden = primary | {key for key in forced if value.get(key, 0) > 0}
    lines = table_lines(rows, columns)
    while True:
        _pair_up_lines(lines, value, hidden)
        bridges = _bridges(hidden)
        if not bridges:
            break
        _close_cycle(sorted(bridges)[0], rows + [TOTAL], columns + [TOTAL], value, hidden)

    def show(key) -> str:
        return published(value[key], k, withheld=key in hidden)

    return PublishedTable(
        rows=list(rows), columns=list(columns),
        cells={(r, c): show((r, c)) for r in rows for c in columns},
        row_totals={r: show((r, TOTAL)) for r in rows},
        column_totals={c: show((TOTAL, c)) for c in columns},
        grand_total=show((TOTAL, TOTAL)), primary=primary, complementary=hidden - primary)


def _pair_up_lines(lines, value, hidden) -> None:
    """Until no line (row or column) hides exactly one entry, hide the smallest other
    non-zero entry of such a line (least information lost). There always is one: a hidden
    entry is non-zero, so its line's total is too."""
    changed = True
    while changed:
        changed = False
        for line in lines:
            if len(_hidden_in_line(line, hidden)) != 1:
                continue
            candidates = sorted((value[key], key) for key in line
                                if key not in hidden and value[key] > 0)
            if candidates:
                hidden.add(candidates[0][1])
                changed = True


def _bridges(hidden: set) -> set:
    """Hidden entries on no cycle of the row-column graph (Tarjan's bridge search)."""
    graph: dict = {}
    for r, c in hidden:
        graph.setdefault(("row", r), []).append((("col", c), (r, c)))
        graph.setdefault(("col", c), []).append((("row", r), (r, c)))
    order, low, found = {}, {}, set()
    for start in graph:
        if start in order:
            continue
        order[start] = low[start] = len(order)
        stack = [(start, None, iter(graph[start]))]
        while stack:
            node, via, edges = stack[-1]
            for neighbour, entry in edges:
                if entry == via:
                    continue
                if neighbour in order:
                    low[node] = min(low[node], order[neighbour])
                else:
                    order[neighbour] = low[neighbour] = len(order)
                    stack.append((neighbour, entry, iter(graph[neighbour])))
                    break
            else:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > order[parent]:
                        found.add(via)
    return found


def _close_cycle(entry, all_rows, all_columns, value, hidden) -> None:
    """Hide the cheapest rectangle of positive entries through `entry`, putting it on a
    cycle. One always exists: through the totals' row and column if nothing else."""
    r, c = entry
    best = None
    for r2 in all_rows:
        for c2 in all_columns:
            if r2 == r or c2 == c:
                continue
            corners = [(r, c2), (r2, c), (r2, c2)]
            if any(value[key] == 0 for key in corners):
                continue
            cost = sum(value[key] for key in corners if key not in hidden)
            if best is None or cost < best[0]:
                best = (cost, corners)
    if best is None:  # cannot happen for a positive entry; refuse rather than publish
        raise ValueError(f"cannot protect the entry {entry}")
    hidden.update(best[1])


def percentage(numerator: int, denominator: int, hidden: bool) -> str:
    """A share computed from true counts, hidden when its count is."""
    if hidden or denominator == 0:
        return WITHHELD if hidden else "—"
    return f"{round(100 * numerator / denominator)}%"

"""Small-cell suppression: primary cells, complements, margins, and a brute-force check that
no hidden cell can be recomputed from its row or column."""

from __future__ import annotations

import random

import pytest

from bladi_cases.privacy import percentage, suppress
from bladi_cases.privacy.suppression import TOTAL, table_lines

SEXES = ["female", "male"]
BANDS = ["10-14", "15-17", "18-24", "25-29"]


def test_small_cells_are_shown_as_less_than_k_and_complemented():
    counts = {("female", "10-14"): 3, ("female", "15-17"): 12, ("female", "18-24"): 20,
              ("female", "25-29"): 9, ("male", "10-14"): 8, ("male", "15-17"): 14,
              ("male", "18-24"): 25, ("male", "25-29"): 11}
    table = suppress(counts, SEXES, BANDS, k=5)
    assert table.cells[("female", "10-14")] == "…"
    # Its row and column each hide a second cell, the smallest non-zero one.
    assert table.cells[("male", "10-14")] == "…"
    assert table.cells[("female", "25-29")] == "…"
    # ...which the other line then balances too.
    assert table.cells[("male", "25-29")] == "…"
    assert table.row_totals == {"female": "44", "male": "58"}
    assert table.column_totals["10-14"] == "11" and table.grand_total == "102"


def test_zeros_are_shown_and_tables_without_small_cells_are_untouched():
    counts = {("female", b): 10 for b in BANDS} | {("male", "10-14"): 0}
    table = suppress(counts, SEXES, BANDS)
    assert table.cells[("male", "10-14")] == "0" and not table.primary
    assert not table.complementary


def test_small_totals_are_suppressed_too():
    counts = {("female", "10-14"): 2, ("male", "10-14"): 1}
    table = suppress(counts, SEXES, ["10-14"], k=5)
    assert table.column_totals["10-14"] == "…" and table.grand_total == "…"
    assert table.row_totals == {"female": "…", "male": "…"}


@pytest.mark.parametrize("seed", range(300))
def test_no_line_reveals_a_hidden_cell(seed):
    rng = random.Random(seed)
    rows = [f"r{i}" for i in range(rng.randint(1, 5))]
    columns = [f"c{j}" for j in range(rng.randint(1, 6))]
    counts = {(r, c): rng.choice([0, 0, 1, 2, 3, 4, 5, 7, 12, 30]) for r in rows
              for c in columns}
    k = rng.choice([3, 5, 10])
    table = suppress(counts, rows, columns, k=k)
    hidden = table.primary | table.complementary
    for line in table_lines(rows, columns):
        in_line = [key for key in line if key in hidden]
        assert len(in_line) != 1, f"{in_line} could be recomputed from its line"
    # Every count of 1..k-1 is hidden; shown numbers are the true ones.
    for (r, c), count in counts.items():
        if 0 < count < k:
            assert table.cells[(r, c)] == "…"
        elif (r, c) not in hidden:
            assert table.cells[(r, c)] == str(count)
    assert (TOTAL, TOTAL) in hidden or table.grand_total == str(sum(counts.values()))


def test_bad_input():
    with pytest.raises(ValueError):
        suppress({("female", "10-14"): -1}, SEXES, BANDS)
    with pytest.raises(ValueError):
        suppress({}, SEXES, BANDS, k=1)


def test_percentages_come_from_true_counts_and_hide_with_them():
    assert percentage(3, 12, hidden=False) == "25%"
    assert percentage(3, 12, hidden=True) == "…"
    assert percentage(0, 0, hidden=False) == "—"

"""Property-based proof, on random tables, that no suppressed value can be recovered by a
linear combination of what is published: for every hidden entry, a linear program finds
the smallest and largest value it could take given the shown cells and totals (and counts
being non-negative); they must differ."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from bladi_cases.privacy import suppress
from bladi_cases.privacy.suppression import TOTAL


def _entries(rows, columns):
    return [(r, c) for r in rows + [TOTAL] for c in columns + [TOTAL]]


def _bounds_of_hidden(counts, rows, columns, table):
    """(entry, min, max) of each hidden entry, by linear programming over the unknowns."""
    hidden = sorted(table.primary | table.complementary)
    if not hidden:
        return []
    value = {(r, c): counts.get((r, c), 0) for r in rows for c in columns}
    for r in rows:
        value[(r, TOTAL)] = sum(value[(r, c)] for c in columns)
    for c in columns:
        value[(TOTAL, c)] = sum(value[(r, c)] for r in rows)
    value[(TOTAL, TOTAL)] = sum(value[(r, TOTAL)] for r in rows)
    index = {key: i for i, key in enumerate(hidden)}
    equations, constants = [], []
    for line in ([[(r, c) for c in columns] + [(r, TOTAL)] for r in rows + [TOTAL]]
                 + [[(r, c) for r in rows] + [(TOTAL, c)] for c in columns + [TOTAL]]):
        cells, total = line[:-1], line[-1]
        row = np.zeros(len(hidden))
        constant = 0.0
        for key, sign in [(key, 1) for key in cells] + [(total, -1)]:
            if key in index:
                row[index[key]] += sign
            else:
                constant -= sign * value[key]
        if row.any():
            equations.append(row)
            constants.append(constant)
    return _ranges(index, equations, constants)


def _ranges(index: dict, equations: list, constants: list) -> list[tuple]:
    """(unknown, min, max) of each unknown under the equations, counts being >= 0."""
    results = []
    for key, i in index.items():
        objective = np.zeros(len(index))
        objective[i] = 1
        low = linprog(objective, A_eq=np.array(equations), b_eq=np.array(constants),
                      bounds=[(0, None)] * len(index), method="highs")
        high = linprog(-objective, A_eq=np.array(equations), b_eq=np.array(constants),
                       bounds=[(0, None)] * len(index), method="highs")
        assert low.status == 0  # the true table is always feasible
        # Unbounded above (status 3): nothing published caps this entry at all.
        results.append((key, low.fun, float("inf") if high.status == 3 else -high.fun))
    return results


tables = st.integers(1, 5).flatmap(lambda n_rows: st.integers(1, 6).flatmap(
    lambda n_cols: st.tuples(
        st.just(n_rows), st.just(n_cols),
        st.lists(st.sampled_from([0, 0, 1, 2, 3, 4, 6, 9, 15, 40]),
                 min_size=n_rows * n_cols, max_size=n_rows * n_cols),
        st.sampled_from([3, 5, 10]))))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables)
def test_no_hidden_value_can_be_recovered(spec):
    n_rows, n_cols, flat, k = spec
    rows = [f"r{i}" for i in range(n_rows)]
    columns = [f"c{j}" for j in range(n_cols)]
    counts = {(r, c): flat[i * n_cols + j] for i, r in enumerate(rows)
              for j, c in enumerate(columns)}
    table = suppress(counts, rows, columns, k=k)
    for key, low, high in _bounds_of_hidden(counts, rows, columns, table):
        assert high - low >= 1 - 1e-9, f"{key} is pinned to {low} by what is published"


@pytest.mark.parametrize("k", [3, 5])
def test_a_reviewer_never_receives_a_cell_between_1_and_k_minus_1(k):
    counts = {("female", "10-14"): 1, ("female", "15-17"): k - 1, ("male", "10-14"): k,
              ("male", "15-17"): 2 * k}
    table = suppress(counts, ["female", "male"], ["10-14", "15-17"], k=k)
    shown = list(table.cells.values()) + list(table.row_totals.values()) + \
        list(table.column_totals.values()) + [table.grand_total]
    assert not [s for s in shown if s.isdigit() and 0 < int(s) < k]


# --- Several tables of one period, linked through shared figures ---------------------------

def _release_bounds(release):
    """(figure, min, max) of every hidden figure of a release, by linear programming over
    all its tables at once: an attacker combining every published table."""
    from bladi_cases.privacy.suppression import table_lines

    def variable(name, table, key):
        figure = table.ids(key)
        return figure if figure is not None else (name, key)

    hidden, known = set(), {}
    for name, table in release._tables.items():
        published = release.tables[name]
        for key in table.keys():
            if key in published.primary or key in published.complementary:
                hidden.add(variable(name, table, key))
            else:
                known[variable(name, table, key)] = table.value(key)
    assert not hidden & set(known), "a figure is hidden in one table and shown in another"
    if not hidden:
        return []
    index = {v: i for i, v in enumerate(sorted(hidden, key=repr))}
    equations, constants = [], []
    for name, table in release._tables.items():
        for line in table_lines(table.rows, table.columns):
            row = np.zeros(len(index))
            constant = 0.0
            for key, sign in [(key, 1) for key in line[:-1]] + [(line[-1], -1)]:
                v = variable(name, table, key)
                if v in index:
                    row[index[v]] += sign
                else:
                    constant -= sign * known[v]
            if row.any():
                equations.append(row)
                constants.append(constant)
    return _ranges(index, equations, constants)


populations = st.tuples(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 1),
                       st.integers(0, 3), st.integers(0, 3)), min_size=0, max_size=60),
    st.sampled_from([3, 5]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(populations)
def test_no_hidden_value_can_be_recovered_across_the_tables_of_a_release(spec):
    """The shapes the year's release publishes: per youth (CSO, setting, sex, age band,
    quarter), a CSO x quarter table, a CSO x setting table whose margins are the CSO and
    setting totals of the year, and sex and age-band tables ending in the same total."""
    from collections import Counter

    from bladi_cases.privacy.release import Release

    youth, k = spec
    csos, quarters = [f"o{i}" for i in range(4)], [f"Q{q}" for q in range(1, 5)]
    settings_, sexes, bands = ["s0", "s1", "s2"], ["f", "m"], [f"b{i}" for i in range(4)]
    count = Counter
    by_quarter = count((csos[o], quarters[q]) for o, s, x, b, q in youth)
    by_setting = count((csos[o], settings_[s]) for o, s, x, b, q in youth)
    by_sex = count((sexes[x], "n") for o, s, x, b, q in youth)
    by_band = count((bands[b], "n") for o, s, x, b, q in youth)
    release = Release(k)
    # Quarters add up to the year here (events, hours): the CSO totals are shared.
    def star(value):
        return "*" if value == TOTAL else value

    release.add("trend", by_quarter, csos, quarters,
                lambda key: ("fy", star(key[0]), "*") if key[1] == TOTAL else None)
    release.add("setting", by_setting, csos, settings_,
                lambda key: ("fy", star(key[0]), star(key[1])))
    release.add("sex", by_sex, sexes, ["n"],
                lambda key: ("fy", "*", "*") if key[0] == TOTAL else ("sex", key[0]))
    release.add("band", by_band, bands, ["n"],
                lambda key: ("fy", "*", "*") if key[0] == TOTAL else ("band", key[0]))
    release.publish()
    for figure, low, high in _release_bounds(release):
        assert high - low >= 1 - 1e-9, f"{figure} is pinned to {low} by the release"

"""Property-based proof, on random tables, that no suppressed value can be recovered by a
linear combination of what is published: for every hidden entry, a linear program finds
the smallest and largest value it could take given the shown cells and totals (and counts
being non-negative); they must differ."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
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


# --- The attacker who reasons: bounds, the display symbol, youth counted once a year ---------

def _attack(shown: dict, sums: list, at_least: list, k: int) -> dict:
    """The attacker of docs/PRIVACY.md, written here independently of the app: every figure
    shown as "…" is a whole number >= 1, shown ones are constants, `sums` are
    (parts, total) facts and `at_least` are (big, small) facts; returns the interval of each
    hidden figure by integer programming (a finite ceiling keeps every program bounded)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    hidden = sorted((f for f, text in shown.items() if text == "…"), key=repr)
    if not hidden:
        return {}
    index = {f: i for i, f in enumerate(hidden)}
    rows, lows, highs = [], [], []

    def add(terms: dict, low: float, high: float) -> None:
        row, constant = np.zeros(len(hidden)), 0.0
        for figure, coefficient in terms.items():
            if figure in index:
                row[index[figure]] += coefficient
            else:
                constant += coefficient * int(shown[figure])
        if row.any():
            rows.append(row)
            lows.append(low - constant)
            highs.append(high - constant)

    for parts, total in sums:
        add({**{p: 1 for p in parts}, total: -1}, 0, 0)
    for big, small in at_least:
        add({big: 1, small: -1}, 0, np.inf)
    ceiling = 10**6
    bounds = Bounds(np.ones(len(hidden)), np.full(len(hidden), ceiling))
    constraints = [LinearConstraint(np.array(rows), lows, highs)] if rows else []
    found = {}
    for figure, i in index.items():
        objective = np.zeros(len(hidden))
        objective[i] = 1
        # No presolve: HiGHS's presolve has returned intervals that exclude the true
        # figures on such programs (privacy/attack.py says more).
        low = milp(objective, constraints=constraints, bounds=bounds,
                   integrality=np.ones(len(hidden)), options={"presolve": False})
        high = milp(-objective, constraints=constraints, bounds=bounds,
                    integrality=np.ones(len(hidden)), options={"presolve": False})
        # Known gap (README): on some draws HiGHS calls this model infeasible although the
        # true figures satisfy it; those draws are not judged rather than misjudged.
        assume(low.status == 0 and high.status == 0)
        found[figure] = (round(low.fun), round(-high.fun))
    return found


youth_years = st.tuples(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 1),
                       st.sets(st.integers(0, 3), min_size=1, max_size=4)),
             min_size=0, max_size=40),
    st.sampled_from([3, 5]))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(youth_years)
def test_a_reasoning_attacker_narrows_no_hidden_figure(spec):
    """Youth counted once a year (each seen in some quarters), published as the year's
    release does: CSO x quarter (quarters do not add up to the year), CSO x setting with its
    margins, sex; the year at least each quarter and at most their sum. The attacker uses
    all of it; every hidden figure keeps at least k-1 possible values."""
    from collections import Counter

    from bladi_cases.privacy.release import Release

    youth, k = spec
    csos, settings_, sexes = [f"o{i}" for i in range(4)], ["s0", "s1", "s2"], ["f", "m"]
    quarters = [f"Q{q}" for q in range(1, 5)]
    by_quarter = Counter((csos[o], quarters[q]) for o, _s, _x, seen in youth for q in seen)
    by_setting = Counter((csos[o], settings_[s]) for o, s, _x, _seen in youth)
    by_sex = Counter((sexes[x], "n") for _o, _s, x, _seen in youth)

    def star(value):
        return "*" if value == TOTAL else value

    release = Release(k)
    release.add("trend", by_quarter, csos, quarters,
                lambda key: None if key[1] == TOTAL else ("q", star(key[0]), key[1]))
    release.add("setting", by_setting, csos, settings_,
                lambda key: ("fy", star(key[0]), star(key[1])))
    release.add("sex", by_sex, sexes, ["n"],
                lambda key: ("fy", "*", "*") if key[0] == TOTAL else ("sex", key[0]))
    for cso in csos + ["*"]:
        release.relate({("fy", cso, "*"): 1, **{("q", cso, q): -1 for q in quarters}})
        for q in quarters:
            release.relate({("q", cso, q): 1, ("fy", cso, "*"): -1})
    release.publish()

    figures = ([("q", c, q) for c in csos + ["*"] for q in quarters]
               + [("fy", c, s) for c in csos + ["*"] for s in settings_ + ["*"]]
               + [("sex", x) for x in sexes])
    shown = {f: release.shown(f) for f in figures}
    assert not [t for t in shown.values() if t.isdigit() and 0 < int(t) < k]
    sums = [([("q", c, q) for c in csos], ("q", "*", q)) for q in quarters]
    sums += [([("fy", c, s) for s in settings_], ("fy", c, "*")) for c in csos + ["*"]]
    sums += [([("fy", c, s) for c in csos], ("fy", "*", s)) for s in settings_ + ["*"]]
    sums += [([("sex", x) for x in sexes], ("fy", "*", "*"))]
    at_least = [(("fy", c, "*"), ("q", c, q)) for c in csos + ["*"] for q in quarters]
    sums_of_quarters = [(("q", c, q), c) for c in csos + ["*"] for q in quarters]
    # year <= sum of its quarters, written as sum(quarters) - year >= 0
    for cso in csos + ["*"]:
        at_least.append((("sumq", cso), ("fy", cso, "*")))
        sums.append(([f for f, c in sums_of_quarters if c == cso], ("sumq", cso)))
        shown[("sumq", cso)] = "…"  # a sum nobody sees: unknown, >= 1 when it has youth
        if not any(by_quarter.get((cso, q), 0) for q in quarters) and cso != "*":
            shown[("sumq", cso)] = "0"
    if not youth:
        shown[("sumq", "*")] = "0"
    for figure, (low, high) in _attack(shown, sums, at_least, k).items():
        if figure[0] == "sumq":
            continue
        assert high - low + 1 >= k - 1, f"{figure} narrowed to {low}..{high} (k={k})"

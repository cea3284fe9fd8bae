"""What someone who reasons can learn about hidden figures: the interval each one may still
take, given everything published and everything known about how the figures relate.

The attacker model (docs/PRIVACY.md) is a set of linear facts over whole numbers: the shown
figures are constants, every hidden figure is at least 1 (zeros are shown), each table's
lines add up, and some figures bound others (a youth counted once a year makes the year at
most the sum of its quarters and at least each of them; youth who improved are among those
with a baseline and an endline). The tightest interval of a hidden figure is then the
minimum and the maximum of an integer linear program, solved by HiGHS through scipy.
Unknowns that only meet through no fact are solved apart, so a release's many small
systems stay small.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

Unknown = Hashable
Terms = dict[Unknown, int]
CEILING = 10**6


@dataclass
class Facts:
    """Linear facts over unknown whole numbers: equalities (terms = value), inequalities
    (terms <= value), and a lower bound per unknown (0 unless said otherwise)."""

    equalities: list[tuple[Terms, int]] = field(default_factory=list)
    inequalities: list[tuple[Terms, int]] = field(default_factory=list)
    lower: dict[Unknown, int] = field(default_factory=dict)

    def unknowns(self) -> set:
        """Every unknown named by a fact or a bound."""
        found = set(self.lower)
        for terms, _value in self.equalities + self.inequalities:
            found |= set(terms)
        return found


def intervals(facts: Facts, targets: Iterable[Unknown]) -> dict[Unknown, tuple[float, float]]:
    """The smallest and largest value each target may take (math.inf when unbounded)."""
    targets = set(targets)
    found: dict[Unknown, tuple[float, float]] = {}
    for component in _components(facts):
        wanted = [u for u in component if u in targets]
        if wanted:
            found.update(_solve(facts, component, wanted))
    return found


def _components(facts: Facts) -> list[list]:
    """Groups of unknowns linked by some fact (union-find)."""
    parent: dict = {}

    def root(u):
        while parent.setdefault(u, u) != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for u in facts.unknowns():
        root(u)
    for terms, _value in facts.equalities + facts.inequalities:
        names = list(terms)
        for other in names[1:]:
            parent[root(other)] = root(names[0])
    groups: dict = {}
    for u in list(parent):
        groups.setdefault(root(u), []).append(u)
    return [sorted(g, key=repr) for g in groups.values()]


def _solve(facts: Facts, component: list, wanted: list) -> dict:
    index = {u: i for i, u in enumerate(component)}
    members = set(component)
    rows, lows, highs = [], [], []
    for terms, value, is_equality in [(t, v, True) for t, v in facts.equalities] + [
            (t, v, False) for t, v in facts.inequalities]:
        if not terms or not set(terms) <= members:
            continue
        row = np.zeros(len(component))
        for u, coefficient in terms.items():
            row[index[u]] += coefficient
        rows.append(row)
        lows.append(value if is_equality else -np.inf)
        highs.append(value)
    lower = np.array([facts.lower.get(u, 0) for u in component], dtype=float)
    # A finite ceiling keeps every program bounded (HiGHS may not tell "unbounded" from
    # "infeasible" on integer programs); reaching it means "no upper bound".
    bounds = Bounds(lower, np.full(len(component), float(CEILING)))
    constraints = [LinearConstraint(np.array(rows), lows, highs)] if rows else []
    integrality = np.ones(len(component))
    result = {}
    for u in wanted:
        objective = np.zeros(len(component))
        objective[index[u]] = 1.0
        low = _optimum(objective, constraints, bounds, integrality)
        high = _optimum(-objective, constraints, bounds, integrality)
        if low is None or high is None:
            # The solver found the facts contradictory (which the true figures are not):
            # count the figure as pinned, so more is hidden rather than anything published.
            result[u] = (0, 0)
            continue
        result[u] = (low, math.inf if -high >= CEILING // 2 else -high)
    return result


def _optimum(objective, constraints, bounds, integrality) -> float | None:
    """The minimum of the objective; None when the solver finds the facts contradictory."""
    # Without HiGHS's presolve: with it, scipy 1.17's HiGHS has called such programs
    # infeasible, and has also returned "optimal" values that the true figures contradict
    # (a figure pinned to 4 whose true count is 3, tests/test_suppression_properties.py),
    # which could make the audit think a figure protected when it is not.
    solved = milp(objective, constraints=constraints, bounds=bounds, integrality=integrality,
                  options={"presolve": False})
    if solved.status == 0:
        return round(solved.fun)
    if solved.status == 2:
        return None
    raise RuntimeError(f"the solver stopped: {solved.message}")

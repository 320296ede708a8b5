"""Measured mixed precision as a multiple-choice knapsack: one (bits, group) option per tensor,
least total sensitivity, total stored bits (scales counted) within a budget. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taalas_compile.errors import UserError
from taalas_compile.quant.codes import QuantSpec, n_groups

STEPS = 4096  # budget resolution of the dynamic programme (costs are rounded up: never over budget)


@dataclass(frozen=True)
class Choice:
    """The knapsack's answer: the option picked per tensor, its total cost and sensitivity."""

    picks: tuple[int, ...]  # index into each tensor's options
    cost: float  # total bits
    sensitivity: float  # summed sensitivity of the picks


def stored_bits(shape: tuple[int, int], spec: QuantSpec, scale_bits: int) -> int:
    """Bits a [out, in] matrix takes on the die: codes plus one scale per (row, group)."""
    out, n_in = shape
    return out * n_in * spec.bits + out * n_groups(n_in, spec.group) * scale_bits


def knapsack(costs: list[list[float]], sens: list[list[float]], budget: float, steps: int = STEPS) -> Choice:
    """Pick one option per item minimising Σ sens under Σ cost ≤ budget.

    costs, sens: [items][options]. Exact on costs rounded up to budget/steps units, so the
    answer never exceeds the budget (and may leave up to items·budget/steps unspent).
    Raises UserError when even the cheapest option of every item is over the budget."""
    cheapest = sum(min(c) for c in costs)
    if cheapest > budget:
        raise UserError(f"bit budget of {budget:,.0f} bits cannot hold the model: its cheapest allocation needs {cheapest:,.0f}")
    unit = budget / steps
    inf = np.inf
    best = np.zeros(steps + 1)  # best[b]: least sensitivity of items so far within b units
    back = []
    for c_opts, s_opts in zip(costs, sens):
        units = [int(np.ceil(c / unit - 1e-9)) for c in c_opts]
        new = np.full(steps + 1, inf)
        arg = np.full(steps + 1, -1, np.int32)
        for k, (u, s) in enumerate(zip(units, s_opts)):
            if u > steps:
                continue
            cand = np.full(steps + 1, inf)
            cand[u:] = best[: steps + 1 - u] + s
            better = cand < new
            new[better], arg[better] = cand[better], k
        best = new
        back.append(arg)
    b = int(np.argmin(best))
    if not np.isfinite(best[b]):  # rounding up pushed the cheapest pick over: fall back to it
        picks = [int(np.argmin(c)) for c in costs]
    else:
        picks = []
        for i in range(len(costs) - 1, -1, -1):
            k = int(back[i][b])
            picks.append(k)
            b -= int(np.ceil(costs[i][k] / unit - 1e-9))
        picks.reverse()
    return Choice(tuple(picks), float(sum(c[k] for c, k in zip(costs, picks))), float(sum(s[k] for s, k in zip(sens, picks))))

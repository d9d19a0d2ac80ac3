"""Shapley values of a cooperative game whose value is a vector of outcomes (SPEC §6).

A game is given by its players and one batched evaluation of coalitions: `evaluate(masks)`
returns one outcome vector per coalition (a bitmask over the players), so the caller can run
the coalitions on several processes. With n ≤ `exact_limit` players every one of the 2ⁿ
coalitions is evaluated and the values are exact; above, `permutations` random orders of the
players are drawn and each player's value is the mean of its marginal contributions, with the
standard error of that mean (Castro, Gómez and Tejada 2009). Both are efficient: the values
of the players add up to v(all) − v(none) exactly, on every sampled order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import factorial

import numpy as np

EXACT_LIMIT = 10

Evaluate = Callable[[Sequence[int]], np.ndarray]  # masks -> (len(masks), n_outcomes)


@dataclass(frozen=True)
class Shapley:
    """Values (players × outcomes), their standard errors (0 when exact), v(none), v(all)."""

    values: np.ndarray
    std_errors: np.ndarray
    empty: np.ndarray
    full: np.ndarray
    exact: bool
    permutations: int  # 0 when exact
    evaluations: int  # distinct coalitions simulated

    @property
    def total(self) -> np.ndarray:
        """v(all) − v(none): what the players' values add up to."""
        return self.full - self.empty


def _popcount(masks: np.ndarray) -> np.ndarray:
    counts = np.zeros(masks.shape, dtype=np.int64)
    work = masks.copy()
    while work.any():
        counts += work & 1
        work >>= 1
    return counts


def shapley_exact(n: int, evaluate: Evaluate) -> Shapley:
    """Exact values over all 2ⁿ coalitions: φᵢ = Σ_{S∌i} |S|!(n−|S|−1)!/n! · (v(S∪i) − v(S))."""
    masks = np.arange(2**n, dtype=np.int64)
    table = np.asarray(evaluate(masks.tolist()), dtype=float)
    weights = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    sizes = _popcount(masks)
    values = np.zeros((n, table.shape[1]))
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        gains = table[without | (1 << i)] - table[without]
        values[i] = weights[sizes[without]] @ gains
    return Shapley(
        values, np.zeros_like(values), table[0], table[-1], True, 0, evaluations=len(masks)
    )


def shapley_sampled(
    n: int, evaluate: Evaluate, permutations: int, rng: np.random.Generator
) -> Shapley:
    """Values estimated on `permutations` random orders of the players (each coalition on an
    order's prefix is simulated once however many orders share it), with standard errors."""
    if permutations < 2:
        raise ValueError(f"permutations: expected at least 2, found {permutations}")
    orders = np.array([rng.permutation(n) for _ in range(permutations)])
    prefixes = np.zeros((permutations, n + 1), dtype=np.int64)
    for k in range(n):
        prefixes[:, k + 1] = prefixes[:, k] | (1 << orders[:, k])
    unique, where = np.unique(prefixes, return_inverse=True)
    table = np.asarray(evaluate(unique.tolist()), dtype=float)
    at = table[where.reshape(prefixes.shape)]  # (permutations, n + 1, outcomes)
    gains = np.diff(at, axis=1)  # the k-th player of each order adds gains[:, k]
    marginal = np.empty_like(gains)
    rows = np.arange(permutations)[:, None]
    marginal[rows, orders] = gains
    values = marginal.mean(axis=0)
    std_errors = marginal.std(axis=0, ddof=1) / np.sqrt(permutations)
    return Shapley(
        values, std_errors, at[0, 0], at[0, -1], False, permutations, evaluations=len(unique)
    )


def shapley(
    n: int,
    evaluate: Evaluate,
    *,
    exact_limit: int = EXACT_LIMIT,
    permutations: int = 16,
    rng: np.random.Generator | None = None,
) -> Shapley:
    """Exact for n ≤ `exact_limit` players, else sampled over `permutations` orders."""
    if n < 1:
        raise ValueError("a game needs at least one player")
    if n <= exact_limit:
        return shapley_exact(n, evaluate)
    return shapley_sampled(n, evaluate, permutations, rng or np.random.default_rng(0))

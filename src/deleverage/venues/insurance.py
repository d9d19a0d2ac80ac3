"""Where a loss beyond an account's collateral goes (facts 1.1.7, 1.2.7-1.2.8, 1.5.4-1.5.5).

A bankrupt position is taken over at its bankruptcy price by the insurance fund (or the
liquidator vault) while the fund has capacity; past it, the position is auto-deleveraged:
closed at its bankruptcy price against the highest-ranked profitable opposite positions,
with no fee. Functions here are pure and vectorized; the population applies their results.
"""

from __future__ import annotations

import numpy as np


def takeover_count(
    fund_units: float,
    fund_equity_usd: float,
    price: float,
    added_units: np.ndarray,
    added_equity_usd: np.ndarray,
    capacity: float | None,
) -> int:
    """How many of the positions, in the order given, the fund can take over before its
    position notional exceeds `capacity` × its equity (facts 1.2.7: 100% of fund size).

    Taking over position i adds `added_units[i]` (signed) to the fund and the account's
    margin balance at mark, `added_equity_usd[i]`, to the fund's equity (the fund buys at the
    bankruptcy price). `capacity` None: no cap, the fund takes everything."""
    if capacity is None:
        return len(added_units)
    units = fund_units + np.cumsum(added_units)
    equity = fund_equity_usd + np.cumsum(added_equity_usd)
    over = np.abs(units) * price > capacity * equity
    return int(np.argmax(over)) if over.any() else len(added_units)


def rank_counterparties(score: np.ndarray, size: np.ndarray, needed: float) -> np.ndarray:
    """Indices of the highest scores (ties: lower index first) whose sizes sum to at least
    `needed`, or all of them if they do not; in ranking order. Selection is O(n) plus a
    sort of the selected few (argpartition with a growing window)."""
    n = len(score)
    k = min(n, 256)
    while True:
        top = np.argpartition(-score, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.lexsort((top, -score[top]))]
        if k == n or size[top].sum() >= needed:
            cover = np.searchsorted(np.cumsum(size[top]), needed, side="left")
            return top[: min(cover + 1, len(top))]
        k = min(n, 4 * k)


def adl_match(
    bankrupt_size: np.ndarray, bankrupt_price: np.ndarray, counterparty_size: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Match bankrupt positions, in order, against ranked counterparties, in order.

    Returns, per counterparty, the units closed and their value at the bankruptcy prices of
    the positions they absorbed (facts 1.2.8: ADL fills at the bankruptcy price), and the
    units left unmatched when the counterparties do not cover everything. A counterparty
    closed in full closes exactly its size."""
    need = np.cumsum(bankrupt_size)
    have = np.cumsum(counterparty_size)
    total = min(need[-1], have[-1]) if len(have) else 0.0
    edges = np.union1d(need[need < total], have[have < total])
    edges = np.concatenate([[0.0], edges, [total]]) if total > 0 else np.zeros(1)
    width = np.diff(edges)
    left = edges[:-1]
    who = np.searchsorted(have, left, side="right")
    price = bankrupt_price[np.searchsorted(need, left, side="right")]
    n = len(counterparty_size)
    closed = np.bincount(who, width, n)
    value = np.bincount(who, width * price, n)
    full = have <= total
    closed[full] = counterparty_size[full]
    return closed, value, float(need[-1] - total)


def offload_allowance_left(left_usd: float, units: float, position: float, mark: float) -> float:
    """What is left of a step's offload allowance (USD: the fund's participation in the
    asset's normal volume) after its order of `units` fills, `mark` being the price the
    order was sized at: nothing if the allowance capped the order (|units| < |position|, or
    the order's size at the mark is all that was left), else left − |units| × mark, at
    least 0. The allowance caps the size at the mark, not the filled notional: a fill away
    from the mark trades that much more or less USD, and uses the allowance as sized."""
    if abs(units) < abs(position) or abs(units) * mark >= left_usd:
        return 0.0
    return left_usd - abs(units) * mark

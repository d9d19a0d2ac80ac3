"""Compiled loops of the futures books' margin calls (`populations.futures_margin`).

Each kernel does in one pass over the accounts concerned what a dozen NumPy calls on small
arrays did, with the same floating-point operations in the same order (no fastmath, so no
fused multiply-add): every number is bit-identical to the NumPy expressions they replace
(`tests/populations/test_futures_kernels.py` checks both on random inputs). Compiled once
per machine (`cache=True`), as the perp book's kernels (`perp_kernels`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def call_prices(accounts, position, cash, pending, pct_frac, usd_per_unit, floor, cap):
    """Write the call prices of `accounts` (indices) into `floor` and `cap`, and return
    their highest floor and lowest cap (NaN if any is NaN, as NumPy's max and min).

    Equity − maintenance = level + slope·price, with slope = position − pct·|position| and
    level = cash − usd·|position|: a long (slope > 0) is called below −level/slope, a short
    (slope < 0) above it; at slope 0 a negative level is called at any price (floor +inf),
    else never. Accounts without a position or with a liquidation pending are not called."""
    highest, lowest = -np.inf, np.inf
    for j in range(len(accounts)):
        i = accounts[j]
        units = position[i]
        size = abs(units)
        slope = units - pct_frac * size
        level = cash[i] - usd_per_unit * size
        active = units != 0.0 and pending[i] == 0.0
        low, high = -np.inf, np.inf
        if active:
            if slope > 0.0:
                low = -level / slope
            elif slope == 0.0:
                low = np.inf if level < 0.0 else -np.inf
            elif slope < 0.0:
                high = -level / slope
        floor[i], cap[i] = low, high
        if math.isnan(low) or math.isnan(highest):
            highest = np.nan
        elif low > highest:
            highest = low
        if math.isnan(high) or math.isnan(lowest):
            lowest = np.nan
        elif high < lowest:
            lowest = high
    return highest, lowest


@njit(cache=True)
def crossed(floor, cap, used, below, above):
    """Indices of the first `used` accounts whose floor is above `below` or whose cap is
    below `above` (the accounts a price inside [below, above] has crossed)."""
    out = np.empty(used, dtype=np.int64)
    n = 0
    for i in range(used):
        if floor[i] > below or cap[i] < above:
            out[n] = i
            n += 1
    return out[:n]

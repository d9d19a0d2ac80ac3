"""Causal transforms: each value at bar t uses bars up to t (or strictly before t) only."""

from __future__ import annotations

from bisect import bisect_right, insort

import numpy as np
import pandas as pd


def recursive_ecdf(x: pd.Series, min_periods: int) -> pd.Series:
    """Empirical CDF of x[t] among x[0..t]: (#{s <= t : x[s] <= x[t]}) / (#valid up to t).

    The recursive order-statistic transform of the CISS (Hollo, Kremer and Lo Duca
    2012, eq. 2), in (0, 1]; NaN until min_periods valid values have been seen.
    """
    seen: list[float] = []
    out = np.full(len(x), np.nan)
    for t, value in enumerate(x.to_numpy(dtype=float)):
        if np.isnan(value):
            continue
        insort(seen, value)
        if len(seen) >= min_periods:
            out[t] = bisect_right(seen, value) / len(seen)
    return pd.Series(out, index=x.index, name=x.name)


def _quantile_sorted(seen: list[float], q: float) -> float:
    # Same as numpy's default ("linear") quantile of the sorted sample.
    pos = q * (len(seen) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(seen) - 1)
    return seen[lo] + (seen[hi] - seen[lo]) * (pos - lo)


def expanding_quantile(x: pd.Series, q: float, min_periods: int) -> pd.Series:
    """q-quantile of x over bars strictly before t (today is judged against the past)."""
    seen: list[float] = []
    out = np.full(len(x), np.nan)
    for t, value in enumerate(x.to_numpy(dtype=float)):
        if len(seen) >= min_periods:
            out[t] = _quantile_sorted(seen, q)
        if not np.isnan(value):
            insort(seen, value)
    return pd.Series(out, index=x.index, name=x.name)


def expanding_rms(x: pd.Series, min_periods: int) -> pd.Series:
    """Root mean square of x over bars strictly before t (a zero-mean volatility scale)."""
    sq = x.pow(2)
    return np.sqrt(sq.expanding(min_periods=min_periods).mean().shift(1))


def trailing_sum(returns: pd.DataFrame | pd.Series, bars: int):
    """Overlapping `bars`-bar returns ending at t (sum of one-bar log returns or changes)."""
    return returns.rolling(bars, min_periods=bars).sum()


def drawdown(level: pd.Series, window: int, kind: str) -> pd.Series:
    """Loss from the trailing `window`-bar best level, inclusive of t.

    Prices: CMAX-style 1 - P[t] / max(P) (a fraction); yields: rise y[t] - min(y)
    in percentage points (a bond's price loss).
    """
    if kind == "yield":
        return level - level.rolling(window, min_periods=1).min()
    return 1.0 - level / level.rolling(window, min_periods=1).max()

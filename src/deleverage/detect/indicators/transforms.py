"""Causal transforms: each value at bar t uses bars up to t (or strictly before t) only."""

from __future__ import annotations

import numpy as np
import pandas as pd


def recursive_ecdf(x: pd.Series, min_periods: int) -> pd.Series:
    """Empirical CDF of x[t] among x[0..t]: (#{s <= t : x[s] <= x[t]}) / (#valid up to t).

    The recursive order-statistic transform of the CISS (Hollo, Kremer and Lo Duca
    2012, eq. 2), in (0, 1]; NaN until min_periods valid values have been seen.
    O(n log n) (pandas' skip-list expanding rank).
    """
    ranks = x.astype(float).expanding(min_periods=max(min_periods, 1)).rank(method="max", pct=True)
    return ranks.where(x.notna()).rename(x.name)


def expanding_quantile(x: pd.Series, q: float, min_periods: int) -> pd.Series:
    """q-quantile of x over bars strictly before t (today is judged against the past).

    Linear interpolation between order statistics (numpy's default); O(n log n).
    """
    past = x.astype(float).expanding(min_periods=max(min_periods, 1)).quantile(q)
    return past.shift(1).rename(x.name)


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

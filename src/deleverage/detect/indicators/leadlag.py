"""Lead–lag between markets, honest about asynchronous closes.

Daily closes in Tokyo, London, New York and crypto's UTC midnight are hours apart, so
a shock at 14:00 UTC shows up in "today's" New York close but "tomorrow's" Tokyo
close, and one-day lagged correlations of closes show spurious leads. Following
Burns, Engle and Mezrich (1998, J. Derivatives 5(4)), daily data use overlapping
two-day returns, and a lead must beat the two-day horizon. Intraday data are sampled
only at UTC bars where every asset has a fresh observation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.detect.indicators.transforms import trailing_sum


def common_sampling(returns: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """Returns between consecutive bars at which every asset was observed (intraday)."""
    common = fresh.loc[returns.index].all(axis=1)
    cumulative = returns.cumsum()[common]
    return cumulative.diff().iloc[1:]


def lead_lag(returns: pd.DataFrame, bars: int, window: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rolling lead–lag asymmetry of `bars`-bar returns over the trailing `window` bars.

    L[i, j] = corr(x_i[s], x_j[s+bars]) - corr(x_j[s], x_i[s+bars]), pairs ending by t:
    positive when i's moves come before j's. Returns a frame with one column per
    asset, lead_<id> = mean_j L[i, j], and the (bars, N, N) array of L.
    """
    x = trailing_sum(returns, bars)
    ids = list(returns.columns)
    n = len(ids)
    lagged = x.shift(bars)
    corr = np.full((len(x), n, n), np.nan)
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            if i != j:
                corr[:, i, j] = lagged[a].rolling(window, min_periods=window).corr(x[b])
    asym = corr - corr.transpose(0, 2, 1)
    score = np.nansum(asym, axis=2) / max(n - 1, 1)
    score[np.isnan(corr).all(axis=(1, 2))] = np.nan
    frame = pd.DataFrame(score, index=returns.index, columns=[f"lead_{a}" for a in ids])
    return frame, asym

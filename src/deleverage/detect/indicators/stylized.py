"""Stylized facts of returns, computed the same way for observed and modelled paths.

Cont (2001), "Empirical properties of asset returns: stylized facts and statistical
issues", Quantitative Finance 1: heavy tails, volatility clustering, no linear
autocorrelation, and correlations that rise when markets fall.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _autocorr(x: np.ndarray, lag: int) -> float:
    a, b = x[:-lag] - x.mean(), x[lag:] - x.mean()
    denom = ((x - x.mean()) ** 2).sum()
    return float((a * b).sum() / denom) if denom > 0 else np.nan


def stylized_facts(
    returns: pd.DataFrame,
    basket: list[str] | None = None,
    lags: int = 5,
    down_quantile: float = 0.2,
) -> pd.DataFrame:
    """Per asset: excess kurtosis, lag-1 autocorrelation of r, mean autocorrelation of |r|.

    Also, for the row "all": mean pairwise correlation among the `basket` assets
    (default all) on "down" bars (their equal-weight return in its lowest
    `down_quantile`) and on the other bars. Describes the sample as given.
    """
    rows = {}
    for ident in returns.columns:
        x = returns[ident].dropna().to_numpy()
        centred = x - x.mean()
        var = (centred**2).mean()
        kurt = (centred**4).mean() / var**2 - 3.0 if var > 0 else np.nan
        rows[ident] = {
            "excess_kurtosis": kurt,
            "autocorr_r_lag1": _autocorr(x, 1),
            "autocorr_abs_r": float(np.mean([_autocorr(np.abs(x), k) for k in range(1, lags + 1)])),
        }
    frame = pd.DataFrame(rows).T
    members = returns[basket or list(returns.columns)]
    mean = members.mean(axis=1)
    down = mean <= mean.quantile(down_quantile)
    n = members.shape[1]

    def mean_corr(sample: pd.DataFrame) -> float:
        c = sample.corr().to_numpy()
        return float(c[~np.eye(n, dtype=bool)].mean()) if n > 1 else np.nan

    frame.loc["all", "corr_down"] = mean_corr(members[down])
    frame.loc["all", "corr_other"] = mean_corr(members[~down])
    return frame

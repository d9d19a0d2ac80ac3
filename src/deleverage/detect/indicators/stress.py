"""Composite stress index in the manner of the ECB CISS.

Hollo, Kremer and Lo Duca (2012), "CISS – a composite indicator of systemic stress in
the financial system", ECB Working Paper 1426: raw stress measures are mapped to
(0, 1] by their recursive empirical CDF, averaged into market sub-indices, and the
sub-indices are aggregated like a portfolio variance with time-varying EWMA
cross-correlations, so the index is high only when markets are stressed together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from deleverage.detect.indicators.transforms import drawdown, recursive_ecdf


def market_subindices(
    levels: pd.DataFrame,
    returns: pd.DataFrame,
    markets: dict[str, str],
    kinds: dict[str, str],
    vol_window: int,
    cmax_window: int,
    min_periods: int,
) -> pd.DataFrame:
    """One sub-index per market in (0, 1]: mean ECDF rank of each member's stress measures.

    Measures per asset: realised volatility (root mean square of the last vol_window
    one-bar returns) and drawdown from the trailing cmax_window-bar best level (CMAX).
    markets maps asset id -> market; kinds maps asset id -> "price" | "yield".
    """
    ranks: dict[str, list[pd.Series]] = {}
    for ident, market in markets.items():
        r = returns[ident]
        vol = np.sqrt(r.pow(2).rolling(vol_window, min_periods=vol_window).mean())
        loss = drawdown(levels[ident], cmax_window, kinds[ident]).loc[r.index]
        ranks.setdefault(market, []).extend(
            recursive_ecdf(measure, min_periods) for measure in (vol, loss)
        )
    return pd.DataFrame(
        {m: pd.concat(rs, axis=1).mean(axis=1, skipna=False) for m, rs in ranks.items()}
    )


def ciss(subindices: pd.DataFrame, lam: float = 0.93) -> pd.DataFrame:
    """Aggregate sub-indices into the composite index and its co-movement share.

    CISS[t] = (w∘s[t])' C[t] (w∘s[t]) with equal weights w and C[t] the EWMA
    correlation of the sub-indices' deviations from their theoretical median 0.5:
    Σ[t] = λ Σ[t-1] + (1-λ) (s[t]-0.5)(s[t]-0.5)', started at Σ = I/12 (the variance
    of a uniform rank) on the first bar where every sub-index exists.
    co_movement_share = 1 - Σ_i (w_i s_i)² / CISS: the part due to cross-correlations.
    Returns columns ciss (0–1), co_movement_share and one rho_<a>~<b> per pair.
    """
    s = subindices.to_numpy(dtype=float)
    n_bars, n = s.shape
    w = np.full(n, 1.0 / n)
    index = np.full(n_bars, np.nan)
    share = np.full(n_bars, np.nan)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    rho_out = np.full((n_bars, len(pairs)), np.nan)
    valid = ~np.isnan(s).any(axis=1)
    if valid.any():
        # Σ over the valid bars only (a bar with a missing sub-index leaves Σ as it was):
        # a first-order linear recursion, run by lfilter with Σ_start = I/12.
        dev = s[valid] - 0.5
        outer = (dev[:, :, None] * dev[:, None, :]).reshape(len(dev), n * n)
        start = (np.eye(n) / 12.0).reshape(n * n)
        cov, _ = lfilter([1.0 - lam], [1.0, -lam], outer, axis=0, zi=lam * start[None, :])
        cov = cov.reshape(len(dev), n, n)
        sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        rho = cov / (sd[:, :, None] * sd[:, None, :])
        ws = w * s[valid]
        value = np.einsum("ti,tij,tj->t", ws, rho, ws)
        index[valid] = value
        with np.errstate(divide="ignore", invalid="ignore"):
            share[valid] = np.where(value > 0, 1.0 - (ws * ws).sum(axis=1) / value, 0.0)
        rho_out[valid] = np.stack([rho[:, i, j] for i, j in pairs], axis=1) if pairs else 0.0
    names = list(subindices.columns)
    out = pd.DataFrame({"ciss": index, "co_movement_share": share}, index=subindices.index)
    for k, (i, j) in enumerate(pairs):
        out[f"rho_{names[i]}~{names[j]}"] = rho_out[:, k]
    return out


def stress_alarm(
    stress: pd.DataFrame,
    turbulence: pd.Series,
    cocrash: pd.DataFrame | None,
    rank: float,
    min_periods: int,
) -> pd.DataFrame:
    """Add the fast component and the yes/no alarm to the stress table.

    turbulence_rank = recursive ECDF of turbulence (its rank among all bars so far, a
    same-day reading, while the CISS averages 20-bar volatilities and lags).
    alarm = 1 when turbulence_rank ≥ rank, or when the co-crash flag fires: the
    Mahalanobis distance discounts a joint fall along the usual correlation, which is
    exactly what a co-crash is. NaN before turbulence has min_periods ranks.
    """
    out = stress.reindex(turbulence.index).copy()
    ranked = recursive_ecdf(turbulence, min_periods)
    hit = ranked >= rank
    if cocrash is not None:
        hit |= cocrash["flag"].reindex(turbulence.index) == 1.0
    out["turbulence_rank"] = ranked
    out["alarm"] = hit.astype(float).where(ranked.notna())
    return out

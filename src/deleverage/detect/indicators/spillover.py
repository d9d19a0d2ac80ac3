"""Diebold–Yilmaz spillovers from a generalized forecast-error variance decomposition.

Pesaran and Shin (1998), "Generalized impulse response analysis in linear
multivariate models", Economics Letters 58: the GFEVD does not depend on the
ordering of variables. Diebold and Yilmaz (2012), "Better to give than to receive",
Int. J. Forecasting 28: total, directional and net spillovers from the row-normalised
GFEVD. statsmodels has no GFEVD, so it is computed here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def var_ols(y: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """OLS VAR(lags) with intercept: slope matrices (lags, N, N) and residual covariance.

    Σ is divided by (T - N·lags - 1), as statsmodels' VAR does.
    """
    n_obs, n = y.shape
    rows = n_obs - lags
    design = np.hstack([np.ones((rows, 1))] + [y[lags - k : n_obs - k] for k in range(1, lags + 1)])
    target = y[lags:]
    beta, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ beta
    sigma = resid.T @ resid / (rows - n * lags - 1)
    coefs = beta[1:].reshape(lags, n, n).transpose(0, 2, 1)
    return coefs, sigma


def ma_coefficients(coefs: np.ndarray, horizon: int) -> np.ndarray:
    """Moving-average matrices Φ_0..Φ_{horizon-1}: Φ_0 = I, Φ_h = Σ_k Φ_{h-k} A_k."""
    lags, n, _ = coefs.shape
    phi = np.zeros((horizon, n, n))
    phi[0] = np.eye(n)
    for h in range(1, horizon):
        for k in range(1, min(h, lags) + 1):
            phi[h] += phi[h - k] @ coefs[k - 1]
    return phi


def gfevd(coefs: np.ndarray, sigma: np.ndarray, horizon: int) -> np.ndarray:
    """Generalized FEVD θ_ij(H), not normalised (Pesaran–Shin 1998, eq. 10).

    θ_ij = σ_jj⁻¹ Σ_{h<H} (e_i' Φ_h Σ e_j)² / Σ_{h<H} (e_i' Φ_h Σ Φ_h' e_i):
    the share of variable i's H-step forecast-error variance due to shocks in j.
    """
    phi = ma_coefficients(coefs, horizon)
    num = (phi @ sigma) ** 2
    num = num.sum(axis=0) / np.diag(sigma)[None, :]
    den = np.einsum("hij,jk,hik->i", phi, sigma, phi)
    return num / den[:, None]


def spillover_table(theta: np.ndarray) -> dict[str, np.ndarray | float]:
    """Diebold–Yilmaz (2012) measures in % from a GFEVD (rows normalised to 1 first).

    total: mean off-diagonal share; from_others[i] = Σ_{j≠i} θ̃_ij / N;
    to_others[j] = Σ_{i≠j} θ̃_ij / N; net = to - from; net_pairwise[i, j] =
    (θ̃_ji - θ̃_ij) / N, positive when i transmits more to j than it receives.
    """
    t = theta / theta.sum(axis=1, keepdims=True)
    n = len(t)
    off = t - np.diag(np.diag(t))
    from_others = off.sum(axis=1) / n * 100.0
    to_others = off.sum(axis=0) / n * 100.0
    return {
        "total": float(off.sum() / n * 100.0),
        "from_others": from_others,
        "to_others": to_others,
        "net": to_others - from_others,
        "net_pairwise": (off.T - off) / n * 100.0,
    }


def rolling_spillovers(
    returns: pd.DataFrame, window: int, lags: int, horizon: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Spillover measures on each trailing `window`-bar sample ending at t.

    Returns a frame with columns total, to_<id>, from_<id>, net_<id> (%) and an
    array (bars, N, N) of net pairwise spillovers (NaN before the first full window).
    """
    y = returns.to_numpy(dtype=float)
    n_bars, n = y.shape
    ids = list(returns.columns)
    cols = ["total"] + [f"{m}_{a}" for m in ("to", "from", "net") for a in ids]
    out = np.full((n_bars, len(cols)), np.nan)
    pairwise = np.full((n_bars, n, n), np.nan)
    for t in range(window - 1, n_bars):
        block = y[t - window + 1 : t + 1]
        if np.any(block.std(axis=0) == 0):
            continue  # a series that never moved: its shocks are undefined
        coefs, sigma = var_ols(block, lags)
        table = spillover_table(gfevd(coefs, sigma, horizon))
        out[t] = [table["total"], *table["to_others"], *table["from_others"], *table["net"]]
        pairwise[t] = table["net_pairwise"]
    return pd.DataFrame(out, index=returns.index, columns=cols), pairwise

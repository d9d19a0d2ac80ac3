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


CHUNK = 2048  # windows estimated together (bounds memory at ~(CHUNK + window)·K² floats)


def _window_moments(y: np.ndarray, lags: int, window: int, start: int, stop: int) -> np.ndarray:
    """Cross-products of z_s = [1, y_{s-1} .. y_{s-lags}, y_s] summed over each window.

    For the windows ending at bars start..stop-1 (each holds window - lags VAR rows):
    (m, K, K) with K = 1 + N·(lags + 1). Summed as differences of a cumulative sum
    that restarts every chunk, so rounding does not grow with the length of the panel.
    """
    first = start - window + 1 + lags  # first VAR row of the first window
    rows = np.arange(first, stop)
    z = np.hstack([np.ones((len(rows), 1))] + [y[rows - k] for k in range(1, lags + 1)] + [y[rows]])
    cum = np.cumsum(z[:, :, None] * z[:, None, :], axis=0)
    cum = np.concatenate([np.zeros((1, *cum.shape[1:])), cum])
    span = window - lags
    return cum[span:] - cum[:-span]


def _batched_var(mom: np.ndarray, n: int, lags: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """var_ols from window moments (see _window_moments), by the normal equations."""
    k = 1 + n * lags
    xtx, xty, yty = mom[:, :k, :k], mom[:, :k, k:], mom[:, k:, k:]
    try:
        beta = np.linalg.solve(xtx, xty)
    except np.linalg.LinAlgError:  # a lag column constant over some window: least norm
        beta = np.linalg.pinv(xtx, hermitian=True) @ xty
    ssr = yty - xty.transpose(0, 2, 1) @ beta
    sigma = ssr / (window - lags - n * lags - 1)
    coefs = beta[:, 1:].reshape(len(mom), lags, n, n).transpose(0, 1, 3, 2)
    return coefs, sigma


def _batched_gfevd(coefs: np.ndarray, sigma: np.ndarray, horizon: int) -> np.ndarray:
    """gfevd for a stack: coefs (m, lags, N, N), sigma (m, N, N) -> θ (m, N, N)."""
    m, lags, n, _ = coefs.shape
    phi = np.zeros((horizon, m, n, n))
    phi[0] = np.eye(n)
    for h in range(1, horizon):
        for k in range(1, min(h, lags) + 1):
            phi[h] += phi[h - k] @ coefs[:, k - 1]
    diag = np.diagonal(sigma, axis1=1, axis2=2)
    response = phi @ sigma  # (H, m, N, N): e_i' Φ_h Σ e_j
    num = (response**2).sum(axis=0) / diag[:, None, :]
    den = (response * phi).sum(axis=(0, 3))  # e_i' Φ_h Σ Φ_h' e_i summed over h
    return num / den[:, :, None]


def rolling_spillovers(
    returns: pd.DataFrame, window: int, lags: int, horizon: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Spillover measures on each trailing `window`-bar sample ending at t.

    Returns a frame with columns total, to_<id>, from_<id>, net_<id> (%) and an
    array (bars, N, N) of net pairwise spillovers (NaN before the first full window,
    and in windows where a series never moved: its shocks are undefined). Windows are
    estimated in stacks (the same VAR and GFEVD as var_ols / gfevd), so time is linear
    in bars.
    """
    y = returns.to_numpy(dtype=float)
    n_bars, n = y.shape
    ids = list(returns.columns)
    cols = ["total"] + [f"{m}_{a}" for m in ("to", "from", "net") for a in ids]
    out = np.full((n_bars, len(cols)), np.nan)
    pairwise = np.full((n_bars, n, n), np.nan)
    finite = np.isfinite(y).all(axis=1)
    y = np.where(finite[:, None], y, 0.0)
    bad = np.concatenate([[0], np.cumsum(~finite)])
    for start in range(window - 1, n_bars, CHUNK):
        stop = min(start + CHUNK, n_bars)
        ends = np.arange(start, stop)
        mom = _window_moments(y, lags, window, start, stop)
        rows = window - lags
        mean_square = np.diagonal(mom[:, -n:, -n:], axis1=1, axis2=2) / rows
        variance = mean_square - (mom[:, 0, -n:] / rows) ** 2
        clean = bad[ends + 1] - bad[ends + 1 - window] == 0
        ok = clean & (variance > 1e-12 * mean_square).all(axis=1)
        if not ok.any():
            continue
        mom, mean_square = mom[ok], mean_square[ok]
        coefs, sigma = _batched_var(mom, n, lags, window)
        shocks = (np.diagonal(sigma, axis1=1, axis2=2) > 1e-9 * mean_square).all(axis=1)
        ok[ok] = shocks  # a residual that never moved: its shocks are undefined
        coefs, sigma = coefs[shocks], sigma[shocks]
        theta = _batched_gfevd(coefs, sigma, horizon)
        t = theta / theta.sum(axis=2, keepdims=True)
        off = t * (1.0 - np.eye(n))
        frm = off.sum(axis=2) / n * 100.0
        to = off.sum(axis=1) / n * 100.0
        done = ends[ok]
        out[done] = np.hstack([off.sum(axis=(1, 2))[:, None] / n * 100.0, to, frm, to - frm])
        pairwise[done] = (off.transpose(0, 2, 1) - off) / n * 100.0
    return pd.DataFrame(out, index=returns.index, columns=cols), pairwise

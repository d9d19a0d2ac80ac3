"""Financial turbulence and the absorption ratio."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def turbulence(returns: pd.DataFrame, min_periods: int) -> pd.DataFrame:
    """Squared Mahalanobis distance of today's returns from the past (Kritzman and Li 2010).

    d[t] = (r[t] - μ)' Σ⁻¹ (r[t] - μ) with μ, Σ the sample mean and covariance of bars
    strictly before t (expanding, so no look-ahead); ~χ²(N) in calm markets. The
    column "turbulence" is d[t]; column <asset> is that asset's additive share
    (r - μ)_i [Σ⁻¹(r - μ)]_i, which sums to d[t] and can be negative.
    """
    r = returns.to_numpy(dtype=float)
    n_bars, n = r.shape
    count = np.arange(n_bars, dtype=float)  # bars strictly before t
    s1 = np.vstack([np.zeros((1, n)), np.cumsum(r, axis=0)[:-1]])
    outer = np.einsum("ti,tj->tij", r, r)
    s2 = np.concatenate([np.zeros((1, n, n)), np.cumsum(outer, axis=0)[:-1]])
    out = np.full((n_bars, n), np.nan)
    ok = count >= max(min_periods, n + 1)
    mean = s1[ok] / count[ok, None]
    cov = s2[ok] - count[ok, None, None] * np.einsum("ti,tj->tij", mean, mean)
    cov /= (count[ok] - 1.0)[:, None, None]
    x = r[ok] - mean
    out[ok] = x * np.einsum("tij,tj->ti", np.linalg.pinv(cov, hermitian=True), x)
    frame = pd.DataFrame(out, index=returns.index, columns=returns.columns)
    frame.insert(0, "turbulence", frame.sum(axis=1, skipna=False))
    return frame


def absorption_ratio(returns: pd.DataFrame, window: int, fraction: float = 0.2) -> pd.Series:
    """Share of total variance absorbed by the top ceil(fraction·N) eigenvectors.

    Kritzman, Li, Page and Rigobon (2011), "Principal components as a measure of
    systemic risk", J. Portfolio Management 37(4). Estimated on the trailing `window`
    bars up to t. Uses the correlation matrix (trace N) rather than the covariance
    because assets mix log returns and yield changes; an asset that did not move in
    the window counts as uncorrelated. Near 1: markets are tightly coupled. Windows
    are handled in stacks (batched eigenvalues), so time is linear in bars.
    """
    r = returns.to_numpy(dtype=float)
    n_bars, n = r.shape
    k = max(1, math.ceil(fraction * n))
    out = np.full(n_bars, np.nan)
    chunk = 4096
    for start in range(window - 1, n_bars, chunk):
        stop = min(start + chunk, n_bars)
        blocks = np.lib.stride_tricks.sliding_window_view(
            r[start - window + 1 : stop], window, axis=0
        )  # (m, N, W)
        dev = blocks - blocks.mean(axis=2, keepdims=True)
        cov = dev @ dev.transpose(0, 2, 1) / (window - 1)
        sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        moving = sd > 0
        scale = np.where(moving, sd, 1.0)
        corr = cov / (scale[:, :, None] * scale[:, None, :])
        both = moving[:, :, None] & moving[:, None, :]
        corr = np.where(both, corr, np.eye(n))
        eig = np.linalg.eigvalsh(corr)
        out[start:stop] = eig[:, -k:].sum(axis=1) / n
    return pd.Series(out, index=returns.index, name="absorption_ratio")

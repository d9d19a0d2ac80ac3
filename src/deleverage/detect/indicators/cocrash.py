"""Co-crash flag: "liquidity is gone" when safe havens, tech and speculation fall together.

The seed article's signature of a liquidity black hole (SPEC §0): assets that
normally hedge each other all post tail losses at once. Each asset is judged on its
own: its one-bar return is divided by a volatility that forgets (an EWMA of squared
returns, half-life `halflife_days`), and the standardised return is in the tail when
it is at or below the `quantile` quantile of its own earlier standardised returns.
A group is in its tail when any member is (a silver crash is not diluted by gold),
and the groups' tail bars may be up to `tolerance` bars apart (daily closes in Tokyo,
COMEX, New York and crypto are hours apart, so one shock lands in adjacent bars).
Every value at bar t uses bars up to t only.

On intraday bars the tail probability and the half-life are scaled to the bar: an
asset observed on k bars per trading day (counted over the first min_periods bars)
gets quantile / k per bar and a half-life of halflife_days · k bars, so a tail loss
is as rare per day as on daily closes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

VOL_WARMUP_DAYS = 20  # observations (in trading days) before a volatility is trusted


def bars_per_day(observed: pd.Series) -> float:
    """Observed bars per UTC date on which the asset traded (1 on daily panels)."""
    stamps = observed.index[observed.to_numpy()]
    days = stamps.normalize().nunique()
    return len(stamps) / days if days else 1.0


def tail_threshold(
    r: pd.Series, quantile: float, halflife: float, min_periods: int, vol_periods: int
) -> pd.Series:
    """Return-unit tail threshold at each observed bar, from observed bars before it.

    threshold[t] = σ[t-1] · Q_q(z[s], s < t), with σ the EWMA volatility (half-life in
    bars, zero mean, from vol_periods observations on) and z = r / σ[t-1] the
    standardised returns (quantile from min_periods of them on). NaN where r is NaN.
    """
    obs = r.dropna()
    sigma = np.sqrt(obs.pow(2).ewm(halflife=halflife, min_periods=vol_periods).mean()).shift(1)
    z = obs / sigma.where(sigma > 0)
    qz = z.expanding(min_periods=min_periods).quantile(quantile).shift(1)
    return (sigma * qz).reindex(r.index)


def co_crash(
    returns: pd.DataFrame,
    observed: pd.DataFrame,
    groups: dict[str, list[str]],
    *,
    quantile: float,
    halflife_days: float,
    tolerance: int,
    min_periods: int,
    daily: bool,
) -> pd.DataFrame:
    """Per bar: each asset's tail threshold, each group's tail multiple, severity, flag.

    observed: True where an asset's return is a real observation (not carried over a
    closed market or a data gap). An asset's tail multiple is return / threshold
    (≥ 1 in the tail; 0 on bars it was not observed); a group's is the largest of its
    members' over the last tolerance + 1 bars. severity = the smallest group multiple
    (≥ 1 exactly when every group was in its tail within `tolerance` bars) and ranks
    episodes; flag = severity ≥ 1. NaN until every group has a member with a threshold
    (a member that never moves has none, and is never in its tail).
    """
    out: dict[str, pd.Series] = {}
    multiples: dict[str, pd.Series] = {}
    for members in groups.values():
        for ident in members:
            seen = observed[ident].reindex(returns.index, fill_value=False)
            # bars per day from the warm-up only, so that appending data moves nothing
            per_day = 1.0 if daily else bars_per_day(seen.iloc[:min_periods])
            q = min(quantile, quantile / per_day)
            r = returns[ident].where(seen)
            vol_periods = math.ceil(VOL_WARMUP_DAYS * per_day)
            threshold = tail_threshold(r, q, halflife_days * per_day, min_periods, vol_periods)
            ready = threshold.ffill().notna()
            multiple = (r / threshold).where(threshold < 0).fillna(0.0).clip(lower=0.0)
            out[f"{ident}_threshold"] = threshold
            multiples[ident] = multiple.where(ready)
    for g, members in groups.items():
        best = pd.concat([multiples[m] for m in members], axis=1).max(axis=1)
        out[f"{g}_tail"] = best.rolling(tolerance + 1, min_periods=1).max()
        out[f"{g}_tail"] = out[f"{g}_tail"].where(best.notna())
    frame = pd.DataFrame(out, index=returns.index)
    severity = frame[[f"{g}_tail" for g in groups]].min(axis=1, skipna=False)
    frame["severity"] = severity
    frame["flag"] = np.where(severity.isna(), np.nan, (severity >= 1.0).astype(float))
    return frame


def in_tail(cocrash: pd.DataFrame, ident: str, returns: pd.Series) -> pd.Series:
    """True on bars where one asset's return is at or beyond its tail threshold."""
    threshold = cocrash[f"{ident}_threshold"]
    return (returns <= threshold) & (threshold < 0)


def episodes(cocrash: pd.DataFrame, gap: int = 2) -> pd.DataFrame:
    """Flagged bars merged into episodes (flags ≤ gap bars apart), most severe first.

    Columns: start, end, peak (bar of the highest severity), severity, bars.
    """
    flag = cocrash["flag"].to_numpy() == 1.0
    pos = np.flatnonzero(flag)
    columns = ["start", "end", "peak", "severity", "bars"]
    if not len(pos):
        return pd.DataFrame(columns=columns)
    breaks = np.flatnonzero(np.diff(pos) > gap + 1)
    rows = []
    for chunk in np.split(pos, breaks + 1):
        sev = cocrash["severity"].iloc[chunk]
        rows.append(
            (cocrash.index[chunk[0]], cocrash.index[chunk[-1]], sev.idxmax(), sev.max(), len(chunk))
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("severity", ascending=False, kind="stable").reset_index(drop=True)

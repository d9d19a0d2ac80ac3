"""Co-crash flag: "liquidity is gone" when safe havens, tech and speculation fall together.

The seed article's signature of a liquidity black hole (SPEC §0): assets that
normally hedge each other all post tail losses at once. Tail thresholds are
expanding-window quantiles of each group's own past returns, so a day is judged only
against history known before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.detect.indicators.transforms import expanding_quantile, trailing_sum


def group_returns(returns: pd.DataFrame, groups: dict[str, list[str]], bars: int) -> pd.DataFrame:
    """Equal-weight `bars`-bar return of each group (mean of its members' log returns)."""
    summed = trailing_sum(returns, bars)
    return pd.DataFrame(
        {g: summed[members].mean(axis=1, skipna=False) for g, members in groups.items()},
        index=returns.index,
    )


def co_crash(
    returns: pd.DataFrame,
    groups: dict[str, list[str]],
    bars: int,
    quantile: float,
    min_periods: int,
) -> pd.DataFrame:
    """Per bar: each group's return and tail threshold, the flag and its severity.

    A group is in its tail when its `bars`-bar return is at or below the `quantile`
    quantile of its own earlier `bars`-bar returns. flag = 1 when every group is in
    its tail. severity = min over groups of return / threshold: the smallest multiple
    of its own tail threshold that every group lost (≥ 1 exactly when flagged).
    On daily closes use bars = 2: Tokyo, London, New York and crypto closes are
    hours apart, so one shock can land in consecutive daily bars.
    """
    gr = group_returns(returns, groups, bars)
    out = {}
    ratios = []
    for g in groups:
        threshold = expanding_quantile(gr[g], quantile, min_periods)
        out[f"{g}_return"] = gr[g]
        out[f"{g}_threshold"] = threshold
        ratios.append((gr[g] / threshold).where(threshold < 0))
    severity = pd.concat(ratios, axis=1).min(axis=1, skipna=False)
    frame = pd.DataFrame(out, index=returns.index)
    frame["severity"] = severity
    frame["flag"] = np.where(severity.isna(), np.nan, (severity >= 1.0).astype(float))
    return frame

"""When and where leveraged positions alive at the start were opened (SPEC §4: "the
starting state is a state that exists").

Entry times are points of the asset's observed `history` over a lookback window before the
clock start; a position opened then has lived through the path since, so it exists only if
its liquidation or margin-call level was not crossed on the way. Margin conditions are
monotone in price, so checking them at the lowest (long) or highest (short) price since
entry is exact for the observed path, which is only as fine as the history (daily closes
miss intraday extremes).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from deleverage.populations.base import BuildContext


def _window(ctx: BuildContext, asset_id: str, lookback: timedelta) -> pd.Series | None:
    """The asset's observed prices over `lookback` up to the start, oldest first (the last
    point at or before the start when the window holds none); None without a history."""
    history = ctx.history(asset_id)
    if history is None:
        return None
    start = pd.Timestamp(ctx.scenario.clock.start)
    window = history[history.index > start - lookback]
    return window if len(window) else history.iloc[-1:]


def entry_window(ctx: BuildContext, asset_id: str, lookback: timedelta) -> np.ndarray | None:
    """Prices of `_window` (entry candidates), as an array; None without a history."""
    window = _window(ctx, asset_id, lookback)
    return None if window is None else window.to_numpy(float)


def entry_ages(ctx: BuildContext, asset_id: str, lookback: timedelta) -> np.ndarray:
    """Seconds from each point of `entry_window` to the clock start."""
    times = _window(ctx, asset_id, lookback).index
    return np.asarray((pd.Timestamp(ctx.scenario.clock.start) - times).total_seconds(), float)


def extremes_since(window: np.ndarray, price0: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest price from each point of `window` to the start (at `price0`)."""
    low = np.minimum.accumulate(window[::-1])[::-1]
    high = np.maximum.accumulate(window[::-1])[::-1]
    return np.minimum(low, price0), np.maximum(high, price0)

"""Perpetual funding (facts 1.1.1-1.1.2, 1.5.7).

`F = P + clamp(I − P, −c, +c)` per 8 h with interest I = 0.01% and clamp c = 0.05%; longs pay
shorts when F > 0. Venues paying every `interval` hours pay `F·interval/8` each time
(Hyperliquid: hourly at 1/8 of the rate, capped at 4% per hour).
"""

from __future__ import annotations

import numpy as np

INTEREST_8H = 1e-4  # 0.01% per 8 h (facts 1.1.2)
CLAMP_8H = 5e-4  # ±0.05% (facts 1.1.1)


def funding_rate_8h(premium: float, interest: float = INTEREST_8H, clamp: float = CLAMP_8H):
    """8-hour funding rate from the premium index (facts 1.1.1)."""
    return premium + np.clip(interest - premium, -clamp, clamp)


def funding_rate(
    premium: float,
    interval_hours: float,
    interest: float = INTEREST_8H,
    clamp: float = CLAMP_8H,
    cap: float = np.inf,
) -> float:
    """Rate paid per settlement for settlements every `interval_hours`, capped at ±cap."""
    rate = funding_rate_8h(premium, interest, clamp) * interval_hours / 8.0
    return float(np.clip(rate, -cap, cap))


def settlements_between(start_s: float, end_s: float, interval_hours: float) -> int:
    """Number of settlement instants τ = j·interval (UTC seconds since the epoch) with
    start < τ ≤ end: a settlement is paid at the first step starting at or after it, as
    shocks are."""
    interval = interval_hours * 3600.0
    return int(np.floor(end_s / interval) - np.floor(start_s / interval))

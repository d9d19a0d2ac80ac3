"""Hyperliquid style margin and liquidation rules (facts 1.5.x).

One maintenance rate per asset, half the initial margin at maximum leverage (1.5.1); the
notional tiers of very large BTC positions (> $150M at 20x, 1.5.2) are left out.
"""

from __future__ import annotations

import numpy as np

from deleverage.venues.tiers import TierTable

BTC_MAX_LEVERAGE = 40.0  # facts 1.5.2 (ETH 25x, SOL 20x)
PARTIAL_ABOVE_USD = 100_000.0  # positions above this are liquidated in chunks (facts 1.5.3)
PARTIAL_SHARE = 0.2  # first chunk: 20% of the position (facts 1.5.3)
COOLDOWN_SECONDS = 30.0  # after a chunk, the remainder waits 30 s (facts 1.5.3)
BACKSTOP_SHARE = 2.0 / 3.0  # equity < 2/3·MM: the liquidator vault takes over (facts 1.5.4)
FUNDING_INTERVAL_HOURS = 1.0  # hourly at 1/8 of the 8 h rate (facts 1.5.7)
FUNDING_CAP_PER_HOUR = 0.04  # facts 1.5.7
LIQUIDATION_FEE = 0.0  # "no clearance fee" (facts 1.5.3)


def maintenance_margin_rate(max_leverage: np.ndarray | float):
    """MMR = ½·(1/max leverage): 1.25% at 40x, 2% at 25x, 5% at 10x (facts 1.5.1)."""
    return 0.5 / np.asarray(max_leverage, dtype=float)


def table(max_leverage: float = BTC_MAX_LEVERAGE) -> TierTable:
    """A single tier: MM = notional·MMR, no maintenance amount."""
    rate = float(maintenance_margin_rate(max_leverage))
    return TierTable.from_rows([np.inf], [rate], [0.0], [max_leverage])


def liquidation_price(
    price: np.ndarray | float,
    side: np.ndarray | float,
    margin_available: np.ndarray | float,
    size: np.ndarray | float,
    maintenance_leverage: np.ndarray | float,
):
    """`liq = price − side·margin_available/size/(1 − l·side)`, `l = 1/maintenance_leverage`,
    margin_available = account value − maintenance margin at `price` (facts 1.5.6)."""
    l_rate = 1.0 / np.asarray(maintenance_leverage, dtype=float)
    return price - side * margin_available / size / (1.0 - l_rate * side)


def adl_score(
    side: np.ndarray, mark: float, entry: np.ndarray, notional_usd: np.ndarray, account_value
) -> np.ndarray:
    """ADL ranking `(mark/entry)·(notional/account value)` for longs (facts 1.5.5); for shorts
    the profit factor is `entry/mark`, so that in both cases more profit and more leverage
    rank first."""
    profit = np.where(side > 0, mark / entry, entry / mark)
    return profit * notional_usd / account_value

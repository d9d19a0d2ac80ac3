"""Bybit style risk-limit tiers with the maintenance-margin deduction (facts 1.3.x).

`MM = PositionValue·MMR − Deduction`, `Ded_n = RiskLimit_{n−1}·(MMR_n − MMR_{n−1}) + Ded_{n−1}`
(facts 1.3.2). BTCUSDT tiers from facts 1.3.1 (~2024-25) up to the 50M risk limit: the
published table goes on to 80M (14x, 4.5%) with rows in between that the fact sheet does not
list, and a deduction needs every row below it, so the table stops at 50M (larger positions
stay in its last tier).
"""

from __future__ import annotations

import numpy as np

from deleverage.venues.tiers import TierTable, continuous_amounts

# facts 1.3.1: risk limit (USDT), max leverage, MMR
_LIMITS = [
    2.0e6, 2.6e6, 3.2e6, 3.8e6, 4.4e6, 5.0e6, 5.6e6, 8.5e6, 10e6, 14e6, 20e6, 28e6, 38e6, 50e6,
]  # fmt: skip
_LEVERAGE = [100, 90, 80, 75, 70, 65, 55, 50, 45, 40, 35, 30, 25, 20]
_MMR = [
    0.005, 0.0056, 0.0063, 0.0067, 0.0071, 0.0077, 0.0091, 0.010, 0.013, 0.015, 0.016, 0.020,
    0.025, 0.029,
]  # fmt: skip

BTCUSDT = TierTable.from_rows(_LIMITS, _MMR, continuous_amounts(_LIMITS, _MMR), _LEVERAGE)


def deductions(risk_limits: list[float], mmr: list[float]) -> np.ndarray:
    """Deduction per tier from the risk limits and rates (facts 1.3.2), USD."""
    return np.array(continuous_amounts(risk_limits, mmr))


def maintenance_margin(position_value_usd: np.ndarray | float, table: TierTable = BTCUSDT):
    """`MM = PosValue·MMR − Deduction` for the tier holding the position value (facts 1.3.2)."""
    return table.maintenance_margin(position_value_usd)

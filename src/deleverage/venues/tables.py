"""Named maintenance-margin tier tables, one per (venue rule set, asset) the fact sheet
documents (facts 1.2.2-1.2.4, 1.3.1, 1.5.1-1.5.2). A scenario names one per asset on its
venue (`venues[].tier_tables`) or per perp book (`tiers`), or writes its own rows.
"""

from __future__ import annotations

import numpy as np

from deleverage.venues import binance, bybit, hyperliquid
from deleverage.venues.tiers import TierTable, continuous_amounts

# facts 1.2.4: Binance XRPUSDT, announcement of 2024-08-27. The fact sheet lists the brackets
# and rates up to 16M ("…" after it: larger positions stay in that tier) and the leverage of
# the first bracket only (51-75x). The other brackets' maximum leverage is ⌊1/(2·MMR)⌋ capped
# at 75x: the relation every row of Binance's BTCUSDT table obeys (1.2.2). Maintenance
# amounts make MM continuous (1.2.1, 1.3.2).
_XRP_UPPER = [10e3, 20e3, 160e3, 800e3, 1.6e6, 8e6, 16e6]
_XRP_MMR = [0.005, 0.0065, 0.01, 0.02, 0.025, 0.05, 0.10]
_XRP_LEVERAGE = [min(75.0, float(np.floor(1.0 / (2.0 * rate) + 1e-9))) for rate in _XRP_MMR]
BINANCE_XRPUSDT_2024 = TierTable.from_rows(
    _XRP_UPPER, _XRP_MMR, continuous_amounts(_XRP_UPPER, _XRP_MMR), _XRP_LEVERAGE
)

NAMED: dict[str, TierTable] = {
    "binance-btcusdt-2021": binance.BTCUSDT_2021,  # facts 1.2.2-1.2.3
    "binance-xrpusdt-2024": BINANCE_XRPUSDT_2024,  # facts 1.2.4
    "bybit-btcusdt": bybit.BTCUSDT,  # facts 1.3.1-1.3.2
    "hyperliquid-btc": hyperliquid.table(40.0),  # facts 1.5.1-1.5.2: 40x, MMR 1.25%
    "hyperliquid-eth": hyperliquid.table(25.0),  # 25x, MMR 2%
    "hyperliquid-sol": hyperliquid.table(20.0),  # 20x, MMR 2.5%
}


def from_rows(upper_usd: list[float], mmr: list[float], leverage: list[float]) -> TierTable:
    """A table from brackets (inclusive upper bounds, USD), rates (fractions) and maximum
    leverage, with the maintenance amounts that make MM continuous (facts 1.2.1, 1.3.2)."""
    return TierTable.from_rows(upper_usd, mmr, continuous_amounts(upper_usd, mmr), leverage)

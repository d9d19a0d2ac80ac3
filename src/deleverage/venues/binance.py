"""Binance USDⓈ-M style margin rules (facts 1.2.x).

Maintenance margin is tiered by notional, `MM = notional·MMR − maintenance_amount` (1.2.1).
The table is BTCUSDT's as announced 2021-03-18 (1.2.2) with the maintenance amounts of the
reverse-engineered liquidation formula (1.2.3); the tiers have been enlarged since (facts §7:
no newer official table was found).
"""

from __future__ import annotations

import numpy as np

from deleverage.venues.tiers import TierTable

# facts 1.2.2 (brackets, max leverage, MMR) and 1.2.3 (maintenance amounts, USDT)
BTCUSDT_2021 = TierTable.from_rows(
    upper_usd=[50e3, 250e3, 1e6, 10e6, 20e6, 50e6, 100e6, 200e6, 300e6, 500e6],
    mmr=[0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25, 0.50],
    amount_usd=[
        0.0,
        50.0,
        1_300.0,
        16_300.0,
        266_300.0,
        1_266_300.0,
        2_516_300.0,
        5_016_300.0,
        25_016_300.0,
        100_016_300.0,
    ],
    leverage=[125, 100, 50, 20, 10, 5, 4, 3, 2, 1],
)

FUNDING_INTERVAL_HOURS = 8.0  # settlements at 00:00, 08:00, 16:00 UTC (facts 1.1.1)
# Liquidation clearance fee to the insurance fund: retail sources quote 1.5% (facts 1.2.6, L);
# the prior band of facts §6 is 0.5-1.5%. Default: its middle, 1.0%; a scenario parameter.
LIQUIDATION_FEE = 0.01
FUND_CAPACITY = 1.0  # taken-over net notional ≤ 100% of fund size (facts 1.2.7)


def maintenance_margin(notional_usd: np.ndarray | float, table: TierTable = BTCUSDT_2021):
    """MM in USD for a position notional (facts 1.2.1)."""
    return table.maintenance_margin(notional_usd)


def liquidation_price(
    wallet_balance: np.ndarray | float,
    quantity: np.ndarray | float,
    entry: np.ndarray | float,
    mmr: np.ndarray | float,
    maintenance_amount: np.ndarray | float,
):
    """`(WB + maint_amt − q·entry) / (|q|·(MMR − side))`, q signed (+ long) — facts 1.2.3,
    for the tier whose MMR and maintenance amount are given."""
    side = np.sign(quantity)
    return (wallet_balance + maintenance_amount - quantity * entry) / (
        np.abs(quantity) * (mmr - side)
    )


def bankruptcy_price(
    wallet_balance: np.ndarray | float, quantity: np.ndarray | float, entry: np.ndarray | float
):
    """Price at which the margin balance is zero: `entry − WB/q`, q signed (facts 1.1.7)."""
    return entry - np.asarray(wallet_balance) / np.asarray(quantity)


def leverage_pnl(
    unrealized_pnl: np.ndarray,
    wallet_balance: np.ndarray,
    maintenance_margin_usd: np.ndarray,
) -> np.ndarray:
    """ADL ranking score (facts 1.2.8): `PnL% = max(0, uPnL)/max(1, WB)`,
    `MarginRatio = MM/(WB + uPnL)`, `LeveragePnL = PnL%·MarginRatio`; highest is deleveraged
    first."""
    pnl_share = np.maximum(unrealized_pnl, 0.0) / np.maximum(wallet_balance, 1.0)
    margin_ratio = maintenance_margin_usd / (wallet_balance + unrealized_pnl)
    return pnl_share * margin_ratio

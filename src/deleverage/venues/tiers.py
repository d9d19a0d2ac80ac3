"""Tiered maintenance margin by position notional (facts 1.2.1, 1.3.2).

A tier table lists, for each bracket of notional (upper bounds inclusive), the maintenance
margin rate and the maintenance amount (Binance) or deduction (Bybit):
`MM = notional·MMR(tier) − amount(tier)`. The amounts make MM continuous across brackets;
rates rise with notional, so MM is convex and equals the largest of the tier lines,
`MM(N) = max_k (N·MMR_k − amount_k)` — which is why a liquidation price over all tiers is
the highest (long) or lowest (short) of the per-tier liquidation prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TierTable:
    """Brackets of notional (USD) with rates as fractions (0.004 = 0.40%)."""

    upper_usd: np.ndarray  # inclusive upper bound of each bracket; the last is +inf
    mmr: np.ndarray  # maintenance margin rate per bracket
    amount_usd: np.ndarray  # maintenance amount (deduction) per bracket
    max_leverage: np.ndarray  # largest leverage allowed to open a position in the bracket

    @classmethod
    def from_rows(
        cls,
        upper_usd: list[float],
        mmr: list[float],
        amount_usd: list[float],
        leverage: list[float],
    ) -> TierTable:
        upper = np.array(upper_usd, dtype=float)
        upper[-1] = np.inf  # notional beyond the last published bound stays in the last tier
        return cls(
            upper, np.array(mmr, float), np.array(amount_usd, float), np.array(leverage, float)
        )

    @property
    def lower_usd(self) -> np.ndarray:
        """Exclusive lower bound of each bracket (0 for the first)."""
        return np.concatenate([[0.0], self.upper_usd[:-1]])

    def tier(self, notional_usd: np.ndarray | float) -> np.ndarray:
        """Index of the bracket holding each notional (bounds are inclusive upper bounds);
        a notional beyond the last bound stays in the last bracket."""
        index = np.searchsorted(self.upper_usd, notional_usd, side="left")
        return np.minimum(index, len(self.upper_usd) - 1)

    def maintenance_margin(self, notional_usd: np.ndarray | float) -> np.ndarray:
        """MM = notional·MMR(tier) − amount(tier), USD (facts 1.2.1, 1.3.2)."""
        k = self.tier(notional_usd)
        return np.asarray(notional_usd) * self.mmr[k] - self.amount_usd[k]


def continuous_amounts(upper_usd: list[float], mmr: list[float]) -> list[float]:
    """Amounts that make MM continuous: `A_n = B_{n−1}·(MMR_n − MMR_{n−1}) + A_{n−1}`, A_1 = 0
    (Bybit's deduction rule, facts 1.3.2; Binance's maintenance amounts obey it too, 1.2.3)."""
    amounts = [0.0]
    for n in range(1, len(mmr)):
        amounts.append(upper_usd[n - 1] * (mmr[n] - mmr[n - 1]) + amounts[-1])
    return amounts


def liquidation_price(
    collateral_usd: np.ndarray,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    table: TierTable,
) -> np.ndarray:
    """Mark price at which margin balance equals maintenance margin, over all tiers.

    `collateral_usd` is the margin backing the position (isolated margin or cross wallet,
    net of accrued funding), `side` ±1, `size` units (> 0). Each tier line gives
    `(WB + amount − q·entry) / (|q|·(MMR − side))` (facts 1.2.3, q signed); since MM is the
    largest tier line, the liquidation price is the highest (long) or lowest (short) one.
    """
    side = np.asarray(side, dtype=float)
    signed = side * size
    best = None
    for rate, amount in zip(table.mmr, table.amount_usd, strict=True):
        price = (collateral_usd + amount - signed * entry) / (size * (rate - side))
        if best is None:
            best = price
        else:
            best = np.where(side > 0, np.maximum(best, price), np.minimum(best, price))
    return best


def bankruptcy_price(
    collateral_usd: np.ndarray, side: np.ndarray, size: np.ndarray, entry: np.ndarray
) -> np.ndarray:
    """Mark price at which the margin balance is zero: `entry − side·collateral/size`."""
    return entry - np.asarray(side, dtype=float) * collateral_usd / size

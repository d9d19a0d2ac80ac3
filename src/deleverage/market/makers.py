"""Market makers: the agents behind the latent book. Every net order flow is their trade.

Depth they provide (SPEC §3.2, facts 3.2.3): ∝ (σ_normal / σ_realized)^κ, floored; shrinks on
the side that loads their inventory as it nears its limit; cut further by `mm_retreat`.
They lay inventory off to end investors at the resilience of their balance sheet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MarketMakers:
    normal_vol: np.ndarray  # (A,) daily σ the desks consider normal
    adv_usd: np.ndarray  # (A,)
    steps_per_day: np.ndarray  # (A,) trading steps per trading day
    vol_decay: float  # EWMA weight on the old variance per open step
    vol_sensitivity: float
    depth_floor: float
    inventory_limit_usd: np.ndarray  # (A,)
    lay_off_share: float  # share of inventory passed on per open step
    inventory: np.ndarray  # (A,) units, + long
    cash: np.ndarray  # (A,) USD
    variance: np.ndarray  # (A,) realized daily variance (EWMA)

    @classmethod
    def create(
        cls,
        normal_vol,
        adv_usd,
        steps_per_day,
        *,
        vol_decay,
        vol_sensitivity,
        depth_floor,
        inventory_limit_usd,
        lay_off_share,
    ) -> MarketMakers:
        n = len(normal_vol)
        return cls(
            normal_vol,
            adv_usd,
            steps_per_day,
            vol_decay,
            vol_sensitivity,
            depth_floor,
            inventory_limit_usd,
            lay_off_share,
            np.zeros(n),
            np.zeros(n),
            normal_vol**2,
        )

    @property
    def realized_vol(self) -> np.ndarray:
        return np.sqrt(self.variance)

    def depth(
        self, unit_usd: np.ndarray, retreat: np.ndarray, feedback: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Depth multipliers (bid side, ask side); `unit_usd` is the USD value of one unit.
        With `feedback` off the desks keep normal depth whatever volatility and inventory do;
        an exogenous retreat still applies."""
        if not feedback:
            return retreat.copy(), retreat.copy()
        with np.errstate(divide="ignore"):
            vol = np.minimum((self.normal_vol / self.realized_vol) ** self.vol_sensitivity, 1.0)
        loading = self.inventory * unit_usd / self.inventory_limit_usd  # + long, − short
        bid = np.maximum(vol * np.clip(1.0 - loading, 0.0, 1.0), self.depth_floor)
        ask = np.maximum(vol * np.clip(1.0 + loading, 0.0, 1.0), self.depth_floor)
        return bid * retreat, ask * retreat

    def take(self, net_quantity: np.ndarray, price: np.ndarray) -> None:
        """Absorb the net order flow (+ = the crowd bought, so the desks sold)."""
        self.inventory -= net_quantity
        self.cash += net_quantity * price

    def observe(self, log_return: np.ndarray, is_open: np.ndarray) -> None:
        """Update realized variance from this step's log return, on open steps only."""
        updated = (
            self.vol_decay * self.variance
            + (1 - self.vol_decay) * log_return**2 * self.steps_per_day
        )
        self.variance = np.where(is_open, updated, self.variance)

    def lay_off(self, price: np.ndarray, is_open: np.ndarray) -> np.ndarray:
        """Pass a share of inventory to end investors at the current price; returns units
        passed (+ = the desks sold to investors)."""
        units = np.where(is_open, self.inventory * self.lay_off_share, 0.0)
        self.inventory -= units
        self.cash += units * price
        return units

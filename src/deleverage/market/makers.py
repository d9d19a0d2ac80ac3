"""Market makers: the agents behind the book. Every net order flow is their trade.

Depth of the latent book (SPEC §3.2, facts 3.2.3): ∝ (σ_normal / σ_realized)^κ on the slow
volatility, floored; on assets without a visible book it also shrinks on the side that
loads their inventory and with any `mm_retreat` shock. Where an asset has a visible book,
the desks quote it and leave it fast (facts 3.2.1, 3.2.4, 3.2.8): its depth follows the
short-horizon volatility, one-sided flow and inventory, drops at once, comes back with a
half-life, and takes the `mm_retreat` shock. Desks lay inventory off to end investors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deleverage.market.book import clip


@dataclass(frozen=True)
class Depth:
    """Depth multipliers per asset (1 = at rest) of each book side."""

    latent_bid: np.ndarray
    latent_ask: np.ndarray
    visible_bid: np.ndarray
    visible_ask: np.ndarray


@dataclass
class MarketMakers:
    normal_vol: np.ndarray  # (A,) daily σ the desks consider normal
    adv_usd: np.ndarray  # (A,)
    steps_per_day: np.ndarray  # (A,) trading steps per trading day
    vol_decay: float  # EWMA weight on the old variance per open step (slow)
    fast_decay: float  # the same for the short-horizon variance
    imbalance_decay: float  # EWMA weight on the old one-sided flow per step
    imbalance_tolerance: float  # one-sided flow (× normal pace) that halves visible depth
    recovery_share: float  # share of the gap to normal visible depth recovered per step
    vol_sensitivity: float
    depth_floor: float
    visible_floor: float
    inventory_limit_usd: np.ndarray  # (A,)
    lay_off_share: float  # share of inventory passed on per open step
    inventory: np.ndarray  # (A,) units, + long
    cash: np.ndarray  # (A,) quote currency
    variance: np.ndarray  # (A,) realized daily variance, slow EWMA
    fast_variance: np.ndarray  # (A,) realized daily variance, short-horizon EWMA
    imbalance: np.ndarray  # (A,) net flow per step ÷ normal volume per step (+ buying)
    visible_bid: np.ndarray  # (A,) visible depth multipliers now
    visible_ask: np.ndarray
    has_visible: np.ndarray  # (A,) bool: the asset has a visible book the desks quote

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
        fast_decay=0.0,
        imbalance_decay=0.0,
        imbalance_tolerance=1.0,
        recovery_share=1.0,
        visible_floor=1.0,
        initial_vol=None,
        has_visible=None,
    ) -> MarketMakers:
        n = len(normal_vol)
        variance = (normal_vol if initial_vol is None else initial_vol) ** 2
        return cls(
            normal_vol,
            adv_usd,
            steps_per_day,
            vol_decay,
            fast_decay,
            imbalance_decay,
            imbalance_tolerance,
            recovery_share,
            vol_sensitivity,
            depth_floor,
            visible_floor,
            inventory_limit_usd,
            lay_off_share,
            np.zeros(n),
            np.zeros(n),
            variance.copy(),
            variance.copy(),
            np.zeros(n),
            np.ones(n),
            np.ones(n),
            np.zeros(n, bool) if has_visible is None else np.asarray(has_visible, bool),
        )

    @property
    def realized_vol(self) -> np.ndarray:
        return np.sqrt(self.variance)

    def depth(self, unit_usd: np.ndarray, retreat: np.ndarray, feedback) -> Depth:
        """Depth multipliers; `unit_usd` is the USD value of one unit. With `feedback` off
        the desks keep normal depth whatever volatility, flow and inventory do; an exogenous
        retreat still applies (to the visible book, or the latent one where there is none).
        `feedback` is a bool, or with lanes an (L, 1) column of them (lanes of a batch may
        differ in their channels). Advances the visible book's drop-and-recovery by one
        step. Both sides are computed at once, as rows (bid, ask) of one array."""
        # where desks quote a visible book, inventory and retreats act on it, not the latent
        latent_retreat = np.where(self.has_visible, 1.0, retreat)
        if isinstance(feedback, np.ndarray):  # lanes with and without: each its own rule
            moved = self._feedback_depth(unit_usd, retreat, latent_retreat)
            self.visible_bid = np.where(feedback, self.visible_bid, retreat)
            self.visible_ask = np.where(feedback, self.visible_ask, retreat)
            fixed = (latent_retreat, latent_retreat, retreat, retreat)
            return Depth(*(np.where(feedback, m, f) for m, f in zip(moved, fixed, strict=True)))
        if not feedback:
            self.visible_bid, self.visible_ask = retreat.copy(), retreat.copy()
            return Depth(latent_retreat, latent_retreat.copy(), retreat.copy(), retreat.copy())
        return Depth(*self._feedback_depth(unit_usd, retreat, latent_retreat))

    def _feedback_depth(self, unit_usd, retreat, latent_retreat) -> tuple[np.ndarray, ...]:
        """The desks' depth with feedback: (latent bid, latent ask, visible bid, visible
        ask); moves the visible book's multipliers."""
        loading = self.inventory * unit_usd / self.inventory_limit_usd  # + long, − short
        room = clip(1.0 + np.array([-loading, loading]), 0.0, 1.0)  # 1 − loading, 1 + loading
        # (σ_normal / σ_realized)^κ on the slow and the short-horizon variance, at most 1
        with np.errstate(divide="ignore"):
            ratio = self.normal_vol / np.sqrt(np.array([self.variance, self.fast_variance]))
        kappa = self.vol_sensitivity
        if isinstance(kappa, np.ndarray):  # lanes that differ in κ: each row its own scalar
            powered = np.stack([ratio[:, j] ** k for j, k in enumerate(kappa[:, 0].tolist())], 1)
        else:
            powered = ratio**kappa
        slow, fast = np.minimum(powered, 1.0)
        latent = np.where(self.has_visible, slow, slow * room)
        latent = np.maximum(latent, self.depth_floor) * latent_retreat
        one_sided = np.maximum(np.array([-self.imbalance, self.imbalance]), 0.0)  # sell, buy
        target = fast * room / (1.0 + one_sided / self.imbalance_tolerance)
        # desks leave at once and come back at `recovery_share` of the way per step
        now = np.array([self.visible_bid, self.visible_ask])
        visible = np.where(target < now, target, now + (target - now) * self.recovery_share)
        self.visible_bid, self.visible_ask = visible
        # the floor bounds the product: desks that retreat on a shock still leave the
        # thinnest book ever seen (facts 3.2.1), not a fraction of it
        quoted = np.maximum(visible * retreat, self.visible_floor)
        return latent[0], latent[1], quoted[0], quoted[1]

    def take(self, net_quantity: np.ndarray, price: np.ndarray) -> None:
        """Absorb the net order flow (+ = the crowd bought, so the desks sold)."""
        self.inventory -= net_quantity
        self.cash += net_quantity * price

    def observe(self, log_return: np.ndarray, is_open: np.ndarray, net_usd: np.ndarray) -> None:
        """Update realized variances from this step's log return, on open steps only, and
        the one-sided flow from this step's net flow in USD."""
        square = log_return**2
        slow = self.vol_decay * self.variance + (1 - self.vol_decay) * square * self.steps_per_day
        fast = (
            self.fast_decay * self.fast_variance
            + (1 - self.fast_decay) * square * self.steps_per_day
        )
        self.variance = np.where(is_open, slow, self.variance)
        self.fast_variance = np.where(is_open, fast, self.fast_variance)
        pace = net_usd / (self.adv_usd / self.steps_per_day)
        self.imbalance = np.where(
            is_open,
            self.imbalance_decay * self.imbalance + (1 - self.imbalance_decay) * pace,
            self.imbalance,
        )

    def lay_off(self, price: np.ndarray, is_open: np.ndarray) -> np.ndarray:
        """Pass a share of inventory to end investors at the current price; returns units
        passed (+ = the desks sold to investors)."""
        units = np.where(is_open, self.inventory * self.lay_off_share, 0.0)
        self.inventory -= units
        self.cash += units * price
        return units

"""Funds that trade toward a target portfolio: arrays of funds × assets.

Subclasses say what they want to hold (`target_units`); this base turns the difference into
orders on open venues, settles fills with `np.add.at`, and tracks each asset's realized
volatility from one price sample per step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.results.events import EventLog


class TargetPortfolio(ABC):
    kind = "target_portfolio"
    trade_event = "rebalance"

    def __init__(self, name: str, n_funds: int, ctx: BuildContext, vol_half_life_hours: float):
        self.name = name
        self.enabled = ctx.enabled
        self.asset_ids = [a.id for a in ctx.scenario.assets]
        n_assets = len(self.asset_ids)
        self.units = np.zeros((n_funds, n_assets))
        self.cash_usd = np.zeros(n_funds)
        self.variance = np.array([a.daily_vol**2 for a in ctx.scenario.assets])
        self._steps_per_day = 24.0 / ctx.step_hours
        self._vol_decay = 0.5 ** (ctx.step_hours / vol_half_life_hours)
        self._last_price = ctx.price0.copy()
        self._step = -1
        self._orders = Orders.empty()

    @property
    def realized_vol(self) -> np.ndarray:
        """Daily realized volatility per asset (EWMA of one squared log return per step)."""
        return np.sqrt(self.variance)

    def equity(self, price: np.ndarray) -> np.ndarray:
        return self.cash_usd + self.units @ price

    @abstractmethod
    def target_units(self, view: MarketView, first_round: bool, log: EventLog) -> np.ndarray | None:
        """Units each fund wants to hold now, or None for no trade this round."""

    def _observe(self, view: MarketView) -> None:
        moved = view.is_open & (view.price != self._last_price)
        r2 = np.log(view.price / self._last_price) ** 2 * self._steps_per_day
        updated = self._vol_decay * self.variance + (1 - self._vol_decay) * r2
        self.variance = np.where(moved, updated, self.variance)
        self._last_price = view.price.copy()

    def mark(self, view: MarketView, log: EventLog) -> None:
        first_round = view.step != self._step
        if first_round:
            self._step = view.step
            self._observe(view)
        self._orders = Orders.empty()
        if not self.enabled:
            return
        target = self.target_units(view, first_round, log)
        if target is None:
            return
        trade = np.where(view.is_open, target - self.units, 0.0)
        funds, assets = np.nonzero(trade)
        self._orders = Orders(assets, trade[funds, assets], funds)

    def orders(self) -> Orders:
        return self._orders

    def apply_fills(self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog):
        funds, assets, quantity = (
            orders.owner[filled],
            orders.asset[filled],
            orders.quantity[filled],
        )
        np.add.at(self.units, (funds, assets), quantity)
        np.add.at(self.cash_usd, funds, -quantity * price[filled])
        self._orders = Orders.empty()
        for a in np.unique(assets):
            mine = assets == a
            q = float(quantity[mine].sum())
            log.add(
                self.trade_event,
                population=self.name,
                asset=self.asset_ids[a],
                count=int(mine.sum()),
                quantity=q,
                notional_usd=abs(q) * float(price[filled][mine][0]),
                price=float(price[filled][mine][0]),
            )

    def holdings(self, n_assets: int) -> np.ndarray:
        return self.units.sum(axis=0)

    def cash(self) -> float:
        return float(self.cash_usd.sum())

"""Stop-loss books (SPEC §4.5): resting stops at a distance from the running high (low).

Accounts are kept sorted by stop distance, so the stops hit by a price are always a prefix
of the untriggered accounts: the trigger check is one `searchsorted`, O(log n) per round,
and fills touch a contiguous slice — no per-account Python loop.
"""

from __future__ import annotations

import numpy as np

from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.results.events import EventLog
from deleverage.scenario.schema import StopLossBook


class StopLossPopulation:
    kind = "stop_loss"

    def __init__(self, spec: StopLossBook, ctx: BuildContext):
        self.name = spec.name
        self.asset = ctx.asset_index[spec.asset]
        self.asset_id = spec.asset
        self.currency = ctx.scenario.assets[self.asset].currency
        self.enabled = ctx.enabled
        price, rng = ctx.price0[self.asset], ctx.rng
        self.sign = 1.0 if spec.side == "long" else -1.0
        n = spec.accounts
        # Account sizes are skewed (lognormal weights), summing to the book's notional.
        weights = np.exp(rng.normal(0.0, 1.0, n))
        self.units = (
            weights / weights.sum() * spec.notional_usd / ctx.unit_usd0[self.asset] * self.sign
        )
        self.distance = np.sort(np.clip(spec.stop_distance.sample(rng, n), 0.0, 0.999))
        self.cash_usd = np.zeros(n)
        self._cum_units = np.concatenate([[0.0], np.cumsum(self.units)])
        self.extreme = price  # running high (long) or low (short)
        self.triggered = 0  # accounts [0, triggered) have been stopped out
        self.filled = 0  # accounts [0, filled) are flat
        self._cash_total = 0.0

    def mark(self, view: MarketView, log: EventLog) -> None:
        if not self.enabled:
            return
        price = view.price[self.asset]
        if self.sign > 0:
            if price > self.extreme:  # max(), without its call
                self.extreme = price
            move = 1.0 - price / self.extreme
        else:
            if price < self.extreme:
                self.extreme = price
            move = price / self.extreme - 1.0
        if self.triggered == len(self.distance) or move < self.distance[self.triggered]:
            return  # no stop left, or the next one is further away: nothing is hit
        hit = int(np.searchsorted(self.distance, move, side="right"))
        if hit > self.triggered:
            units = self._cum_units[hit] - self._cum_units[self.triggered]
            log.add(
                "stop_triggered",
                population=self.name,
                asset=self.asset_id,
                count=hit - self.triggered,
                quantity=-units,
                notional_usd=abs(units) * view.unit_usd[self.asset],
                price=price,
            )
            self.triggered = hit

    def orders(self) -> Orders:
        if self.triggered == self.filled:
            return Orders.empty()
        units = self._cum_units[self.triggered] - self._cum_units[self.filled]
        return Orders(np.array([self.asset]), np.array([-units]), np.array([0]))

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        if len(orders.asset) == 0 or not filled[0]:
            return
        block = slice(self.filled, self.triggered)
        proceeds = self.units[block] * price[0]
        self.cash_usd[block] += proceeds
        self._cash_total += float(proceeds.sum())
        self.units[block] = 0.0
        self.filled = self.triggered

    def holdings(self, n_assets: int) -> np.ndarray:
        out = np.zeros(n_assets)
        out[self.asset] = self._cum_units[-1] - self._cum_units[self.filled]
        return out

    def cash(self) -> float:
        return self._cash_total

    def cash_by_currency(self) -> dict[str, float]:
        return {self.currency: self._cash_total}

"""End investors: the outside sector that runs exogenous `flow` programmes and takes the
inventory market makers lay off. It is an agent like any other, so units and cash stay
conserved across the whole market."""

from __future__ import annotations

import numpy as np

from deleverage.populations.base import MarketView, Orders
from deleverage.results.events import EventLog


class EndInvestors:
    kind = "end_investors"

    def __init__(self, flow_usd: np.ndarray, asset_ids: list[str], currencies: list[str]):
        self.name = "end-investors"
        self.flow_usd = flow_usd  # (T, A) scheduled programme, USD per step (+ buy)
        self.asset_ids = asset_ids
        self.currencies = currencies  # quote currency of each asset
        n = flow_usd.shape[1]
        self.units = np.zeros(n)
        self.cash_by_asset = np.zeros(n)  # cash paid or received per asset, quote currency
        self.pending_usd = np.zeros(n)  # programme not yet executed (venue closed)
        self._pending_units = np.zeros(n)
        self._step = -1
        self._unit_usd = np.ones(n)
        self._flows = flow_usd.any(axis=1)  # (T,) bool: the step brings a programme slice
        self._idle = True  # nothing pending: no order (most steps of most scenarios)

    def mark(self, view: MarketView, log: EventLog) -> None:
        if view.step != self._step:  # a new step's slice of the programme
            self._step = view.step
            if self._flows[view.step]:
                self.pending_usd += self.flow_usd[view.step]
                self._idle = False
        self._unit_usd = view.unit_usd
        if self._idle:
            return
        self._pending_units = np.where(view.is_open, self.pending_usd / view.unit_usd, 0.0)

    def orders(self) -> Orders:
        if self._idle:
            return Orders.empty()
        assets = np.flatnonzero(self._pending_units)
        return Orders(assets, self._pending_units[assets], np.zeros(len(assets), dtype=np.int64))

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        assets = orders.asset[filled]
        quantity = orders.quantity[filled]
        self.units[assets] += quantity
        np.add.at(self.cash_by_asset, assets, -quantity * price[filled])
        self.pending_usd[assets] = 0.0
        self._pending_units[assets] = 0.0
        self._idle = not self.pending_usd.any()
        for a, q, p in zip(assets, quantity, price[filled], strict=True):
            value = abs(q) * self._unit_usd[a]
            log.add(
                "flow",
                population=self.name,
                asset=self.asset_ids[a],
                quantity=q,
                notional_usd=value,
                price=p,
            )

    def take_lay_off(self, units: np.ndarray, price: np.ndarray) -> None:
        """Buy the inventory market makers pass on (+ units = investors buy)."""
        self.units += units
        self.cash_by_asset -= units * price

    def holdings(self, n_assets: int) -> np.ndarray:
        return self.units.copy()

    def cash(self) -> float:
        return float(self.cash_by_asset.sum())

    def cash_by_currency(self) -> dict[str, float]:
        return _by_currency(self.cash_by_asset, self.currencies)


def _by_currency(values: np.ndarray, currencies: list[str]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for value, currency in zip(values, currencies, strict=True):
        totals[currency] = totals.get(currency, 0.0) + float(value)
    return totals

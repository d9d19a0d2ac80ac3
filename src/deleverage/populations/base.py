"""The interface every population of holders implements (SPEC §4; STYLE "State is arrays").

A population is arrays of accounts plus four behaviours the engine calls every round:
`mark` (mark to market, decide forced and voluntary trades), `orders` (the open orders),
`apply_fills` (settle what the market filled), and `holdings`/`cash` for the invariants.
Orders for a closed venue stay open in the population and are sent again until filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from deleverage.market.fx import Translation
from deleverage.results.events import EventLog
from deleverage.scenario.schema import Scenario
from deleverage.scenario.series import history_series


@dataclass(frozen=True)
class Orders:
    """Market orders: asset index, signed quantity in units (+ buy), and the owner group
    inside the population (an account index or an aggregate bucket)."""

    asset: np.ndarray
    quantity: np.ndarray
    owner: np.ndarray

    @classmethod
    def empty(cls) -> Orders:
        return _NO_ORDERS


_NO_ORDERS = Orders(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class MarketView:
    """What a population may see during a round: prices now, which assets trade, and the
    venue state that margin rules need. Arrays are indexed by asset: (A,), or (lanes, A)
    for a population slot marked once for several lanes (`populations.lanes`)."""

    step: int
    time: pd.Timestamp  # UTC start of the step
    step_hours: float  # length of a step in hours
    price: np.ndarray  # (A,) current prices
    is_open: np.ndarray  # (A,) bool: the asset's venue trades now
    settlement: np.ndarray  # (A,) bool: the venue's daily settlement falls in this step
    initial_margin_pct: np.ndarray  # (A,) exchange initial margin, % of notional (NaN: none)
    maintenance_margin_pct: np.ndarray  # (A,) exchange maintenance margin, % (NaN: none)
    yield_pct: np.ndarray  # (A,) bond yields in % p.a. (NaN for non-bonds)
    unit_usd: np.ndarray  # (A,) USD value of one unit: price × FX rate, or 1 for a USD/xxx pair
    mark_price: np.ndarray | None = None  # (A,) exchanges' mark price; None: the price

    def row(self, index) -> MarketView:
        """Row(s) `index` (an int, or indices) of a view whose arrays are (lanes, A): that
        lane's own view, or the view of those lanes."""
        arrays = (
            self.price,
            self.is_open,
            self.settlement,
            self.initial_margin_pct,
            self.maintenance_margin_pct,
            self.yield_pct,
            self.unit_usd,
            self.mark_price,
        )
        taken = (None if x is None else x[index] for x in arrays)
        return MarketView(self.step, self.time, self.step_hours, *taken)

    @property
    def mark(self) -> np.ndarray:
        """The mark price that margin and liquidation use (facts 1.1.6): the price with the
        visible book's transient wick smoothed over the exchange's window."""
        return self.price if self.mark_price is None else self.mark_price


@dataclass(frozen=True)
class BuildContext:
    """What a population builder gets: the validated scenario, the asset index, initial
    prices, its own random stream, and whether its feedback channel is on."""

    scenario: Scenario
    asset_index: dict[str, int]
    price0: np.ndarray
    rng: np.random.Generator
    enabled: bool
    step_hours: float
    calendar: Any = None  # the run's venue calendar (market.calendar.Calendar), shared

    @property
    def fx(self) -> Translation:
        """USD value of each quote currency and asset unit at a step's prices."""
        return Translation.build(self.scenario)

    @property
    def unit_usd0(self) -> np.ndarray:
        """(A,) USD value of one unit at the initial prices (1 for a USD/xxx pair)."""
        return self.fx.unit_usd(self.price0)

    def history(self, asset_id: str) -> pd.Series | None:
        """The asset's observed prices up to and including the clock start (UTC index), or
        None when the scenario gives no history for it."""
        asset = self.scenario.assets[self.asset_index[asset_id]]
        if asset.history is None:
            return None
        return history_series(asset.history, self.scenario.clock.start)

    @property
    def steps_per_day(self) -> np.ndarray:
        """(A,) steps in one trading day of each asset's venue."""
        venues = {v.id: v for v in self.scenario.venues}
        hours = np.array([venues[a.venue].session.hours_per_day for a in self.scenario.assets])
        return hours / self.step_hours


class Population(Protocol):
    name: str
    kind: str

    def mark(self, view: MarketView, log: EventLog) -> None:
        """Mark to market at `view.price` and create any forced or voluntary orders."""

    def orders(self) -> Orders:
        """All orders currently open (filled ones are removed by `apply_fills`)."""

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        """Settle the `filled` subset of `orders` at `price` (one price per order)."""

    def holdings(self, n_assets: int) -> np.ndarray:
        """Units held per asset, summed over accounts (+ long)."""

    def cash(self) -> float:
        """Cash held, summed over accounts (in each asset's quote currency, summed)."""

    def cash_by_currency(self) -> dict[str, float]:
        """Cash held per currency: the engine checks each currency is conserved."""


def pooled_leverage(
    gross_usd: np.ndarray, equity_usd: np.ndarray, live: np.ndarray | None = None
) -> float:
    """Gross exposure ÷ equity of the funds still running (`live`, default all, with
    positive equity), summed over funds first (the population's leverage, each fund
    weighted by its equity); NaN when no fund is left. Called every step: a few array
    operations."""
    counted = equity_usd > 0.0 if live is None else live & (equity_usd > 0.0)
    equity = equity_usd @ counted
    return float(gross_usd @ counted / equity) if equity > 0.0 else float("nan")


def pooled_leverage_lanes(
    gross_usd: np.ndarray, equity_usd: np.ndarray, live: np.ndarray | None = None
) -> np.ndarray:
    """`pooled_leverage` of every lane at once: arrays (L, F), one leverage a lane (L,),
    each the bits of its lane's own (the sums are one dot product a lane)."""
    counted = equity_usd > 0.0 if live is None else live & (equity_usd > 0.0)
    counted = counted[:, :, None].astype(float)
    equity = (equity_usd[:, None, :] @ counted)[:, 0, 0]
    gross = (gross_usd[:, None, :] @ counted)[:, 0, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(equity > 0.0, gross / equity, np.nan)

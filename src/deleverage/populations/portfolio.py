"""Funds that trade toward a target portfolio: arrays of funds × assets.

Subclasses say what they want to hold (`target_units`). This base samples prices once a
step (`observe`: realized volatility per asset), asks for a target when a rebalance is due
(every `rebalance_every`) or when a subclass must act at once (forced sales), trades the
difference on open venues, and keeps the target of a closed venue until it opens.

The starting state is a state that exists (SPEC §4): where an asset has a `history`, the
volatility estimate starts from the same EWMA run over that history (one update per open
step of the asset's venue, as in the run), and `start_at` puts funds at the holdings their
own rule gives at the start — existing units, counted in the conservation baseline, not
bought on the first step. Where an asset has no history, the estimate starts at its input
`daily_vol` and funds start in cash in it (they buy at their first rebalance).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta

import numpy as np
import pandas as pd

from deleverage.market.calendar import session_mask
from deleverage.populations.base import BuildContext, MarketView, Orders, pooled_leverage
from deleverage.results.events import EventLog


def history_on_clock(ctx: BuildContext, asset: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The asset's history as log prices and, for each interval between them, the number of
    open steps of its venue (steps of the clock's length): the history on the run's own time
    scale. Points followed only by closed time are folded into the next. None: no history."""
    asset_spec = ctx.scenario.assets[asset]
    seen = ctx.history(asset_spec.id)
    if seen is None:
        return None
    times = seen.index
    grid = pd.date_range(times[0], times[-1], freq=pd.Timedelta(ctx.scenario.clock.step))
    venue = ctx.scenario.venues[ctx.scenario.venue_index()[asset_spec.venue]]
    opened = np.concatenate([[0], np.cumsum(session_mask(venue.session, grid))])
    opened_at = opened[grid.searchsorted(times, side="left")]
    keep = np.r_[np.diff(opened_at) > 0, True]
    return np.log(seen.to_numpy(dtype=float)[keep]), np.diff(opened_at[keep])


def ewma_end(initial: float, values: np.ndarray, open_steps: np.ndarray, decay: float) -> float:
    """Last value of an EWMA that starts at `initial` and, over an interval of n open steps,
    moves toward values[i] by 1 − decay**n (one update of weight 1 − decay per open step)."""
    after = np.cumsum(open_steps[::-1])[::-1] - open_steps  # open steps after interval i
    weights = (1.0 - decay**open_steps) * decay**after
    return float(decay ** open_steps.sum() * initial + weights @ values)


class TargetPortfolio(ABC):
    kind = "target_portfolio"
    trade_event = "rebalance"
    worked = False  # rebalances worked as a percent-of-volume order (see `_work`)

    def __init__(
        self,
        name: str,
        n_funds: int,
        ctx: BuildContext,
        vol_half_life_hours: float,
        rebalance_every: timedelta | None = None,
    ):
        self.name = name
        self.enabled = ctx.enabled
        self.asset_ids = [a.id for a in ctx.scenario.assets]
        n_assets = len(self.asset_ids)
        self.units = np.zeros((n_funds, n_assets))
        self.cash_usd = np.zeros(n_funds)
        self.variance = np.array([a.daily_vol**2 for a in ctx.scenario.assets])
        self._steps_per_day = ctx.steps_per_day  # per asset: its venue's trading day
        self._vol_decay = 0.5 ** (ctx.step_hours / vol_half_life_hours)
        self.histories = {a: h for a in range(n_assets) if (h := history_on_clock(ctx, a))}
        for a, (log_price, open_steps) in self.histories.items():
            daily = np.diff(log_price) ** 2 * self._steps_per_day[a] / open_steps
            self.variance[a] = ewma_end(self.variance[a], daily, open_steps, self._vol_decay)
        self.has_history = np.isin(np.arange(n_assets), list(self.histories))
        hours = rebalance_every.total_seconds() / 3600 if rebalance_every else ctx.step_hours
        self.rebalance_steps = max(1, round(hours / ctx.step_hours))
        self._last_price = ctx.price0.copy()
        self._step = -1
        self._last_rebalance = -self.rebalance_steps
        self._pending: np.ndarray | None = None  # target units, NaN where reached
        self._orders = Orders.empty()
        self._capped = np.zeros(0, dtype=bool)  # per order: worked over more steps
        # percent-of-volume execution: units a step is ADV·rate/steps a day ÷ unit value
        adv = np.array([a.adv_usd for a in ctx.scenario.assets])
        self._volume_cap_usd = ctx.scenario.market.participation_rate * adv / ctx.steps_per_day

    @property
    def realized_vol(self) -> np.ndarray:
        """Daily realized volatility per asset (EWMA of one squared log return per step)."""
        return np.sqrt(self.variance)

    def equity(self, price: np.ndarray) -> np.ndarray:
        return self.cash_usd + self.units @ price

    def gross_leverage(self, price: np.ndarray) -> float:
        """Gross exposure (|units| at `price`) ÷ equity, pooled over the funds."""
        return pooled_leverage(np.abs(self.units) @ price, self.equity(price))

    def start_at(self, units: np.ndarray, price: np.ndarray) -> None:
        """Hold `units` at the start in assets with a history, paid from cash at `price`
        (equity unchanged); assets without one start in cash."""
        self.units = np.where(self.has_history, units, 0.0)
        self.cash_usd = self.cash_usd - self.units @ price

    @abstractmethod
    def target_units(self, view: MarketView, rebalance: bool, log: EventLog) -> np.ndarray | None:
        """Units each fund wants to hold, or None for no new target. `rebalance` is True on
        the first round of a step when a scheduled rebalance is due."""

    def observe(self, view: MarketView) -> None:
        """Once per step, before any order: update realized volatility."""
        moved = view.is_open & (view.price != self._last_price)
        r2 = np.log(view.price / self._last_price) ** 2 * self._steps_per_day
        updated = self._vol_decay * self.variance + (1 - self._vol_decay) * r2
        self.variance = np.where(moved, updated, self.variance)
        self._last_price = view.price.copy()

    def mark(self, view: MarketView, log: EventLog) -> None:
        first_round = view.step != self._step
        if first_round:
            self._step = view.step
            self.observe(view)
        self._orders = Orders.empty()
        if not self.enabled:
            return
        due = first_round and view.step - self._last_rebalance >= self.rebalance_steps
        if due:
            self._last_rebalance = view.step
        target = self.target_units(view, due, log)
        if target is not None:
            self._pending = target
        elif not first_round:
            return  # what was pending on open venues traded in an earlier round of this step
        if self._pending is None:
            return
        wanted = view.is_open & ~np.isnan(self._pending)
        trade = np.where(wanted, self._pending - self.units, 0.0)
        self._pending[wanted & (trade == 0.0)] = np.nan  # already there
        trade, capped = self._work(trade, view)
        funds, assets = np.nonzero(trade)
        self._orders = Orders(assets, trade[funds, assets], funds)
        self._capped = capped[funds, assets]

    def _work(self, trade: np.ndarray, view: MarketView) -> tuple[np.ndarray, np.ndarray]:
        """Populations that `work` their rebalances trade at most the participation rate of
        each asset's normal volume a step (pro rata over funds). Returns the trades of this
        step and where a remainder is left for later steps."""
        if not self.worked:
            return trade, np.zeros(trade.shape, dtype=bool)
        gross = np.abs(trade).sum(axis=0) * view.unit_usd
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(gross > self._volume_cap_usd, self._volume_cap_usd / gross, 1.0)
        capped = (scale < 1.0)[None, :] & (trade != 0.0)
        return np.where(capped, trade * scale, trade), capped

    def orders(self) -> Orders:
        return self._orders

    def apply_fills(self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog):
        funds, assets, quantity = (
            orders.owner[filled],
            orders.asset[filled],
            orders.quantity[filled],
        )
        fill_price = price[filled]
        np.add.at(self.units, (funds, assets), quantity)
        np.add.at(self.cash_usd, funds, -quantity * fill_price)
        reached = ~self._capped[filled]
        self._orders = Orders.empty()
        if self._pending is not None:
            self._pending[funds[reached], assets[reached]] = np.nan
            if np.isnan(self._pending).all():
                self._pending = None
        for a in np.unique(assets):
            mine = assets == a
            q = float(quantity[mine].sum())
            p = float(fill_price[mine][0])
            log.add(
                self.trade_event,
                population=self.name,
                asset=self.asset_ids[a],
                count=int(mine.sum()),
                quantity=q,
                notional_usd=abs(q) * p,
                price=p,
            )

    def holdings(self, n_assets: int) -> np.ndarray:
        return self.units.sum(axis=0)

    def cash(self) -> float:
        return float(self.cash_usd.sum())

    def cash_by_currency(self) -> dict[str, float]:
        return {"USD": self.cash()}  # the specs admit USD-quoted holdings only

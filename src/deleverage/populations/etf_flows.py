"""Performance-chasing holders: spot ETFs and treasury companies (SPEC §4.6).

Net creations per business day = sensitivity · (trailing log return over `lookback`) · AUM,
so outflows follow drawdowns and inflows follow rallies. Creations and redemptions happen
on the open days of the `creation_venue` (US spot BTC ETFs: US business days, facts 5.3.9
lists flows for 30 Jan and 2 Feb 2026, none for the weekend), spread over its session. The
holder starts with the AUM in units of the asset (facts 5.3.9: US spot BTC ETFs held
≈ $93.5bn, 6.4% of BTC's market cap, in early Feb 2026), and its trailing return at the
start is read from the asset's history (none without one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.market.calendar import build_calendar
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.lanes import same_shapes, stack_rows
from deleverage.populations.portfolio import TargetPortfolio, TargetPortfolioLanes
from deleverage.results.events import EventLog
from deleverage.scenario.schema import EtfFlows


class EtfFlowPopulation(TargetPortfolio):
    kind = "etf_flows"
    trade_event = "etf_flow"

    def __init__(self, spec: EtfFlows, ctx: BuildContext):
        super().__init__(spec.name, 1, ctx, vol_half_life_hours=24.0)
        self.spec = spec
        self.asset = ctx.asset_index[spec.asset]
        self.units[0, self.asset] = spec.aum_usd / ctx.price0[self.asset]
        lags = max(1, round(spec.lookback.total_seconds() / 3600 / ctx.step_hours))
        self.lagged_log_price = self._lookback_prices(ctx, lags)  # ring buffer of log prices
        venue_id = spec.creation_venue or ctx.scenario.assets[self.asset].venue
        venues = ctx.scenario.venue_index()
        self.creating = build_calendar(ctx.scenario).open[venues[venue_id]]  # (T,) bool
        hours = ctx.scenario.venues[venues[venue_id]].session.hours_per_day
        self.share_per_step = spec.sensitivity * ctx.step_hours / hours
        # log return over the lookback, updated once a step (one element: a slot holds
        # every lane's in one array)
        self.trailing = np.zeros(1)

    @classmethod
    def slot(cls, populations: list[EtfFlowPopulation]) -> EtfFlowLanes | None:
        first = populations[0]
        if any(p.asset != first.asset for p in populations) or not same_shapes(
            populations, ("creating", "lagged_log_price")
        ):
            return None
        return EtfFlowLanes(populations)

    def _lookback_prices(self, ctx: BuildContext, lags: int) -> np.ndarray:
        """Log prices `lags` steps before each of the first `lags` steps: slot k holds the
        price at start + (k − lags)·step, as of the asset's history (before its first point,
        that point). Without a history: the initial price (no trailing return at the start)."""
        seen = ctx.history(self.spec.asset)
        if seen is None:
            return np.full(lags, np.log(ctx.price0[self.asset]))
        step = pd.Timedelta(ctx.scenario.clock.step)
        times = pd.Timestamp(ctx.scenario.clock.start) + step * np.arange(-lags, 0)
        at = np.clip(seen.index.searchsorted(times, side="right") - 1, 0, None)
        return np.log(seen.to_numpy(dtype=float)[at])

    def observe(self, view: MarketView) -> None:
        super().observe(view)
        log_price = np.log(view.price[self.asset])
        slot = view.step % len(self.lagged_log_price)
        self.trailing[0] = log_price - self.lagged_log_price[slot]
        self.lagged_log_price[slot] = log_price

    def target_units(
        self, view: MarketView, rebalance: bool, log: EventLog, screen=None
    ) -> np.ndarray | None:
        if not rebalance or not (view.is_open[self.asset] and self.creating[view.step]):
            return None
        target = self.units.copy()
        target[0, self.asset] *= np.exp(self.share_per_step * self.trailing[0])
        return target


class EtfFlowLanes(TargetPortfolioLanes):
    """ETF holders of several lanes as one slot: the step's trailing return sampled for
    all lanes at once, and the creations of every lane on the first round of a step its
    creation venue is open (or with a creation still pending) set and sent at once."""

    def __init__(self, populations: list[EtfFlowPopulation]):
        super().__init__(populations)
        self.asset = populations[0].asset
        self.creating = np.stack([p.creating for p in populations])  # read only
        self.share_per_step = np.array([p.share_per_step for p in populations])
        own = stack_rows(populations, ("lagged_log_price", "trailing"))
        self.lagged, self.trailing = own["lagged_log_price"], own["trailing"][:, 0]

    def observe(self, view: MarketView, at) -> None:
        log_price = np.log(view.price[:, self.asset])
        slot = view.step % self.lagged.shape[1]
        self.trailing[at] = log_price - self.lagged[at, slot]
        self.lagged[at, slot] = log_price

    def screen(self, view: MarketView, lanes, due: np.ndarray) -> tuple:
        return due & view.is_open[:, self.asset] & self.creating[lanes, view.step], None

    def targets(self, view: MarketView, rows: np.ndarray, need, due, screen):
        """Every creating lane's `EtfFlowPopulation.target_units` (the screen is its test)."""
        at = rows[need]
        target = self.units[at]  # a copy
        target[:, 0, self.asset] *= np.exp(self.share_per_step[at] * self.trailing[at])
        return need, target

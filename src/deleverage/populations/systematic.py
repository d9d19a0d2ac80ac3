"""Systematic funds that cut exposure as volatility rises (SPEC §4.5).

Volatility targeting: exposure = capital · target_vol / σ̂_portfolio, capped at max leverage.
Trend following: per asset, exposure = capital · w · tanh(momentum/σ̂) · target_vol / σ̂, where
momentum is log price minus its EWMA over `lookback`. σ̂ is each fund's own EWMA estimate from
one price sample per step; funds rebalance on the first round of a step when a position is
off target by more than `rebalance_band`.

Both start where their rule puts them on the assets' history (SPEC §4): σ̂ and the trend
EWMA are run over the history, and the starting holdings are the rule's units at the
initial prices. Assets without a history start with σ̂ = `daily_vol`, no trend, and in cash.

Currencies (items 1 and 10 of issue 13): funds may hold assets quoted in other currencies
and fx pairs. Exposure is a USD share of USD equity (units = equity · exposure ÷ the unit's
USD value at the step's FX rate); σ̂ and the trend are those of the asset's own price in
its quote currency, as a CTA reads a Nikkei future in yen or USDJPY itself. A short yen is
a long USDJPY (units are dollars funded in yen, `portfolio.py`): when the yen rallies the
trend turns and σ̂ rises, and the funds sell the pair back.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.lanes import stack_rows
from deleverage.populations.portfolio import TargetPortfolio, TargetPortfolioLanes, ewma_end
from deleverage.results.events import EventLog
from deleverage.scenario.loader import correlation_matrix
from deleverage.scenario.schema import TrendFollowers, VolTargetFunds


def _weights(spec_weights: dict[str, float], ctx: BuildContext) -> np.ndarray:
    weights = np.zeros(len(ctx.scenario.assets))
    for asset_id, w in spec_weights.items():
        weights[ctx.asset_index[asset_id]] = w
    return weights / weights.sum()


def _banded(target: np.ndarray, held: np.ndarray, band: float) -> np.ndarray | None:
    """Keep positions within the band of their target; None if nothing needs a trade."""
    off = np.abs(target - held) > band * np.maximum(np.abs(target), np.abs(held))
    return np.where(off, target, held) if off.any() else None


class _WeightedFunds(TargetPortfolio):
    """Funds with portfolio weights, equal capital and their own volatility estimates. Their
    rebalances are worked at `market.participation_rate` of normal volume a step."""

    worked = True
    reads_vol = True

    def __init__(self, spec: VolTargetFunds | TrendFollowers, ctx: BuildContext):
        hours = spec.vol_half_life.total_seconds() / 3600
        super().__init__(spec.name, spec.funds, ctx, hours, spec.rebalance_every)
        self.spec = spec
        self.weights = _weights(spec.weights, ctx)
        self.cash_usd[:] = spec.capital_usd / spec.funds

    @abstractmethod
    def exposure(self, price: np.ndarray) -> np.ndarray:
        """(A,) position the rule wants in each asset, as a share of equity."""

    def rule_units(self, price: np.ndarray) -> np.ndarray:
        equity = np.maximum(self.equity(price), 0.0)
        return np.outer(equity, self.exposure(price) / self.fx.unit_usd(price))

    def target_units(
        self, view: MarketView, rebalance: bool, log: EventLog, screen=None
    ) -> np.ndarray | None:
        if not rebalance:
            return None
        return _banded(self.rule_units(view.price), self.units, self.spec.rebalance_band)


class VolTargetPopulation(_WeightedFunds):
    kind = "vol_target"

    def __init__(self, spec: VolTargetFunds, ctx: BuildContext):
        super().__init__(spec, ctx)
        self.correlation = correlation_matrix(ctx.scenario)
        self.start_at(self.rule_units(ctx.price0), ctx.price0)

    @property
    def leverage(self) -> float:
        """target_vol / σ̂_portfolio, capped at `max_leverage`."""
        vol = self.realized_vol
        portfolio_vol = np.sqrt((self.weights * vol) @ self.correlation @ (self.weights * vol))
        return min(self.spec.target_vol / portfolio_vol, self.spec.max_leverage)

    def exposure(self, price: np.ndarray) -> np.ndarray:
        return self.leverage * self.weights


class TrendPopulation(_WeightedFunds):
    kind = "trend_followers"

    def __init__(self, spec: TrendFollowers, ctx: BuildContext):
        super().__init__(spec, ctx)
        self._trend_decay = 0.5 ** (ctx.step_hours / (spec.lookback.total_seconds() / 3600))
        self.trend = np.log(ctx.price0)  # EWMA of log prices, updated once per open step
        for a, (log_price, open_steps) in self.histories.items():
            self.trend[a] = ewma_end(log_price[0], log_price[1:], open_steps, self._trend_decay)
        self.start_at(self.rule_units(ctx.price0), ctx.price0)

    @classmethod
    def slot(cls, populations: list[TrendPopulation]) -> TrendLanes:
        return TrendLanes(populations)

    def observe(self, view: MarketView) -> None:
        super().observe(view)
        log_price = np.log(view.price)
        self.trend[:] = np.where(  # in place: a lane's trend may be a row of its slot's
            view.is_open,
            self._trend_decay * self.trend + (1 - self._trend_decay) * log_price,
            self.trend,
        )

    def exposure(self, price: np.ndarray) -> np.ndarray:
        vol = self.realized_vol
        signal = np.tanh((np.log(price) - self.trend) / vol)
        return np.clip(
            self.weights * signal * self.spec.target_vol / vol,
            -self.spec.max_leverage,
            self.spec.max_leverage,
        )


class TrendLanes(TargetPortfolioLanes):
    """Trend followers of several lanes as one slot: volatility and trend sampled for all."""

    def __init__(self, populations: list[TrendPopulation]):
        super().__init__(populations)
        self.trend = stack_rows(populations, ("trend",))["trend"]
        self.trend_decay = np.array([[p._trend_decay] for p in populations])

    def observe(self, view: MarketView, at) -> None:
        super().observe(view, at)
        trend, decay = self.trend[at], self.trend_decay[at]
        log_price = np.log(view.price)
        self.trend[at] = np.where(view.is_open, decay * trend + (1 - decay) * log_price, trend)

"""Systematic funds that cut exposure as volatility rises (SPEC §4.5).

Volatility targeting: exposure = capital · target_vol / σ̂_portfolio, capped at max leverage.
Trend following: per asset, exposure = capital · w · tanh(momentum/σ̂) · target_vol / σ̂, where
momentum is log price minus its EWMA over `lookback`. σ̂ is each fund's own EWMA estimate from
one price sample per step; funds rebalance on the first round of a step when a position is
off target by more than `rebalance_band`.
"""

from __future__ import annotations

import numpy as np

from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.portfolio import TargetPortfolio
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
    """Funds with portfolio weights, equal capital and their own volatility estimates."""

    def __init__(self, spec: VolTargetFunds | TrendFollowers, ctx: BuildContext):
        hours = spec.vol_half_life.total_seconds() / 3600
        super().__init__(spec.name, spec.funds, ctx, hours, spec.rebalance_every)
        self.spec = spec
        self.weights = _weights(spec.weights, ctx)
        self.cash_usd[:] = spec.capital_usd / spec.funds


class VolTargetPopulation(_WeightedFunds):
    kind = "vol_target"

    def __init__(self, spec: VolTargetFunds, ctx: BuildContext):
        super().__init__(spec, ctx)
        self.correlation = correlation_matrix(ctx.scenario)

    def target_units(self, view: MarketView, rebalance: bool, log: EventLog) -> np.ndarray | None:
        if not rebalance:
            return None
        vol = self.realized_vol
        portfolio_vol = np.sqrt((self.weights * vol) @ self.correlation @ (self.weights * vol))
        leverage = min(self.spec.target_vol / portfolio_vol, self.spec.max_leverage)
        equity = np.maximum(self.equity(view.price), 0.0)
        target = np.outer(equity * leverage, self.weights / view.price)
        return _banded(target, self.units, self.spec.rebalance_band)


class TrendPopulation(_WeightedFunds):
    kind = "trend_followers"

    def __init__(self, spec: TrendFollowers, ctx: BuildContext):
        super().__init__(spec, ctx)
        self.trend = np.log(ctx.price0)  # EWMA of log prices
        self._trend_decay = 0.5 ** (ctx.step_hours / (spec.lookback.total_seconds() / 3600))

    def observe(self, view: MarketView) -> None:
        super().observe(view)
        log_price = np.log(view.price)
        self.trend = np.where(
            view.is_open,
            self._trend_decay * self.trend + (1 - self._trend_decay) * log_price,
            self.trend,
        )

    def target_units(self, view: MarketView, rebalance: bool, log: EventLog) -> np.ndarray | None:
        if not rebalance:
            return None
        log_price = np.log(view.price)
        vol = self.realized_vol
        signal = np.tanh((log_price - self.trend) / vol)
        exposure = np.clip(
            self.weights * signal * self.spec.target_vol / vol,
            -self.spec.max_leverage,
            self.spec.max_leverage,
        )
        equity = np.maximum(self.equity(view.price), 0.0)
        target = np.outer(equity, exposure / view.price)
        return _banded(target, self.units, self.spec.rebalance_band)

"""Value funds: buy below an anchor with finite capital, optionally on leverage.

Thurner, Farmer and Geanakoplos (2012; facts 4.3-4.5): fund h demands D = β_h·m·W_h/p for
mispricing m = (V − p)/V > 0 and nothing when m ≤ 0, capped at λ_max·W_h/p. With λ_max = 1
this is an unleveraged value buyer (the floor and the rebound, SPEC §4.6). With a binding
cap a falling price forces sales exactly when the market needs buyers: the leverage cycle.
A fund whose equity falls below `default_equity_share`·W0 defaults and is liquidated.

Without an explicit `anchor`, V is the mean of the asset's observed history prices (for
evenly spaced points, its moving average over the history: the level a value buyer expects
the price to revert to), or the initial price when there is no history. With a history the
funds start holding what their rule demands at the initial price (SPEC §4); without one
they start in cash and buy at their first rebalance.
"""

from __future__ import annotations

import numpy as np

from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.lanes import stack_rows
from deleverage.populations.portfolio import TargetPortfolio, TargetPortfolioLanes
from deleverage.results.events import EventLog
from deleverage.scenario.schema import ValueFunds


def demand(beta, anchor, max_leverage, wealth, price, unit_usd) -> np.ndarray:
    """Units each fund wants: β·m·W/p for mispricing m > 0, capped at λ_max·W/p (TFG);
    W is in USD and p is the unit's USD value (the price, translated at the step's FX rate
    for an asset quoted in another currency); m compares prices in the quote currency.
    Elementwise: one population's funds, or (lanes, funds) with columns of each lane's
    anchor and price."""
    excess = (anchor - price) / anchor
    mispricing = np.where(0.0 > excess, 0.0, excess)  # max(excess, 0.0), NaN kept
    cap = max_leverage * np.maximum(wealth, 0.0) / unit_usd
    return np.minimum(beta * mispricing * wealth / unit_usd, cap)


class ValueFundPopulation(TargetPortfolio):
    kind = "value_funds"

    def __init__(self, spec: ValueFunds, ctx: BuildContext):
        super().__init__(spec.name, spec.funds, ctx, 24.0, spec.rebalance_every)
        self.asset = ctx.asset_index[spec.asset]
        seen = ctx.history(spec.asset)
        default_anchor = ctx.price0[self.asset] if seen is None else seen.mean()
        self.anchor = float(spec.anchor or default_anchor)
        self.beta = np.asarray(spec.aggressiveness.sample(ctx.rng, spec.funds), dtype=float)
        self.max_leverage = spec.max_leverage
        self.cash_usd[:] = spec.capital_usd / spec.funds
        price0 = ctx.price0[self.asset]
        start = np.zeros_like(self.units)
        start[:, self.asset] = self.demand(self.cash_usd, price0, ctx.unit_usd0[self.asset])
        self.start_at(start, ctx.price0)
        self.default_equity = spec.default_equity_share * spec.capital_usd / spec.funds
        self.active = np.ones(spec.funds, dtype=bool)
        self.trade_event = "value_trade"
        # The `margin_calls` channel governs only forced sales and defaults: with it off the
        # funds still buy below the anchor, but nobody makes them sell over the cap.
        self.forced_sales, self.enabled = ctx.enabled, True

    def demand(self, wealth: np.ndarray, price: float, unit_usd: float) -> np.ndarray:
        """Units each fund wants (`demand`, this population's funds)."""
        return demand(self.beta, self.anchor, self.max_leverage, wealth, price, unit_usd)

    @classmethod
    def slot(cls, populations: list[ValueFundPopulation]) -> ValueFundLanes | None:
        if any(p.asset != populations[0].asset for p in populations):
            return None
        return ValueFundLanes(populations)

    def screen(self, view: MarketView) -> tuple[np.ndarray, ...]:
        """Every round, per fund: wealth (USD), whether it defaults now, its cap (units)
        and whether it holds more than its cap (a forced sale, defaulting funds apart)."""
        held, unit = self.units[:, self.asset], view.unit_usd[self.asset]
        local = self.cash_local @ view.price[self._other_pairs] ** self._other_powers
        wealth = self.cash_usd + local + held * unit
        defaulting = self.active & (wealth <= self.default_equity) & self.forced_sales
        cap = self.max_leverage * np.maximum(wealth, 0.0) / unit
        forced = (held > cap * (1 + 1e-9)) & self.active & ~defaulting
        return wealth, defaulting, cap, forced

    def target_units(
        self, view: MarketView, rebalance: bool, log: EventLog, screen=None
    ) -> np.ndarray | None:
        price, unit = view.price[self.asset], view.unit_usd[self.asset]
        held = self.units[:, self.asset]
        wealth, defaulting, cap, forced = self.screen(view) if screen is None else screen
        any_default = defaulting.any()
        if any_default:
            self.active &= ~defaulting
            log.add(
                "fund_default",
                population=self.name,
                asset=self.asset_ids[self.asset],
                count=int(defaulting.sum()),
                quantity=-float(held[defaulting].sum()),
                notional_usd=float(held[defaulting].sum() * unit),
                price=price,
            )
            forced |= defaulting & (held != 0)
        if not rebalance and not (self.forced_sales and forced.any()):
            return None  # between rebalances only forced sales trade
        wanted = np.where(self.active, self.demand(wealth, price, unit), 0.0)
        if not self.forced_sales:  # the cap limits new buying only; nothing forces a sale
            mispricing = max((self.anchor - price) / self.anchor, 0.0)
            uncapped = self.beta * mispricing * wealth / unit
            wanted = np.where(self.active, np.minimum(uncapped, np.maximum(cap, held)), 0.0)
            forced[:] = False
        if forced.any():
            log.add(
                "margin_call",
                population=self.name,
                asset=self.asset_ids[self.asset],
                count=int(forced.sum()),
                quantity=float((wanted - held)[forced].sum()),
                price=price,
            )
        if not rebalance:  # between rebalances: only forced sales (over the cap, or defaults)
            if not forced.any():
                return None
            wanted = np.where(forced, wanted, held)
        target = self.units.copy()
        target[:, self.asset] = np.maximum(wanted, 0.0)
        return target


class ValueFundLanes(TargetPortfolioLanes):
    """Value funds of several lanes as one slot: every round's wealth, defaults and caps
    of all active lanes at once (`ValueFundPopulation.screen`), and the scheduled
    rebalances of every lane with nothing forced; a lane goes on alone on a default or a
    forced sale."""

    quiet_later = False  # every round may force a sale

    def __init__(self, populations: list[ValueFundPopulation]):
        super().__init__(populations)
        self.asset = populations[0].asset
        self.active = stack_rows(populations, ("active",))["active"]
        self.default_equity = np.array([[p.default_equity] for p in populations])
        self.max_leverage = np.array([[p.max_leverage] for p in populations])
        self.forced_sales = np.array([[p.forced_sales] for p in populations])
        self.anchor = np.array([[p.anchor] for p in populations])
        self.beta = np.stack([p.beta for p in populations])  # read only

    def screen(self, view: MarketView, lanes, due: np.ndarray) -> tuple:
        held, unit = self.units[lanes, :, self.asset], view.unit_usd[:, self.asset, None]
        other = view.price[:, self.pairs] ** self.powers
        local = (self.cash_local[lanes] @ other[:, :, None])[..., 0]  # one product per lane
        wealth = self.cash_usd[lanes] + local + held * unit
        active, forced_sales = self.active[lanes], self.forced_sales[lanes]
        defaulting = active & (wealth <= self.default_equity[lanes]) & forced_sales
        cap = self.max_leverage[lanes] * np.maximum(wealth, 0.0) / unit
        forced = (held > cap * (1 + 1e-9)) & active & ~defaulting
        need = due | defaulting.any(axis=1) | (forced_sales[:, 0] & forced.any(axis=1))
        return need, (wealth, defaulting, cap, forced)

    def targets(self, view: MarketView, rows: np.ndarray, need, due, screen):
        """`ValueFundPopulation.target_units` of the lanes with a scheduled rebalance and
        nothing forced (no default, no fund over its cap, the channel on): every fund
        holds what its rule demands. The others go on alone."""
        wealth, defaulting, _, forced = screen
        plain = need & due & self.forced_sales[rows, 0]
        plain &= ~defaulting.any(axis=1) & ~forced.any(axis=1)
        if not plain.any():
            return None
        n, at = np.flatnonzero(plain), rows[plain]
        price, unit = view.price[n, self.asset, None], view.unit_usd[n, self.asset, None]
        wanted = demand(
            self.beta[at], self.anchor[at], self.max_leverage[at], wealth[n], price, unit
        )
        target = self.units[at]  # a copy
        target[:, :, self.asset] = np.maximum(np.where(self.active[at], wanted, 0.0), 0.0)
        return plain, target

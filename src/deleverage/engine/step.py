"""One step of the market (SPEC §3), for every asset at once:

  1. the book refills (transient impact resolves, partly into the reference price);
  2. correlated noise and shock jumps move the reference (jumps on a closed venue wait);
     driven assets follow their observed series; margin changes take effect;
  3. market makers set depth from realized volatility, inventory and any retreat;
  4. rounds: populations mark to market and send orders; orders on open venues are netted
     per asset and walk the book once; everyone trades at the average price of that walk;
     repeat while new orders arrive (up to `max_rounds`, reported when hit) — the
     intra-step cascade;
  5. realized volatility is updated and desks lay inventory off to end investors.

Populations keep their accounts in their own arrays and change them in place; the market's
own state is `MarketState`, advanced here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deleverage.engine.state import MarketParams, MarketState
from deleverage.engine.timeline import MarginEvent
from deleverage.market import book
from deleverage.populations import EndInvestors, MarketView, Population
from deleverage.results.events import EventLog

RECORDED = (
    "price",
    "reference",
    "impact_log",
    "depth_bid",
    "depth_ask",
    "realized_vol",
    "volume_usd",
    "net_flow_units",
    "mm_inventory_units",
)


@dataclass(frozen=True)
class StepInputs:
    """The exogenous inputs of step k, from the compiled timeline."""

    k: int
    time: pd.Timestamp
    noise: np.ndarray  # (A,) standard correlated shocks
    jumps: np.ndarray  # (A,) log-return jumps
    driver: np.ndarray  # (A,) log price to follow, NaN where free
    retreat: np.ndarray  # (A,) depth multiplier from mm_retreat shocks
    gap: np.ndarray  # (A,) empty band around mid, log units
    labels: tuple = ()
    margin_events: tuple[MarginEvent, ...] = ()
    outages: tuple[str, ...] = ()  # venues whose outage starts now


@dataclass
class TradeTape:
    """Gross units and cash traded per asset (for the scale of rounding in the invariants)."""

    units: np.ndarray
    cash: np.ndarray  # in each asset's quote currency

    def add(self, buys: np.ndarray, sells: np.ndarray, average: np.ndarray) -> None:
        self.units += buys + sells
        self.cash += (buys + sells) * average


@dataclass
class StepRecord:
    values: dict[str, np.ndarray] = field(default_factory=dict)
    rounds: int = 0
    round_limit_hit: bool = False


def _exogenous_move(state: MarketState, params: MarketParams, inputs: StepInputs, is_open) -> None:
    x, log_ref = book.refill(
        state.displacement,
        state.log_reference,
        np.where(is_open, params.resolved, 0.0),
        params.permanent,
    )
    log_ref -= np.where(is_open, params.pull, 0.0) * (log_ref - state.log_anchor)
    state.pending_jump += inputs.jumps
    log_ref += np.where(is_open, inputs.noise * params.noise_sd + state.pending_jump, 0.0)
    state.pending_jump[is_open] = 0.0
    follow = ~np.isnan(inputs.driver)
    log_ref[follow] = inputs.driver[follow]
    state.displacement, state.log_reference = x, log_ref


def _announce(state: MarketState, inputs: StepInputs, index: dict[str, int], log: EventLog):
    for kind, label in inputs.labels:
        log.add("shock", detail=f"{kind}: {label}")
    for event in inputs.margin_events:
        if event.kind == "effective":
            state.initial_margin_pct[index[event.asset]] = event.initial_pct
            state.maintenance_margin_pct[index[event.asset]] = event.maintenance_pct
        log.add(
            f"margin_{event.kind}",
            venue=event.venue,
            asset=event.asset,
            detail=f"initial {event.initial_pct}% maintenance {event.maintenance_pct}%",
        )
    for venue in inputs.outages:
        log.add("outage", venue=venue)


def step(
    state: MarketState,
    params: MarketParams,
    inputs: StepInputs,
    populations: list[Population],
    investors: EndInvestors,
    log: EventLog,
    tape: TradeTape,
) -> StepRecord:
    """Advance the market by one step; populations trade in the intra-step cascade."""
    k = inputs.k
    log.step, log.round = k, 0
    n_assets = len(params.price0)
    is_open = params.asset_open[:, k]
    log_price_start = state.log_reference + state.displacement
    index = {a: i for i, a in enumerate(params.asset_ids)}

    _exogenous_move(state, params, inputs, is_open)
    _announce(state, inputs, index, log)

    reference = np.exp(state.log_reference)
    makers = state.makers
    depth_bid, depth_ask = makers.depth(
        params.unit_usd(reference * np.exp(state.displacement)), inputs.retreat, params.mm_feedback
    )
    lam_bid = params.latent_depth * depth_bid * params.unit_usd0 / params.unit_usd(reference)
    lam_ask = params.latent_depth * depth_ask * params.unit_usd0 / params.unit_usd(reference)

    record = StepRecord()
    volume = np.zeros(n_assets)
    net_total = np.zeros(n_assets)
    for r in range(params.max_rounds + 1):
        log.round = r
        price = reference * np.exp(state.displacement)
        view = MarketView(
            k,
            inputs.time,
            params.step_hours,
            price,
            is_open,
            params.asset_settles[:, k],
            state.initial_margin_pct,
            state.maintenance_margin_pct,
            params.implied_yield(price),
            params.unit_usd(price),
        )
        for population in populations:
            population.mark(view, log)
        batches = [(p, p.orders()) for p in populations]
        batches = [(p, o, is_open[o.asset]) for p, o in batches if len(o.asset)]
        if not any(f.any() for _, _, f in batches):
            break
        if r == params.max_rounds:
            record.round_limit_hit = True
            log.add("round_limit", detail=f"{params.max_rounds} rounds in one step")
            break
        order_asset = np.concatenate([o.asset for _, o, _ in batches])
        q = np.concatenate([np.where(f, o.quantity, 0.0) for _, o, f in batches])
        buys = np.bincount(order_asset, np.maximum(q, 0.0), n_assets)
        sells = np.bincount(order_asset, np.maximum(-q, 0.0), n_assets)
        net = buys - sells
        state.displacement, average = book.execute(
            state.displacement, net, reference, lam_bid, lam_ask, inputs.gap
        )
        for population, orders, fillable in batches:
            population.apply_fills(orders, fillable, average[orders.asset], log)
        makers.take(net, average)
        tape.add(buys, sells, average)
        net_total += net
        traded_usd = np.maximum(buys, sells) * params.unit_usd(average)
        volume += traded_usd
        for a in np.flatnonzero(buys + sells):
            log.add(
                "trade",
                asset=params.asset_ids[a],
                quantity=net[a],
                notional_usd=traded_usd[a],
                price=average[a],
            )
    record.rounds = log.round

    price = reference * np.exp(state.displacement)
    makers.observe(np.log(price) - log_price_start, is_open)
    investors.take_lay_off(makers.lay_off(price, is_open), price)
    record.values = {
        "price": price,
        "reference": reference,
        "impact_log": state.displacement,
        "depth_bid": depth_bid,
        "depth_ask": depth_ask,
        "realized_vol": makers.realized_vol,
        "volume_usd": volume,
        "net_flow_units": net_total,
        "mm_inventory_units": makers.inventory,
    }
    return record

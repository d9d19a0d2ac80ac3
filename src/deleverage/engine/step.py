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
from deleverage.market.cross_impact import CrossImpact
from deleverage.market.limits import PriceLimits
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
    driven: bool = True  # some asset follows its driver in this step (`driver` not all NaN)


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


def _refill_visible(state: MarketState, params: MarketParams, is_open, steps: float) -> None:
    """The visible book refills from the latent one over `steps` steps of time, more slowly
    while the desks are away (half-life ÷ their depth multiplier)."""
    if not params.any_visible:
        return
    makers = state.makers
    side = np.where(state.visible_displacement < 0, makers.visible_bid, makers.visible_ask)
    side = np.maximum(side, makers.visible_floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = np.where(
            is_open & params.has_visible,
            0.5 ** (steps * side / params.visible_half_life_steps),
            1.0,
        )
    state.visible_displacement = state.visible_displacement * kept


def _exogenous_move(state: MarketState, params: MarketParams, inputs: StepInputs, is_open) -> None:
    x, log_ref = book.refill(
        state.displacement,
        state.log_reference,
        np.where(is_open, params.resolved, 0.0),
        params.permanent,
    )
    _refill_visible(state, params, is_open, 1.0)
    log_ref -= np.where(is_open, params.pull, 0.0) * (log_ref - state.log_anchor)
    state.pending_jump += inputs.jumps
    log_ref += np.where(is_open, inputs.noise * params.noise_sd + state.pending_jump, 0.0)
    state.pending_jump[is_open] = 0.0
    if inputs.driven:
        follow = ~np.isnan(inputs.driver)
        log_ref[follow] = inputs.driver[follow]
    state.displacement, state.log_reference = x, log_ref


@dataclass(frozen=True)
class _Books:
    """What the walks of one step's rounds share: both books' depth at the step's depth
    multipliers and reference prices (they change between steps, not between rounds)."""

    lam_bid: np.ndarray
    lam_ask: np.ndarray
    visible: tuple  # execute_layers' within_bid, within_ask, gap, band, shape (layered assets)

    @classmethod
    def at(cls, params: MarketParams, reference, depth, gap, k) -> _Books:
        unit0, unit = params.unit_usd0, params.unit_usd(reference)  # constant USD depth
        lam_bid = params.latent_depth * depth.latent_bid * unit0 / unit
        lam_ask = params.latent_depth * depth.latent_ask * unit0 / unit
        if not params.any_visible:
            return cls(lam_bid, lam_ask, ())
        layered = params.has_visible
        visible = params.visible_units * params.weekend_depth[:, k] * unit0 / unit
        return cls(
            lam_bid,
            lam_ask,
            (
                np.where(layered, visible * depth.visible_bid, 1.0),
                np.where(layered, visible * depth.visible_ask, 1.0),
                np.where(layered, gap, 0.0),
                np.where(layered, params.visible_band, 1.0),
                np.where(layered, params.visible_shape, 1.0),
            ),
        )


def _execute(state: MarketState, params: MarketParams, net, reference, books: _Books, gap):
    """Walk the books by the net flow; returns the average execution prices."""
    if not params.any_visible:
        state.displacement, average = book.execute(
            state.displacement, net, reference, books.lam_bid, books.lam_ask, gap
        )
        return average
    layered = params.has_visible
    y, z, average = book.execute_layers(
        state.displacement,
        state.visible_displacement,
        net if params.all_visible else np.where(layered, net, 0.0),
        reference,
        books.lam_bid,
        books.lam_ask,
        *books.visible,
    )
    if not params.all_visible:
        single, single_average = book.execute(
            state.displacement,
            np.where(layered, 0.0, net),
            reference,
            books.lam_bid,
            books.lam_ask,
            gap,
        )
        y = np.where(layered, y, single)
        average = np.where(layered, average, single_average)
    state.displacement, state.visible_displacement = y, z
    return average


def _recorded_depth(params: MarketParams, depth, gap, k) -> tuple[np.ndarray, np.ndarray]:
    """Depth within the visible band relative to rest (with its empty gap), or the latent
    multipliers where an asset has no visible book."""
    with np.errstate(invalid="ignore"):
        band = params.visible_band
        shape = (np.maximum(band - gap, 0.0) / band) ** params.visible_shape
        shape = shape * params.weekend_depth[:, k]
    layered = params.has_visible
    return (
        np.where(layered, depth.visible_bid * shape, depth.latent_bid),
        np.where(layered, depth.visible_ask * shape, depth.latent_ask),
    )


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
    limits: PriceLimits | None = None,
    cross: CrossImpact | None = None,
) -> StepRecord:
    """Advance the market by one step; populations trade in the intra-step cascade.
    With `limits` (`market.price_limits`, `market.circuit_breakers`; `market.limits`),
    halted assets are closed, prices stay inside their limit bands and circuit breakers
    are checked after every move. With `cross` (`market.cross_impact`), each round's flow
    in one asset moves the linked assets."""
    k = inputs.k
    log.step, log.round = k, 0
    n_assets = len(params.price0)
    is_open = params.asset_open[:, k]
    if limits is not None:
        is_open = limits.begin_step(k, state.price, is_open)  # a copy, less halted assets
    # desks read volatility off the price net of their own visible book's wick and refill
    log_latent_start = state.log_reference + state.displacement

    _exogenous_move(state, params, inputs, is_open)
    free = np.isnan(inputs.driver) if limits is not None or cross is not None else None
    if cross is not None:
        cross.relax(state, is_open)
    if limits is not None:
        limits.clamp(state, free)
        limits.observe(k, state.price, is_open, log)
    _announce(state, inputs, params.asset_index, log)

    # Within the rounds, e^reference is reused while `state.log_reference` is this same
    # array: a re-centring (cross move, limit) must rebind it, never write it in place —
    # read-only, so an in-place write fails instead of leaving the prices stale.
    log_reference = state.log_reference
    log_reference.flags.writeable = False
    reference = np.exp(log_reference)
    makers = state.makers
    depth = makers.depth(params.unit_usd(state.price), inputs.retreat, params.mm_feedback)
    books = None  # the step's book depths, at the first round that trades
    settles = params.asset_settles[:, k]

    record = StepRecord()
    volume = np.zeros(n_assets)
    net_total = np.zeros(n_assets)
    for r in range(params.max_rounds + 1):
        log.round = r
        if r > 0:  # forced sellers react seconds later: the visible book has partly refilled
            _refill_visible(state, params, is_open, params.round_steps)
            state.update_mark(params.mark_weight_round)
        else:
            state.update_mark(params.mark_weight_step)
        # e^reference, unless a cross move or a limit re-centred a book in this step
        centre = reference if state.log_reference is log_reference else None
        price = state.price_at(centre)
        view = MarketView(
            k,
            inputs.time,
            params.step_hours,
            price,
            is_open,
            settles,
            state.initial_margin_pct,
            state.maintenance_margin_pct,
            params.implied_yield(price),
            params.unit_usd(price),
            state.mark_price_at(centre) if params.any_visible else None,
        )
        for population in populations:
            population.mark(view, log)
        batches = [(p, o) for p in populations if len((o := p.orders()).asset)]
        if not batches:
            break
        order_asset = np.concatenate([o.asset for _, o in batches])
        fillable = is_open[order_asset]
        if not fillable.any():
            break
        if r == params.max_rounds:
            record.round_limit_hit = True
            log.add("round_limit", detail=f"{params.max_rounds} rounds in one step")
            break
        q = np.where(fillable, np.concatenate([o.quantity for _, o in batches]), 0.0)
        buys = np.bincount(order_asset, np.maximum(q, 0.0), n_assets)
        sells = np.bincount(order_asset, np.maximum(-q, 0.0), n_assets)
        net = buys - sells
        if books is None:
            books = _Books.at(params, reference, depth, inputs.gap, k)
        before = (state.displacement, state.visible_displacement)
        average = _execute(state, params, net, reference, books, inputs.gap)
        if limits is not None:  # a round that would trade through a limit does not trade
            blocked = limits.through(state, before, is_open)
            if blocked.any():
                net, buys, sells = (np.where(blocked, 0.0, x) for x in (net, buys, sells))
                fillable = fillable & ~blocked[order_asset]
        if cross is not None:
            cross.transmit(state, before[0], is_open, free, limits)
        end = 0
        for population, orders in batches:
            start, end = end, end + len(orders.asset)
            population.apply_fills(orders, fillable[start:end], average[orders.asset], log)
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
        if limits is not None:
            limits.observe(k, state.price, is_open, log)
    record.rounds = log.round

    price = state.price_at(reference if state.log_reference is log_reference else None)
    log_latent = state.log_reference + state.displacement
    makers.observe(log_latent - log_latent_start, is_open, net_total * params.unit_usd(price))
    investors.take_lay_off(makers.lay_off(price, is_open), price)
    depth_bid, depth_ask = _recorded_depth(params, depth, inputs.gap, k)
    record.values = {
        "price": price,
        "reference": reference,
        "impact_log": state.displacement + state.visible_displacement,
        "depth_bid": depth_bid,
        "depth_ask": depth_ask,
        "realized_vol": makers.realized_vol,
        "volume_usd": volume,
        "net_flow_units": net_total,
        "mm_inventory_units": makers.inventory,
    }
    return record

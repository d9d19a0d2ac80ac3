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

from dataclasses import dataclass

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
    """The exogenous inputs of step k for every lane (one path each), from the compiled
    timelines: arrays (L, A), lane first; the tuples hold one entry per lane."""

    k: int
    time: pd.Timestamp
    noise: np.ndarray  # (L, A) standard correlated shocks
    jumps: np.ndarray  # (L, A) log-return jumps
    driver: np.ndarray  # (L, A) log price to follow, NaN where free
    retreat: np.ndarray  # (L, A) depth multiplier from mm_retreat shocks
    gap: np.ndarray  # (L, A) empty band around mid, log units
    labels: tuple[tuple, ...]  # per lane: (kind, label) of the shocks announced now
    margin_events: tuple[tuple[MarginEvent, ...], ...]  # per lane
    outages: tuple[tuple[str, ...], ...]  # per lane: venues whose outage starts now
    driven: bool = True  # some asset follows its driver in this step (`driver` not all NaN)


@dataclass
class Lane:
    """One path's agents: its populations (end investors first) and its event log. Lanes
    share the market's arrays (a row each) and never each other's agents."""

    populations: list[Population]
    log: EventLog

    @property
    def investors(self) -> EndInvestors:
        return self.populations[0]


@dataclass
class TradeTape:
    """Gross units and cash traded per lane and asset (the scale of rounding in the
    invariants)."""

    units: np.ndarray  # (L, A)
    cash: np.ndarray  # (L, A) in each asset's quote currency

    def add(self, buys: np.ndarray, sells: np.ndarray, average: np.ndarray) -> None:
        self.units += buys + sells
        self.cash += (buys + sells) * average


@dataclass
class StepRecord:
    values: dict[str, np.ndarray]  # (L, A) each
    rounds: np.ndarray  # (L,) the round each lane stopped at
    round_limit_hit: np.ndarray  # (L,) bool


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
        visible = params.visible_units * params.weekend_depth[..., k] * unit0 / unit
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


def _execute(state: MarketState, params: MarketParams, net, reference, books: _Books, gap, rows):
    """Walk the books by the net flow; returns the average execution prices. `rows`: the
    lanes that trade (None: all). The others' books are not walked (a walk of nothing
    leaves them where they are) and their average is their price, reference·e^(x + v)
    (v is 0 where an asset has no visible book), which only ever multiplies their zero
    flow. A walk on the trading rows alone gives them the bits of the whole (every
    operation is per element or per lane), at the cost of the few lanes still trading."""
    x, v = state.displacement, state.visible_displacement
    if rows is None:
        y, z, average = _walk(params, params.has_visible, x, v, net, reference, books, gap)
    else:
        books = _Books(
            books.lam_bid[rows], books.lam_ask[rows], tuple(a[rows] for a in books.visible)
        )
        at = (x[rows], v[rows], net[rows], reference[rows])
        walked = _walk(params, params.has_visible[rows], *at, books, gap[rows])
        y, z = x.copy(), v.copy()  # new arrays: the caller keeps the ones before the walk
        average = reference * np.exp(x + v)
        y[rows], z[rows], average[rows] = walked
    state.displacement, state.visible_displacement = y, z
    return average


def _walk(params: MarketParams, layered, x, v, net, reference, books: _Books, gap):
    """New latent and visible displacements and the average prices of walks by `net` from
    displacements `x` (latent) and `v` (visible); `layered`: where a visible book is."""
    if not params.any_visible:
        y, average = book.execute(x, net, reference, books.lam_bid, books.lam_ask, gap)
        return y, v, average
    y, z, average = book.execute_layers(
        x,
        v,
        net if params.all_visible else np.where(layered, net, 0.0),
        reference,
        books.lam_bid,
        books.lam_ask,
        *books.visible,
    )
    if not params.all_visible:
        single, single_average = book.execute(
            x, np.where(layered, 0.0, net), reference, books.lam_bid, books.lam_ask, gap
        )
        y = np.where(layered, y, single)
        average = np.where(layered, average, single_average)
    return y, z, average


def _recorded_depth(params: MarketParams, depth, gap, k) -> tuple[np.ndarray, np.ndarray]:
    """Depth within the visible band relative to rest (with its empty gap), or the latent
    multipliers where an asset has no visible book."""
    with np.errstate(invalid="ignore"):
        band = params.visible_band
        shape = (np.maximum(band - gap, 0.0) / band) ** params.visible_shape
        shape = shape * params.weekend_depth[..., k]
    layered = params.has_visible
    return (
        np.where(layered, depth.visible_bid * shape, depth.latent_bid),
        np.where(layered, depth.visible_ask * shape, depth.latent_ask),
    )


def _announce(state: MarketState, inputs: StepInputs, index: dict[str, int], lanes: list[Lane]):
    for row, (lane, labels, margin_events, outages) in enumerate(
        zip(lanes, inputs.labels, inputs.margin_events, inputs.outages, strict=True)
    ):
        log = lane.log
        for kind, label in labels:
            log.add("shock", detail=f"{kind}: {label}")
        for event in margin_events:
            if event.kind == "effective":
                state.initial_margin_pct[row, index[event.asset]] = event.initial_pct
                state.maintenance_margin_pct[row, index[event.asset]] = event.maintenance_pct
            log.add(
                f"margin_{event.kind}",
                venue=event.venue,
                asset=event.asset,
                detail=f"initial {event.initial_pct}% maintenance {event.maintenance_pct}%",
            )
        for venue in outages:
            log.add("outage", venue=venue)


def _mark(
    lanes: list[Lane], slots: list, active: list[int], views: list[MarketView], laned: MarketView
) -> None:
    """Mark the populations of the `active` lanes: slot by slot, a stacked slot once for
    all of them (`laned`: the round's arrays at their rows), any other lane by lane
    (`views`: one per active lane). Within a lane, populations mark in their order."""
    rows = None
    for i, slot in enumerate(slots):
        if slot is None:
            for lane, view in zip(active, views, strict=True):
                lanes[lane].populations[i].mark(view, lanes[lane].log)
            continue
        if rows is None:
            rows = np.array(active)
        slot.mark_lanes(laned, rows, [lanes[lane].log for lane in active])


def _orders(lane: Lane, is_open: np.ndarray):
    """One lane's orders after its mark: the batches [(population, orders)] and the fillable
    mask over their concatenation, or None when the lane has nothing that can trade (its
    cascade is over for this step)."""
    batches = [(p, o) for p in lane.populations if len((o := p.orders()).asset)]
    if not batches:
        return None
    order_asset = np.concatenate([o.asset for _, o in batches])
    fillable = is_open[order_asset]
    if not fillable.any():
        return None
    return batches, order_asset, fillable


def _flows(trading: list, n_lanes: int, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
    """Units bought and sold per lane and asset by the fillable orders of the lanes that
    trade in the round ((lane, batches, order assets, fillable) each)."""
    buys, sells = np.zeros((n_lanes, n_assets)), np.zeros((n_lanes, n_assets))
    for lane, batches, order_asset, fillable in trading:
        q = np.where(fillable, np.concatenate([o.quantity for _, o in batches]), 0.0)
        buys[lane] = np.bincount(order_asset, np.maximum(q, 0.0), n_assets)
        sells[lane] = np.bincount(order_asset, np.maximum(-q, 0.0), n_assets)
    return buys, sells


def _fill(trading: list, blocked: np.ndarray | None, average: np.ndarray, logs) -> None:
    """Each trading lane's populations take their fills at the lane's average prices;
    orders in an asset whose round a limit `blocked` do not fill (they wait)."""
    for lane, batches, order_asset, fillable in trading:
        if blocked is not None:
            fillable = fillable & ~blocked[lane][order_asset]
        end, lane_average = 0, average[lane]
        for population, orders in batches:
            start, end = end, end + len(orders.asset)
            population.apply_fills(
                orders, fillable[start:end], lane_average[orders.asset], logs[lane]
            )


def step(
    state: MarketState,
    params: MarketParams,
    inputs: StepInputs,
    lanes: list[Lane],
    tape: TradeTape,
    limits: PriceLimits | None = None,
    cross: CrossImpact | None = None,
    slots: list | None = None,
) -> StepRecord:
    """Advance the market of every lane by one step; each lane's populations trade in its
    own intra-step cascade. Arrays are (L, A): lane ℓ's row evolves exactly as the path
    would alone (every operation is per element or per row), so a lane of a batch and the
    same path run alone agree to the last bit. A lane whose cascade is over sits out the
    later rounds of the step untouched. With `limits` (`market.price_limits`,
    `market.circuit_breakers`; `market.limits`), halted assets are closed, prices stay
    inside their limit bands and circuit breakers are checked after every move. With
    `cross` (`market.cross_impact`), each round's flow in one asset moves the linked
    assets. `slots` (`populations.lanes.stack_populations`): the population slots marked
    once for every lane (None: each lane's populations one by one)."""
    k = inputs.k
    n_lanes, n_assets = state.log_reference.shape
    if slots is None:
        slots = [None] * len(lanes[0].populations)
    per_lane = any(slot is None for slot in slots)  # some slot needs one view per lane
    logs = [lane.log for lane in lanes]
    for log in logs:
        log.step, log.round = k, 0
    is_open = params.asset_open[..., k]
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
        limits.observe(k, state.price, is_open, logs)
    _announce(state, inputs, params.asset_index, lanes)

    # Within the rounds, e^reference is reused while `state.log_reference` is this same
    # array: a re-centring (cross move, limit) must rebind it, never write it in place —
    # read-only, so an in-place write fails instead of leaving the prices stale.
    log_reference = state.log_reference
    log_reference.flags.writeable = False
    reference = np.exp(log_reference)
    makers = state.makers
    depth = makers.depth(params.unit_usd(state.price), inputs.retreat, params.mm_feedback)
    books = None  # the step's book depths, at the first round that trades
    settles = params.asset_settles[..., k]

    rounds = np.zeros(n_lanes, dtype=np.int64)
    limit_hit = np.zeros(n_lanes, dtype=bool)
    active = list(range(n_lanes))  # lanes whose cascade goes on
    volume = np.zeros((n_lanes, n_assets))
    net_total = np.zeros((n_lanes, n_assets))
    limit = params.round_limits
    for r in range(max(limit) + 1):
        if r > 0 and len(active) == n_lanes:  # forced sellers react seconds later: the
            # visible book has partly refilled
            _refill_visible(state, params, is_open, params.round_steps)
            state.update_mark(params.mark_weight_round)
        elif r > 0:  # only in the lanes whose cascade goes on
            moving = np.zeros(n_lanes, dtype=bool)
            moving[active] = True
            _refill_visible(state, params, is_open & moving[:, None], params.round_steps)
            state.update_mark(params.mark_weight_round, moving)
        else:
            state.update_mark(params.mark_weight_step)
        # e^reference, unless a cross move or a limit re-centred a book in this step
        centre = reference if state.log_reference is log_reference else None
        price = state.price_at(centre)
        implied = params.implied_yield(price)
        unit_usd = params.unit_usd(price)
        mark = state.mark_price_at(centre) if params.any_visible else None
        trading = []  # (lane, batches, order assets, fillable) of the lanes that trade now
        for lane in active:
            logs[lane].round = r
        rows = slice(None) if len(active) == n_lanes else active  # the active lanes' rows
        laned = MarketView(
            k,
            inputs.time,
            params.step_hours,
            price[rows],
            is_open[rows],
            settles[rows],
            state.initial_margin_pct[rows],
            state.maintenance_margin_pct[rows],
            implied[rows],
            unit_usd[rows],
            None if mark is None else mark[rows],
        )
        views = [laned.row(n) for n in range(len(active))] if per_lane else []
        _mark(lanes, slots, active, views, laned)
        for lane in active:
            found = _orders(lanes[lane], is_open[lane])
            if found is None:
                rounds[lane] = r
            elif r == limit[lane]:
                rounds[lane], limit_hit[lane] = r, True
                logs[lane].add("round_limit", detail=f"{limit[lane]} rounds in one step")
            else:
                trading.append((lane, *found))
        if not trading:
            break
        buys, sells = _flows(trading, n_lanes, n_assets)
        net = buys - sells
        if books is None:
            books = _Books.at(params, reference, depth, inputs.gap, k)
        before = (state.displacement, state.visible_displacement)
        rows = None if len(trading) == n_lanes else [lane for lane, *_ in trading]
        average = _execute(state, params, net, reference, books, inputs.gap, rows)
        blocked = traded = None
        if limits is not None:  # a round that would trade through a limit does not trade
            traded = np.zeros((n_lanes, 1), dtype=bool)
            traded[[lane for lane, *_ in trading]] = True
            blocked = limits.through(state, before, is_open, traded)
            if blocked.any():
                net, buys, sells = (np.where(blocked, 0.0, x) for x in (net, buys, sells))
            else:
                blocked = None
        if cross is not None:
            cross.transmit(state, before[0], is_open, free, limits)
        _fill(trading, blocked, average, logs)
        makers.take(net, average)
        tape.add(buys, sells, average)
        net_total += net
        traded_usd = np.maximum(buys, sells) * params.unit_usd(average)
        volume += traded_usd
        for lane, a in zip(*np.nonzero(buys + sells), strict=True):
            logs[lane].add(
                "trade",
                asset=params.asset_ids[a],
                quantity=net[lane, a],
                notional_usd=traded_usd[lane, a],
                price=average[lane, a],
            )
        if limits is not None:
            limits.observe(k, state.price, is_open, logs, traded)
        active = [lane for lane, *_ in trading]

    price = state.price_at(reference if state.log_reference is log_reference else None)
    log_latent = state.log_reference + state.displacement
    makers.observe(log_latent - log_latent_start, is_open, net_total * params.unit_usd(price))
    laid_off = makers.lay_off(price, is_open)
    for lane, units, lane_price in zip(lanes, laid_off, price, strict=True):
        lane.investors.take_lay_off(units, lane_price)
    depth_bid, depth_ask = _recorded_depth(params, depth, inputs.gap, k)
    values = {
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
    return StepRecord(values, rounds, limit_hit)

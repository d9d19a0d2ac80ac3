"""Lanes (issue 9): price limits, circuit breakers, cross-impact and triggered outages of L
paths stacked into one object (`stack`) do, lane by lane, bit for bit what each lane's own
object does alone on the same inputs: state arrays (signed zeros included), masks, returned
venues and each lane's events. Lanes differ in prices, bands, breaker levels, volatilities,
links and trigger thresholds; breakers and outages fire in some lanes only."""

from __future__ import annotations

import copy
import re
from functools import cache
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import NASDAQ, base_raw, build

from deleverage.market.calendar import build_calendar
from deleverage.market.cross_impact import CrossImpact
from deleverage.market.limits import PriceLimits
from deleverage.market.outage_triggers import OutageTriggers
from deleverage.results.events import EventLog

LANES = st.integers(1, 4)
SEEDS = st.integers(0, 2**32 - 1)
STATE = ("log_reference", "displacement", "visible_displacement", "pending_jump")


def _asset(asset_id, venue, price, vol, kind="crypto"):
    return {"id": asset_id, "class": kind, "tier": "semi_core", "venue": venue,
            "price": price, "daily_vol": vol, "adv_usd": 1e10}  # fmt: skip


@cache
def _limits_scenario(lane: int):
    """BTC (24/7, UTC-day band) and SPX, EQ (Nasdaq, session bands and the market-wide
    breaker on SPX); prices, bands and breaker levels differ by lane."""
    spot = {"id": "spot", "kind": "crypto"}
    breaker = {"index": "SPX", "assets": ["SPX", "EQ"], "reset": "session", "levels": [
        {"decline_pct": 5 + lane, "halt": "1h", "not_after": "15:25"},
        {"decline_pct": 12 + lane, "halt": "1h", "not_after": "15:25"},
        {"decline_pct": 20 + lane}]}  # fmt: skip
    limits = [
        {"asset": "BTC", "down_pct": 3.0 + lane, "up_pct": 4.0 - 0.5 * lane, "reset": "utc_day"},
        {"asset": "EQ", "down_pct": 5.0 + lane, "reset": "session"},
    ]
    return build(
        base_raw(
            clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z", "step": "30min"},
            venues=[spot, NASDAQ],
            assets=[
                _asset("BTC", "spot", 90_000.0 + 5_000 * lane, 0.03),
                _asset("SPX", "nasdaq", 6_000.0 - 100 * lane, 0.015, "equity_index"),
                _asset("EQ", "nasdaq", 500.0 + lane, 0.02, "equity_index"),
            ],
            market={"price_limits": limits, "circuit_breakers": [breaker]},
        )
    )


def _limits(lane: int) -> PriceLimits:
    scenario = _limits_scenario(lane)
    calendar = build_calendar(scenario)
    venue_of = [scenario.venue_index()[a.venue] for a in scenario.assets]
    price0 = np.array([a.price for a in scenario.assets])
    return PriceLimits.build(scenario, calendar.step_starts, calendar.settlement[venue_of], price0)


def _same(laned, alone, what):
    """Bit-identical (NaN, signed zeros): row ℓ of the laned value against the lane alone."""
    laned, alone = np.asarray(laned), np.asarray(alone)
    assert laned.shape == alone.shape and laned.dtype == alone.dtype, what
    assert laned.tobytes() == alone.tobytes(), what


def _state(rng, n_lanes, n_assets, price):
    """Engine-like state (L, A), with signed zeros where a careless add would flip them."""
    pending = rng.normal(0.0, 0.01, (n_lanes, n_assets)) * (rng.random((n_lanes, n_assets)) < 0.5)
    pending[pending == 0.0] = -0.0
    return SimpleNamespace(
        log_reference=np.log(price),
        displacement=rng.normal(0.0, 0.01, (n_lanes, n_assets)),
        visible_displacement=-0.0 * np.ones((n_lanes, n_assets)),
        pending_jump=pending,
    )


def _row(state, lane):
    return SimpleNamespace(**{name: getattr(state, name)[lane].copy() for name in STATE})


def _same_state(laned, alone, lane, what):
    for name in STATE:
        _same(getattr(laned, name)[lane], getattr(alone, name), f"{what}: {name}")


def _same_limits(laned: PriceLimits, alone: PriceLimits, lane: int, what: str):
    for name in ("reference", "halt_until", "down", "up"):
        _same(getattr(laned, name)[lane], getattr(alone, name), f"{what}: limits.{name}")
    for b, (mine, own) in enumerate(zip(laned.breakers, alone.breakers, strict=True)):
        for name in ("reference", "triggered"):
            _same(getattr(mine, name)[lane], getattr(own, name), f"{what}: breaker {b} {name}")


def _limit_prices(rng, n_lanes, n_steps, price0):
    """(T, L, A) prices: small noise, and SPX/EQ falls that depend on the lane (steps of
    30 minutes from Monday 00:00 UTC; the session opens at step 29, 09:30 New York):
    lane 0 past level 1 at 10:30-11:30 (a halt), lane 1 none, lane 2 past level 1 then past
    level 2 at 15:30-16:30 (after 15:25: skipped), lane 3 past level 3 (halted to the close)."""
    log = np.cumsum(rng.normal(0.0, 0.0005, (n_steps, n_lanes, 3)), axis=0)  # ≤ 0.5% a run
    falls = {0: [(-0.10, 31)], 2: [(-0.09, 31), (-0.08, 41)], 3: [(-0.30, 35)]}
    for lane, moves in falls.items():
        for size, k in moves if lane < n_lanes else ():
            log[k + rng.integers(0, 3) :, lane, 1:] += size
    return price0 * np.exp(log)


def _limits_step(limits, state, log, k, price, is_open, free, push, lanes):
    """One engine-like step: resets, clamp, breakers, a round pushed `push`, through."""
    state.log_reference = np.log(price) - state.displacement
    mask = limits.begin_step(k, price, is_open)
    limits.clamp(state, free)
    limits.observe(k, price, mask, log)
    before = (state.displacement, state.visible_displacement)
    state.displacement = state.displacement + push
    blocked = limits.through(state, before, mask)
    limits.observe(k, np.exp(state.log_reference + state.displacement), mask, log)
    limits.clamp(state, free, lanes)
    return mask, blocked


@settings(max_examples=20, deadline=None)
@given(n_lanes=LANES, seed=SEEDS)
def test_stacked_limits_and_breakers_do_what_each_lane_does_alone(n_lanes, seed):
    rng = np.random.default_rng(seed)
    alone = [_limits(lane) for lane in range(n_lanes)]
    laned = PriceLimits.stack([_limits(lane) for lane in range(n_lanes)])
    n_steps = laned.reset.shape[-1]
    price0 = np.exp(laned.reference)
    prices = _limit_prices(rng, n_lanes, n_steps, price0)
    state = _state(rng, n_lanes, 3, prices[0])
    states = [_row(state, lane) for lane in range(n_lanes)]
    logs, own_logs = [EventLog() for _ in range(n_lanes)], [EventLog() for _ in range(n_lanes)]
    hit_band = False
    for k in range(n_steps):
        price = prices[k]
        is_open = rng.random((n_lanes, 3)) < 0.9
        free = rng.random((n_lanes, 3)) < 0.8
        push = rng.normal(0.0, 0.04, (n_lanes, 3))  # some rounds would trade through a band
        push[:, 1] = 0.0  # SPX (no band) prints the lanes' prices: the breakers read them
        lanes = rng.random((n_lanes, 1)) < 0.5
        for log in (*logs, *own_logs):
            log.step = k

        mask, blocked = _limits_step(laned, state, logs, k, price, is_open, free, push, lanes)
        hit_band |= bool(blocked.any())
        for lane in range(n_lanes):
            inputs = (price[lane], is_open[lane].copy(), free[lane], push[lane], lanes[lane])
            own_mask, own_blocked = _limits_step(alone[lane], states[lane], own_logs[lane], k,
                                                 *inputs)  # fmt: skip
            _same(mask[lane], own_mask, f"step {k} lane {lane}: mask")
            _same(blocked[lane], own_blocked, f"step {k} lane {lane}: blocked")
            _same_state(state, states[lane], lane, f"step {k} lane {lane}")
            _same_limits(laned, alone[lane], lane, f"step {k} lane {lane}")
    assert hit_band
    for lane in range(n_lanes):
        assert logs[lane].rows == own_logs[lane].rows
    kinds = [[row[2] for row in log.rows] for log in logs]
    expected = [["circuit_breaker"], [], ["circuit_breaker", "circuit_breaker_skipped"],
                ["circuit_breaker"]][:n_lanes]  # fmt: skip
    assert [sorted(set(k)) for k in kinds] == [sorted(set(k)) for k in expected]


@cache
def _cross_scenario(lane: int):
    """Three 24/7 assets, vols, links and bands differing by lane; SOL sends nothing."""
    links = [["BTC", "ETH", 0.2 + 0.2 * lane], ["ETH", "BTC", 0.5], ["BTC", "SOL", -0.3 * lane]]
    bands = [{"asset": a, "down_pct": 1.0 + lane, "up_pct": 1.5, "reset": "utc_day"}
             for a in ("BTC", "ETH")]  # fmt: skip
    return build(
        base_raw(
            clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z", "step": "1h"},
            assets=[
                _asset("BTC", "spot", 100_000.0, 0.03 + 0.005 * lane),
                _asset("ETH", "spot", 3_000.0 + 100 * lane, 0.045),
                _asset("SOL", "spot", 150.0, 0.06 - 0.01 * lane),
            ],
            market={"cross_impact": links, "price_limits": bands},
        )
    )


def _cross(lane: int, rng: np.random.Generator) -> tuple[CrossImpact, PriceLimits]:
    scenario = _cross_scenario(lane)
    resolved, permanent = rng.uniform(0.05, 0.5, 3), rng.uniform(0.1, 0.9, 3)
    calendar = build_calendar(scenario)
    price0 = np.array([a.price for a in scenario.assets])
    settles = np.zeros((3, len(calendar.step_starts)), bool)
    limits = PriceLimits.build(scenario, calendar.step_starts, settles, price0)
    return CrossImpact.build(scenario, resolved, permanent), limits


def _cross_step(cross, limits, with_limits, state, k, is_open, free, delta):
    """Resets, relaxation, a round that moved the latent books by `delta`, transmission."""
    limits.begin_step(k, np.exp(state.log_reference), is_open)
    cross.relax(state, is_open)
    latent_before = state.displacement
    state.displacement = latent_before + delta
    cross.transmit(state, latent_before, is_open, free, limits if with_limits else None)


@settings(max_examples=20, deadline=None)
@given(n_lanes=LANES, seed=SEEDS)
def test_stacked_cross_impact_leaves_a_lane_without_a_move_exactly_as_it_was(n_lanes, seed):
    rng = np.random.default_rng(seed)
    pairs = [_cross(lane, np.random.default_rng([seed, lane])) for lane in range(n_lanes)]
    alone = [_cross(lane, np.random.default_rng([seed, lane])) for lane in range(n_lanes)]
    cross = CrossImpact.stack([c for c, _ in pairs])
    limits = PriceLimits.stack([x for _, x in pairs])
    price0 = np.exp(limits.reference)
    state = _state(rng, n_lanes, 3, price0)
    states = [_row(state, lane) for lane in range(n_lanes)]
    moved_some = kept_some = False
    for k in range(limits.reset.shape[-1]):
        is_open = rng.random((n_lanes, 3)) < 0.8
        free = rng.random((n_lanes, 3)) < 0.8
        delta = rng.normal(0.0, 0.02, (n_lanes, 3))
        # lanes whose round traded nothing, or only SOL (which sends no cross move)
        delta[rng.random(n_lanes) < 0.4] = 0.0
        delta[rng.random(n_lanes) < 0.2, :2] = 0.0
        with_limits = k % 2 == 0
        before = copy.deepcopy(state)
        _cross_step(cross, limits, with_limits, state, k, is_open, free, delta)
        for lane in range(n_lanes):
            c, x = alone[lane]
            inputs = (k, is_open[lane].copy(), free[lane], delta[lane])
            _cross_step(c, x, with_limits, states[lane], *inputs)
            what = f"step {k} lane {lane}"
            _same_state(state, states[lane], lane, what)
            _same_limits(limits, x, lane, what)
            for name in ("transient", "scale", "resolved", "permanent"):
                _same(getattr(cross, name)[lane], getattr(c, name), f"{what}: {name}")
            if not delta[lane, :2].any():  # no move: only the relaxation touched the lane
                kept_some = True
                _same(state.pending_jump[lane], before.pending_jump[lane], what)
            else:
                moved_some = True
    assert moved_some and kept_some


@cache
def _outage_scenario(lane: int):
    """BTC on spot, ETH on a second venue; trigger thresholds and windows by lane."""
    spot = {"id": "spot", "kind": "crypto", "triggered_outages": [
        {"asset": "BTC", "move_pct": 8.0 + lane, "within": f"{1 + lane % 2}h",
         "duration": f"{30 + 10 * lane}min", "repeat": True},
        {"asset": "ETH", "move_pct": 12.0, "within": "1h", "duration": "20min",
         "direction": "up"}]}  # fmt: skip
    dex = {"id": "dex", "kind": "crypto", "triggered_outages": [
        {"asset": "ETH", "move_pct": 5.0 + 0.5 * lane, "within": "30min", "duration": "1h",
         "direction": "both"}]}  # fmt: skip
    return build(
        base_raw(
            clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z", "step": "10min"},
            venues=[spot, dex],
            assets=[_asset("BTC", "spot", 100_000.0, 0.03), _asset("ETH", "dex", 3_000.0, 0.045)],
        )
    )


def _triggers(lane: int) -> OutageTriggers:
    scenario = _outage_scenario(lane)
    calendar = build_calendar(scenario)
    venue_of = [scenario.venue_index()[a.venue] for a in scenario.assets]
    return OutageTriggers.build(scenario, calendar, calendar.open[venue_of])


@settings(max_examples=20, deadline=None)
@given(n_lanes=LANES, seed=SEEDS)
def test_stacked_outage_triggers_close_only_the_lane_whose_price_moved(n_lanes, seed):
    rng = np.random.default_rng(seed)
    alone = [_triggers(lane) for lane in range(n_lanes)]
    members = [_triggers(lane) for lane in range(n_lanes)]
    asset_open = np.concatenate([t.asset_open for t in members])  # one lane each
    laned = OutageTriggers.stack(members, asset_open)
    n_steps = asset_open.shape[-1]
    log = np.cumsum(rng.normal(0.0, 0.002, (n_steps, n_lanes, 2)), axis=0)
    log[40:, 0, 0] -= 0.15  # lane 0: BTC falls twice (the rule repeats), lanes 1+: noise
    log[100:, 0, 0] -= 0.15
    log[70:, n_lanes - 1, 1] += rng.choice([-0.09, 0.09])  # last lane: ETH jumps (dex)
    prices = np.array([100_000.0, 3_000.0]) * np.exp(log)
    started = []
    for k in range(n_steps):
        venues = laned.check(k, prices[: k + 1])
        started.append(venues)
        assert len(venues) == n_lanes
        for lane in range(n_lanes):
            assert venues[lane] == alone[lane].check(k, prices[: k + 1, lane : lane + 1])[0]
    for lane in range(n_lanes):
        own, member = alone[lane], members[lane]
        _same(laned.asset_open[lane], own.asset_open[0], f"lane {lane}: asset_open")
        _same(member.calendars[0].open, own.calendars[0].open, f"lane {lane}: calendar")
        _same(member.calendars[0].outage, own.calendars[0].outage, f"lane {lane}: outage")
        for rule, own_rule in zip(laned.rules, own.rules, strict=True):
            _same(rule.free_from[lane], own_rule.free_from[0], f"lane {lane}: free_from")
    fired = [sum(v[lane].count("spot") for v in started) for lane in range(n_lanes)]
    assert fired == [2] + [0] * (n_lanes - 1)  # lane 0's two falls, each after the return
    for lane, member in enumerate(members):  # ETH's jump closes the last lane's venue only
        assert member.calendars[0].outage[1].any() == (lane == n_lanes - 1)


def test_lanes_of_different_structure_are_refused_naming_the_field():
    halted_eq_only = copy.deepcopy(_limits(0))
    halted_eq_only.breakers[0].halted = np.array([2])
    no_breaker = copy.deepcopy(_limits(0))
    no_breaker.breakers = []
    for other, field in ((halted_eq_only, "breakers[0].halted"), (no_breaker, "len(breakers)")):
        with pytest.raises(ValueError, match=re.escape(field)):
            PriceLimits.stack([_limits(0), other])
    with pytest.raises(ValueError, match="asset_ids"):
        PriceLimits.stack([_limits(0), _cross(0, np.random.default_rng(0))[1]])

    fewer = copy.deepcopy(_cross(0, np.random.default_rng(0))[0])
    fewer.scale = fewer.scale[:2, :2]
    with pytest.raises(ValueError, match="scale"):
        CrossImpact.stack([_cross(1, np.random.default_rng(0))[0], fewer])

    down = _triggers(1)
    down.rules[1].direction = "down"
    members = [_triggers(0), down]
    with pytest.raises(ValueError, match=r"rules\[1\]\.direction"):
        OutageTriggers.stack(members, np.concatenate([t.asset_open for t in members]))
    with pytest.raises(ValueError, match="asset_open"):
        OutageTriggers.stack([_triggers(0), _triggers(1)], members[0].asset_open[0])

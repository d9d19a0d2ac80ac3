"""Population slots (issue 9, `populations.lanes`): a type's stacked slot marks several
lanes at once, and each lane must get exactly what its own `mark` gives it alone — orders,
events and state to the last bit — whichever lanes are active in a round."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import load_scenario
from deleverage.engine.simulate import initial_prices, rng_stream
from deleverage.market.calendar import build_calendar
from deleverage.populations import REGISTRY, BuildContext, MarketView
from deleverage.populations.lanes import stack_populations
from deleverage.results.events import EventLog
from deleverage.scenario.loader import sample_uncertain

SLOTS = (
    "multi-asset-pb-funds",
    "yen-carry-funds",
    "btc-dip-buyers",
    "spot-btc-etfs",
    "risk-parity-vol-target",
    "cta-trend",
)
LANES = 4


@pytest.fixture(scope="module")
def feb_2026():
    return load_scenario(
        "feb-2026",
        sets=[
            "populations.btc-perps.accounts=2",
            "populations.eth-perps.accounts=2",
            "populations.btc-dip-buyers.max_leverage=3",  # leveraged: defaults, forced sales
            # hourly (daily in the preset): several rebalances in the walk, steps between
            # them that send only what is still pending
            "populations.risk-parity-vol-target.rebalance_every=1h",
            "populations.cta-trend.rebalance_every=1h",
        ],
    )


def _build(scenario, name: str, seed: int, path: int, enabled: bool = True):
    """Population `name` of path `path`, as `simulate` builds it (its own draws): a fresh
    copy of the one built once for these arguments."""
    key = (id(scenario), name, seed, path, enabled)
    if key not in _BUILT:
        _BUILT[key] = _build_new(scenario, name, seed, path, enabled)
    return copy.deepcopy(_BUILT[key])


_BUILT: dict = {}


def _build_new(scenario, name: str, seed: int, path: int, enabled: bool):
    scenario = sample_uncertain(scenario, rng_stream(seed, path, "uncertain"))
    spec = next(p for p in scenario.populations if p.name == name)
    builder, _ = REGISTRY[spec.type]
    ctx = BuildContext(
        scenario,
        scenario.asset_index(),
        initial_prices(scenario),
        rng_stream(seed, path, f"population:{name}"),
        enabled,
        pd.Timedelta(scenario.clock.step) / pd.Timedelta(hours=1),
    )
    return builder(spec, ctx)


def _views(scenario, rng: np.random.Generator, rounds: int):
    """Random rounds for LANES lanes: prices walking from the start with crashes of up to
    −30% in some lanes, venues mostly open, exchange margins in some assets. The walk's
    steps begin when the US equity market first opens (ETF creations take place then)."""
    price0 = initial_prices(scenario)
    n_assets = len(price0)
    log_move = np.zeros((LANES, n_assets))
    calendar = build_calendar(scenario)
    step = int(np.argmax(calendar.open[scenario.venue_index()["nasdaq"]]))
    time, step_length = calendar.step_starts[0], pd.Timedelta(scenario.clock.step)
    for _ in range(rounds):
        if rng.random() < 0.4:
            step += 1
        crash = rng.random((LANES, 1)) < 0.15
        log_move += rng.normal(0.0, 0.01, (LANES, n_assets)) + crash * np.log(
            rng.uniform(0.7, 1.0, (LANES, n_assets))
        )
        price = price0 * np.exp(log_move)
        margin = np.where(rng.random((LANES, n_assets)) < 0.5, rng.uniform(5, 30), np.nan)
        view = MarketView(
            step,
            time + step_length * step,  # on the clock: the populations' step tables apply
            step_length / pd.Timedelta(hours=1),
            price,
            rng.random((LANES, n_assets)) < 0.9,
            rng.random((LANES, n_assets)) < 0.05,
            margin * 1.1,
            margin,
            np.full((LANES, n_assets), 4.0),
            price,
            None,
        )
        active = np.flatnonzero(rng.random(LANES) < 0.7)
        yield view, active


CACHES = ("_sheet", "_sheet_key", "_cash_key", "_cash_cache", "_abs_units")  # caches


def _same_state(a, b) -> None:
    """Every number and array a population holds, the same in the lane as alone."""
    for name, value in vars(b).items():
        if name in CACHES:
            continue
        mine = getattr(a, name)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(mine, value, err_msg=name)
        elif isinstance(value, float | int | np.floating | np.integer):
            assert mine == value or (np.isnan(mine) and np.isnan(value)), name
        elif hasattr(value, "units") and hasattr(value, "pending"):  # a fund book
            _same_state(mine, value)


def _same_orders(a, b) -> None:
    np.testing.assert_array_equal(a.asset, b.asset)
    np.testing.assert_array_equal(a.quantity, b.quantity)
    np.testing.assert_array_equal(a.owner, b.owner)


@pytest.mark.parametrize("name", SLOTS)
@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    enabled=st.lists(st.booleans(), min_size=LANES, max_size=LANES).filter(any),
)
def test_a_slot_marks_each_lane_as_its_population_alone(feb_2026, name, seed, enabled):
    laned = [_build(feb_2026, name, 0, path, on) for path, on in enumerate(enabled)]
    alone = [_build(feb_2026, name, 0, path, on) for path, on in enumerate(enabled)]
    (slot,) = stack_populations([[p] for p in laned])
    assert slot is not None  # the type stacks
    logs_laned, logs_alone = [EventLog() for _ in laned], [EventLog() for _ in alone]
    rng = np.random.default_rng(seed)
    sent = 0  # rounds in which a lane's funds sent orders
    for view, active in _views(feb_2026, rng, 60):
        if not len(active):
            continue
        for log in logs_laned + logs_alone:
            log.step = view.step
        sub = view.row(active)  # the active lanes' rows
        slot.mark_lanes(sub, active, [logs_laned[j] for j in active])
        for j in active:
            alone[j].mark(view.row(j), logs_alone[j])
        for j in active:
            orders = alone[j].orders()
            _same_orders(laned[j].orders(), orders)
            _same_state(laned[j], alone[j])
            if len(orders.asset):  # fill a random part at the lane's prices
                sent += 1
                filled = rng.random(len(orders.asset)) < 0.8
                price = view.price[j][orders.asset]
                alone[j].apply_fills(orders, filled, price, logs_alone[j])
                laned[j].apply_fills(laned[j].orders(), filled, price, logs_laned[j])
        if hasattr(slot, "gross_leverage_lanes"):  # the leverage recorded every step
            pooled = [p.gross_leverage(price) for p, price in zip(alone, view.price, strict=True)]
            np.testing.assert_array_equal(slot.gross_leverage_lanes(view.price), pooled)
        for j in range(LANES):  # as the engine records it: at the lane's last prices
            leverage = laned[j].gross_leverage(view.price[j])
            np.testing.assert_array_equal(leverage, alone[j].gross_leverage(view.price[j]))
    n_assets = len(feb_2026.assets)
    price = initial_prices(feb_2026)
    for a, b, log_a, log_b in zip(laned, alone, logs_laned, logs_alone, strict=True):
        pd.testing.assert_frame_equal(log_a.frame(), log_b.frame())
        np.testing.assert_array_equal(a.holdings(n_assets), b.holdings(n_assets))
        assert a.cash_by_currency() == b.cash_by_currency()
        np.testing.assert_array_equal(a.gross_leverage(price), b.gross_leverage(price))
    acted = sum(len(log.rows) for log in logs_alone)
    assert acted  # the walk reaches the funds' calls and defaults
    assert sent  # and their orders


def test_lanes_that_differ_are_marked_one_by_one(feb_2026):
    pb = [_build(feb_2026, "multi-asset-pb-funds", 0, path) for path in range(2)]
    single = stack_populations([[pb[0]]])
    assert single == [None]  # one lane: its own mark, nothing to share
    carry = _build(feb_2026, "yen-carry-funds", 0, 0)
    assert stack_populations([[pb[0]], [carry]]) == [None]  # different types

"""COMEX-like futures accounts: exchange margins as % of notional, hikes at their effective
step, variation margin at settlement, calls met from the buffer or liquidation at market."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build, run_and_check_conservation

from deleverage import simulate
from deleverage.engine.simulate import initial_prices, rng_stream
from deleverage.errors import ScenarioError
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.futures_kernels import BLOCK
from deleverage.populations.futures_margin import FuturesPopulation
from deleverage.results.events import EventLog

COMEX = {"id": "comex", "kind": "futures", "settlement": ["13:30"]}
SILVER = {
    "id": "SILVER",
    "class": "metal",
    "tier": "peripheral",
    "venue": "comex",
    "price": 100.0,
    "daily_vol": 0.03,
    "adv_usd": 3e10,
    "initial_margin_pct": 10.0,
    "maintenance_margin_pct": 10.0,
}
BOOK = {
    "type": "futures_book",
    "name": "ag",
    "asset": "SILVER",
    "accounts": 2000,
    "notional_usd": 5e9,
    "long_share": 0.8,
    "margin_cushion": {"dist": "uniform", "low": 1.0, "high": 2.0},
    "cash_buffer": {"dist": "uniform", "low": 0.0, "high": 1.0},
}
HIKE = {
    "type": "margin_change",
    "announced": "2026-01-05T06:00:00Z",
    "effective": "2026-01-05T12:00:00Z",
    "venue": "comex",
    "asset": "SILVER",
    "initial_pct": 15.0,
    "maintenance_pct": 15.0,
}
HIKE_STEP = 144  # 12:00 on 5-minute steps from midnight


def _raw(shocks=(), book=BOOK, **changes):
    return base_raw(
        venues=[COMEX],
        assets=[SILVER],
        populations=[book],
        shocks=list(shocks),
        market={"noise_scale": 0.0},
        clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z", "step": "5min"},
        **changes,
    )


def _population(raw, rng=None, enabled=True):
    scenario = build(raw)
    rng = rng if rng is not None else np.random.default_rng(0)
    ctx = BuildContext(
        scenario, scenario.asset_index(), initial_prices(scenario), rng, enabled, 5 / 60
    )
    return FuturesPopulation(scenario.populations[0], ctx)


def _view(price, margin_pct=10.0, settlement=False, step=0):
    return MarketView(
        step,
        pd.Timestamp("2026-01-05", tz="UTC"),
        5 / 60,
        np.array([price]),
        np.array([True]),
        np.array([settlement]),
        np.array([margin_pct]),
        np.array([margin_pct]),
        np.array([np.nan]),
        np.array([price]),
    )


def _snapshot(pop):
    return pop.cash_usd.copy(), pop.buffer_usd.copy(), pop.position.copy()


def test_a_margin_hike_changes_nothing_before_its_effective_step():
    with_hike = simulate(build(_raw([HIKE])), seed=0)
    without = simulate(build(_raw()), seed=0)
    np.testing.assert_array_equal(
        with_hike.market["price"][: HIKE_STEP + 1], without.market["price"][: HIKE_STEP + 1]
    )
    calls = with_hike.events[with_hike.events.kind.isin(["margin_call", "liquidation"])]
    assert calls.step.min() == HIKE_STEP
    assert not without.events.kind.isin(["margin_call", "liquidation"]).any()


def test_at_the_hike_accounts_below_the_new_maintenance_pay_from_their_buffer_or_are_liquidated():
    result = simulate(build(_raw([HIKE])), seed=0)
    # the same accounts, rebuilt from the population's own random stream
    pop = _population(_raw([HIKE]), rng_stream(0, 0, "population:ag"))
    notional = np.abs(pop.position) * 100.0
    equity = pop.equity(100.0)
    called = equity < 0.15 * notional
    need = 0.15 * notional - equity
    met = called & (pop.buffer_usd >= need)
    liquidated = called & ~met
    assert 0 < met.sum() < called.sum() < len(called)

    first = result.events[(result.events.step == HIKE_STEP) & (result.events["round"] == 0)]
    call = first[first.kind == "margin_call"].iloc[0]
    assert call["count"] == called.sum()
    assert np.isclose(call.notional_usd, need[called].sum(), rtol=1e-12)
    # one liquidation row per side: longs sold, shorts bought back
    rows = first[first.kind == "liquidation"].set_index("side")
    assert rows["count"].sum() == liquidated.sum()
    assert np.isclose(rows.quantity.sum(), -pop.position[liquidated].sum(), rtol=1e-12)
    for side, sign in (("long", 1.0), ("short", -1.0)):
        mine = liquidated & (np.sign(pop.position) == sign)
        assert rows.loc[side, "count"] == mine.sum() > 0
        assert np.isclose(rows.loc[side, "quantity"], -pop.position[mine].sum(), rtol=1e-12)


def test_a_call_is_met_back_to_initial_margin_from_the_buffer_or_the_account_is_closed():
    pop = _population(_raw())
    log = EventLog()
    cash0, buffer0, position0 = _snapshot(pop)
    pop.mark(_view(100.0, margin_pct=10.0), log)
    assert not log.rows and not pop.orders().quantity.size  # nobody below 10%

    pop.mark(_view(100.0, margin_pct=15.0), log)
    notional = np.abs(position0) * 100.0
    equity0 = cash0 + position0 * 100.0
    need = 0.15 * notional - equity0
    met = (equity0 < 0.15 * notional) & (buffer0 >= need)
    liquidated = (equity0 < 0.15 * notional) & ~met
    np.testing.assert_allclose(pop.buffer_usd[met], buffer0[met] - need[met], rtol=1e-12)
    np.testing.assert_allclose(pop.equity(100.0)[met], 0.15 * notional[met], rtol=1e-12)
    assert np.isclose(pop.cash(), cash0.sum() + buffer0.sum(), rtol=1e-14)
    orders = pop.orders()
    assert np.isclose(orders.quantity.sum(), -position0[liquidated].sum(), rtol=1e-12)

    # liquidated at market: the fill moves cash by −quantity·price and nothing else
    cash_before = pop.cash()
    pop.apply_fills(orders, np.array([True]), np.array([97.0]), log)
    assert not pop.position[liquidated].any()
    np.testing.assert_array_equal(pop.position[~liquidated], position0[~liquidated])
    assert np.isclose(pop.cash(), cash_before - orders.quantity[0] * 97.0, rtol=1e-14)
    assert not pop.orders().quantity.size


def test_longs_are_called_on_a_fall_and_shorts_on_a_rally():
    book = {**BOOK, "long_share": 0.5, "margin_cushion": {"dist": "fixed", "value": 1.02}}
    for price, side in ((95.0, 1.0), (105.0, -1.0)):
        pop = _population(_raw(book=book))
        position0 = pop.position.copy()
        pop.mark(_view(price), EventLog())
        closing = pop.pending != 0.0
        buffer_used = pop.buffer_usd < _population(_raw(book=book)).buffer_usd
        touched = closing | buffer_used
        assert touched.any() and np.all(np.sign(position0[touched]) == side)


def test_variation_margin_at_settlement_moves_pnl_into_the_margin_balance_not_cash():
    pop = _population(_raw(), enabled=False)  # settlement is booked whatever the channel
    cash0, balance0 = pop.cash(), pop.margin_balance.copy()
    log = EventLog()
    pop.mark(_view(98.0, settlement=True, step=5), log)
    np.testing.assert_allclose(
        pop.margin_balance, balance0 + pop.position * (98.0 - 100.0), rtol=1e-12, atol=1e-6
    )
    assert pop.cash() == cash0
    assert list(log.frame().kind) == ["variation_margin"]
    pop.mark(_view(97.0, settlement=True, step=5), log)  # a later round of the same step
    assert pop.settlement_price == 98.0


def test_with_the_margin_calls_channel_off_nobody_is_called():
    pop = _population(_raw(), enabled=False)
    log = EventLog()
    pop.mark(_view(100.0, margin_pct=15.0), log)
    pop.mark(_view(80.0, margin_pct=15.0), log)
    assert not log.rows and not pop.orders().quantity.size


def test_heightened_risk_accounts_are_called_back_to_their_own_higher_initial_margin():
    book = {**BOOK, "initial_margin_multiplier": 1.1}
    pop = _population(_raw(book=book))
    notional = np.abs(pop.position) * 100.0
    assert np.all(pop.equity(100.0) >= 0.11 * notional * (1 - 1e-12))  # cushion ≥ 1 of 11%
    buffer0 = pop.buffer_usd.copy()
    pop.mark(_view(100.0, margin_pct=15.0), EventLog())
    met = pop.buffer_usd < buffer0
    assert met.any()
    np.testing.assert_allclose(pop.equity(100.0)[met], 0.165 * notional[met], rtol=1e-12)


def test_a_book_without_margins_on_its_asset_or_itself_is_a_scenario_error():
    bare = {k: v for k, v in SILVER.items() if not k.endswith("margin_pct")}
    with pytest.raises(ScenarioError) as caught:
        build(_raw() | {"assets": [bare]})
    assert any(p.path == "populations.ag.initial_margin_pct" for p in caught.value.problems)
    build(
        _raw(book={**BOOK, "initial_margin_pct": 9.0, "maintenance_margin_pct": 9.0})
        | {"assets": [bare]}
    )


def test_only_accounts_whose_calls_the_history_could_be_met_exist_at_the_start():
    before = 100.0 + 0.01 * np.arange(20)  # 20 days near 100, each price distinct
    fall = np.array([90.0, 80.0])  # −20% in two days
    recovery = np.linspace(82.0, 100.2, 8)  # back to 100.2 at the start
    closes = np.concatenate([before, fall, recovery])
    times = pd.date_range(end="2026-01-05", periods=len(closes), freq="D", tz="UTC")
    book = {
        **BOOK,
        "long_share": 0.5,
        "margin_cushion": {"dist": "fixed", "value": 1.2},
        "cash_buffer": {"dist": "fixed", "value": 0.5},
        "entry_lookback": "30d",
    }
    raw = _raw(book=book)
    raw["assets"][0].pop("price")
    raw["assets"][0]["history"] = {
        "points": [[t.isoformat(), float(c)] for t, c in zip(times, closes, strict=True)]
    }
    pop = _population(raw)
    q = pop.position
    # equity + outside cash = (cushion + buffer)·initial margin at entry + P&L since entry
    # (a call only moves cash from outside to the exchange), so the entry price is implied
    wealth = pop.equity(100.2) + pop.buffer_usd
    entry = (wealth - q * 100.2) / (np.abs(q) * (1.2 + 0.5) * 0.10 - q)
    assert np.abs(entry[:, None] - closes[None, :]).min(axis=1).max() < 1e-9
    longs, shorts = q > 0, q < 0
    # a long from ~100 or 90 at 12% equity lost 20 or 10 points at 80 and needed 16 or
    # 7.2 points from a buffer of 5 or 4.5: it was liquidated and does not exist
    day = np.abs(entry[:, None] - closes[None, :]).argmin(axis=1)
    assert (day[longs] >= 21).all()  # from the low of 80 on
    assert (day[longs] == 21).any() and (day[longs] == 29).any()
    # shorts from the low lost more than their buffer on the way back up
    assert not ((day[shorts] >= 20) & (day[shorts] <= 25)).any()
    assert (day[shorts] < 20).mean() > 0.5
    assert np.abs(q).sum() * 100.2 == pytest.approx(5e9)  # open notional is the input
    # every survivor starts above maintenance: nobody is called at step 0
    assert (pop.equity(100.2) >= 0.10 * np.abs(q) * 100.2 - 1e-6).all()


def _round_trip(pop, price, step, log):
    """One engine step at `price`: rounds of mark, orders and fills (all at `price`);
    returns the value of the units bought (+) and sold (−), USD."""
    bought = 0.0
    for _ in range(10):
        pop.mark(_view(price, step=step), log)
        orders = pop.orders()
        if not len(orders.asset):
            break
        n = len(orders.asset)
        pop.apply_fills(orders, np.ones(n, bool), np.full(n, price), log)
        bought += orders.quantity.sum() * price
    return bought


def test_futures_open_interest_emptied_by_a_fall_rebuilds_with_its_half_life():
    book = {**BOOK, "cash_buffer": {"dist": "fixed", "value": 0.0}, "oi_rebuild_half_life": "6h"}
    pop, log = _population(_raw(book=book)), EventLog()
    target = 5e9 / 100.0  # contracts (units) of the input
    _round_trip(pop, 100.0, 0, log)
    assert pop.used == 2000  # the book holds its input: nothing opens
    cash0 = pop.cash()
    bought = _round_trip(pop, 85.0, 1, log)  # −15% through 10–20% equity: longs liquidated
    sold = 0.8 * target
    gap0 = target - np.abs(pop.position).sum()
    assert gap0 == pytest.approx(sold)
    path = 85.0 + 0.001 * np.arange(1, 3 * 72 + 1)  # each step its own price
    gaps = []
    for j, price in enumerate(path, start=2):
        bought += _round_trip(pop, price, j, log)
        gaps.append(target - np.abs(pop.position).sum())
        # new accounts fold into the call extremes and the summed units without a pass
        # over the book: both stay exactly those of the whole book
        assert (pop._call_below, pop._call_above) == (pop.floor.max(), pop.cap.min())
        # and the call prices' index, through calls, openings and growth, is theirs
        blocks = np.arange(0, len(pop.floor), BLOCK)
        np.testing.assert_array_equal(pop.top, np.maximum.reduceat(pop.floor, blocks))
        np.testing.assert_array_equal(pop.low, np.minimum.reduceat(pop.cap, blocks))
        assert pop.gross_units() == np.abs(pop.position).sum()
    # the missing contracts halve every 6 h (72 five-minute steps)
    assert gaps[71] / gap0 == pytest.approx(0.5, abs=0.05)
    assert gaps[-1] / gap0 == pytest.approx(0.125, abs=0.03)
    new = np.arange(2000, pop.used)
    new = new[pop.position[new] != 0.0]  # shorts opened at 1.0 × margin are called on a rise
    long_units = pop.position[new][pop.position[new] > 0].sum()
    assert long_units / np.abs(pop.position[new]).sum() == pytest.approx(0.8, abs=0.05)
    # each opened at the price of its step with equity = cushion (1–2) × initial margin
    opened = _kind(log, "futures_open")
    assert np.isin(opened.price, path).all() and len(opened) > 150
    equity_share = pop.equity(path[-1])[new] / (0.10 * np.abs(pop.position[new]) * path[-1])
    assert equity_share.min() > 0.9 and equity_share.max() < 2.1
    # cash moved only with trades: liquidations and the new accounts' opening orders
    assert pop.cash() == pytest.approx(cash0 - bought, rel=1e-9)


def test_units_and_cash_are_conserved_with_futures_open_interest_as_a_flow():
    crash = {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"SILVER": -0.15}}
    book = {**BOOK, "oi_rebuild_half_life": "4h"}
    result = run_and_check_conservation(build(_raw([crash], book=book)), seed=0)
    assert result.events[result.events.kind == "futures_open"]["count"].sum() > 500


def _kind(log, kind):
    frame = log.frame()
    return frame[frame.kind == kind]


def test_with_settlement_timing_calls_wait_for_the_settlement_and_are_due_by_the_next():
    book = {**BOOK, "call_timing": "settlement"}
    pop = _population(_raw(book=book))
    log = EventLog()
    cash0, buffer0, position0 = _snapshot(pop)
    notional = np.abs(position0) * 90.0
    equity0 = cash0 + position0 * 90.0
    below = equity0 < 0.10 * notional
    unpaid = below & (buffer0 < 0.10 * notional - equity0)
    assert unpaid.sum() > 10  # some calls the buffers cannot meet
    pop.mark(_view(90.0, step=1), log)  # a 10% fall between settlements: no call yet
    assert _kind(log, "margin_call").empty and not pop.orders().quantity.size
    pop.mark(_view(90.0, settlement=True, step=2), log)  # the settlement computes the calls
    assert _kind(log, "margin_call")["count"].sum() == below.sum()
    assert _kind(log, "liquidation").empty  # unmet calls are due by the next settlement
    np.testing.assert_array_equal(pop.call_due, unpaid)
    # the price recovers for some before the next settlement: only the rest is liquidated
    still_below = unpaid & (cash0 + position0 * 95.0 < 0.10 * np.abs(position0) * 95.0)
    assert 0 < still_below.sum() < unpaid.sum()
    pop.mark(_view(95.0, settlement=True, step=290), log)
    assert _kind(log, "liquidation")["count"].sum() == still_below.sum()
    np.testing.assert_allclose(pop.pending[still_below], -position0[still_below], rtol=1e-12)


def test_settlement_timing_conserves_units_and_cash_through_a_crash():
    crash = {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"SILVER": -0.15}}
    book = {**BOOK, "call_timing": "settlement"}
    raw = _raw([crash], book=book)
    raw["clock"]["end"] = "2026-01-07T00:00:00Z"  # two settlements: calls, then the overdue
    result = simulate(build(raw), seed=0, check_invariants=True)
    # buffers move into margin before any trade: the drift is float rounding of the $5bn
    # book's balances (eps · 5e9 ≈ 1e-6 USD), not relative to the (still zero) turnover
    assert result.diagnostics["max_unit_drift"] < 1e-12
    assert result.diagnostics["max_cash_drift_usd"] < 1e-15 * 5e9 * 1e3
    events = result.events.set_index("kind")
    settled = result.times[events.loc[["margin_call", "liquidation"], "step"]]  # step starts
    assert set(settled.strftime("%H:%M")) == {"13:30"}  # only at the settlements
    assert events.loc["liquidation", "count"].sum() > 0

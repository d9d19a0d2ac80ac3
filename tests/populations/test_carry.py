"""Yen carry-trade funds: leverage with USDJPY, buffer/target/default, pecking-order sales,
yen repaid as a USDJPY order, voluntary unwinds as carry-to-volatility falls."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import NASDAQ, base_raw, build

from deleverage import simulate
from deleverage.engine.simulate import initial_prices
from deleverage.errors import ScenarioError
from deleverage.populations import carry
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.carry import JPY, CarryFundsPopulation
from deleverage.results.events import EventLog
from deleverage.scenario.schema import rate_at


def _asset(asset_id, cls, tier, price, **extra):
    return {
        "id": asset_id,
        "class": cls,
        "tier": tier,
        "venue": "spot",
        "price": price,
        "daily_vol": 0.02,
        "adv_usd": 1e11,
        **extra,
    }


ASSETS = [
    _asset("BTC", "crypto", "peripheral", 90_000.0),
    _asset("ETH", "crypto", "peripheral", 3_000.0),
    _asset("NDX", "equity_index", "semi_core", 25_000.0),
    _asset("GOLD", "metal", "core", 4_000.0),
    {**_asset("USDJPY", "fx", "core", 150.0, currency="JPY"), "daily_vol": 0.006},
    _asset("JGB40Y", "bond", "core", 100.0, duration_years=22.0, yield_pct=3.5),
]
BTC, ETH, NDX, GOLD, USDJPY, JGB = range(6)
PRICE = np.array([a["price"] for a in ASSETS])
FUND = {
    "type": "carry_funds",
    "name": "carry",
    "funds": 1,
    "equity_usd": 1e9,
    "weights": {"BTC": 0.3, "ETH": 0.2, "NDX": 0.3, "GOLD": 0.2},
    "leverage": {"dist": "fixed", "value": 4.0},
    "target_leverage": 4.0,
    "buffer_leverage": 5.0,
    "default_leverage": 10.0,
    "investment_rate": 3.7,
    "funding_rate": 1.0,
    "carry_to_vol_threshold": {"dist": "fixed", "value": 0.0},
}


def _population(fund=FUND, **channels):
    scenario = build(base_raw(assets=ASSETS, populations=[fund], channels=channels))
    ctx = BuildContext(
        scenario,
        scenario.asset_index(),
        initial_prices(scenario),
        np.random.default_rng(0),
        channels.get("carry_unwind", True),
        5 / 60,
    )
    return CarryFundsPopulation(scenario.populations[0], ctx)


def _view(usdjpy=150.0, jgb_yield=3.5, time="2026-01-05T00:00Z", step=0):
    price = PRICE.copy()
    price[USDJPY] = usdjpy
    yields = np.full(6, np.nan)
    yields[JGB] = jgb_yield
    n = len(price)
    return MarketView(
        step,
        pd.Timestamp(time),
        5 / 60,
        price,
        np.ones(n, dtype=bool),
        np.zeros(n, dtype=bool),
        np.full(n, np.nan),
        np.full(n, np.nan),
        yields,
        np.where(np.arange(n) == USDJPY, 1.0, price),
    )


def _orders(pop):
    orders = pop.orders()
    return dict(zip(orders.asset.tolist(), orders.quantity.tolist(), strict=True))


def test_a_five_percent_fall_in_usdjpy_raises_leverage_exactly_as_computed_by_hand():
    pop = _population()
    assert np.isclose(pop.leverage[0], 4.0, rtol=1e-14)
    assets, loan_usd = 4e9, 3e9  # leverage 4 on 1bn of equity; the loan is 450bn yen
    loan_yen = loan_usd * 150.0
    pop.mark(_view(usdjpy=150.0 * 0.95), EventLog())
    by_hand = assets / (assets - loan_yen / (150.0 * 0.95))  # 4 / (4 − 3/0.95) = 4.75
    assert np.isclose(pop.leverage[0], by_hand, rtol=1e-12)
    assert np.isclose(by_hand, 4.75, rtol=1e-12)
    assert not _orders(pop)  # 4.75 is inside the buffer of 5: nothing to sell


def test_a_breach_sells_the_peripheral_tier_first_in_proportion_and_repays_yen_with_usdjpy():
    pop = _population()
    log = EventLog()
    pop.mark(_view(usdjpy=135.0), log)  # USDJPY −10%: equity 4 − 3/0.9 = 2/3bn, leverage 6
    equity = 4e9 - 3e9 * 150.0 / 135.0
    to_raise = 4e9 - 4.0 * equity  # sell down to the target leverage of 4
    orders = _orders(pop)
    assert set(orders) == {BTC, ETH, USDJPY}  # the semi-core and core tiers are untouched
    assert np.isclose(-orders[BTC] * PRICE[BTC], 0.6 * to_raise, rtol=1e-12)  # 0.3 : 0.2
    assert np.isclose(-orders[ETH] * PRICE[ETH], 0.4 * to_raise, rtol=1e-12)
    # buying yen is selling USDJPY: one unit per dollar repaid, 135 yen a unit now
    assert np.isclose(-orders[USDJPY], to_raise, rtol=1e-12)
    repay = log.frame().query("kind == 'fx_repay'").iloc[0]
    assert repay.asset == "USDJPY" and np.isclose(repay.quantity, -to_raise, rtol=1e-12)
    assert f"{to_raise * 135.0:.0f} JPY repaid" in repay.detail

    yen_before, cash_before = pop.book.cash[0, JPY], pop.cash()
    order_list = pop.orders()
    fill = PRICE[order_list.asset] * np.where(order_list.asset == USDJPY, 135.0 / 150.0, 1.0)
    pop.apply_fills(order_list, np.ones(len(fill), dtype=bool), fill, log)
    assert np.isclose(pop.book.cash[0, JPY] - yen_before, to_raise * 135.0, rtol=1e-12)
    assert np.isclose(pop.cash(), cash_before - (order_list.quantity * fill).sum(), rtol=1e-14)
    after = pop.balance_sheet(_view(usdjpy=135.0).price)
    assert np.isclose(after.leverage[0], 4.0, rtol=1e-12)  # back at the target


def test_orders_in_flight_are_not_sent_twice():
    pop = _population()
    pop.mark(_view(usdjpy=135.0), EventLog())
    first = _orders(pop)
    pop.mark(_view(usdjpy=135.0), EventLog())  # the venue has not filled them yet
    assert _orders(pop) == first


def test_with_the_pecking_order_off_the_fund_sells_in_proportion_across_the_book():
    pop = _population(pecking_order=False)
    pop.mark(_view(usdjpy=135.0), EventLog())
    to_raise = 4e9 - 4.0 * (4e9 - 3e9 * 150.0 / 135.0)
    orders = _orders(pop)
    for asset, weight in ((BTC, 0.3), (ETH, 0.2), (NDX, 0.3), (GOLD, 0.2)):
        assert np.isclose(-orders[asset] * PRICE[asset], weight * to_raise, rtol=1e-12)


def test_with_fx_feedback_off_the_yen_is_repaid_at_the_current_rate_without_an_order():
    pop = _population(fx_feedback=False)
    units, cash = pop.holdings(6), pop.cash()
    pop.mark(_view(usdjpy=135.0), EventLog())
    to_raise = 4e9 - 4.0 * (4e9 - 3e9 * 150.0 / 135.0)
    assert USDJPY not in _orders(pop)
    sheet = pop.balance_sheet(_view(usdjpy=135.0).price)
    assert np.isclose(sheet.loan[0], 3e9 * 150.0 / 135.0 - to_raise, rtol=1e-12)
    assert np.isclose(sheet.leverage[0], 4.0, rtol=1e-12)
    np.testing.assert_array_equal(pop.holdings(6), units)  # fund and FX desk net out
    assert pop.cash() == cash


def test_rising_jgb_yields_shrink_the_carry_and_trigger_a_voluntary_unwind_when_linked():
    fund = {**FUND, "carry_to_vol_threshold": {"dist": "fixed", "value": 0.25}}
    fund |= {"unwind_share": 0.5, "rate_asset": "JGB40Y"}  # the explicit link, β = 1
    pop = _population(fund)
    log = EventLog()
    pop.mark(_view(), log)  # carry 2.7% over 9.5% annual volatility: 0.28, no unwind
    decay = 0.5 ** ((5 / 60) / 24)  # one quiet step of the one-day EWMA
    vol = 100 * np.sqrt(decay * 0.006**2 * 252)
    assert np.isclose(pop.carry_to_vol(_view()), (3.7 - 1.0) / vol, rtol=1e-12)
    assert not _orders(pop)

    pop.mark(_view(jgb_yield=4.5), log)  # +100 bp: funding 2%, carry/vol 0.18 < 0.25
    assert np.isclose(pop.carry_to_vol(_view(jgb_yield=4.5)), (3.7 - 2.0) / vol, rtol=1e-12)
    orders = _orders(pop)
    assert np.isclose(-orders[USDJPY], 0.5 * 3e9, rtol=1e-12)  # half the loan repaid
    assert np.isclose(-orders[BTC] * PRICE[BTC], 0.6 * 1.5e9, rtol=1e-12)
    assert list(log.frame().kind).count("voluntary_unwind") == 1
    pop.mark(_view(jgb_yield=5.0), log)  # an unwound fund does not unwind again
    assert list(log.frame().kind).count("voluntary_unwind") == 1


def _hike(size_pp, at="2026-01-05T03:00:00Z"):
    """FUND whose funding (policy) rate goes 1% → 1% + size on `at`; threshold 0.25."""
    path = {"points": [["2026-01-05T00:00:00Z", 1.0], [at, 1.0 + size_pp]]}
    return FUND | {
        "funding_rate": path,
        "carry_to_vol_threshold": {"dist": "fixed", "value": 0.25},
        "unwind_share": 0.5,
    }


@settings(max_examples=30, deadline=None)
@given(size=st.floats(0.0, 2.0))
def test_a_policy_rate_hike_raises_funding_from_its_step_and_unwinds_past_the_threshold(size):
    pop = _population(_hike(size))
    log = EventLog()
    for step, time in enumerate(["00:00", "01:00", "02:55"]):  # before the decision
        view = _view(time=f"2026-01-05T{time}Z", step=step)
        pop.mark(view, log)
        assert pop.rates(view) == (3.7, 1.0)
    assert not _orders(pop) and not log.rows
    hiked = _view(time="2026-01-05T03:00Z", step=3)
    pop.mark(hiked, log)
    vol = pop.annual_vol()  # the EWMA the funds saw in this step
    assert pop.rates(hiked) == (3.7, 1.0 + size)  # from the decision's step on
    assert np.isclose(pop.carry_to_vol(hiked), (2.7 - size) / (100 * vol), rtol=1e-12)
    unwinds = (2.7 - size) / (100 * vol) < 0.25  # the rule: carry/vol below the threshold
    assert (USDJPY in _orders(pop)) == unwinds
    if unwinds:  # half the loan repaid by selling USDJPY, funded by the peripheral tier
        assert np.isclose(-_orders(pop)[USDJPY], 0.5 * 3e9, rtol=1e-12)
        assert "funding " + f"{1.0 + size:.2f}%" in log.frame().detail.iloc[-1]


def test_the_threshold_is_crossed_between_a_25_and_a_50_bp_hike():
    # carry/vol: 2.7/9.51 = 0.284 before; 2.45/9.51 = 0.258 after +25 bp (above 0.25, held);
    # 2.2/9.51 = 0.231 after +50 bp (below: the fund repays half its loan)
    for size, unwinds in ((0.25, False), (0.5, True)):
        pop = _population(_hike(size))
        pop.mark(_view(time="2026-01-05T03:00Z"), EventLog())
        assert (USDJPY in _orders(pop)) == unwinds


def test_a_decision_inside_a_step_counts_from_the_next_step_start():
    pop = _population(_hike(0.5, at="2026-01-05T03:02:00Z"))
    assert pop.rates(_view(time="2026-01-05T03:00Z"))[1] == 1.0  # not yet known
    assert pop.rates(_view(time="2026-01-05T03:05Z"))[1] == 1.5


def test_linear_paths_interpolate_both_legs_and_the_spread_adds_to_funding():
    fund = FUND | {
        "investment_rate": {
            "points": [["2026-01-05T00:00Z", 4.0], ["2026-01-06T00:00Z", 3.0]],
            "interpolation": "linear",
        },
        "funding_spread_pct": 0.2,
    }
    pop = _population(fund)
    assert pop.rates(_view(time="2026-01-05T06:00Z")) == (3.75, 1.2)
    assert pop.rates(_view(time="2026-01-07T00:00Z")) == (3.0, 1.2)  # the last value after


def test_a_flight_to_safety_bond_rally_does_not_lower_funding_unless_linked():
    pop = _population()
    rally = _view(jgb_yield=2.5)  # −100 bp: the bond's price up 22%
    assert pop.rates(rally) == pop.rates(_view()) == (3.7, 1.0)
    linked = _population(FUND | {"rate_asset": "JGB40Y", "funding_beta": 0.5})
    assert np.isclose(linked.rates(rally)[1], 1.0 - 0.5, rtol=1e-12)  # what the link says


def test_older_constant_keys_read_as_the_two_legs():
    older = {k: v for k, v in FUND.items() if k not in ("investment_rate", "funding_rate")}
    pop = _population(older | {"usd_yield_pct": 3.7, "funding_pct": 1.0})
    assert pop.rates(_view()) == (3.7, 1.0)
    assert pop.spec == _population().spec


def test_below_the_minimum_the_fund_defaults_and_is_liquidated():
    pop = _population()
    log = EventLog()
    pop.mark(_view(usdjpy=105.0), log)  # the loan is now worth 4.29bn against 4bn of assets
    orders = _orders(pop)
    for asset, weight in ((BTC, 0.3), (ETH, 0.2), (NDX, 0.3), (GOLD, 0.2)):
        assert np.isclose(-orders[asset] * PRICE[asset], weight * 4e9, rtol=1e-12)
    assert np.isclose(-orders[USDJPY], 4e9, rtol=1e-12)  # everything raised repays yen
    events = log.frame().set_index("kind")
    assert events.loc["fund_default", "count"] == 1
    assert "bad_debt" not in events.index  # known only once the sales have filled
    _fill(pop, _view(usdjpy=105.0).price, log)
    unpaid = 3e9 * 150.0 / 105.0 - 4e9  # the lenders' loss, recorded
    events = log.frame().set_index("kind")
    assert np.isclose(events.loc["bad_debt", "notional_usd"], unpaid, rtol=1e-12)
    pop.mark(_view(usdjpy=100.0), log)
    assert list(log.frame().kind).count("fund_default") == 1
    assert list(log.frame().kind).count("bad_debt") == 1


def _fill(pop, price, log):
    """Fill every open order at `price` (the engine's price vector)."""
    orders = pop.orders()
    pop.apply_fills(orders, np.ones(len(orders.asset), bool), price[orders.asset], log)


def test_bad_debt_is_valued_at_the_prices_the_fire_sale_got():
    pop = _population()
    log = EventLog()
    pop.mark(_view(usdjpy=105.0), log)  # default: 4bn of holdings sold, 4bn of yen bought
    fills = _view(usdjpy=104.0).price
    fills[[BTC, ETH, NDX, GOLD]] *= 0.9  # the sales fill 10% below the mark
    _fill(pop, fills, log)
    # 3.6bn raised, 4bn of yen bought at 104: 416bn yen repaid of 450bn, the fund 0.4bn
    # short in dollars; left: 34bn yen at 104 plus the 0.4bn overdraft
    unpaid = (450e9 - 4e9 * 104.0) / 104.0 + 0.4e9
    debt = log.frame().query("kind == 'bad_debt'")
    assert np.isclose(debt.notional_usd.iloc[0], unpaid, rtol=1e-12)
    assert debt.price.iloc[0] == 104.0


def test_with_the_carry_unwind_channel_off_the_funds_hold():
    pop = _population(carry_unwind=False)
    log = EventLog()
    pop.mark(_view(usdjpy=105.0, jgb_yield=6.0), log)
    assert not log.rows and not _orders(pop)


# ----------------------------------------------------------------- through the engine

VENUES = [
    {"id": "spot", "kind": "crypto"},
    {"id": "comex", "kind": "futures", "settlement": ["18:30"]},
    NASDAQ,
]
MARKET_ASSETS = [
    _asset("BTC", "crypto", "peripheral", 90_000.0, adv_usd=3e10),
    {**_asset("SILVER", "metal", "peripheral", 100.0, adv_usd=3e10), "venue": "comex"}
    | {"initial_margin_pct": 11.0, "maintenance_margin_pct": 11.0},
    {**_asset("GOLD", "metal", "core", 4_500.0), "venue": "comex"}
    | {"initial_margin_pct": 6.0, "maintenance_margin_pct": 6.0},
    {**_asset("NDX", "equity_index", "semi_core", 25_000.0), "venue": "nasdaq"},
    {**_asset("USDJPY", "fx", "core", 155.0, currency="JPY"), "daily_vol": 0.006}
    | {"adv_usd": 1e12},
    _asset("JGB40Y", "bond", "core", 100.0, duration_years=22.0, yield_pct=3.5),
]
POPULATIONS = [
    {
        "type": "futures_book",
        "name": "silver-specs",
        "asset": "SILVER",
        "accounts": 5000,
        "notional_usd": 2e10,
        "long_share": 0.7,
        "margin_cushion": {"dist": "uniform", "low": 1.0, "high": 2.0},
        "cash_buffer": {"dist": "uniform", "low": 0.0, "high": 1.0},
    },
    {
        **FUND,
        "funds": 100,
        "equity_usd": 2e10,
        "weights": {"BTC": 0.2, "SILVER": 0.1, "NDX": 0.5, "GOLD": 0.2},
        "leverage": {"dist": "uniform", "low": 3.0, "high": 5.0},
        "buffer_leverage": 5.5,
        "weight_dispersion": 0.3,
        "carry_to_vol_threshold": {"dist": "uniform", "low": 0.05, "high": 0.25},
    },
    {
        "type": "pb_funds",
        "name": "pb",
        "funds": 50,
        "equity_usd": 1e10,
        "weights": {"BTC": 0.2, "SILVER": 0.3, "GOLD": 0.2, "NDX": 0.3},
        "weight_dispersion": 0.3,
        "leverage": {"dist": "uniform", "low": 2.0, "high": 4.0},
        "haircut_pct": {"BTC": 25.0, "SILVER": 12.0, "GOLD": 6.0, "NDX": 10.0},
        "default_leverage": 30.0,
    },
]
CRASH = [
    {"type": "news", "time": "2026-01-05T15:00:00Z", "returns": {"BTC": -0.15, "SILVER": -0.2}},
    {"type": "fx", "time": "2026-01-05T16:00:00Z", "pair": "USDJPY", "change": -0.05},
    {
        "type": "margin_change",
        "announced": "2026-01-05T10:00:00Z",
        "effective": "2026-01-05T20:00:00Z",
        "venue": "comex",
        "asset": "SILVER",
        "initial_pct": 20.0,
        "maintenance_pct": 20.0,
    },
]


def _market(**channels):
    return build(
        base_raw(
            venues=VENUES,
            assets=MARKET_ASSETS,
            populations=POPULATIONS,
            shocks=CRASH,
            channels=channels,
            clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"},
        )
    )


@pytest.mark.parametrize(
    "channels", [{}, {"fx_feedback": False}, {"pecking_order": False}], ids=str
)
def test_units_and_cash_are_conserved_with_futures_carry_and_prime_broker_funds(channels):
    result = simulate(_market(**channels), seed=11, check_invariants=True)
    events = set(result.events.kind)
    assert {"margin_call", "liquidation", "forced_sale", "fx_repay"} <= events
    assert result.diagnostics["max_unit_drift"] < 1e-9
    turnover = float(np.nansum(result.market["volume_usd"]))
    assert result.diagnostics["max_cash_drift_usd"] < 1e-9 * turnover
    assert result.diagnostics["orders_waiting_at_end"] == 0


def test_repaying_yen_through_the_market_strengthens_the_yen_further():
    on = simulate(_market(), seed=11)
    off = simulate(_market(fx_feedback=False), seed=11)
    repaid = on.events[on.events.kind == "fx_repay"].notional_usd.sum()
    assert repaid > 0
    assert on.market["price"][-1, 4] < off.market["price"][-1, 4]


def _carry_market(funding_rate, shocks=(), **link):
    """A calm day with carry funds alone: carry/vol ≈ 4/9.5 = 0.42 against thresholds of
    0.05-0.25, until `funding_rate` or `shocks` change it."""
    fund = POPULATIONS[1] | {"investment_rate": 5.0, "funding_rate": funding_rate} | link
    fund["unwind_share"] = 0.5
    return build(
        base_raw(
            venues=VENUES,
            assets=MARKET_ASSETS,
            populations=[fund],
            shocks=list(shocks),
            clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"},
        )
    )


HIKE_STEP = 73  # 06:05, the first step that starts at or after the 06:02 decision
HIKE = {"points": [["2026-01-01T00:00:00Z", 1.0], ["2026-01-05T06:02:00Z", 4.0]]}


def test_through_the_engine_a_policy_hike_unwinds_carry_funds_from_its_step_only():
    hiked = simulate(_carry_market(HIKE), seed=3)
    calm = simulate(_carry_market(1.0), seed=3)
    assert "voluntary_unwind" not in set(calm.events.kind)
    unwinds = hiked.events[hiked.events.kind == "voluntary_unwind"]
    # carry 1% over ≈ 9.5%: the funds whose threshold is above ≈ 0.105 unwind at once; the
    # yen they buy back moves USDJPY, its volatility rises and a few more follow later
    assert unwinds.step.iloc[0] == HIKE_STEP
    assert 0 < unwinds["count"].iloc[0] < 100 and unwinds["count"].sum() <= 100
    repaid = hiked.events[(hiked.events.kind == "fx_repay")].notional_usd.sum()
    assert repaid > 0  # half of each unwinding fund's loan, bought back through USDJPY
    usdjpy = [a["id"] for a in MARKET_ASSETS].index("USDJPY")
    before, after = slice(0, HIKE_STEP), slice(HIKE_STEP, None)
    np.testing.assert_array_equal(  # the same market until the decision
        hiked.market["price"][before], calm.market["price"][before]
    )
    assert hiked.market["price"][after, usdjpy][-1] < calm.market["price"][after, usdjpy][-1]


def test_through_the_engine_a_bond_rally_offsets_a_hike_only_when_the_scenario_links_it():
    rally = [{"type": "rate", "time": "2026-01-05T06:00:00Z", "asset": "JGB40Y",
              "change_bp": -300, "label": "flight to safety"}]  # fmt: skip
    unlinked = simulate(_carry_market(HIKE, rally), seed=3)
    linked = simulate(_carry_market(HIKE, rally, rate_asset="JGB40Y", funding_beta=1.0), seed=3)
    assert "voluntary_unwind" in set(unlinked.events.kind)  # the rally does not cheapen funding
    assert "voluntary_unwind" not in set(linked.events.kind)  # −3 pp through the link: carry 4%


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"rate_asset": "GOLD"}, "populations.carry.rate_asset", "bond"),
        ({"fx_asset": "BTC", "weights": {"ETH": 1.0}}, "populations.carry.fx_asset", "yen"),
        ({"weights": {"BTC": 0.5, "USDJPY": 0.5}}, "populations.carry", "funding pair"),
        ({"buffer_leverage": 3.0}, "populations.carry", "target_leverage ≤ buffer_leverage"),
        ({"weights": {"BTC": 1.0, "DOGE": 1.0}}, "populations.carry.weights", "'DOGE'"),
    ],
)
def test_a_mis_specified_carry_fund_is_a_scenario_error_naming_the_key(change, where, message):
    with pytest.raises(ScenarioError) as caught:
        build(base_raw(assets=ASSETS, populations=[{**FUND, **change}]))
    problems = [p for p in caught.value.problems if p.path.startswith(where)]
    assert problems and message in problems[0].message


def test_the_legs_read_at_each_step_start_are_those_of_the_dated_paths(monkeypatch):
    """The legs are read once for every step start of the clock; a view at a step start
    gets exactly the rate of the path at that time, and a view at another time (or with a
    step number that does not match it) is looked up as it comes."""
    fund = FUND | {
        "investment_rate": {
            "points": [["2026-01-05T00:00Z", 4.0], ["2026-01-06T07:33Z", 3.1]],
            "interpolation": "linear",
        },
        "funding_rate": {"points": [["2026-01-05T00:00Z", 0.5], ["2026-01-05T13:02Z", 0.75]]},
    }
    pop = _population(fund)
    spec = pop.spec
    starts = pd.date_range("2026-01-05T00:00Z", "2026-01-06T23:55Z", freq="5min")
    now = starts.as_unit("ns").asi8
    investment, funding = rate_at(spec.investment_rate, now), rate_at(spec.funding_rate, now)
    with monkeypatch.context() as patched:  # a step start reads the table, not the paths
        patched.setattr(carry, "rate_at", lambda *_: pytest.fail("looked up at a step start"))
        for k in range(0, len(starts), 7):
            view = _view(time=str(starts[k]), step=k)
            assert pop.rates(view) == (investment[k], funding[k] + spec.funding_spread_pct)
    assert funding[156] == 0.5 and funding[157] == 0.75  # the step after 13:02 reads the hike
    off_clock = _view(time="2026-01-05T13:02Z", step=156)  # between two step starts
    assert pop.rates(off_clock)[1] == 0.75 + spec.funding_spread_pct
    wrong_step = _view(time=str(starts[200]), step=3)
    assert pop.rates(wrong_step) == (investment[200], funding[200] + spec.funding_spread_pct)

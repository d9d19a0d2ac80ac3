"""Yen carry-trade funds: leverage with USDJPY, buffer/target/default, pecking-order sales,
yen repaid as a USDJPY order, voluntary unwinds as carry-to-volatility falls."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import NASDAQ, base_raw, build

from deleverage import simulate
from deleverage.engine.simulate import initial_prices
from deleverage.errors import ScenarioError
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.carry import JPY, CarryFundsPopulation
from deleverage.results.events import EventLog


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
    "usd_yield_pct": 3.7,
    "funding_pct": 1.0,
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


def _view(usdjpy=150.0, jgb_yield=3.5):
    price = PRICE.copy()
    price[USDJPY] = usdjpy
    yields = np.full(6, np.nan)
    yields[JGB] = jgb_yield
    n = len(price)
    return MarketView(
        0,
        pd.Timestamp("2026-01-05", tz="UTC"),
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


def test_rising_jgb_yields_shrink_the_carry_and_trigger_a_voluntary_unwind():
    fund = {**FUND, "carry_to_vol_threshold": {"dist": "fixed", "value": 0.25}}
    fund["unwind_share"] = 0.5
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

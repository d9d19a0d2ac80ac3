"""Prime-brokered multi-asset funds: haircuts that rise as prices fall, exchange margins
passed through, calls met by the pecking order — a silver margin call sells bitcoin."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.engine.simulate import initial_prices
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.prime_broker import PrimeBrokerPopulation
from deleverage.results.events import EventLog

VENUES = [{"id": "spot", "kind": "crypto"}, {"id": "comex", "kind": "futures"}]


def _asset(asset_id, cls, tier, venue, price, **extra):
    return {
        "id": asset_id,
        "class": cls,
        "tier": tier,
        "venue": venue,
        "price": price,
        "daily_vol": 0.02,
        "adv_usd": 5e10,
        **extra,
    }


ASSETS = [
    _asset("BTC", "crypto", "peripheral", "spot", 90_000.0),
    _asset("SILVER", "metal", "peripheral", "comex", 100.0, initial_margin_pct=11.0)
    | {"maintenance_margin_pct": 11.0},
    _asset("GOLD", "metal", "core", "comex", 4_000.0, initial_margin_pct=6.0)
    | {"maintenance_margin_pct": 6.0},
    _asset("NDX", "equity_index", "semi_core", "spot", 25_000.0),
]
BTC, SILVER, GOLD, NDX = range(4)
PRICE = np.array([a["price"] for a in ASSETS])
EXCHANGE = np.array([np.nan, 11.0, 6.0, np.nan])
FUND = {
    "type": "pb_funds",
    "name": "pb",
    "funds": 1,
    "equity_usd": 1e9,
    "weights": {"BTC": 0.2, "SILVER": 0.4, "GOLD": 0.2, "NDX": 0.2},
    "leverage": {"dist": "fixed", "value": 6.0},
    "haircut_pct": {"BTC": 20.0, "SILVER": 5.0, "GOLD": 5.0, "NDX": 10.0},
    "haircut_sensitivity": 0.0,
    "margin_target": 0.8,
    "default_leverage": 30.0,
}
SILVER_HIKE = {
    "type": "margin_change",
    "announced": "2026-01-05T06:00:00Z",
    "effective": "2026-01-05T12:00:00Z",
    "venue": "comex",
    "asset": "SILVER",
    "initial_pct": 30.0,
    "maintenance_pct": 30.0,
}
HIKE_STEP = 144


def _population(fund=FUND, enabled=True, **channels):
    scenario = build(base_raw(venues=VENUES, assets=ASSETS, populations=[fund], channels=channels))
    ctx = BuildContext(
        scenario,
        scenario.asset_index(),
        initial_prices(scenario),
        np.random.default_rng(0),
        enabled,
        5 / 60,
    )
    return PrimeBrokerPopulation(scenario.populations[0], ctx)


def _view(price=PRICE, exchange_pct=EXCHANGE):
    n = len(price)
    return MarketView(
        0,
        pd.Timestamp("2026-01-05", tz="UTC"),
        5 / 60,
        np.asarray(price, dtype=float),
        np.ones(n, dtype=bool),
        np.zeros(n, dtype=bool),
        exchange_pct,
        exchange_pct,
        np.full(n, np.nan),
        np.asarray(price, dtype=float),
    )


def _sold_usd(pop):
    orders = pop.orders()
    out = np.zeros(4)
    out[orders.asset] = -orders.quantity * PRICE[orders.asset]
    return out


def test_a_silver_margin_call_on_a_multi_asset_fund_produces_bitcoin_sales():
    raw = base_raw(
        venues=VENUES,
        assets=ASSETS,
        populations=[{**FUND, "funds": 20, "leverage": {"dist": "uniform", "low": 5, "high": 6}}],
        shocks=[SILVER_HIKE],
        market={"noise_scale": 0.0},
    )
    result = simulate(build(raw), seed=0, check_invariants=True)
    events = result.events
    sales = events[(events.kind == "forced_sale") & (events.population == "pb")]
    assert sales.step.min() == HIKE_STEP  # nothing moves before the hike
    calls = events[events.kind == "margin_call"]
    assert calls.step.min() == HIKE_STEP
    first = sales[sales.step == HIKE_STEP]
    assert first[first.asset == "BTC"].quantity.sum() < 0  # bitcoin is sold
    assert set(first[first["round"] == 0].asset) == {"BTC", "SILVER"}  # peripheral tier only
    assert result.market["net_flow_units"][HIKE_STEP + 1, BTC] < 0
    assert result.diagnostics["max_unit_drift"] < 1e-9


def test_a_call_sells_until_the_requirement_is_the_target_share_of_equity():
    pop = _population()
    hiked = np.array([np.nan, 30.0, 6.0, np.nan])
    assets, equity = 6e9, 1e9
    before = assets * (0.2 * 0.2 + 0.4 * 0.11 + 0.2 * 0.06 + 0.2 * 0.1)  # 0.696bn
    assert np.isclose(pop.margin_state(_view()).requirement[0], before, rtol=1e-12)
    log = EventLog()
    pop.mark(_view(), log)
    assert not log.rows  # the fund starts within its margin

    pop.mark(_view(exchange_pct=hiked), log)
    requirement = assets * (0.2 * 0.2 + 0.4 * 0.30 + 0.2 * 0.06 + 0.2 * 0.1)  # 1.152bn
    release = requirement - 0.8 * equity
    # peripheral holdings (BTC 1.2bn at 20%, SILVER 2.4bn at 30%) release 0.96bn at most
    share = release / (1.2e9 * 0.2 + 2.4e9 * 0.30)
    np.testing.assert_allclose(_sold_usd(pop), [1.2e9 * share, 2.4e9 * share, 0, 0], atol=1e-3)
    state = pop.margin_state(_view(exchange_pct=hiked))
    assert np.isclose(state.requirement[0], 0.8 * equity, rtol=1e-12)
    assert list(log.frame().kind) == ["forced_sale", "forced_sale", "margin_call"]


def test_broker_haircuts_rise_as_prices_fall_from_their_peak():
    pop = _population({**FUND, "haircut_sensitivity": 2.0})
    pop.mark(_view(PRICE * 1.25), EventLog())  # a new peak
    haircut = pop.haircuts(_view(PRICE))  # 20% below it
    np.testing.assert_allclose(
        haircut, [0.2 * 1.4, max(0.05 * 1.4, 0.11), max(0.05 * 1.4, 0.06), 0.1 * 1.4]
    )


def test_with_the_pecking_order_off_a_call_is_met_across_the_book():
    pop = _population(pecking_order=False)
    pop.mark(_view(exchange_pct=np.array([np.nan, 30.0, 6.0, np.nan])), EventLog())
    assert np.all(_sold_usd(pop) > 0)


def test_above_the_default_leverage_the_broker_liquidates_the_whole_book():
    pop = _population()
    log = EventLog()
    crash = PRICE * 0.84  # assets 6 → 5.04bn, equity 1 → 0.04bn: leverage 126
    pop.mark(_view(crash), log)
    np.testing.assert_allclose(_sold_usd(pop), 6e9 * np.array([0.2, 0.4, 0.2, 0.2]), rtol=1e-12)
    assert list(log.frame().kind).count("fund_default") == 1


def test_with_the_margin_calls_channel_off_the_funds_hold():
    pop = _population(enabled=False)
    log = EventLog()
    pop.mark(_view(PRICE * 0.5, np.array([np.nan, 50.0, 50.0, np.nan])), log)
    assert not log.rows and not pop.orders().quantity.size


def test_a_defaulted_fund_leaves_the_broker_its_unpaid_loan_as_bad_debt_at_fill_prices():
    pop = _population()
    log = EventLog()
    pop.mark(_view(PRICE * 0.84), log)  # default: the broker sells the whole 6bn book
    orders = pop.orders()
    fills = PRICE[orders.asset] * 0.80  # the fire sale fills below the mark
    pop.apply_fills(orders, np.ones(len(orders.asset), bool), fills, log)
    # 6bn of assets sold at 80% repay 4.8bn of the 5bn loan: 0.2bn is the broker's loss
    debt = log.frame().query("kind == 'bad_debt'")
    assert len(debt) == 1 and debt["count"].iloc[0] == 1
    assert debt.notional_usd.iloc[0] == pytest.approx(0.2e9, rel=1e-9)
    assert pop.book.cash[0, 0] == pytest.approx(-0.2e9, rel=1e-9)  # still owed, not vanished
    pop.apply_fills(orders, np.zeros(len(orders.asset), bool), fills, log)
    assert len(log.frame().query("kind == 'bad_debt'")) == 1  # logged once

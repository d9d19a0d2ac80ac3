"""Perp wallets holding collateral assets with a haircut, and tier tables per asset
(issue 13, item 8)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError
from deleverage.populations import REGISTRY
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.perp_venue import VenuePerpPopulation
from deleverage.results.events import EventLog
from deleverage.venues import binance, tables

PRICE = 100_000.0
USDE = {
    "id": "USDE",
    "class": "crypto",
    "tier": "peripheral",
    "venue": "spot",
    "price": 1.0,
    "daily_vol": 0.001,
    "adv_usd": 1e9,
}


def _accounts(n, seed=0):
    """`n` accounts around the price, with thin and thick wallets (cross margin)."""
    rng = np.random.default_rng(seed)
    side = np.where(rng.random(n) < 0.6, "long", "short")
    entry = PRICE * np.exp(0.01 * rng.standard_normal(n))
    size = np.exp(rng.normal(-1.0, 1.0, n))
    table = binance.BTCUSDT_2021
    top = table.max_leverage[table.tier(size * entry)]
    leverage = np.minimum(np.exp(rng.uniform(np.log(2), np.log(125), n)), top)
    margin = size * entry / leverage
    wallet = margin * (1.0 + rng.uniform(0.0, 1.5, n))
    sign = np.where(side == "long", 1.0, -1.0)
    solvent = wallet + sign * size * (PRICE - entry) > binance.maintenance_margin(size * PRICE)
    frame = {"side": side, "size": size, "entry_price": entry, "leverage": leverage,
             "wallet_usd": wallet}  # fmt: skip
    return pd.DataFrame(frame)[solvent]  # accounts solvent at the start price


def _raw(path, collateral, **extra):
    spec = {
        "type": "perp_book", "name": "perps", "asset": "BTC", "margin_rules": "binance-like",
        "margin_mode": "cross", "file": str(path), "collateral": collateral,
        "insurance_fund_usd": 1e7, **extra,
    }  # fmt: skip
    raw = base_raw(populations=[spec])
    raw["assets"].append(dict(USDE))
    return raw


def _population(tmp_path, n=3000, share=0.5, haircut=10.0, seed=0):
    path = tmp_path / "accounts.csv"
    _accounts(n, seed).to_csv(path, index=False)
    collateral = [{"asset": "USDE", "share": share, "haircut_pct": haircut}]
    scenario = build(_raw(path, collateral))
    ctx = BuildContext(
        scenario, {"BTC": 0, "USDE": 1}, np.array([PRICE, 1.0]), np.random.default_rng(seed),
        True, 5 / 60,
    )  # fmt: skip
    return REGISTRY["perp_book"][0](scenario.populations[0], ctx)


def _view(price, usde, step=1):
    nan = np.full(2, np.nan)
    return MarketView(
        step=step, time=pd.Timestamp("2026-01-05T01:30:00Z"), step_hours=5 / 60,
        price=np.array([price, usde]), is_open=np.ones(2, bool), settlement=np.zeros(2, bool),
        initial_margin_pct=nan, maintenance_margin_pct=nan, yield_pct=nan,
        unit_usd=np.array([price, usde]),
    )  # fmt: skip


def _touched(pop):
    """Accounts the liquidation engine acted on: an order sent, taken over or deleveraged."""
    n = pop.used
    return (pop.stage[:n] != 0) | pop.pending[:n] | (pop.size[:n] == 0)


@settings(max_examples=15, deadline=None)
@example(depeg=0.35, haircut=10.0, share=0.5, seed=0)  # a USDe-like depeg
@given(
    depeg=st.floats(0.05, 0.6),
    haircut=st.floats(0.0, 50.0),
    share=st.floats(0.1, 1.0),
    seed=st.integers(0, 3),
)
def test_a_collateral_depeg_with_the_perp_flat_liquidates_exactly_the_accounts_below_maintenance(
    tmp_path_factory, depeg, haircut, share, seed
):
    pop = _population(tmp_path_factory.mktemp("c"), n=800, share=share, haircut=haircut, seed=seed)
    assert isinstance(pop, VenuePerpPopulation)
    log = EventLog()
    pop.mark(_view(PRICE, 1.0, step=0), log)
    assert not _touched(pop).any()  # the collateral is worth the wallet drawn: all solvent
    n = pop.used
    held = pop.collat_kind[:n] == 0
    assert held.any()
    # expected, from the accounts alone: USD wallet + units·price·(1 − haircut) + PnL ≤ MM
    usde = 1.0 - depeg
    side, size, entry = pop.side[:n], pop.size[:n], pop.entry[:n]
    balance = (
        pop.collateral[:n]
        + pop.collat_units[:n] * usde * (1.0 - haircut / 100.0)
        + side * size * (PRICE - entry)
    )
    expected = balance <= binance.maintenance_margin(size * PRICE)
    pop.mark(_view(PRICE, usde), log)
    touched = _touched(pop)
    np.testing.assert_array_equal(touched, expected)
    assert not (touched & ~held).any()  # USD wallets are untouched by the depeg
    converted = log.frame().query("kind == 'perp_collateral_converted'")
    assert converted["count"].sum() == expected.sum()


def test_a_deeper_depeg_liquidates_a_superset_and_a_usd_book_nobody(tmp_path):
    """Margin balances fall with the collateral's price, so the accounts a depeg liquidates
    include those a smaller one does; a book without collateral does not see the price."""
    touched = []
    for usde in (0.9, 0.75, 0.5):
        pop = _population(tmp_path, share=1.0, haircut=5.0)
        pop.mark(_view(PRICE, 1.0, step=0), EventLog())
        pop.mark(_view(PRICE, usde), EventLog())
        touched.append(_touched(pop))
    assert 0 < touched[0].sum() < touched[1].sum() < touched[2].sum() < len(touched[2])
    assert not (touched[0] & ~touched[1]).any() and not (touched[1] & ~touched[2]).any()
    path = tmp_path / "accounts.csv"
    scenario = build(_raw(path, []))
    ctx = BuildContext(
        scenario, {"BTC": 0, "USDE": 1}, np.array([PRICE, 1.0]), np.random.default_rng(0),
        True, 5 / 60,
    )  # fmt: skip
    plain = REGISTRY["perp_book"][0](scenario.populations[0], ctx)
    assert not isinstance(plain, VenuePerpPopulation)
    plain.mark(_view(PRICE, 1.0, step=0), EventLog())
    plain.mark(_view(PRICE, 0.5), EventLog())
    assert not _touched(plain).any()


SHOCK_STEP = 72  # 06:00 with 5-minute steps from 00:00


def _run(tmp_path, collateral, seed=3):
    path = tmp_path / "accounts.csv"
    _accounts(4000, seed).to_csv(path, index=False)
    raw = _raw(path, collateral)
    shock = {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"USDE": -0.431}}
    raw["shocks"] = [shock]  # USDE −35% (log return −0.431), BTC only its noise
    return simulate(build(raw), seed=seed, check_invariants=True)


def test_a_depeg_in_a_run_liquidates_collateral_wallets_and_conserves_units_and_cash(tmp_path):
    collateral = [{"asset": "USDE", "share": 0.4, "haircut_pct": 10.0}]
    depeg = _run(tmp_path, collateral)
    plain = _run(tmp_path, [])
    assert depeg.diagnostics["max_unit_drift"] < 1e-9
    turnover = float(np.nansum(depeg.market["volume_usd"]))
    assert depeg.diagnostics["max_cash_drift_usd"] < 1e-9 * turnover

    def liquidated(result):
        events = result.events
        rows = events[(events.kind == "perp_liquidation")]
        return rows["count"].sum(), rows[rows.step >= SHOCK_STEP]

    total_depeg, after = liquidated(depeg)
    total_plain, after_plain = liquidated(plain)
    converted = depeg.events[depeg.events.kind == "perp_collateral_converted"]
    at_shock = converted[converted.step == SHOCK_STEP]
    assert at_shock["count"].sum() > 50  # the depeg step itself liquidates collateral wallets
    assert after["count"].sum() > after_plain["count"].sum() + 50
    assert total_depeg > total_plain
    # the venue sells what it converted on USDE's own market: the depeg deepens
    sold = depeg.events[depeg.events.kind == "perp_collateral_sold"]
    assert np.isclose(sold.quantity.sum(), converted.quantity.sum(), rtol=1e-9)
    usde = depeg.scenario.asset_index()["USDE"]
    assert depeg.market["price"][:, usde].min() < plain.market["price"][:, usde].min()


def test_units_and_cash_are_conserved_with_collateral_and_turnover():
    """New accounts deposit collateral units, traders close and withdraw them, the venue
    sells what it converts: the engine's totals and the book's own ledgers agree."""
    spec = {
        "type": "perp_book", "name": "perps", "asset": "BTC", "margin_rules": "binance-like",
        "accounts": 4000, "open_interest_usd": 5e8, "long_share": 0.6,
        "leverage": {"dist": "lognormal", "median": 15, "sigma": 0.6},
        "wallet_buffer": {"dist": "uniform", "low": 0.0, "high": 1.0},
        "insurance_fund_usd": 1e7, "oi_rebuild_half_life": "6h", "holding_half_life": "4h",
        "collateral": [{"asset": "USDE", "share": 0.5, "haircut_pct": 10.0}],
        "basis": {"depth_usd": 1e8, "half_life": "30min"},
    }  # fmt: skip
    raw = base_raw(populations=[spec])
    raw["assets"].append(dict(USDE))
    raw["shocks"] = [
        {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"USDE": -0.3, "BTC": -0.05}},
        {"type": "news", "time": "2026-01-06T06:00:00Z", "returns": {"BTC": 0.1}},
    ]
    result = simulate(build(raw), seed=5, check_invariants=True)
    assert result.diagnostics["max_unit_drift"] < 1e-9
    turnover = float(np.nansum(result.market["volume_usd"]))
    assert result.diagnostics["max_cash_drift_usd"] < 1e-9 * turnover
    kinds = set(result.events.kind)
    assert {"perp_open", "perp_close", "perp_collateral_sold", "perp_funding"} <= kinds


def test_collateral_mistakes_are_reported(tmp_path):
    path = tmp_path / "accounts.csv"
    _accounts(10).to_csv(path, index=False)
    cases = [
        ([{"asset": "DOGE", "share": 0.5, "haircut_pct": 5}], {}, "collateral.0.asset"),
        ([{"asset": "USDE", "share": 0.5, "haircut_pct": 100}], {}, "haircut_pct"),
        (
            [{"asset": "USDE", "share": 0.7, "haircut_pct": 5},
             {"asset": "BTC", "share": 0.6, "haircut_pct": 5}],
            {}, "summing to at most 1",
        ),
        ([{"asset": "USDE", "share": 0.5, "haircut_pct": 5}], {"margin_mode": "isolated"},
         "margin_mode"),
    ]  # fmt: skip
    for collateral, extra, needle in cases:
        with pytest.raises(ScenarioError) as error:
            build(_raw(path, collateral, **extra))
        assert needle in str(error.value), str(error.value)


# --------------------------------------------------------------------------- tier tables


def test_maintenance_amounts_derived_by_continuity_are_binances_published_ones():
    b = binance.BTCUSDT_2021
    derived = tables.from_rows(list(b.upper_usd), list(b.mmr), list(b.max_leverage))
    np.testing.assert_allclose(derived.amount_usd, b.amount_usd, rtol=1e-12)
    xrp = tables.NAMED["binance-xrpusdt-2024"]
    edges = xrp.upper_usd[:-1]
    np.testing.assert_allclose(  # MM is continuous at every bracket bound
        xrp.maintenance_margin(edges), edges * xrp.mmr[1:] - xrp.amount_usd[1:], rtol=1e-12
    )


def _tiered_book(tmp_path, venue_tables=None, tiers=None, asset="ETH"):
    rows = pd.DataFrame(
        {"side": ["long", "long"], "size": [1.0, 200.0], "entry_price": [3000.0] * 2,
         "leverage": [10.0, 10.0], "wallet_usd": [300.0, 60_000.0]}
    )  # fmt: skip
    path = tmp_path / "eth.csv"
    rows.to_csv(path, index=False)
    spec = {"type": "perp_book", "name": "eth", "asset": asset, "file": str(path),
            "margin_mode": "cross"}  # fmt: skip
    if tiers is not None:
        spec["tiers"] = tiers
    raw = base_raw(populations=[spec])
    raw["assets"][0].update(id="ETH", price=3000.0)
    raw["venues"][0].update(margin_rules="binance-like", tier_tables=venue_tables or {})
    scenario = build(raw)
    ctx = BuildContext(
        scenario, {"ETH": 0}, np.array([3000.0]), np.random.default_rng(0), True, 5 / 60
    )
    return REGISTRY["perp_book"][0](scenario.populations[0], ctx)


def test_a_venue_names_a_tier_table_per_asset_and_a_book_may_write_its_own(tmp_path):
    notional = np.array([3000.0, 600_000.0])
    default = _tiered_book(tmp_path)
    _, mm = default.margin(np.arange(2), 3000.0)
    np.testing.assert_allclose(mm, binance.BTCUSDT_2021.maintenance_margin(notional))
    xrp = _tiered_book(tmp_path, venue_tables={"ETH": "binance-xrpusdt-2024"})
    _, mm = xrp.margin(np.arange(2), 3000.0)
    # 3,000 in the first bracket (0.5%); 600k in ≤800k at 2% less its amount
    np.testing.assert_allclose(mm, [15.0, 600_000 * 0.02 - 1_685.0])
    rows = {"rows": [{"up_to_usd": 1e5, "mmr_pct": 1.0, "max_leverage": 50},
                     {"up_to_usd": 1e6, "mmr_pct": 2.0, "max_leverage": 25}]}  # fmt: skip
    own = _tiered_book(tmp_path, venue_tables={"ETH": "binance-xrpusdt-2024"}, tiers=rows)
    _, mm = own.margin(np.arange(2), 3000.0)
    np.testing.assert_allclose(mm, [30.0, 600_000 * 0.02 - 1e5 * 0.01])


def test_tier_table_mistakes_are_reported(tmp_path):
    cases = [
        ({"ETH": "binance-dogeusdt"}, None, "tier_tables"),
        (None, {"rows": [{"up_to_usd": 1e6, "mmr_pct": 1, "max_leverage": 50},
                         {"up_to_usd": 1e5, "mmr_pct": 2, "max_leverage": 25}]}, "increasing"),
        (None, {"rows": [{"up_to_usd": 1e5, "mmr_pct": 3, "max_leverage": 50}]}, "at most"),
        ({"DOGE": "binance-xrpusdt-2024"}, None, "tier_tables"),
        (None, {"rows": [{"up_to_usd": 1e5, "mmr_pct": 2, "max_leverage": 25},
                         {"up_to_usd": 1e6, "mmr_pct": 1, "max_leverage": 25}]}, "do not fall"),
    ]  # fmt: skip
    for venue_tables, tiers, needle in cases:
        with pytest.raises(ScenarioError) as error:
            _tiered_book(tmp_path, venue_tables, tiers)
        assert needle in str(error.value), str(error.value)

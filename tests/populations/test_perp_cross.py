"""Cross margin across coins: one USD wallet backing perp positions in several coins
(issue 13, item 8, the rest)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build, offloads_without_a_takeover, run_and_check_conservation
from typer.testing import CliRunner

from deleverage.cli.main import app
from deleverage.populations import REGISTRY, BuildContext, MarketView
from deleverage.populations.perp_cross import cross_liquidation_price
from deleverage.results.events import EventLog
from deleverage.results.targets import event_target
from deleverage.venues import tables
from deleverage.venues.tiers import liquidation_price

runner = CliRunner()
BTC0, ETH0 = 100_000.0, 3_000.0
ETH_ROWS = {"rows": [{"up_to_usd": 5e4, "mmr_pct": 0.5, "max_leverage": 100},
                     {"up_to_usd": 1e6, "mmr_pct": 1.0, "max_leverage": 50},
                     {"up_to_usd": 1e7, "mmr_pct": 2.5, "max_leverage": 20}]}  # fmt: skip


def _coin(asset, price, **more):
    return {"id": asset, "class": "crypto", "tier": "peripheral", "venue": "spot",
            "price": price, "daily_vol": 0.03, "adv_usd": 2e10, **more}  # fmt: skip


def _raw(**changes):
    spec = {
        "type": "perp_cross_margin",
        "name": "wallets",
        "accounts": 2000,
        "leverage": {"dist": "lognormal", "median": 8, "sigma": 0.6},
        "insurance_fund_usd": 2e6,
        "coins": [
            {"asset": "BTC", "open_interest_usd": 1e8, "long_share": 0.6,
             "tiers": "binance-btcusdt-2021"},
            {"asset": "ETH", "open_interest_usd": 5e7, "tiers": ETH_ROWS},
        ],
    }  # fmt: skip
    spec.update(changes)
    raw = base_raw(populations=[spec], market={"noise_scale": 0.0})
    raw["clock"]["end"] = "2026-01-05T12:00:00Z"
    raw["venues"][0]["margin_rules"] = "binance-like"
    raw["assets"] = [_coin("BTC", BTC0), _coin("ETH", ETH0)]
    return raw


def _one_account(wallet, btc_units, eth_units):
    """The population with one account: its wallet and signed units, entered at the start."""
    scenario = build(_raw())
    price0 = np.array([BTC0, ETH0])
    ctx = BuildContext(scenario, scenario.asset_index(), price0, np.random.default_rng(0), True,
                       5 / 60)  # fmt: skip
    population = REGISTRY["perp_cross_margin"][0](scenario.populations[0], ctx)
    population.setup([[btc_units, eth_units]], [[BTC0, ETH0]], [wallet], 1e6, price0)
    return population


def _view(btc, eth, step=1):
    one, nan, price = np.ones(2, bool), np.full(2, np.nan), np.array([btc, eth])
    time = pd.Timestamp("2026-01-05T00:05:00Z")
    return MarketView(step, time, 5 / 60, price, one, ~one, nan, nan, nan, np.ones(2), price)


def _orders_at(population, btc, eth):
    """The market orders the population sends after a mark at these prices, by asset."""
    population.mark(_view(btc, eth), EventLog())
    orders = population.orders()
    return {int(a): float(q) for a, q in zip(orders.asset, orders.quantity, strict=True)}


def test_the_book_uses_each_coins_own_tier_table():
    population = _one_account(1e4, 0.1, 1.0)
    assert population.tables[0] is tables.NAMED["binance-btcusdt-2021"]
    assert population.tables[1].mmr.tolist() == [0.005, 0.01, 0.025]
    # the generated book: open interest per coin as the input, wallets cover initial margin
    scenario = build(_raw())
    ctx = BuildContext(scenario, scenario.asset_index(), np.array([BTC0, ETH0]),
                       np.random.default_rng(1), True, 5 / 60)  # fmt: skip
    book = REGISTRY["perp_cross_margin"][0](scenario.populations[0], ctx)
    one_sided = 0.5 * np.abs(book.q).sum(axis=0) * np.array([BTC0, ETH0])
    assert one_sided == pytest.approx([1e8, 5e7], rel=1e-12)
    assert len(book.triggered(np.array([BTC0, ETH0]))[0]) == 0


@settings(max_examples=80, deadline=None)
@given(
    wallet=st.floats(3e3, 6e4),
    btc=st.floats(0.05, 2.0),
    eth=st.floats(2.0, 300.0),
    eth_short=st.booleans(),
)
def test_a_loss_in_eth_alone_liquidates_the_btc_position_exactly_at_the_combined_threshold(
    wallet, btc, eth, eth_short
):
    eth = -eth if eth_short else eth
    population = _one_account(wallet, btc, eth)
    balance, maintenance = population.margin(np.array([0]), np.array([BTC0, ETH0]))
    assume(balance[0] > 1.2 * maintenance[0])  # solvent at the start
    q, entry = np.array([btc, eth]), np.array([BTC0, ETH0])
    # Binance's cross liquidation price of ETH, BTC unchanged (WB − TMM1 + UPNL1 as collateral)
    lp = cross_liquidation_price(wallet, q, entry, entry, population.tables, coin=1)
    assume(lp > 1.0)
    # the isolated twin: the wallet split in proportion to notional; its BTC position alone
    # stays above maintenance at the unchanged BTC price
    btc_margin = wallet * btc * BTC0 / (btc * BTC0 + abs(eth) * ETH0)
    iso_btc = liquidation_price(np.array([btc_margin]), np.array([1.0]), np.array([btc]),
                                np.array([BTC0]), population.tables[0])[0]  # fmt: skip
    assume(iso_btc < BTC0 * (1 - 1e-6))
    beyond, short_of = (lp * (1 - 1e-9), lp * (1 + 1e-9))[:: -1 if eth_short else 1]
    assert _orders_at(population, BTC0, short_of) == {}  # not yet
    sent = _orders_at(_one_account(wallet, btc, eth), BTC0, beyond)
    assert sent[0] == pytest.approx(-btc, rel=1e-12)  # the BTC long is sold, BTC unchanged
    assert sent[1] == pytest.approx(-eth, rel=1e-12)


def test_a_gain_in_btc_keeps_the_eth_position_alive_past_its_isolated_liquidation_price():
    wallet, btc, eth = 1e4, 0.5, 20.0
    q, entry = np.array([btc, eth]), np.array([BTC0, ETH0])
    tbl = _one_account(wallet, btc, eth).tables
    flat = cross_liquidation_price(wallet, q, entry, entry, tbl, coin=1)
    gain = cross_liquidation_price(wallet, q, entry, np.array([1.1 * BTC0, ETH0]), tbl, coin=1)
    eth_margin = wallet * eth * ETH0 / (btc * BTC0 + eth * ETH0)
    isolated = liquidation_price(np.array([eth_margin]), np.array([1.0]), np.array([eth]),
                                 np.array([ETH0]), tbl[1])[0]  # fmt: skip
    price = 0.5 * (gain + flat)
    assert gain < price < flat and price < isolated  # past the isolated level
    assert _orders_at(_one_account(wallet, btc, eth), 1.1 * BTC0, price) == {}
    assert _orders_at(_one_account(wallet, btc, eth), BTC0, price) != {}  # without the gain


def test_an_eth_crash_in_a_run_liquidates_btc_positions_and_conserves_units_and_cash():
    raw = _raw()
    raw["shocks"] = [{"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"ETH": -0.3}}]
    crash = run_and_check_conservation(build(raw), seed=0)
    calm = run_and_check_conservation(build(_raw()), seed=0)
    events = crash.events[crash.events.population == "wallets"]
    entering = events[events.kind == "perp_liquidation"]
    assert entering.step.min() == 72  # the shock's step, while BTC had not moved
    assert crash.market["price"][:73, 0] == pytest.approx(BTC0, rel=1e-9)
    first = entering[entering.step == 72]
    btc = first[first.asset == "BTC"]["count"].sum()
    eth = first[first.asset == "ETH"]["count"].sum()
    assert btc == eth > 50  # each wallet holds both coins: both positions go
    assert not (calm.events.kind == "perp_liquidation").any()
    assert (events.kind == "perp_takeover").any() and (
        events.kind == "perp_market_liquidation"
    ).any()
    assert (events.kind == "insurance_fund_offload").any()
    assert offloads_without_a_takeover(events) == []  # one order a step, as the fund sized it
    # liquidation targets count the wallets' positions, per coin
    usd, _ = event_target(crash.scenario, crash.times, crash.events, "liquidations", asset="BTC")
    assert usd == pytest.approx(entering[entering.asset == "BTC"].notional_usd.sum(), rel=1e-12)


BAD = {
    "unknown_asset": (lambda r: r["populations"][0]["coins"][1].update(asset="SOL"),
                      "populations.wallets.coins.1.asset", "expected a defined asset"),
    "duplicate_coin": (lambda r: r["populations"][0]["coins"][1].update(asset="BTC"),
                       "populations.wallets", "expected each coin once, found 'BTC' twice"),
    "non_usd_asset": (lambda r: (r["assets"].append(_coin("USDJPY", 156.0, **{"class": "fx",
                                 "currency": "JPY"})), r["assets"].append(_coin("NKY", 5e4,
                                 currency="JPY")), r["populations"][0]["coins"][1].update(
                                 asset="NKY")),
                      "populations.wallets.coins.1.asset", "expected an asset priced in USD"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_cross_margin_input_is_one_clear_line_and_exit_2(case, write_scenario):
    change, key_path, found = BAD[case]
    raw = _raw()
    change(raw)
    result = runner.invoke(app, ["run", str(write_scenario(raw, f"{case}.yaml")), "--no-store"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(f"{case}.yaml: {key_path}" in line and found in line for line in lines), lines
    assert "Traceback" not in result.output

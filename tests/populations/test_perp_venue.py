"""A perp book on its own venue (a venue-specific outage) and a perp-spot basis that moves
the mark and gives funding its premium (issue 13, item 7)."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError
from deleverage.populations import REGISTRY
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.perp_venue import VenuePerpPopulation
from deleverage.results.events import EventLog
from deleverage.results.targets import event_target
from deleverage.venues import binance
from deleverage.venues.funding import funding_rate

PRICE = 100_000.0
START = pd.Timestamp("2026-01-05T00:00:00Z")
EXCH = {"id": "exch", "kind": "crypto", "margin_rules": "binance-like",
        "outages": [{"start": "2026-01-05T06:00:00Z", "duration": "2h"}]}  # fmt: skip
OUT, BACK = 72, 96  # the outage's first step and the first step after it (5-minute steps)


def _accounts(tmp_path, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    side = np.where(rng.random(n) < 0.6, "long", "short")
    size = np.exp(rng.normal(-1.0, 1.0, n))
    table = binance.BTCUSDT_2021
    leverage = np.minimum(
        np.exp(rng.uniform(np.log(2), np.log(100), n)), table.max_leverage[table.tier(size * PRICE)]
    )
    margin = size * PRICE / leverage
    frame = pd.DataFrame(
        {"side": side, "size": size, "entry_price": PRICE, "leverage": leverage,
         "wallet_usd": margin * (1.0 + rng.uniform(0.0, 1.0, n))}
    )  # fmt: skip
    path = tmp_path / "accounts.csv"
    frame.to_csv(path, index=False)
    return path


def _book(tmp_path, **extra):
    spec = {"type": "perp_book", "name": "perps", "asset": "BTC", "margin_mode": "cross",
            "file": str(_accounts(tmp_path)), "insurance_fund_usd": 1e8, **extra}  # fmt: skip
    raw = base_raw(populations=[spec])
    raw["venues"][0]["margin_rules"] = "binance-like"
    raw["venues"].append(dict(EXCH))
    scenario = build(raw)
    ctx = BuildContext(
        scenario, {"BTC": 0}, np.array([PRICE]), np.random.default_rng(0), True, 5 / 60
    )
    return REGISTRY["perp_book"][0](scenario.populations[0], ctx)


def _view(price, step):
    nan = np.array([np.nan])
    return MarketView(
        step=step, time=START + pd.Timedelta(minutes=5 * step), step_hours=5 / 60,
        price=np.array([price]), is_open=np.array([True]), settlement=np.array([False]),
        initial_margin_pct=nan, maintenance_margin_pct=nan, yield_pct=nan,
        unit_usd=np.array([price]),
    )  # fmt: skip


def _touched(pop):
    n = pop.used
    return (pop.stage[:n] != 0) | pop.pending[:n] | (pop.size[:n] == 0)


def _below_maintenance(pop, price):
    balance, maintenance = pop.margin(np.arange(pop.used), price)
    return balance <= maintenance


def test_a_book_on_an_out_venue_does_nothing_and_is_marked_at_the_price_of_its_return(tmp_path):
    crash = 0.93 * PRICE
    home = _book(tmp_path)  # on the asset's venue: acts at once
    home.mark(_view(PRICE, 0), EventLog())
    expected = _below_maintenance(home, crash)
    assert 0 < expected.sum() < home.used
    home.mark(_view(crash, OUT + 6), EventLog())
    np.testing.assert_array_equal(_touched(home), expected)

    away = _book(tmp_path, venue="exch")
    assert isinstance(away, VenuePerpPopulation) and away.venue_id == "exch"
    log = EventLog()
    away.mark(_view(PRICE, 0), log)
    for step, price in ((OUT, crash), (OUT + 6, 0.9 * PRICE), (BACK - 1, crash)):
        away.mark(_view(price, step), log)
        assert not _touched(away).any()  # no liquidation while the venue is out
        assert len(away.orders().quantity) == 0
    assert not (log.frame().kind == "perp_liquidation").any()
    back = 0.95 * PRICE  # the price when the venue returns, not the low it missed
    expected_back = _below_maintenance(away, back)
    away.mark(_view(back, BACK), log)
    np.testing.assert_array_equal(_touched(away), expected_back)
    assert expected_back.sum() < expected.sum()  # the 10% low it missed liquidates no one
    sent = away.orders()
    assert len(sent.quantity) and sent.quantity.sum() < 0  # long liquidations sell at return
    rows = log.frame().query("kind == 'perp_liquidation'")
    assert set(rows.venue) == {"exch"} and np.allclose(rows.price, back)


# a 5,000-account BTC book trading on the venue "exch", not on its asset's
BOOK_ON_EXCH = {
    "type": "perp_book", "name": "perps", "asset": "BTC", "accounts": 5000,
    "open_interest_usd": 1e9, "long_share": 0.6,
    "leverage": {"dist": "lognormal", "median": 15, "sigma": 0.5},
    "insurance_fund_usd": 1e8, "venue": "exch",
}  # fmt: skip


def _run(outage, seed=4):
    shock = {"type": "news", "time": "2026-01-05T06:30:00Z", "returns": {"BTC": -0.1}}
    raw = base_raw(populations=[BOOK_ON_EXCH], shocks=[shock])
    venue = dict(EXCH) if outage else {k: v for k, v in EXCH.items() if k != "outages"}
    raw["venues"].append(venue)
    return simulate(build(raw), seed=seed, check_invariants=True)


def test_a_crash_during_the_venue_outage_liquidates_at_its_end_while_the_asset_trades():
    out, up = _run(outage=True), _run(outage=False)
    for result in (out, up):
        assert result.diagnostics["max_unit_drift"] < 1e-9
    liquidations = out.events.query("kind == 'perp_liquidation'")
    during = liquidations[(liquidations.step >= OUT) & (liquidations.step < BACK)]
    assert during.empty
    assert liquidations[liquidations.step == BACK]["count"].sum() > 100
    price = out.market["price"][:, 0]
    assert price[OUT + 7] < 0.93 * price[OUT]  # BTC falls on its own venue meanwhile
    shock_step = OUT + 6
    up_rows = up.events.query("kind == 'perp_liquidation'")
    assert up_rows[up_rows.step == shock_step]["count"].sum() > 100
    # a target filtered on the book's venue counts its liquidations; the asset's venue none
    value, _ = event_target(out.scenario, out.times, out.events, "liquidations", venue="exch")
    assert value == liquidations.notional_usd.sum() > 0
    assert event_target(out.scenario, out.times, out.events, "liquidations", venue="spot")[0] == 0
    # the other venue's cascade deepens the fall at the shock; with the book out it is later
    assert up.market["price"][shock_step + 1, 0] < out.market["price"][shock_step + 1, 0]


def test_an_outage_a_price_move_starts_on_the_books_venue_stops_the_book():
    """A 3% fall at 06:00 triggers exch's outage (2% within 1h) from step 73 for 2 h; the
    −10% shock at 06:30 liquidates nothing until step 97, when the venue is back."""
    shocks = [
        {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"BTC": -0.03}},
        {"type": "news", "time": "2026-01-05T06:30:00Z", "returns": {"BTC": -0.1}},
    ]
    raw = base_raw(populations=[BOOK_ON_EXCH], shocks=shocks, market={"noise_scale": 0.0})
    rule = {"asset": "BTC", "move_pct": 2, "within": "1h", "duration": "2h"}
    raw["venues"].append({"id": "exch", "kind": "crypto", "margin_rules": "binance-like",
                          "triggered_outages": [rule]})  # fmt: skip
    result = simulate(build(raw), seed=4)
    assert result.events.query("kind == 'outage'").step.tolist() == [73]
    rows = result.events.query("kind == 'perp_liquidation'")
    assert not rows.step.between(73, 96).any()
    assert rows[rows.step == 97]["count"].sum() > 100


# --------------------------------------------------------------------------- basis


def test_a_long_cascade_pushes_the_perp_below_spot_which_moves_the_mark_and_funding(tmp_path):
    depth = 5e6
    pop = _book(tmp_path, basis={"depth_usd": depth, "half_life": "30min"})
    log = EventLog()
    pop.mark(_view(PRICE, 0), log)
    spot = 0.95 * PRICE
    pop.mark(_view(spot, 1), log)  # long liquidations: one sell order
    orders = pop.orders()
    assert pop.basis == 0.0 and orders.quantity.sum() < 0
    pop.apply_fills(
        orders, np.ones(len(orders.quantity), bool), np.full(len(orders.quantity), spot), log
    )
    basis = 0.01 * float(orders.quantity.sum()) * spot / depth
    assert np.isclose(pop.basis, basis) and basis < -0.002
    # the mark is spot·exp(basis): untouched accounts below maintenance there, exactly, go
    decay = 0.5 ** (5 / 30)
    untouched = ~_touched(pop)
    mark = spot * np.exp(basis * decay)
    expected = _below_maintenance(pop, mark) & untouched
    assert expected.sum() > (_below_maintenance(pop, spot) & untouched).sum()
    pop.mark(_view(spot, 2), log)
    np.testing.assert_array_equal(_touched(pop) & untouched, expected)
    # more selling, then the basis decays with its half-life while the book is quiet
    orders = pop.orders()
    pop.apply_fills(
        orders, np.ones(len(orders.quantity), bool), np.full(len(orders.quantity), spot), log
    )
    samples = [0.0, basis * decay]  # the basis at the start of steps 1, 2 (after 00:00)
    b = pop.basis
    for step in range(3, 97):  # to the 08:00 settlement (step 96 starts at 08:00)
        pop.mark(_view(spot, step), log)
        assert np.isclose(pop.basis, b * decay ** (step - 2))
        samples.append(pop.basis)
        orders = pop.orders()
        if len(orders.quantity):
            filled = np.ones(len(orders.quantity), bool)
            pop.apply_fills(orders, filled, np.full(len(orders.quantity), spot), log)
            b = pop.basis / decay ** (step - 2)
    # funding at 08:00: the premium index weights the interval's samples 1..N (facts 1.1.4)
    weights = np.arange(1, len(samples) + 1)  # steps 1..96: after 00:00, up to 08:00
    premium = np.dot(weights, samples) / weights.sum()
    assert premium < -5e-4  # beyond the clamp: the rate follows the premium
    assert np.isclose(pop.funding_rate, funding_rate(premium, 8.0), rtol=1e-9)
    paid = log.frame().query("kind == 'perp_funding'")
    assert len(paid) == 2 and paid.notional_usd.iloc[0] > 0  # 00:00: the interest, I
    assert paid.notional_usd.iloc[1] < 0 and "shorts pay longs" in paid.detail.iloc[1]


def test_without_a_basis_funding_is_the_interest_rate(tmp_path):
    pop = _book(tmp_path)
    assert pop.funding_rate == funding_rate(0.0, 8.0)
    assert not isinstance(pop, VenuePerpPopulation)


def test_venue_and_basis_mistakes_are_reported(tmp_path):
    cases = [
        ({"venue": "nowhere"}, "populations.perps.venue"),
        ({"basis": {"depth_usd": 0, "half_life": "30min"}}, "depth_usd"),
        ({"basis": {"depth_usd": 1e7, "half_life": "0s"}}, "half_life"),
    ]
    for extra, needle in cases:
        with pytest.raises(ScenarioError) as error:
            _book(tmp_path, **extra)
        assert needle in str(error.value), str(error.value)

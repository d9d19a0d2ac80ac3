"""Where the money goes in a perp liquidation (facts 1.1.7, 1.2.5-1.2.8, 1.3.3, 1.5.5): ADL
only ever shares a deficit, and exactly it; the fee on a partial de-risking cannot by itself
force a takeover; `insurance_fund_depleted` means one thing."""

import numpy as np
import pytest
from tests.conftest import base_raw, build
from tests.populations.test_perps import _kind, _population, _view

from deleverage import simulate
from deleverage.results.events import EventLog


def _equity(pop, idx, price):
    """Margin balance at `price` of accounts `idx` (collateral + reserve + open P&L)."""
    open_pnl = pop.side[idx] * pop.size[idx] * (price - pop.entry[idx])
    return pop.collateral[idx] + pop.reserve[idx] + open_pnl


def _fill(pop, price, log):
    orders = pop.orders()
    pop.apply_fills(
        orders, np.ones(len(orders.quantity), bool), np.full(len(orders.quantity), price), log
    )


# 30 longs at 20x, 40,000 notional each (tier 1, MMR 0.4%): at 95,300 each has 120 of margin
# left against a maintenance margin of 152.48, so it is liquidated but not bankrupt.
LONGS = [("long", 0.4, 100_000, 20)] * 30
SHORTS = [("short", 3.0, 100_000, 10), ("short", 9.0, 100_000, 5)]


@pytest.mark.parametrize("fund_usd", [0.0, 1e6])
def test_adl_closes_no_position_when_there_is_no_deficit(tmp_path, fund_usd):
    # the audit's reproducer: with a $0 fund every liquidated long was auto-deleveraged and
    # the shorts kept its margin; with $1M the positions beyond capacity were
    pop = _population(tmp_path, LONGS + SHORTS, insurance_fund_usd=fund_usd)
    shorts = np.flatnonzero(pop.side < 0)
    price = 95_300.0
    before = _equity(pop, shorts, price)
    log = EventLog()
    pop.mark(_view(price), log)
    assert _kind(log, "perp_liquidation")["count"].sum() == 30
    assert _kind(log, "perp_adl").empty
    np.testing.assert_array_equal(pop.size[shorts], [3.0, 9.0])  # no short was touched
    np.testing.assert_allclose(_equity(pop, shorts, price), before, rtol=0, atol=1e-9)
    taken = _kind(log, "perp_takeover")["count"].sum()
    if fund_usd == 0.0:
        assert taken == 0  # no capacity: all 30 go to the book as market orders
    else:
        # capacity 1e6 + 120 per takeover of 38,120 notional: 26 fit, 4 go to the book
        assert taken == 26
    _fill(pop, price, log)
    assert _kind(log, "perp_market_liquidation")["count"].sum() == 30 - taken
    assert (pop.size[pop.side > 0] == 0).all()
    assert _kind(log, "perp_adl").empty


@pytest.mark.parametrize("fund_usd", [0.0, 50_000.0])
def test_adl_with_a_deficit_moves_exactly_the_deficit_to_the_counterparties(tmp_path, fund_usd):
    # a gap from 100,000 to 90,000 through the longs' bankruptcy price 95,000: each has a
    # deficit of 0.4·(95,000 − 90,000) = 2,000 at the mark. The fund's capacity takes what
    # it can; ADL at the bankruptcy price (facts 1.2.8) takes the rest and its counterparties
    # lose, against the mark, exactly the deficits of the positions ADL closed.
    pop = _population(
        tmp_path, [("long", 0.4, 100_000, 20)] * 5 + SHORTS, insurance_fund_usd=fund_usd
    )
    longs, shorts = np.flatnonzero(pop.side > 0), np.flatnonzero(pop.side < 0)
    price = 90_000.0
    deficit = -_equity(pop, longs, price)
    np.testing.assert_allclose(deficit, 2_000.0, rtol=0, atol=1e-9)
    shorts_before = _equity(pop, shorts, price).sum()
    fund_before = pop.fund_equity(price)
    log = EventLog()
    pop.mark(_view(price), log)
    taken = int(_kind(log, "perp_takeover")["count"].sum())
    adl_units = _kind(log, "perp_adl").quantity.sum()  # signed as the bankrupt side: longs
    # capacity (facts 1.2.7): one long, 36,000 notional ≤ 50,000 − 2,000; two, 72,000 > 46,000
    assert taken == (0 if fund_usd == 0.0 else 1)
    assert adl_units == pytest.approx(0.4 * (5 - taken), abs=1e-12)
    shorts_loss = shorts_before - _equity(pop, shorts, price).sum()
    assert shorts_loss == pytest.approx(2_000.0 * (5 - taken), abs=0.005)  # to the cent
    assert pop.fund_equity(price) == pytest.approx(fund_before - 2_000.0 * taken, abs=0.005)
    assert (pop.size[longs] == 0).all()


def test_a_smooth_ten_percent_fall_deleverages_nobody_in_the_engine():
    # generated book, default $0 fund, noise off, a linear −10% over a day: no position ever
    # passes its bankruptcy price by more than a step's move, so there is nothing to share
    perps = {
        "type": "perp_book",
        "name": "perps",
        "asset": "BTC",
        "accounts": 20_000,
        "open_interest_usd": 1e9,
        "long_share": 0.6,
        "leverage": {"dist": "lognormal", "median": 12, "sigma": 0.5},
    }
    driver = {
        "type": "driver",
        "asset": "BTC",
        "points": [["2026-01-05T00:00:00Z", 100_000.0], ["2026-01-06T00:00:00Z", 90_000.0]],
    }
    raw = base_raw(populations=[perps], shocks=[driver], market={"noise_scale": 0.0})
    raw["venues"][0]["margin_rules"] = "binance-like"
    result = simulate(build(raw), seed=0, check_invariants=True)
    events = result.events
    assert events[events.kind == "perp_liquidation"]["count"].sum() > 100
    assert events[events.kind == "perp_adl"].empty


def test_the_fee_on_a_partial_derisking_does_not_force_a_takeover(tmp_path):
    # 2 units at 100,000 and 50x: 200,000 notional in tier 2 (MMR 0.5%, amount 50). At the
    # trigger the IOC sells down to the 50,000 bound of tier 1. A 1% fee on ~150,000 sold
    # (~1,500) exceeds the whole margin left (900); the fee takes only the margin above what
    # the remaining 50,000 needs, MM 0.4% plus its own 1% liquidation fee (facts 1.4.1), so
    # the account is compliant afterwards (facts 1.2.5) and stays open.
    pop = _population(tmp_path, [("long", 2.0, 100_000, 50), ("short", 2.0, 100_000, 5)])
    log = EventLog()
    price = 98_450.0  # balance 4,000 − 3,100 = 900 ≤ MM 0.005·196,900 − 50 = 934.5
    pop.mark(_view(price), log)
    _fill(pop, price, log)
    long = int(np.flatnonzero(pop.side > 0)[0])
    left = pop.size[long]
    assert left * price == pytest.approx(50_000.0)
    fee = _kind(log, "perp_market_liquidation").fee_usd  # a column, not detail text
    assert fee.sum() == pytest.approx(900.0 - (0.004 + 0.01) * 50_000, abs=0.01)
    assert fee.sum() == pytest.approx(pop.fund_cash, abs=1e-9)  # all of it to the fund
    balance, maintenance = pop.margin(np.array([long]), price)
    assert balance[0] == pytest.approx(0.014 * 50_000, abs=0.01)
    assert balance[0] > maintenance[0]  # compliant after losses and fee (facts 1.2.5)
    pop.mark(_view(price, step=2), log)
    assert _kind(log, "perp_takeover").empty and pop.size[long] == left


def test_insurance_fund_depleted_means_the_fund_equity_fell_to_zero(tmp_path):
    # a 1,000 fund covers part of one long's deficit by takeover with no capacity limit
    # (ADL off): its equity goes from +1,000 to −1,000, logged once with the shortfall
    pop = _population(tmp_path, [("long", 0.4, 100_000, 20)], insurance_fund_usd=1_000.0, adl=False)
    log = EventLog()
    pop.mark(_view(90_000.0), log)
    depleted = _kind(log, "insurance_fund_depleted")
    assert len(depleted) == 1
    assert depleted.notional_usd.iloc[0] == pytest.approx(1_000.0, abs=0.005)  # shortfall ≥ 0
    pop.mark(_view(89_000.0, step=2), log)
    assert len(_kind(log, "insurance_fund_depleted")) == 1  # still empty: not logged again

"""Must show 2: the book follows the venues' rule sets like every other account: a perp is
liquidated at the rule set's liquidation price, a futures position meets a margin hike at
its effective time. And the book is one more account: units and cash stay conserved."""

from __future__ import annotations

import numpy as np
import pytest
from stress_helpers import STOPS, crash_market, margined_btc
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.stress import run_book, validate_portfolio
from deleverage.venues import binance, hyperliquid


def _perp_market(rules: str, jump: float = -0.08, at: str = "06:00"):
    """The crash market on a perp venue; the jump comes before any funding settlement
    (binance-like: every 8 h, hyperliquid-like: hourly), so the collateral is the margin."""
    shock = {"type": "news", "time": f"2026-01-05T{at}:00Z", "returns": {"BTC": jump}}
    venue = {"id": "spot", "kind": "crypto", "margin_rules": rules}
    return crash_market(venues=[venue], shocks=[shock])


def _rule_set_price(wallet: float, quantity: float, entry: float) -> float:
    """Facts 1.2.3 on Binance's table: the tier's formula whose price puts the notional in
    that tier (brackets by the notional at the liquidation price)."""
    table = binance.BTCUSDT_2021
    for tier in range(len(table.mmr)):
        price = binance.liquidation_price(
            wallet, quantity, entry, table.mmr[tier], table.amount_usd[tier]
        )
        if table.tier(abs(quantity) * price) == tier:
            return float(price)
    raise AssertionError("no consistent tier")


def _perp_book(scenario, quantity: float, leverage: float):
    raw = {
        "name": "me",
        "cash": {"USD": 1e6},
        "positions": [
            {
                "asset": "BTC",
                "quantity": quantity,
                "venue": "spot",
                "margin": {"type": "perp", "leverage": leverage},
            }
        ],
    }
    return validate_portfolio(raw, "book.yaml", scenario)


@pytest.mark.parametrize("quantity", [10.0, -10.0])
def test_a_perp_is_liquidated_at_the_binance_rule_sets_liquidation_price(quantity):
    scenario = _perp_market("binance-like", jump=-0.08 if quantity > 0 else 0.08)
    result, book = run_book(scenario, _perp_book(scenario, quantity, 12.5), seed=1)
    step = book.perp_liquidation[0]
    assert step > 0
    entry = float(result.market["price"][0, 0])
    expected = _rule_set_price(abs(quantity) * entry / 12.5, quantity, entry)
    assert book.liquidation_price[0] == pytest.approx(expected, rel=1e-12)
    # triggered when the mark first reaches it (inclusive, facts 1.2.5), not before
    marks = book.record["mark"][:, 0]
    events = result.events[result.events.kind == "perp_liquidation"]
    trigger_mark = events.price.iloc[0]
    side = np.sign(quantity)
    assert np.all(side * (marks[:step] - expected) > 0)
    assert side * (trigger_mark - expected) <= 0
    # the position left the book; the collateral went to the insurance fund (takeover)
    assert book.units[0] == 0.0 and book.venue_owned[0]


def test_a_hyperliquid_perp_is_sold_on_the_book_at_the_venues_price_net_of_funding():
    # BTC glides from 100k to 85k over 5.5 h (hourly funding on the way), then is free
    glide = {
        "type": "driver",
        "asset": "BTC",
        "points": [["2026-01-05T00:30:00Z", 100_000.0], ["2026-01-05T06:00:00Z", 85_000.0]],
        "until": "2026-01-05T06:00:00Z",
    }
    scenario = _perp_market("hyperliquid-like")
    scenario = scenario.model_copy(update={"shocks": [build(base_raw(shocks=[glide])).shocks[0]]})
    result, book = run_book(scenario, _perp_book(scenario, 5.0, 12.5), seed=1)
    step = book.perp_liquidation[0]
    events = result.events
    funding = events[(events.kind == "perp_funding") & (events.step <= step)].notional_usd.sum()
    assert funding > 0.0  # longs paid
    collateral = 5.0 * 100_000.0 / 12.5 - funding
    # facts 1.5.6 with MMR = 1/(2·40x) (1.5.1): from the entry, margin above maintenance
    table = hyperliquid.table()
    available = collateral - float(table.maintenance_margin(5.0 * 100_000.0))
    expected = hyperliquid.liquidation_price(100_000.0, 1.0, available, 5.0, 2 * 40.0)
    assert book.liquidation_price[0] == pytest.approx(expected, rel=1e-9)
    marks = book.record["mark"][:, 0]
    assert np.all(marks[:step] > expected) and marks[step] < expected  # strictly below (1.5.3)
    # sold on the book (20% first above $100k, the rest after the cooldown); no vault, no
    # fee: what is left of the collateral comes back to the cash (facts 1.5.3)
    chunks = events[(events.kind == "perp_liquidation")]
    assert chunks.quantity.iloc[0] == pytest.approx(-5.0) and len(chunks) >= 2
    assert book.units[0] == 0.0 and not book.venue_owned[0]
    assert book.balance[0] > 1e6


def test_leverage_above_the_venues_maximum_for_the_notional_is_refused():
    scenario = _perp_market("binance-like")
    _perp_book(scenario, 10.0, 50.0)  # 1 M USD: tier 3 allows 50x
    with pytest.raises(Exception, match="expected at most 20x"):
        _perp_book(scenario, 11.0, 50.0)  # 1.1 M USD: tier 4, 20x


def _comex(margin_pct: float = 9.0):
    raw = base_raw(
        clock={"start": "2026-01-12T00:00:00Z", "end": "2026-01-14T00:00:00Z", "step": "5min"},
        market={"noise_scale": 0.0},
        venues=[{"id": "comex", "kind": "futures", "margin_rules": "cme-like"}],
        assets=[
            {
                "id": "SILVER",
                "class": "metal",
                "tier": "peripheral",
                "venue": "comex",
                "price": 80.0,
                "daily_vol": 0.03,
                "adv_usd": 4e10,
                "initial_margin_pct": margin_pct,
                "maintenance_margin_pct": margin_pct,
            }
        ],
        shocks=[
            {
                "type": "margin_change",
                "announced": "2026-01-12T21:00:00Z",
                "effective": "2026-01-13T22:00:00Z",
                "venue": "comex",
                "asset": "SILVER",
                "initial_pct": 15,
                "maintenance_pct": 15,
            }
        ],
    )
    return build(raw)


def _silver_book(scenario, reserve: float):
    raw = {
        "name": "me",
        "cash": {"USD": 1_000_000},  # 12.5% of 8 M USD notional: above 9%, below 15%
        "positions": [
            {
                "asset": "SILVER",
                "quantity": 100_000,
                "venue": "comex",
                "margin": {"type": "exchange"},
            }
        ],
        "response": {"kind": "cash", "reserve_usd": reserve},
    }
    return validate_portfolio(raw, "book.yaml", scenario)


def test_a_futures_position_meets_the_margin_hike_at_its_effective_time():
    scenario = _comex()
    effective = (22 + 24) * 12  # steps of 5 min from 12 Jan 00:00 to 13 Jan 22:00
    _, book = run_book(scenario, _silver_book(scenario, reserve=0.0))
    assert book.first_call == effective  # not at the announcement, not before
    assert book.liquidation == effective  # no reserve: the broker closes the account
    assert book.units[0] == 0.0
    _, book = run_book(scenario, _silver_book(scenario, reserve=1_000_000.0))
    assert book.first_call == effective and book.liquidation == -1
    assert book.reserve_usd == pytest.approx(1e6 - (0.15 * 8e6 - 1e6))  # back to initial


def test_the_book_is_one_more_account_units_and_cash_are_conserved():
    scenario = crash_market(populations=[STOPS])
    book = margined_btc(scenario, 5_000.0)
    result, user = run_book(scenario, book, seed=2, check_invariants=True)
    d = result.diagnostics
    assert user.first_call != -1  # it traded
    assert d["max_unit_drift"] < 1e-9 and d["max_cash_drift_ratio"] < 1e-9


def test_the_static_book_leaves_the_market_untouched():
    scenario = crash_market()
    book = margined_btc(scenario, 20_000.0)
    alone = simulate(scenario, seed=3)
    beside, user = run_book(scenario, book, seed=3, static=True)
    assert user.first_call != -1
    np.testing.assert_array_equal(alone.market["price"], beside.market["price"])
    inside, _ = run_book(scenario, book, seed=3)
    assert np.nanmin(inside.market["price"]) < np.nanmin(alone.market["price"])

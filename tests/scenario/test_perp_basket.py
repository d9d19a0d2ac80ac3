"""A basket of coins in one population: one perp book per coin with its own tiers
(issue 13, item 9)."""

import numpy as np
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError
from deleverage.populations import REGISTRY
from deleverage.populations.base import BuildContext
from deleverage.venues import tables


def _coin(asset, price):
    return {"id": asset, "class": "crypto", "tier": "peripheral", "venue": "spot",
            "price": price, "daily_vol": 0.05, "adv_usd": 2e9}  # fmt: skip


def _raw(**basket):
    spec = {
        "type": "perp_basket",
        "name": "alts",
        "insurance_fund_usd": 3e7,
        "book": {"margin_mode": "cross", "long_share": 0.6, "insurance_fund_usd": 1.0,
                 "leverage": {"dist": "lognormal", "median": 10, "sigma": 0.5}},
        "coins": [
            {"asset": "SOL", "open_interest_usd": 2e8, "accounts": 2000,
             "tiers": "hyperliquid-sol"},
            {"asset": "XRP", "open_interest_usd": 1e8, "accounts": 1000,
             "tiers": "binance-xrpusdt-2024", "long_share": 0.4},
        ],
    }  # fmt: skip
    spec.update(basket)
    raw = base_raw(populations=[spec], market={"noise_scale": 0.0})
    raw["venues"][0]["margin_rules"] = "binance-like"
    raw["assets"] = [_coin("SOL", 150.0), _coin("XRP", 2.0)]
    return raw


def test_a_basket_is_one_book_per_coin_with_its_own_tiers_and_a_share_of_the_fund():
    scenario = build(_raw())
    books = scenario.populations
    assert [b.name for b in books] == ["alts-SOL", "alts-XRP"]
    assert [b.asset for b in books] == ["SOL", "XRP"]
    assert [b.long_share for b in books] == [0.6, 0.4]  # the coin's own, else the basket's
    assert [b.insurance_fund_usd for b in books] == [2e7, 1e7]  # split by open interest
    index, price0 = scenario.asset_index(), np.array([150.0, 2.0])
    for book, name in zip(books, ("hyperliquid-sol", "binance-xrpusdt-2024"), strict=True):
        ctx = BuildContext(scenario, index, price0, np.random.default_rng(0), True, 5 / 60)
        population = REGISTRY["perp_book"][0](book, ctx)
        assert population.table is tables.NAMED[name]
        assert np.isclose(population.open_interest_usd(price0[population.asset]),
                          book.open_interest_usd)  # fmt: skip


def test_a_crash_in_one_coin_liquidates_that_coins_book_only():
    calm = simulate(build(_raw()), seed=0)
    raw = _raw()
    raw["shocks"] = [{"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"SOL": -0.15}}]
    crash = simulate(build(raw), seed=0, check_invariants=True)
    assert crash.diagnostics["max_unit_drift"] < 1e-9

    def liquidated(result, book):
        rows = result.events.query("kind == 'perp_liquidation' and population == @book")
        assert set(rows.asset) <= {book.split("-")[1]}
        return rows["count"].sum()

    assert liquidated(crash, "alts-SOL") > liquidated(calm, "alts-SOL") + 100
    assert liquidated(crash, "alts-XRP") == liquidated(calm, "alts-XRP")  # its own book


def test_basket_mistakes_are_reported_at_the_basket_or_at_the_coins_book():
    with pytest.raises(ScenarioError) as error:
        build(_raw(coins=[]))
    assert "populations.alts.coins" in str(error.value)
    bad = _raw()
    bad["populations"][0]["coins"][1]["tiers"] = "binance-dogeusdt"
    with pytest.raises(ScenarioError) as error:
        build(bad)
    assert "populations.alts-XRP.tiers" in str(error.value)

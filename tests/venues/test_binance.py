"""Binance-style tiered maintenance margin and liquidation price (facts 1.2.1-1.2.3, 1.2.8).

Expected values are typed from the published formula and table, not taken from the code."""

import numpy as np
import pytest

from deleverage.venues import binance
from deleverage.venues.tiers import bankruptcy_price, liquidation_price

# (wallet balance, signed quantity, entry, MMR of the tier the liquidation price falls in,
#  maintenance amount of that tier, expected liquidation price by facts 1.2.3)
CASES = [
    (3_000.0, 0.5, 60_000.0, 0.004, 0.0, (3_000 + 0 - 0.5 * 60_000) / (0.5 * (0.004 - 1))),
    (10_000.0, 2.0, 60_000.0, 0.005, 50.0, (10_000 + 50 - 2 * 60_000) / (2 * (0.005 - 1))),
    (
        30_000.0,
        -10.0,
        60_000.0,
        0.01,
        1_300.0,
        (30_000 + 1_300 + 10 * 60_000) / (10 * (0.01 + 1)),
    ),
    (
        300_000.0,
        50.0,
        60_000.0,
        0.025,
        16_300.0,
        (300_000 + 16_300 - 50 * 60_000) / (50 * (0.025 - 1)),
    ),
    (
        1_500_000.0,
        -250.0,
        60_000.0,
        0.05,
        266_300.0,
        (1_500_000 + 266_300 + 250 * 60_000) / (250 * (0.05 + 1)),
    ),
]
# tier brackets of facts 1.2.2 (notional at the liquidation price must fall in them)
BRACKETS = [(0, 50e3), (50e3, 250e3), (250e3, 1e6), (1e6, 10e6), (10e6, 20e6)]


@pytest.mark.parametrize("case, bracket", list(zip(CASES, BRACKETS, strict=True)))
def test_liquidation_price_matches_the_published_formula_in_each_tier(case, bracket):
    wallet, quantity, entry, mmr, amount, expected = case
    assert bracket[0] < abs(quantity) * expected <= bracket[1]  # the case is in that tier
    formula = binance.liquidation_price(wallet, quantity, entry, mmr, amount)
    assert formula == pytest.approx(expected, rel=1e-9)
    # the population's tier-free version (highest/lowest tier line) finds the same price
    over_tiers = liquidation_price(
        np.array([wallet]),
        np.array([np.sign(quantity)]),
        np.array([abs(quantity)]),
        np.array([entry]),
        binance.BTCUSDT_2021,
    )[0]
    assert over_tiers == pytest.approx(expected, rel=1e-9)
    # and at that price the margin balance equals the maintenance margin of facts 1.2.1
    balance = wallet + quantity * (expected - entry)
    assert balance == pytest.approx(
        abs(quantity) * expected * mmr - amount, rel=1e-9
    ) and balance == pytest.approx(binance.maintenance_margin(abs(quantity) * expected), rel=1e-9)


def test_maintenance_margin_is_notional_times_rate_minus_amount_per_tier():
    notional = np.array([30_000.0, 100_000.0, 500_000.0, 5e6, 15e6, 40e6])
    expected = [
        30_000 * 0.004 - 0,
        100_000 * 0.005 - 50,
        500_000 * 0.01 - 1_300,
        5e6 * 0.025 - 16_300,
        15e6 * 0.05 - 266_300,
        40e6 * 0.10 - 1_266_300,
    ]
    np.testing.assert_allclose(binance.maintenance_margin(notional), expected, rtol=1e-12)


def test_maintenance_amounts_make_the_margin_continuous_at_every_bracket_bound():
    table = binance.BTCUSDT_2021
    bounds = table.upper_usd[:-1]
    below = bounds * table.mmr[:-1] - table.amount_usd[:-1]
    above = bounds * table.mmr[1:] - table.amount_usd[1:]
    np.testing.assert_allclose(below, above, rtol=1e-12)


def test_bankruptcy_price_is_where_the_margin_balance_is_zero():
    assert binance.bankruptcy_price(2_000.0, 0.4, 100_000.0) == pytest.approx(95_000.0, rel=1e-12)
    assert binance.bankruptcy_price(600.0, -0.3, 100_000.0) == pytest.approx(102_000.0, rel=1e-12)
    assert bankruptcy_price(
        np.array([2_000.0]), np.array([1]), np.array([0.4]), np.array([100_000.0])
    )[0] == pytest.approx(95_000.0, rel=1e-12)


def test_leverage_pnl_follows_the_forum_formula():
    # PnL% = max(0,uPnL)/max(1,WB); MarginRatio = MM/(WB+uPnL); LevPnL = PnL%·MarginRatio
    score = binance.leverage_pnl(np.array([3_000.0, -10.0]), np.array([600.0, 500.0]), 108.0)
    assert score[0] == pytest.approx(3_000 / 600 * 108 / 3_600, rel=1e-12)
    assert score[1] == 0.0

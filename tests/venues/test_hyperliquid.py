"""Hyperliquid-style margin, liquidation price and ADL ranking (facts 1.5.1, 1.5.5-1.5.6)."""

import numpy as np
import pytest

from deleverage.venues import hyperliquid
from deleverage.venues.tiers import liquidation_price


def test_maintenance_rate_is_half_the_initial_rate_at_max_leverage():
    np.testing.assert_allclose(
        hyperliquid.maintenance_margin_rate(np.array([40, 25, 20, 10, 3])),
        [0.0125, 0.02, 0.025, 0.05, 1 / 6],
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    "side, size, margin, price",
    [(1, 2.0, 3_000.0, 60_000.0), (-1, 2.0, 3_000.0, 60_000.0), (1, 0.5, 4_000.0, 61_000.0)],
)
def test_liquidation_price_matches_the_published_formula(side, size, margin, price):
    entry = 60_000.0
    maintenance_leverage = 2 * 40  # l = 1/maintenance_leverage = MMR at 40x
    account_value = margin + side * size * (price - entry)
    available = account_value - size * price / maintenance_leverage
    # liq = price − side·margin_available/size/(1 − l·side), by hand (facts 1.5.6)
    expected = price - side * available / size / (1 - side / maintenance_leverage)
    formula = hyperliquid.liquidation_price(price, side, available, size, maintenance_leverage)
    assert formula == pytest.approx(expected, rel=1e-9)
    generic = liquidation_price(
        np.array([margin]),
        np.array([side]),
        np.array([size]),
        np.array([entry]),
        hyperliquid.table(40),
    )[0]
    assert generic == pytest.approx(expected, rel=1e-9)  # does not depend on `price`


def test_adl_score_ranks_profit_times_leverage():
    score = hyperliquid.adl_score(
        np.array([-1, -1, 1]),
        50_000.0,
        np.array([60_000.0, 55_000.0, 40_000.0]),
        np.array([10_000.0, 10_000.0, 10_000.0]),
        np.array([2_000.0, 1_000.0, 5_000.0]),
    )
    np.testing.assert_allclose(
        score, [60 / 50 * 10_000 / 2_000, 55 / 50 * 10_000 / 1_000, 50 / 40 * 10_000 / 5_000]
    )

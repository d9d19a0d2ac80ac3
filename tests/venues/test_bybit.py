"""Bybit-style maintenance margin with deductions (facts 1.3.1-1.3.2)."""

import numpy as np
import pytest

from deleverage.venues import bybit


def test_deductions_follow_the_published_recursion():
    # Ded_n = RiskLimit_{n-1}·(MMR_n − MMR_{n-1}) + Ded_{n-1}, by hand for the first tiers
    ded = bybit.BTCUSDT.amount_usd
    assert ded[0] == 0.0
    assert ded[1] == pytest.approx(2.0e6 * (0.0056 - 0.005), rel=1e-12)  # 1,200
    assert ded[2] == pytest.approx(1_200 + 2.6e6 * (0.0063 - 0.0056), rel=1e-12)  # 3,020
    assert ded[3] == pytest.approx(3_020 + 3.2e6 * (0.0067 - 0.0063), rel=1e-12)  # 4,300


def test_maintenance_margin_is_position_value_times_rate_minus_deduction():
    value = np.array([1.5e6, 2.3e6, 2.9e6, 3.5e6])
    expected = [
        1.5e6 * 0.005,
        2.3e6 * 0.0056 - 1_200,
        2.9e6 * 0.0063 - 3_020,
        3.5e6 * 0.0067 - 4_300,
    ]
    np.testing.assert_allclose(bybit.maintenance_margin(value), expected, rtol=1e-9)


def test_the_margin_is_continuous_across_risk_limits():
    table = bybit.BTCUSDT
    limits = table.upper_usd[:-1]
    np.testing.assert_allclose(
        limits * table.mmr[:-1] - table.amount_usd[:-1],
        limits * table.mmr[1:] - table.amount_usd[1:],
        rtol=1e-12,
    )

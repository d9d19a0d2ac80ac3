"""Funding formula (facts 1.1.1-1.1.2, 1.5.7) and the loss waterfall helpers (1.2.7-1.2.8)."""

import numpy as np
import pytest

from deleverage.venues.funding import funding_rate, funding_rate_8h, settlements_between
from deleverage.venues.insurance import (
    adl_match,
    offload_allowance_left,
    rank_counterparties,
    takeover_count,
)


def test_funding_is_the_interest_rate_when_the_premium_is_within_the_clamp():
    assert funding_rate_8h(0.0) == pytest.approx(1e-4)
    assert funding_rate_8h(3e-4) == pytest.approx(1e-4)  # 3e-4 + clamp(1e-4 − 3e-4)
    assert funding_rate_8h(1e-3) == pytest.approx(1e-3 - 5e-4)
    assert funding_rate(0.0, 1.0) == pytest.approx(1e-4 / 8)  # hourly at 1/8 (facts 1.5.7)
    assert funding_rate(1.0, 1.0, cap=0.04) == pytest.approx(0.04)


def test_settlements_are_counted_in_half_open_windows():
    hour = 3600.0
    assert settlements_between(7.9 * hour, 8 * hour, 8) == 1
    assert settlements_between(8 * hour, 8.1 * hour, 8) == 0
    assert settlements_between(0.0, 24 * hour, 1) == 24


def test_the_fund_takes_positions_until_its_notional_exceeds_its_size():
    # fund 30,000 USD; positions of 0.2 and 0.3 units at 90,000 with margins −1,600, −1,800
    n = takeover_count(0.0, 30_000.0, 90_000.0, np.array([0.2, 0.3]), np.array([-1600, -1800]), 1)
    assert n == 1  # 18,000 ≤ 28,400 but 45,000 > 26,600
    assert takeover_count(0.0, 30_000.0, 90_000.0, np.array([0.2, 0.3]), np.zeros(2), None) == 2


def test_ranking_picks_the_highest_scores_that_cover_the_quantity():
    score = np.arange(1000.0)
    size = np.ones(1000)
    top = rank_counterparties(score, size, 2.5)
    np.testing.assert_array_equal(top, [999, 998, 997])
    assert len(rank_counterparties(score, size, 5000.0)) == 1000


def test_adl_matches_in_order_at_each_bankruptcy_price():
    closed, value, unmatched = adl_match(
        np.array([0.3, 0.4]), np.array([96_000.0, 95_000.0]), np.array([0.5, 1.0])
    )
    np.testing.assert_allclose(closed, [0.5, 0.2])
    np.testing.assert_allclose(value, [0.3 * 96_000 + 0.2 * 95_000, 0.2 * 95_000])
    assert unmatched == 0.0
    closed, value, unmatched = adl_match(np.array([1.0]), np.array([90.0]), np.array([0.25]))
    assert closed[0] == 0.25 and value[0] == pytest.approx(22.5) and unmatched == 0.75


def test_an_offload_uses_the_allowance_at_the_mark_it_was_sized_at():
    # $1m a step at a mark of 100: 10,000 units. Capped (the fund holds 25,000): all of it,
    # even if the fill was below the mark (10,000 × 99 = $990k would leave $10k otherwise)
    assert offload_allowance_left(1e6, 10_000.0, 25_000.0, 100.0) == 0.0
    assert offload_allowance_left(1e6, -10_000.0, -25_000.0, 100.0) == 0.0  # a buy-back
    # the whole position (4,000 units): its size at the mark, the rest stays for a takeover
    # later in the step
    assert offload_allowance_left(1e6, 4_000.0, 4_000.0, 100.0) == pytest.approx(6e5)
    assert offload_allowance_left(1e5, 4_000.0, 4_000.0, 100.0) == 0.0  # never below 0

"""The pecking order: peripheral, then semi-core, then core; proportional within a tier."""

import numpy as np

from deleverage.populations.pecking import TIER_RANK, pecking_order_sales

# BTC, ETH (peripheral), NDX (semi-core), GOLD (core)
TIERS = np.array([TIER_RANK[t] for t in ("peripheral", "peripheral", "semi_core", "core")])
VALUES = np.array([[60.0, 40.0, 100.0, 100.0]])


def test_a_small_amount_comes_from_the_peripheral_tier_in_proportion_to_value():
    sales = pecking_order_sales(VALUES, TIERS, np.array([50.0]))
    np.testing.assert_allclose(sales, [[30.0, 20.0, 0.0, 0.0]], rtol=1e-15)


def test_the_next_tier_is_sold_only_once_the_earlier_one_is_sold_out():
    sales = pecking_order_sales(VALUES, TIERS, np.array([150.0]))
    np.testing.assert_allclose(sales, [[60.0, 40.0, 50.0, 0.0]], rtol=1e-15)
    sales = pecking_order_sales(VALUES, TIERS, np.array([250.0]))
    np.testing.assert_allclose(sales, [[60.0, 40.0, 100.0, 50.0]], rtol=1e-15)


def test_with_the_pecking_order_off_sales_are_proportional_across_the_book():
    sales = pecking_order_sales(VALUES, TIERS, np.array([150.0]), pecking_order=False)
    np.testing.assert_allclose(sales, VALUES / 2.0, rtol=1e-15)


def test_a_fund_that_cannot_raise_its_amount_sells_everything_and_no_more():
    sales = pecking_order_sales(VALUES, TIERS, np.array([1e6]))
    np.testing.assert_array_equal(sales, VALUES)


def test_sales_are_vectorized_over_funds_and_match_fund_by_fund():
    rng = np.random.default_rng(3)
    values = rng.uniform(0.0, 100.0, (50, 4))
    values[rng.random((50, 4)) < 0.2] = 0.0  # some funds hold nothing in some assets
    amount = rng.uniform(0.0, 400.0, 50)
    for pecking in (True, False):
        together = pecking_order_sales(values, TIERS, amount, pecking_order=pecking)
        one_by_one = np.vstack(
            [
                pecking_order_sales(values[[f]], TIERS, amount[[f]], pecking_order=pecking)
                for f in range(50)
            ]
        )
        np.testing.assert_allclose(together, one_by_one, rtol=1e-14)
        raised = together.sum(axis=1)
        np.testing.assert_allclose(raised, np.minimum(amount, values.sum(axis=1)), rtol=1e-12)


def test_with_haircut_weights_the_amount_is_margin_released_exactly():
    haircut = np.array([0.5, 0.25, 0.1, 0.05])
    sales = pecking_order_sales(VALUES, TIERS, np.array([35.0]), weights=haircut)
    # peripheral releases 60·0.5 + 40·0.25 = 40 at most: a share 35/40 of the tier is sold
    np.testing.assert_allclose(sales, [[52.5, 35.0, 0.0, 0.0]], rtol=1e-15)
    assert np.isclose((sales * haircut).sum(), 35.0, rtol=1e-15)


def test_nothing_to_raise_sells_nothing():
    assert not pecking_order_sales(VALUES, TIERS, np.array([0.0])).any()

"""The perp books against the crash itself: with BTC and ETH replayed along their observed
path, the books calibrated on calm days liquidate the reported order of magnitude."""

import pandas as pd
import pytest
from examples.feb2026_given_prices import given_prices
from tests.conftest import SHARED_DATA

REPORTED_5_6_FEB = 1.92e9  # CoinGlass, BTC $1.35bn + ETH $0.57bn (facts 5.3.6)


@pytest.mark.slow
def test_given_the_observed_prices_the_books_liquidate_the_reported_order_of_magnitude():
    result = given_prices(SHARED_DATA)
    window = (pd.Timestamp("2026-02-05", tz="UTC"), pd.Timestamp("2026-02-07", tz="UTC"))
    modelled, unit = result.modelled("liquidations_24h", window=window)
    assert unit == "USD"
    # reported figures are a lower bound (one liquidation a second per symbol, facts 1.2.15)
    assert REPORTED_5_6_FEB <= modelled <= 10 * REPORTED_5_6_FEB

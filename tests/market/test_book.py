import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.market import book


def test_square_root_law_emerges_from_the_linear_book():
    """Metaorders of Q/V from 1e-4 to 1e-1, executed over 30 minutes through the whole
    engine (book refill and market makers on), move the price by ≈ Y·σ·sqrt(Q/V)."""
    y, sigma, adv = 0.7, 0.03, 2e10
    fractions = np.logspace(-4, -1, 7)
    impacts = []
    for fraction in fractions:
        raw = base_raw(
            market={"noise_scale": 0.0},
            shocks=[
                {
                    "type": "flow",
                    "asset": "BTC",
                    "start": "2026-01-05T12:00:00Z",
                    "duration": "30min",
                    "notional_usd": -fraction * adv,
                }
            ],
        )
        raw["assets"][0]["liquidity"] = {"impact_y": y}
        result = simulate(build(raw), seed=0)
        prices = result.prices()["BTC"]
        before = prices.loc[pd.Timestamp("2026-01-05 12:00", tz="UTC")]
        after = prices.loc[pd.Timestamp("2026-01-05 12:30", tz="UTC")]
        impacts.append(-np.log(after / before))
    slope, intercept = np.polyfit(np.log(fractions), np.log(impacts), 1)
    assert abs(slope - 0.5) < 0.1
    prefactor = np.exp(intercept) / sigma
    assert abs(prefactor / y - 1) < 0.2


def test_a_fresh_book_gives_the_square_root_move_exactly():
    lam = book.base_depth_units(
        np.array([1e9]), np.array([0.02]), np.array([0.5]), np.array([50.0])
    )
    quantity = -0.01 * 1e9 / 50.0  # sell 1% of ADV
    x1, average = book.execute(
        np.zeros(1), np.array([quantity]), np.array([50.0]), lam, lam, np.zeros(1)
    )
    assert np.isclose(-x1[0], 0.5 * 0.02 * np.sqrt(0.01), rtol=1e-12)
    assert 50.0 * np.exp(x1[0]) < average[0] < 50.0


@given(
    x0=st.floats(-0.3, 0.3),
    quantity=st.floats(-1e7, 1e7).filter(lambda q: abs(q) > 1e-3),
    gap=st.floats(0.0, 0.05),
    asymmetry=st.floats(0.1, 10.0),
)
def test_fills_are_priced_inside_the_walk_and_the_walk_is_invertible(x0, quantity, gap, asymmetry):
    lam_bid, lam_ask = np.array([1e6]), np.array([1e6 * asymmetry])
    x0a, q, g = np.array([x0]), np.array([quantity]), np.array([gap])
    x1, average = book.execute(x0a, q, np.array([10.0]), lam_bid, lam_ask, g)
    low, high = 10 * np.exp(min(x0, x1[0])), 10 * np.exp(max(x0, x1[0]))
    assert low * (1 - 1e-12) <= average[0] <= high * (1 + 1e-12)
    assert np.sign(x1[0] - x0) == np.sign(quantity)
    units = book.units_to(x1, lam_bid, lam_ask, g) - book.units_to(x0a, lam_bid, lam_ask, g)
    assert np.isclose(units[0], quantity, rtol=1e-9, atol=1e-6)


def test_a_gap_makes_a_tiny_sell_jump_the_price_through_the_empty_band():
    lam = np.array([1e6])
    x1, _ = book.execute(
        np.zeros(1), np.array([-1.0]), np.array([100.0]), lam, lam, np.array([0.04])
    )
    assert x1[0] < -0.04


def test_refill_moves_the_permanent_share_into_the_reference_and_reverts_the_rest():
    x, ref = book.refill(np.array([-0.1]), np.array([0.0]), np.array([0.5]), np.array([0.4]))
    assert np.isclose(x[0], -0.05) and np.isclose(ref[0], -0.02)
    assert np.isclose(x[0] + ref[0], -0.07)  # price reverted by (1 − 0.4) of the resolved part


def test_a_usd_pair_book_is_sized_in_dollars_not_in_quote_currency():
    """One unit of USDJPY is one dollar: selling Q dollars moves it by Y·σ·sqrt(Q/ADV)."""
    y, sigma, adv, sold = 0.7, 0.006, 1.2e12, 6e9
    raw = base_raw(
        market={"noise_scale": 0.0},
        shocks=[
            {
                "type": "flow",
                "asset": "USDJPY",
                "start": "2026-01-05T12:00:00Z",
                "duration": "5min",
                "notional_usd": -sold,
            }
        ],
    )
    raw["assets"] = [
        {
            "id": "USDJPY",
            "class": "fx",
            "tier": "core",
            "venue": "spot",
            "currency": "JPY",
            "price": 156.0,
            "daily_vol": sigma,
            "adv_usd": adv,
            "liquidity": {"impact_y": y},
        }
    ]
    result = simulate(build(raw), seed=0)
    prices = result.prices()["USDJPY"]
    move = -np.log(prices[pd.Timestamp("2026-01-05 12:05", tz="UTC")] / 156.0)
    assert np.isclose(move, y * sigma * np.sqrt(sold / adv), rtol=1e-9)
    assert np.isclose(np.nansum(result.market["volume_usd"]), sold, rtol=1e-9)

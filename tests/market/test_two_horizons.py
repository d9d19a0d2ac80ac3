"""Liquidity at two horizons (SPEC §3.2): a thin visible book that a sweep within minutes
meets, refilled from a latent book calibrated to the daily square-root law, and market
makers who leave the visible book fast and come back with a half-life."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.market import book

ADV, SIGMA, Y, DEPTH = 2e10, 0.03, 0.7, 1e8  # BTC-like: $100M within 1% (facts 3.2.7)
NOON = pd.Timestamp("2026-01-05 12:00", tz="UTC")


def _raw(flow_usd: float, duration: str, end="2026-01-07T00:00:00Z", makers=None, **market):
    raw = base_raw(
        market={"noise_scale": 0.0, **({"market_makers": makers} if makers else {}), **market},
        shocks=[
            {
                "type": "flow",
                "asset": "BTC",
                "start": "2026-01-05T12:00:00Z",
                "duration": duration,
                "notional_usd": flow_usd,
            }
        ],
    )
    raw["clock"]["end"] = end
    raw["assets"][0]["liquidity"] = {
        "impact_y": Y,
        "visible_depth": {"usd": DEPTH, "band_pct": 1.0, "source": "test"},
    }
    return raw


def test_a_five_minute_sweep_of_the_visible_depth_moves_the_price_by_the_visible_band():
    """Selling exactly the USD resting within 1% moves the price 1% through the visible
    book, plus the latent book's square-root move for the same amount (tiny), measured at
    the instant after the sweep (no time passes between cascade rounds here)."""
    result = simulate(build(_raw(-DEPTH, "5min", round_seconds="0s")), seed=0)
    after = result.prices()["BTC"][NOON + pd.Timedelta("5min")]
    latent = Y * SIGMA * np.sqrt(DEPTH / ADV)
    assert np.isclose(-np.log(after / 100_000.0), 0.01 + latent, rtol=1e-9)
    # the visible book then refills within minutes: the price returns to the latent level
    later = result.prices()["BTC"][NOON + pd.Timedelta("30min")]
    assert -np.log(later / 100_000.0) < 0.2 * 0.01


def test_depth_at_rest_equals_its_input():
    within, one = np.array([DEPTH / 50_000.0]), np.ones(1)
    units = book.visible_units_to(-0.01 * one, within, within, 0 * one, 0.01 * one, 0.6 * one)
    assert np.isclose(-units[0] * 50_000.0, DEPTH, rtol=1e-12)
    result = simulate(build(_raw(0.0, "5min")), seed=0)
    assert np.allclose(result.market["depth_bid"][:, 0], 1.0)


def test_a_one_day_metaorder_follows_the_square_root_law_through_the_visible_book():
    """Q/V from 1e-4 to 1e-1 spread over a day, measured once the last child order has been
    absorbed (the next step): exponent 0.5 ± 0.1, prefactor within 20% of Y."""
    fractions = np.logspace(-4, -1, 4)
    impacts = []
    for fraction in fractions:
        raw = _raw(-fraction * ADV, "1d", end="2026-01-06T13:00:00Z")
        prices = simulate(build(raw), seed=0).prices()["BTC"]
        after = prices[NOON + pd.Timedelta(days=1) + pd.Timedelta("5min")]
        impacts.append(-np.log(after / 100_000.0))
    slope, intercept = np.polyfit(np.log(fractions), np.log(impacts), 1)
    assert abs(slope - 0.5) < 0.1
    assert abs(np.exp(intercept) / SIGMA / Y - 1) < 0.2


def test_sustained_one_sided_flow_empties_the_book_within_an_hour_and_it_recovers():
    """A liquidation wave selling 8× the normal volume pace for an hour: visible depth within
    1% falls ≥ 10× within the hour (facts 3.2.1: E-mini depth ÷20-45; 3.2.8: halved in
    2 h). Desks come
    back no faster than their recovery half-life and, 6 h later, have quoted back several
    times the trough (the inventory they bought, laid off over a day, holds the bid down)."""
    makers = {"fast_vol_half_life": "5min", "imbalance_half_life": "5min"}
    raw = _raw(-8 * ADV / 24, "1h", makers={**makers, "recovery_half_life": "1h"})
    result = simulate(build(raw), seed=0)
    depth = pd.Series(result.market["depth_bid"][:, 0], index=result.times)
    assert depth[NOON : NOON + pd.Timedelta("1h")].min() <= 0.1
    shortfall = (1.0 - depth)[NOON + pd.Timedelta("1h") :]
    hour = 12  # steps
    assert (shortfall.to_numpy()[hour:] >= 0.5 * shortfall.to_numpy()[:-hour] - 1e-12).all()
    assert depth[NOON + pd.Timedelta("6h")] > 5 * depth.min()


def test_a_slow_metaorder_barely_touches_visible_depth_but_a_fast_one_thins_it():
    """1% of ADV over a day is 0.01× the normal pace a step; in five minutes it is 2.9×:
    desks pull about a quarter of the book from the one-sided burst."""
    slow = simulate(build(_raw(-0.01 * ADV, "1d", end="2026-01-06T13:00:00Z")), seed=0)
    fast = simulate(build(_raw(-0.01 * ADV, "5min")), seed=0)
    assert slow.market["depth_bid"][:, 0].min() > 0.95
    assert fast.market["depth_bid"][:, 0].min() < 0.8


@settings(max_examples=60, deadline=None)
@given(
    y0=st.floats(-0.2, 0.2),
    z0=st.floats(-0.1, 0.1),
    quantity=st.floats(-1e6, 1e6).filter(lambda q: abs(q) > 1e-2),
    gap=st.floats(0.0, 0.03),
    shape=st.floats(0.4, 2.0),
)
def test_layered_fills_are_the_volume_weighted_price_and_each_layer_absorbs_the_quantity(
    y0, z0, quantity, gap, shape
):
    """The fill is ∫ e^(y(u)+z(u)) du / q along the walk: within 1e-5 of the walk's price
    range of an adaptive integration (scipy.quad, split where a layer crosses mid and where
    the visible walk leaves its band)."""
    latent, within = np.array([1e9]), np.array([1e4])
    y, z, q, g = np.array([y0]), np.array([z0]), np.array([quantity]), np.array([gap])
    visible = (within, within, g, np.array([0.01]), np.array([shape]))
    y1, z1, average = book.execute_layers(y, z, q, np.array([10.0]), latent, latent, *visible)
    no_gap = np.zeros(1)
    latent0 = book.units_to(y, latent, latent, no_gap)[0]
    visible0 = book.visible_units_to(z, *visible)[0]

    def price(u: float) -> float:
        x = book.displacement_for(np.array([latent0 + u]), latent, latent, no_gap)
        return 10 * float(
            np.exp(x + book.visible_displacement_for(np.array([visible0 + u]), *visible))[0]
        )

    edges = (-latent0, -visible0, 1e4 - visible0, -1e4 - visible0)
    cuts = [c for c in edges if c * (quantity - c) > 0]
    points = sorted({0.0, quantity, *cuts}, key=abs)
    exact = sum(quad(price, a, b, limit=200)[0] for a, b in itertools.pairwise(points)) / quantity
    walk = abs(10 * np.exp(y1[0] + z1[0]) - 10 * np.exp(y0 + z0))
    assert abs(average[0] - exact) <= 1e-5 * walk + 1e-9
    absorbed = book.visible_units_to(z1, *visible) - book.visible_units_to(z, *visible)
    # atol: 1e-7 of the band's depth (a displacement a hair past the gap loses digits)
    assert np.isclose(absorbed[0], quantity, rtol=1e-9, atol=1e-3)
    latent_absorbed = book.units_to(y1, latent, latent, no_gap) - latent0
    assert np.isclose(latent_absorbed[0], quantity, rtol=1e-9, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    walks=st.lists(
        st.tuples(
            st.floats(-0.1, 0.1),  # latent displacement
            st.floats(-0.05, 0.05),  # visible displacement
            st.floats(-3e4, 3e4),  # quantity (0 sometimes: an asset that does not trade)
            st.sampled_from([0.5, 0.6, 1.0, 2.0]),  # visible shape
        ),
        min_size=2,
        max_size=5,
    )
)
def test_each_assets_walk_is_the_same_whatever_the_other_assets_trade(walks):
    """Assets are walked together (pieces of the quadrature shared across assets): a walk
    must give the same numbers, to the last bit, whether or not the other assets trade and
    however many pieces their walks need; an asset that does not trade keeps its books and
    its price."""
    y, z, q, shape = (np.array(column) for column in zip(*walks, strict=True))
    n = len(q)
    ref, latent, within = np.linspace(10.0, 50.0, n), np.full(n, 1e6), np.full(n, 1e4)
    visible = (within, within * 2, np.full(n, 0.002), np.full(n, 0.01), shape)
    together = book.execute_layers(y, z, q, ref, latent, latent, *visible)
    for a in range(n):
        alone = book.execute_layers(
            y, z, np.where(np.arange(n) == a, q, 0.0), ref, latent, latent, *visible
        )
        assert all(x[a] == w[a] for x, w in zip(alone, together, strict=True))
        others = np.arange(n) != a
        assert np.array_equal(alone[0][others], y[others])
        assert np.array_equal(alone[1][others], z[others])
        assert np.array_equal(alone[2][others], (ref * np.exp(y + z))[others])


def test_with_a_bottomless_latent_book_the_layered_fill_is_the_exact_visible_fill():
    """With shape 2 the visible book is a linear-density book: the quadrature must give
    the closed-form fill of `execute` (Λ = 2·units within band ÷ band²)."""
    within, deep, band = np.array([1e4]), np.array([1e30]), np.array([0.01])
    lam = 2.0 * within / band**2
    q, ref, gap = np.array([-3e3]), np.array([100.0]), np.array([0.0])
    _, exact = book.execute(np.zeros(1), q, ref, lam, lam, gap)
    _, _, layered = book.execute_layers(
        np.zeros(1), np.zeros(1), q, ref, deep, deep, within, within, gap, band, np.array([2.0])
    )
    assert np.isclose(layered[0], exact[0], rtol=1e-10)


def test_a_concave_visible_book_barely_moves_for_small_orders_and_gives_way_for_large():
    """Cumulative depth ∝ distance^0.6 inside the band: 1% of the band's depth moves the
    price (0.01)^(1/0.6) of the band; beyond it depth grows as distance² (2% holds 4× the
    1% depth, facts 3.2.6-3.2.7), so 4× the depth moves it 2 bands."""
    within, deep, band, shape = np.array([1e4]), np.array([1e30]), np.array([0.01]), 0.6
    for fraction in (0.01, 4.0):
        _, z, _ = book.execute_layers(
            np.zeros(1), np.zeros(1), np.array([-fraction * 1e4]), np.array([100.0]),
            deep, deep, within, within, np.zeros(1), band, np.array([shape]),
        )  # fmt: skip
        expected = fraction ** (1 / shape) if fraction <= 1 else np.sqrt(fraction)
        assert np.isclose(-z[0], 0.01 * expected, rtol=1e-12)


def test_the_same_sweep_moves_a_thinner_weekend_book_further():
    """2026-01-10 is a Saturday: with weekend depth at half, a sweep of the weekday visible
    depth meets twice the weekend band's depth and goes √2 bands into the book (depth
    grows as distance² beyond the band)."""

    def move(start: str) -> float:
        raw = _raw(-DEPTH, "5min", end="2026-01-12T00:00:00Z", round_seconds="0s")
        raw["shocks"][0]["start"] = start
        raw["assets"][0]["liquidity"]["weekend_depth_multiplier"] = 0.5
        prices = simulate(build(raw), seed=0).prices()["BTC"]
        t = pd.Timestamp(start)
        return -np.log(prices[t + pd.Timedelta("5min")] / prices[t])

    latent = Y * SIGMA * np.sqrt(DEPTH / ADV)
    assert np.isclose(move("2026-01-09T12:00:00Z"), 0.01 + latent, rtol=1e-6)
    assert np.isclose(move("2026-01-10T12:00:00Z"), 0.01 * np.sqrt(2) + latent, rtol=1e-6)


def test_the_visible_book_refills_between_cascade_rounds():
    """Rounds inside a step are `round_seconds` apart: the sweep's visible displacement has
    refilled for 10 s (half-life 30 s) by the time the step's last round looks at it."""

    def visible_move(round_seconds: str) -> float:
        raw = _raw(-DEPTH, "5min", round_seconds=round_seconds)
        after = simulate(build(raw), seed=0).prices()["BTC"][NOON + pd.Timedelta("5min")]
        return -np.log(after / 100_000.0) - Y * SIGMA * np.sqrt(DEPTH / ADV)

    assert np.isclose(visible_move("10s"), visible_move("0s") * 0.5 ** (10 / 30), rtol=1e-6)


def test_the_mark_price_sees_the_wick_through_an_ema_of_the_exchange_window():
    """The mark price sees the visible displacement through an EMA over the exchange's
    window: right after a sweep within a step the mark lags the traded price."""
    from deleverage.engine.state import _ema_weight

    assert _ema_weight(pd.Timedelta("10s"), pd.Timedelta("30s")) == pytest.approx(
        1 - np.exp(-2 / 3)
    )
    assert _ema_weight(pd.Timedelta("5min"), pd.Timedelta("30s")) > 0.999_99

"""The futures books' compiled loops (`populations.futures_kernels`) against the NumPy
expressions they replace, on random inputs: the same bits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.populations.futures_kernels import call_prices, crossed


def _call_prices_numpy(position, cash, pending, pct, usd):
    """Call prices as `FuturesPopulation` computed them with NumPy before the kernel."""
    active = (position != 0.0) & (pending == 0.0)
    slope = position - pct / 100.0 * np.abs(position)
    level = cash - usd * np.abs(position)
    flat = slope == 0.0
    call_price = np.divide(-level, slope, out=np.zeros_like(slope), where=~flat)
    underwater = np.where(level < 0.0, np.inf, -np.inf)
    floor = np.where(slope > 0.0, call_price, np.where(flat, underwater, -np.inf))
    floor = np.where(active, floor, -np.inf)
    cap = np.where(active & (slope < 0.0), call_price, np.inf)
    return floor, cap


def _book(rng: np.random.Generator, n: int):
    position = rng.choice([0.0, 1.0, -1.0], n) * rng.lognormal(3.0, 2.0, n)
    cash = rng.normal(0.0, 1.0, n) * np.abs(position) * rng.lognormal(3.0, 1.0, n)
    pending = np.where(rng.random(n) < 0.2, -position, 0.0)
    return position, cash, pending


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    pct=st.sampled_from([0.0, 5.5, 12.0, 100.0, 150.0]),
    usd=st.sampled_from([0.0, 0.37, 1250.0]),
)
def test_call_prices_are_the_numpy_expressions_bit_for_bit(seed, n, pct, usd):
    rng = np.random.default_rng(seed)
    position, cash, pending = _book(rng, n)
    if pct == 100.0:  # slope 0 for longs: called at any price when the level is negative
        cash[::3] = -np.abs(cash[::3])
    accounts = np.flatnonzero(rng.random(n) < 0.6)
    floor, cap = np.full(n, 7.0), np.full(n, 7.0)
    highest, lowest = call_prices(accounts, position, cash, pending, pct / 100.0, usd, floor, cap)
    want_floor, want_cap = _call_prices_numpy(
        position[accounts], cash[accounts], pending[accounts], pct, usd
    )
    np.testing.assert_array_equal(floor[accounts], want_floor)
    np.testing.assert_array_equal(cap[accounts], want_cap)
    untouched = np.setdiff1d(np.arange(n), accounts)
    assert (floor[untouched] == 7.0).all() and (cap[untouched] == 7.0).all()
    if len(accounts):
        assert highest == want_floor.max() and lowest == want_cap.min()
    else:
        assert highest == -np.inf and lowest == np.inf


def test_a_nan_call_price_wins_the_extremes_as_in_numpy():
    position, cash, pending = np.array([2.0, -3.0]), np.array([np.nan, 1.0]), np.zeros(2)
    floor, cap = np.zeros(2), np.zeros(2)
    highest, lowest = call_prices(np.arange(2), position, cash, pending, 0.1, 0.0, floor, cap)
    assert np.isnan(highest) and np.isnan(floor.max())
    assert lowest == cap.min()


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300))
def test_crossed_accounts_are_the_numpy_selection(seed, n):
    rng = np.random.default_rng(seed)
    position, cash, pending = _book(rng, n)
    floor, cap = _call_prices_numpy(position, cash, pending, 10.0, 0.0)
    used = int(rng.integers(0, n + 1))
    price = float(rng.lognormal(3.0, 2.0))
    below, above = price - 1e-12 * price, price + 1e-12 * price
    want = np.flatnonzero((floor[:used] > below) | (cap[:used] < above))
    np.testing.assert_array_equal(crossed(floor, cap, used, below, above), want)

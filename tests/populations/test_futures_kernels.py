"""The futures books' compiled loops (`populations.futures_kernels`) against the NumPy
expressions they replace, on random inputs: the same bits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.populations.futures_kernels import (
    BLOCK,
    _floored,
    _pairwise,
    block_count,
    call_prices,
    index_blocks,
    margin_calls,
    open_accounts,
    opening_sizes,
    pairwise_plan,
    pairwise_sum,
)


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


def _margin_calls_numpy(floor, cap, used, price, position, cash, buffer, pending, m, i):
    """A call round as `FuturesPopulation._call` did it with NumPy before the kernel
    (maintenance and initial margins `m`, `i` per unit, the same tolerance)."""
    tolerance = 1e-12 * price
    below, above = price - tolerance, price + tolerance
    crossed = np.flatnonzero((floor[:used] > below) | (cap[:used] < above))
    units = position[crossed]
    equity = cash[crossed] + units * price
    is_below = equity < m * np.abs(units)
    called, units = crossed[is_below], units[is_below]
    need = i * np.abs(units) - equity[is_below]
    can_pay = buffer[called] >= need
    met, liquidated = called[can_pay], called[~can_pay]
    buffer[met] -= need[can_pay]
    cash[met] += need[can_pay]
    pending[liquidated] = -position[liquidated]
    floor[called], cap[called] = _call_prices_numpy(
        position[called], cash[called], pending[called], 10.0, 0.0
    )
    return called, units, need, can_pay


def _blocks_numpy(floor, cap):
    """Each block's highest floor and lowest cap (NumPy's max and min: NaN wins)."""
    edges = np.arange(0, len(floor), BLOCK)
    top = np.array([floor[j : j + BLOCK].max() for j in edges], dtype=float)
    low = np.array([cap[j : j + BLOCK].min() for j in edges], dtype=float)
    return top, low


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(0, 300), st.integers(300, 3000)),
    nan=st.booleans(),
)
def test_margin_calls_are_the_numpy_call_round_bit_for_bit(seed, n, nan):
    """The call round scanning only the crossed blocks finds what a scan of every account
    finds, and leaves the blocks' extremes those of the call prices after."""
    rng = np.random.default_rng(seed)
    position, cash, pending = _book(rng, n)
    buffer = np.abs(position) * rng.lognormal(2.0, 2.0, n) * (rng.random(n) < 0.7)
    floor, cap = _call_prices_numpy(position, cash, pending, 10.0, 0.0)
    if nan and n:  # a NaN call price: its block is scanned (NaN wins its extreme)
        (floor if rng.random() < 0.5 else cap)[rng.integers(0, n)] = np.nan
    used = int(rng.integers(0, n + 1))
    floor[used:], cap[used:] = -np.inf, np.inf  # free slots
    price = float(rng.lognormal(3.0, 2.0))
    if n and rng.random() < 0.3:  # a price exactly at an account's call price
        price = float(np.concatenate([floor[np.isfinite(floor)], cap[np.isfinite(cap)], [1.0]])[0])
    m, i = 0.1 * price, 0.1 * price * float(rng.choice([1.0, 1.1, 1.5]))
    book = [floor, cap, position, cash, buffer, pending]
    mine = [x.copy() for x in book]
    top, low = _blocks_numpy(floor, cap)
    assert len(top) == block_count(n)
    want = _margin_calls_numpy(*book[:2], used, price, *book[2:], m, i)
    got = margin_calls(*mine[:2], top, low, used, price - 1e-12 * price, price + 1e-12 * price,
                       price, *mine[2:], m, i, 0.1, 0.0)  # fmt: skip
    called, paid, met, sums = got[:4]
    want_called, units, need, can_pay = want
    for x, y in zip((called, paid, *mine), (want_called, can_pay, *book), strict=True):
        np.testing.assert_array_equal(x, y)
    assert called.dtype == np.int64 and paid.dtype == bool and met == can_pay.sum()
    # the event log's sums, as NumPy's
    liquidating = book[5][want_called[~can_pay]]
    want_sums = (units.sum(), need.sum(), need[can_pay].sum(), liquidating.sum())
    assert [np.float64(x) for x in sums] == list(want_sums)
    assert [np.signbit(x) for x in sums] == [np.signbit(x) for x in want_sums]
    assert (mine[2] == position).all()  # positions move only with fills
    want_top, want_low = _blocks_numpy(floor, cap)  # the index follows the call prices
    np.testing.assert_array_equal(top, want_top)
    np.testing.assert_array_equal(low, want_low)
    if n:
        np.testing.assert_array_equal(got[4:], (floor.max(), cap.min()))


def test_the_index_gives_numpys_extremes():
    floor, cap = np.array([1.0, -0.0, 3.0] * 100), np.array([5.0, 4.0, np.nan] * 100)
    top, low = np.zeros(block_count(300)), np.zeros(block_count(300))
    highest, lowest = index_blocks(floor, cap, top, low, np.array([0, 5, 299]))
    np.testing.assert_array_equal(top, [3.0, 0.0, 3.0])  # the blocks of the accounts given,
    np.testing.assert_array_equal(low, [np.nan, 0.0, np.nan])  # block 1 untouched
    assert highest == 3.0 and np.isnan(lowest)  # over all blocks; NaN wins


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(0, 300), st.integers(300, 70_000)),
    writes=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 200)), max_size=4),
)
def test_pairwise_sum_is_numpys_sum_with_partial_sums_kept(seed, n, writes):
    """NumPy's `sum` of contiguous float64 (its pairwise tree, to the bit), where only the
    leaves that meet the written range are summed again."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0.0, 4.0, n) * rng.choice([1.0, -1.0, 0.0], n)
    plan = pairwise_plan(n)
    assert pairwise_sum(a, *plan, 0, n) == a.sum()
    lo = int(rng.integers(0, n + 1))
    assert 0.0 + _pairwise(a, lo, n - lo) == a[lo:].sum()  # the walk without a plan
    for at, width in writes:
        lo = int(at * n)
        hi = min(n, lo + width)
        a[lo:hi] = rng.lognormal(0.0, 4.0, hi - lo)
        assert pairwise_sum(a, *plan, lo, hi) == a.sum()
    if n:  # a write outside the range given is not seen: the partial sums are kept
        a[n - 1] += 1e6
        assert pairwise_sum(a, *plan, 0, 0) != a.sum()


def test_pairwise_sum_keeps_numpys_zero_and_nan():
    for a in (np.zeros(0), np.full(3, -0.0), np.full(200, -0.0), np.array([1.0, np.nan, 2.0])):
        total = pairwise_sum(a, *pairwise_plan(len(a)), 0, len(a))
        assert np.array_equal(total, a.sum(), equal_nan=True)
        assert np.signbit(total) == np.signbit(a.sum())


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.one_of(st.integers(0, 12), st.integers(12, 400)))
def test_openings_are_the_numpy_expressions_bit_for_bit(seed, k):
    """New accounts as `FuturesPopulation` queued and opened them with NumPy before the
    kernels: sizes and positions, the slots written, deposits, Σ position, Σ notional,
    and the book's Σ |position|."""
    rng = np.random.default_rng(seed)
    longs = int(rng.integers(0, k + 1))
    means = rng.lognormal(0.0, 3.0, 2)
    lognormal = np.exp(rng.normal(0.0, 1.0, k) - 0.5)
    size, position, units = opening_sizes(float(means[0]), float(means[1]), longs, lognormal)
    side = np.array([1.0] * longs + [-1.0] * (k - longs))
    want = side * (np.array([means[0]] * longs + [means[1]] * (k - longs)) * lognormal)
    np.testing.assert_array_equal(position, want)
    np.testing.assert_array_equal(size, np.abs(want))
    assert units == float(want.sum())

    n, lo = k + 50, int(rng.integers(0, 51))
    book, pending = _book(rng, n), np.where(rng.random(n) < 0.5, 1.0, 0.0)
    mine = [x.copy() for x in (*book[:2], np.abs(book[0]), rng.random(n))]
    bounds = [np.full(n, -np.inf), np.full(n, np.inf)]
    bounds[0][lo + k :] = rng.normal(0.0, 100.0, n - lo - k)  # the book's other accounts
    index = list(_blocks_numpy(*bounds))
    price, unit, pct = float(rng.lognormal(3.0, 1.0)), float(rng.lognormal(0.0, 1.0)), 0.0925
    draws = rng.normal(1.5, 1.0, (2, k))  # cushion and buffer, floored by the kernel
    draws[rng.random((2, k)) < 0.1] = -0.0
    cushion, buffer = np.maximum(draws, 0.0)
    plan = pairwise_plan(n)
    pairwise_sum(mine[2], *plan, 0, n)  # the partial sums before
    deposits, notional, highest, lowest, gross = open_accounts(
        lo, position, size, price, unit, *draws, mine[0], mine[2], mine[1], mine[3],
        pending, pct, 2.5, *bounds, *index, plan, n, 0,
    )  # fmt: skip
    margin = unit * np.abs(position)
    equity, outside = cushion * margin, buffer * margin
    slots = np.arange(lo, lo + k)
    position_after, cash_after = book[0].copy(), book[1].copy()
    position_after[slots], cash_after[slots] = position, equity - position * price
    np.testing.assert_array_equal(mine[0], position_after)
    np.testing.assert_array_equal(mine[1], cash_after)
    np.testing.assert_array_equal(mine[2][slots], np.abs(position))
    assert gross == mine[2].sum()  # the slots written are summed again
    np.testing.assert_array_equal(mine[3][slots], outside)
    assert deposits == float(equity.sum() + outside.sum())
    assert notional == float((np.abs(position) * price).sum())
    floor, cap = bounds[0].copy(), np.full(n, np.inf)
    floor[slots] = -np.inf
    call_prices(slots, mine[0], mine[1], pending, pct, 2.5, floor, cap)
    np.testing.assert_array_equal(bounds[0], floor)
    np.testing.assert_array_equal(bounds[1], cap)
    assert (highest, lowest) == (floor.max(), cap.min())  # the book's, after
    for x, y in zip(index, _blocks_numpy(floor, cap), strict=True):
        np.testing.assert_array_equal(x, y)


def test_draws_are_floored_as_numpys_maximum():
    draws = np.array([-0.0, 0.0, np.nan, -1.0, 2.0, -np.inf, np.inf, 5e-324, -5e-324])
    floored = np.array([_floored(x) for x in draws])
    want = np.maximum(draws, 0.0)
    np.testing.assert_array_equal(floored, want)
    np.testing.assert_array_equal(np.signbit(floored), np.signbit(want))

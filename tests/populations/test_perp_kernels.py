"""The perp book's compiled kernels equal the NumPy expressions they replace, bit for bit,
on random books (ties, NaN and empty inputs included): a speed-up must not move a number."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.populations import perp_kernels as kernels
from deleverage.populations.perps import _order_by_group
from deleverage.venues.tiers import TierTable, continuous_amounts

SETTINGS = settings(max_examples=60, deadline=None)


def _same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _table(rng, n_tiers: int, duplicate: bool) -> TierTable:
    """A random tier table with continuous amounts; `duplicate` repeats a row, so two tier
    lines are equal for every account (an arg-extremum tie)."""
    upper = np.cumsum(rng.uniform(1e4, 1e7, n_tiers)).tolist()
    mmr = np.cumsum(rng.uniform(0.001, 0.05, n_tiers)).tolist()
    if duplicate and n_tiers > 1:
        upper[1], mmr[1] = upper[0], mmr[0]
    amounts = continuous_amounts(upper, mmr)
    return TierTable.from_rows(upper, mmr, amounts, [100.0] * n_tiers)


def _accounts(rng, n: int, nan: bool):
    side = rng.choice(np.array([1, -1], np.int8), n)
    size = rng.lognormal(0.0, 1.5, n)
    entry = rng.uniform(1e3, 1e5, n)
    collateral = size * entry / rng.uniform(1.0, 100.0, n) * rng.uniform(0.5, 2.0, n)
    if nan and n:
        collateral[rng.integers(0, n)] = np.nan
    return side, size, entry, collateral


def _reference_book_keys(idx, side, size, collateral, entry, table, funding_index, drift):
    """The NumPy code `PerpPopulation._book_keys` ran before the kernel (main b4217be)."""
    side, size = side[idx], size[idx]
    sgn = side.astype(float)
    liquidation, tier = np.empty(len(side)), np.empty(len(side), dtype=np.int64)
    for sign in (1.0, -1.0):
        mine = np.flatnonzero(sgn == sign)
        units, rows = size[mine, None], idx[mine]
        wallet, price = collateral[rows, None], entry[rows, None]
        lines = (wallet + table.amount_usd - sign * units * price) / (units * (table.mmr - sign))
        best = lines.argmax(axis=1) if sign > 0 else lines.argmin(axis=1)
        tier[mine] = best
        liquidation[mine] = np.take_along_axis(lines, best[:, None], axis=1)[:, 0]
    coef = 1.0 / (1.0 - sgn * table.mmr[tier])
    shifted = funding_index[(side < 0).astype(np.intp)] * coef
    key = -sgn * liquidation + shifted
    bound = np.where(drift > 0, table.upper_usd[tier], table.lower_usd[tier])
    bound = np.where((drift < 0) & (tier == 0), -np.inf, bound)
    room = drift * (bound / size - liquidation + sgn * shifted)
    return key, tier, coef, room


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    n_tiers=st.integers(1, 8),
    duplicate=st.booleans(),
    nan=st.booleans(),
    drift=st.sampled_from([-1.0, 0.0, 1.0]),
)
def test_book_keys_equal_numpy(seed, n, n_tiers, duplicate, nan, drift):
    rng = np.random.default_rng(seed)
    table = _table(rng, n_tiers, duplicate)
    side, size, entry, collateral = _accounts(rng, n, nan)
    idx = np.sort(rng.choice(n, size=rng.integers(0, n + 1), replace=False)).astype(np.int64)
    funding_index = rng.normal(0.0, 50.0, 2)
    got = kernels.book_keys(
        idx, side, size, collateral, entry, table.amount_usd, table.mmr, table.upper_usd,
        table.lower_usd, funding_index, drift,
    )  # fmt: skip
    want = _reference_book_keys(idx, side, size, collateral, entry, table, funding_index, drift)
    for g, w in zip(got, want, strict=True):
        assert _same(g, w)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), draws=st.integers(0, 600))
def test_pick_closes_equal_numpy(seed, n, draws):
    rng = np.random.default_rng(seed)
    side = rng.choice(np.array([1, -1], np.int8), n)
    size = np.where(rng.random(n) < 0.2, 0.0, rng.random(n))
    stage = (rng.random(n) < 0.1).astype(np.int8)
    pending, pristine = rng.random(n) < 0.1, rng.random(n) < 0.8
    drawn = np.sort(rng.integers(0, n, draws))
    # the NumPy code `_queue_closes` ran before the kernel
    want = drawn[np.flatnonzero(np.diff(drawn, prepend=-1))]
    want = want[(size[want] > 0) & (stage[want] == 0) & ~pending[want]]
    want_pending, want_pristine = pending.copy(), pristine.copy()
    want_pending[want], want_pristine[want] = True, False
    got, got_side, got_size = kernels.pick_closes(drawn, side, size, stage, pending, pristine)
    assert _same(got, want) and _same(got_side, side[want]) and _same(got_size, size[want])
    assert _same(pending, want_pending) and _same(pristine, want_pristine)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), nan=st.booleans())
def test_settle_closes_equal_numpy(seed, n, nan):
    rng = np.random.default_rng(seed)
    side, size, entry, collateral = _accounts(rng, n, nan)
    reserve = np.where(rng.random(n) < 0.5, 0.0, rng.random(n) * 1e3)
    funding_ref, funding_index = rng.normal(0.0, 50.0, n), rng.normal(0.0, 50.0, 2)
    stage = (rng.random(n) < 0.5).astype(np.int8)
    pending, pristine = rng.random(n) < 0.5, rng.random(n) < 0.5
    idx = np.sort(rng.choice(n, size=rng.integers(0, n + 1), replace=False)).astype(np.int64)
    price = float(rng.uniform(1e3, 1e5))
    columns = (side, size, collateral, reserve, entry, funding_ref, stage, pending, pristine)
    before = [c.copy() for c in columns]
    # the NumPy code `_settle_closes` ran before the kernel
    s, q = side[idx], size[idx]
    index = funding_index[(s < 0).astype(np.intp)]
    wallet = collateral[idx] - q * (index - funding_ref[idx])
    equity = wallet + reserve[idx] + s * q * (price - entry[idx])
    want = [c.copy() for c in columns]
    want[1][idx] = want[2][idx] = want[3][idx] = 0.0
    want[5][idx], want[6][idx], want[7][idx], want[8][idx] = index, 0, False, False
    got = kernels.settle_closes(idx, *columns, funding_index, price)
    assert _same(got[0], s) and _same(got[1], q) and _same(got[2], equity)
    for column, expected, old in zip(columns, want, before, strict=True):
        assert _same(column, expected)
        untouched = np.setdiff1d(np.arange(n), idx)
        assert _same(column[untouched], old[untouched])


def _reference_extremes(key, coef, side, pristine, funding_index):
    """The NumPy code `_tail_triggers` ran before the kernels (main b4217be)."""
    sign = side.astype(float)
    index = np.where(sign > 0, funding_index[0], funding_index[1])
    liquidation = -sign * (key - index * coef)
    longs, shorts = liquidation[pristine & (sign > 0)], liquidation[pristine & (sign < 0)]
    return (
        float(longs.max()) if len(longs) else -np.inf,
        float(shorts.min()) if len(shorts) else np.inf,
    )


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    nan=st.booleans(),
    inclusive=st.booleans(),
    drift=st.sampled_from([-1.0, 1.0]),
)
def test_tail_scans_equal_numpy(seed, n, nan, inclusive, drift):
    """The tail's first liquidation prices, the accounts a price reaches and those funding
    pushes across a tier bound, as the NumPy code of `_tail_triggers`,
    `_triggered_from_tail` and `_tail_funding` found them."""
    rng = np.random.default_rng(seed)
    side = rng.choice(np.array([1, -1, 0], np.int8), n, p=[0.45, 0.45, 0.1])
    key, coef = rng.normal(0.0, 1e4, n), 1.0 / (1.0 - side * rng.uniform(0.0, 0.1, n))
    room = rng.normal(0.0, 30.0, n)
    if nan and n:
        key[rng.integers(0, n)] = np.nan
        room[rng.integers(0, n)] = np.nan
    pristine, funding_index = (rng.random(n) < 0.7) & (side != 0), rng.normal(0.0, 50.0, 2)
    price = float(rng.normal(0.0, 1e4))
    got = kernels.tail_extremes(key, coef, side, pristine, funding_index)
    want = _reference_extremes(key, coef, side, pristine, funding_index)
    assert np.array_equal(got, want, equal_nan=True)

    sign = side.astype(float)
    index = np.where(sign > 0, funding_index[0], funding_index[1])
    bound = -sign * price + index * coef
    reached = (key <= bound if inclusive else key < bound) & pristine
    mine = pristine.copy()
    found = kernels.tail_hits(key, coef, side, mine, funding_index, price, inclusive)
    _check_scan(found, mine, reached, key, coef, side, pristine, funding_index)

    crossed = pristine & (room < drift * sign * index * coef)
    mine = pristine.copy()
    found = kernels.tail_crossings(key, coef, room, side, mine, funding_index, drift)
    _check_scan(found, mine, crossed, key, coef, side, pristine, funding_index)


def _check_scan(found, pristine_after, selected, key, coef, side, pristine, funding_index):
    """A tail scan's accounts are the `selected` ones, no longer pristine, and its first
    liquidation prices are those of the accounts left."""
    accounts, *extremes = found
    left = pristine & ~selected
    assert _same(accounts, np.flatnonzero(selected)) and _same(pristine_after, left)
    want = _reference_extremes(key, coef, side, left, funding_index)
    assert np.array_equal(extremes, want, equal_nan=True)


def _reference_merge(first, second, group, key, n_groups):
    """The NumPy merge `_sort_book` ran before the kernel (main b4217be)."""
    out = []
    a_cut = np.searchsorted(group[first], np.arange(n_groups + 1), side="left")
    b_cut = np.searchsorted(group[second], np.arange(n_groups + 1), side="left")
    for g in range(n_groups):
        a, b = first[a_cut[g] : a_cut[g + 1]], second[b_cut[g] : b_cut[g + 1]]
        if not len(b) or not len(a):
            out.append(a if len(a) else b)
            continue
        at = np.searchsorted(key[a], key[b], side="right") + np.arange(len(b))
        merged = np.empty(len(a) + len(b), dtype=np.int64)
        is_b = np.zeros(len(merged), dtype=bool)
        is_b[at] = True
        merged[is_b], merged[~is_b] = b, a
        out.append(merged)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 500),
    n_groups=st.integers(1, 20),
    distinct=st.integers(1, 1000),
    nan=st.booleans(),
)
def test_order_and_merge_by_group_equal_numpy(seed, n, n_groups, distinct, nan):
    """Sorting by (group, key) (a SIMD sort made stable by `stable_ties`) equals np.lexsort
    (ties in index order, NaN last), and the compiled merge of two such orders equals the
    per-group NumPy merge; few distinct keys make ties within and across the two inputs."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, n).astype(np.int16)
    key = rng.integers(0, distinct, n) / 7.0
    if nan and n:
        key[rng.random(n) < 0.05] = np.nan
    order = _order_by_group(group, key)
    assert _same(order, np.lexsort((key, group)))
    into_first = rng.random(n) < 0.7
    first = np.flatnonzero(into_first)
    first = first[np.lexsort((key[first], group[first]))]
    second = np.flatnonzero(~into_first)
    second = second[_order_by_group(group[second], key[second])]
    got, got_group, got_key = kernels.merge_by_group(
        first, group[first], key[first], second, group[second], key[second]
    )
    want = _reference_merge(first, second, group, key, n_groups)
    assert _same(got, want)
    assert _same(got_group, group[want]) and _same(got_key, key[want])

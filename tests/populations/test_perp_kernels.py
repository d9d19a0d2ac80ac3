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
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    nan=st.booleans(),
    with_reserve=st.booleans(),
)
def test_settle_closes_equal_numpy(seed, n, nan, with_reserve):
    """Closes as the NumPy code found them; without `with_reserve` (cross margin, whose
    reserve column is zeros) the reserve is not read, and the equity's bits are the same
    (a wallet of −0.0 included: it still adds 0.0)."""
    rng = np.random.default_rng(seed)
    side, size, entry, collateral = _accounts(rng, n, nan)
    reserve = np.where(rng.random(n) < 0.5, 0.0, rng.random(n) * 1e3)
    funding_ref, funding_index = rng.normal(0.0, 50.0, n), rng.normal(0.0, 50.0, 2)
    if not with_reserve:
        reserve[:] = 0.0
        zero = rng.random(n) < 0.1  # wallet −0.0 and no price move: equity +0.0
        collateral[zero], funding_ref[zero], size[zero] = -0.0, funding_index[0], 0.0
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
    got = kernels.settle_closes(idx, *columns, funding_index, price, with_reserve)
    assert _same(got[0], s) and _same(got[1], q) and _same(got[2], equity)
    assert np.array_equal(np.signbit(got[2]), np.signbit(equity))
    for column, expected, old in zip(columns, want, before, strict=True):
        assert _same(column, expected)
        untouched = np.setdiff1d(np.arange(n), idx)
        assert _same(column[untouched], old[untouched])


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(0, 300),
    n_tiers=st.integers(1, 8),
    cross=st.booleans(),
    nan=st.booleans(),
)
def test_open_accounts_equals_numpy(seed, k, n_tiers, cross, nan):
    """New accounts' columns, wallets and clipped count as the NumPy code of
    `_settle_openings` wrote them: leverages below 1, above the tier's maximum, on either
    bound and NaN, notionals on a tier bound and NaN sizes included."""
    rng = np.random.default_rng(seed)
    table = _table(rng, n_tiers, duplicate=False)
    table.max_leverage[:] = rng.uniform(1.0, 125.0, n_tiers)
    price = float(rng.uniform(1e3, 1e5))
    side = rng.choice(np.array([1, -1], np.int8), k)
    size = rng.lognormal(0.0, 2.0, k) * 1e5 / price
    on_bound = rng.random(k) < 0.1
    size[on_bound] = table.upper_usd[rng.integers(0, n_tiers, int(on_bound.sum()))] / price
    leverage, buffer = rng.uniform(0.5, 150.0, k), rng.uniform(0.0, 2.0, k)
    at_max, at_one = rng.random(k) < 0.1, rng.random(k) < 0.1  # on the clip's bounds
    leverage[at_max] = table.max_leverage[table.tier(size * price)][at_max]
    leverage[at_one] = 1.0
    if nan and k:
        size[rng.integers(0, k)], leverage[rng.integers(0, k)] = np.nan, np.nan
    n = k + int(rng.integers(0, 20))
    lo = n - k
    funding_index = rng.normal(0.0, 50.0, 2)
    columns = [rng.choice(np.array([1, -1], np.int8), n)] + [rng.random(n) for _ in range(5)]
    want = [c.copy() for c in columns]
    # the NumPy code `_settle_openings` ran before the kernel
    allowed = table.max_leverage[table.tier(size * price)]
    want_clipped = int(np.count_nonzero((leverage < 1.0) | (leverage > allowed)))
    clipped = np.clip(leverage, 1.0, allowed)
    margin = size * price / clipped
    wallet = margin * (1.0 + buffer)
    new = slice(lo, n)
    want[0][new], want[1][new], want[2][new] = side, size, price
    want[3][new] = wallet if cross else margin
    with np.errstate(invalid="ignore"):  # inf − inf of a huge lognormal size: NaN, as before
        want[4][new] = 0.0 if cross else wallet - margin
    want[5][new] = funding_index[(side < 0).astype(np.intp)]
    got_clipped, got_wallet = kernels.open_accounts(
        lo, side, size, leverage, buffer, price, table.upper_usd, table.max_leverage, cross,
        funding_index, *columns,
    )  # fmt: skip
    assert got_clipped == want_clipped and _same(got_wallet, wallet)
    for column, expected in zip(columns, want, strict=True):
        assert _same(column, expected)


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
    room = rng.normal(0.0, 1.0, n)
    got, got_group, got_key, got_room = kernels.merge_by_group(
        first, group[first], key[first], room[first], second, group[second], key[second],
        room[second], True,
    )  # fmt: skip
    want = _reference_merge(first, second, group, key, n_groups)
    assert _same(got, want)
    assert _same(got_group, group[want]) and _same(got_key, key[want])
    assert _same(got_room, room[want])
    no_room = kernels.merge_by_group(
        first, group[first], key[first], room[:0], second, group[second], key[second],
        room[:0], False,
    )  # fmt: skip
    assert _same(no_room[0], want) and len(no_room[3]) == 0


def _reference_split(n, end, known, size, collateral, reserve, side, pristine, state, n_tiers):
    """The NumPy code `_sort_book` ran before `book_split` (main b0f2353): closed accounts'
    wallets, the book's untouched accounts, the rest, the touched ones, and every open
    account's known group, key and room."""
    sortkey, sorted_group, book_room, tail_key, tail_tier, tail_room = state
    live = size[:n] > 0
    dead = np.flatnonzero(~live)
    key, group, room = np.empty(n), np.zeros(n, dtype=np.int16), np.empty(n)
    kept = np.zeros(n, dtype=bool)
    if known:
        kept[:] = live & pristine[:n]
        key[:end], group[:end] = sortkey, sorted_group
        key[end:] = tail_key[: n - end]
        group[end:] = tail_tier[: n - end] + np.where(side[end:n] > 0, 0, n_tiers)
        room[:end], room[end:] = book_room, tail_room[: n - end]
    fresh = np.flatnonzero(live & ~kept)
    book = np.flatnonzero(kept[:end])
    kept[end:] = False
    rest = np.flatnonzero(live & ~kept)
    return collateral[dead] + reserve[dead], book, rest, fresh, group, key, room


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    known=st.booleans(),
    with_room=st.booleans(),
    n_tiers=st.integers(1, 8),
)
def test_book_split_equals_numpy(seed, n, known, with_room, n_tiers):
    """`_sort_book`'s first pass (closed, untouched, touched accounts and what is known of
    them) equals the NumPy masks and gathers it replaced, NaN wallets and keys included."""
    rng = np.random.default_rng(seed)
    end = int(rng.integers(0, n + 1)) if known else 0
    spare = int(rng.integers(0, 50))
    cap = n + spare
    side = rng.choice(np.array([1, -1], np.int8), cap)
    size = np.where(rng.random(cap) < 0.2, 0.0, rng.random(cap))
    collateral, reserve = rng.normal(0.0, 1e3, cap), rng.normal(0.0, 1e3, cap)
    if n:
        collateral[rng.integers(0, n)] = np.nan
    pristine = rng.random(cap) < 0.7
    sortkey = rng.normal(0.0, 1e4, end)
    sortkey[rng.random(end) < 0.05] = np.nan
    state = (
        sortkey, rng.integers(0, 2 * n_tiers, end).astype(np.int16), rng.normal(0.0, 1.0, end),
        rng.normal(0.0, 1e4, cap - end), rng.integers(0, n_tiers, cap - end),
        rng.normal(0.0, 1.0, cap - end),
    )  # fmt: skip
    empty = (np.zeros(0), np.zeros(0, np.int16), np.zeros(0), np.zeros(0), np.zeros(0, np.int64),
             np.zeros(0))  # fmt: skip
    sortkey, sorted_group, book_room, tail_key, tail_tier, tail_room = state if known else empty
    if not with_room:
        book_room = tail_room = np.zeros(0)
    got = kernels.book_split(
        n, end, known, size, collateral, reserve, side, pristine if known else np.zeros(0, bool),
        sortkey, sorted_group, book_room, tail_key, tail_tier, tail_room, n_tiers, with_room,
    )  # fmt: skip
    dead, book, book_group, book_key, book_rooms, rest, rest_group, rest_key, rest_rooms = got[:9]
    fresh, at = got[9:]
    want_dead, want_book, want_rest, want_fresh, group, key, room = _reference_split(
        n, end, known, size, collateral, reserve, side, pristine, state, n_tiers
    )
    assert _same(dead, want_dead)
    assert _same(book, want_book) and _same(rest, want_rest) and _same(fresh, want_fresh)
    assert _same(rest[at], fresh)
    assert _same(book_group, group[book]) and _same(book_key, key[book])
    old = np.setdiff1d(np.arange(len(rest)), at)  # rows of the rest with known keys
    assert _same(rest_group[old], group[rest[old]]) and _same(rest_key[old], key[rest[old]])
    if with_room:
        assert _same(book_rooms, room[book]) and _same(rest_rooms[old], room[rest[old]])
    else:
        assert len(book_rooms) == len(rest_rooms) == 0


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    n_tiers=st.integers(1, 8),
    nan=st.booleans(),
)
def test_margin_tier_equals_numpy(seed, n, n_tiers, nan):
    rng = np.random.default_rng(seed)
    table = _table(rng, n_tiers, False)
    side, size, entry, collateral = _accounts(rng, n, nan)
    if nan and n:
        size[rng.integers(0, n)] = np.nan  # a NaN notional goes to the last tier
    funding_ref, funding_index = rng.normal(0.0, 50.0, n), rng.normal(0.0, 50.0, 2)
    idx = rng.choice(n, size=rng.integers(0, n + 1), replace=False).astype(np.int64)
    price = float(rng.uniform(1e3, 1e5))
    # the NumPy code `PerpPopulation.margin` and `_liquidate` ran before the kernel
    s = side[idx]
    accrued = size[idx] * (funding_index[(s < 0).astype(np.intp)] - funding_ref[idx])
    balance = collateral[idx] - accrued + s * size[idx] * (price - entry[idx])
    notional = size[idx] * price
    got = kernels.margin_tier(
        idx, side, size, collateral, entry, funding_ref, funding_index, price,
        table.upper_usd, table.mmr, table.amount_usd,
    )  # fmt: skip
    assert _same(got[0], balance)
    assert _same(got[1], table.maintenance_margin(notional))
    assert _same(got[2], table.tier(notional).astype(np.int64))


def _reference_book_hits(price, g_sign, g_side_index, g_coef, g_head, g_next, g_end, sortkey,
                         pristine, funding_index, inclusive):  # fmt: skip
    """The NumPy code `PerpPopulation._triggered_from_book` ran before the kernel."""
    bound = -g_sign * price + funding_index[g_side_index] * g_coef
    hit = np.flatnonzero(g_head <= bound if inclusive else g_head < bound)
    side = "right" if inclusive else "left"
    parts = [np.zeros(0, dtype=np.int64)]
    for g in hit:
        lo, hi = g_next[g], g_end[g]
        cut = lo + int(np.searchsorted(sortkey[lo:hi], bound[g], side=side))
        parts.append(lo + np.flatnonzero(pristine[lo:cut]))
        pristine[lo:cut] = False
        g_next[g] = cut
        g_head[g] = sortkey[cut] if cut < hi else np.inf
    return np.concatenate(parts)


def _random_book(rng, n_groups: int, per_group: int, nan: bool):
    """Segments of sorted keys (ties and NaN keys last included), each with a next account
    somewhere in it, as `PerpPopulation` keeps them; keys near ±price."""
    sizes = rng.integers(0, per_group + 1, n_groups)
    g_end = np.cumsum(sizes).astype(np.int64)
    g_start = g_end - sizes
    g_sign = np.where(np.arange(n_groups) % 2 == 0, 1.0, -1.0)
    keys = []
    for g in range(n_groups):
        k = -g_sign[g] * rng.uniform(5e4, 1.5e5, sizes[g])
        if len(k) > 2:
            k[1] = k[0]  # a tie
        if nan and len(k) and rng.random() < 0.3:
            k[-1] = np.nan
        keys.append(np.sort(k))
    sortkey = np.concatenate([np.zeros(0), *keys])
    g_next = g_start + (rng.random(n_groups) * (sizes + 1)).astype(np.int64).clip(0, sizes)
    g_head = np.array([sortkey[i] if i < e else np.inf for i, e in zip(g_next, g_end, strict=True)])
    g_side_index = (g_sign < 0).astype(np.int64)
    g_coef = 1.0 / (1.0 - g_sign * rng.uniform(0.001, 0.05, n_groups))
    pristine = rng.random(len(sortkey)) < 0.9
    return g_sign, g_side_index, g_coef, g_head, g_next, g_end, sortkey, pristine


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_groups=st.integers(0, 12),
    per_group=st.integers(0, 60),
    nan=st.booleans(),
    inclusive=st.booleans(),
    at_threshold=st.booleans(),
)
def test_book_hits_equal_numpy_and_the_band_screens_exactly(
    seed, n_groups, per_group, nan, inclusive, at_threshold
):
    rng = np.random.default_rng(seed)
    book = _random_book(rng, n_groups, per_group, nan)
    funding_index = rng.normal(0.0, 50.0, 2)
    for _ in range(6):  # successive marks move the heads
        g_sign, g_side_index, g_coef, g_head = book[:4]
        price = float(rng.uniform(4e4, 1.6e5))
        if at_threshold and n_groups and np.isfinite(g_head).any():
            # exactly where a segment's head is reached, or one ulp either side
            g = rng.choice(np.flatnonzero(np.isfinite(g_head)))
            shifted = funding_index[g_side_index[g]] * g_coef[g]
            price = float(g_sign[g] * (shifted - g_head[g]))
            price = (
                float(np.nextafter(price, price * rng.choice([0.0, 2.0])))
                if rng.random() < 0.6
                else price
            )
        want_state = [a.copy() for a in book]
        want = _reference_book_hits(price, *want_state, funding_index, inclusive)
        before = [a.copy() for a in book]
        low, high = kernels.book_band(g_sign, g_side_index, g_coef, g_head, funding_index)
        got, _, _ = kernels.book_hits(price, *book, funding_index, inclusive)
        assert _same(got, want)
        for got_column, want_column in zip(book, want_state, strict=True):
            assert _same(got_column, want_column)
        if low < price < high:  # the screen would have skipped: nothing may be hit
            assert len(got) == 0
            for got_column, old in zip(book, before, strict=True):
                assert _same(got_column, old)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), watched=st.integers(0, 400))
def test_watch_split_equals_numpy(seed, n, watched):
    rng = np.random.default_rng(seed)
    size = np.where(rng.random(n) < 0.3, 0.0, rng.random(n))
    pending = rng.random(n) < 0.4
    watch = rng.integers(0, n, watched).astype(np.int64)  # any order, repeats included
    # the NumPy code `_triggered_from_watch` ran before the kernel
    live = watch[size[watch] > 0]
    got_live, got_free = kernels.watch_split(watch, size, pending)
    assert _same(got_live, live) and _same(got_free, live[~pending[live]])


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), n_tiers=st.integers(1, 6))
def test_cex_triage_equals_numpy(seed, n, n_tiers):
    rng = np.random.default_rng(seed)
    table = _table(rng, n_tiers, False)
    size = rng.lognormal(0.0, 1.5, n)
    stage = (rng.random(n) < 0.3).astype(np.int8)
    idx = rng.choice(n, size=rng.integers(0, n + 1), replace=False).astype(np.int64)
    balance = rng.normal(0.0, 1e3, len(idx))
    tier = rng.integers(0, n_tiers, len(idx))
    price = float(rng.uniform(1e3, 1e5))
    # the NumPy code `_liquidate` ran before the kernel
    starting = stage[idx] == 0
    derisk = starting & (tier > 0) & (balance > 0)
    lower = table.upper_usd[np.maximum(tier - 1, 0)]
    want_stage = stage.copy()
    want_stage[idx] = 1
    got = kernels.cex_triage(idx, stage, size, balance, tier, table.upper_usd, price)
    assert _same(got[0], starting) and _same(got[1], idx[derisk]) and _same(got[3], idx[~derisk])
    assert _same(got[2], size[idx][derisk] - lower[derisk] / price)
    assert _same(stage, want_stage)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300))
def test_close_positions_equals_numpy(seed, n):
    rng = np.random.default_rng(seed)
    side, size, _, collateral = _accounts(rng, n, False)
    side[rng.random(n) < 0.1] = 0  # spare slots
    funding_ref, funding_index = rng.normal(0.0, 50.0, n), rng.normal(0.0, 50.0, 2)
    stage = (rng.random(n) < 0.5).astype(np.int8)
    idx = rng.integers(0, n, rng.integers(0, n + 1)).astype(np.int64)  # repeats included
    # the NumPy code `_close` ran before the kernel
    longs, shorts = size[idx][side[idx] == 1], size[idx][side[idx] == -1]
    want = [a.copy() for a in (size, collateral, funding_ref, stage)]
    want[0][idx], want[1][idx], want[3][idx] = 0.0, 0.0, 0
    want[2][idx] = funding_index[(side[idx] < 0).astype(np.intp)]
    got = kernels.close_positions(idx, side, size, collateral, funding_ref, stage, funding_index)
    assert _same(got[0], longs) and _same(got[1], shorts)
    for column, expected in zip((size, collateral, funding_ref, stage), want, strict=True):
        assert _same(column, expected)

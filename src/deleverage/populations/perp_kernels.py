"""Compiled loops of the perp book's turnover (`populations.perps`), one pass per call.

Each kernel does what a handful of NumPy fancy-indexing passes over the account columns did,
in one loop over the accounts concerned, with the same floating-point operations in the
same order (no fastmath, so no fused multiply-add: every number is bit-identical to the
NumPy expressions they replace; `tests/populations/test_perp_kernels.py` checks each kernel
against those expressions on random inputs). Sums stay in NumPy (its pairwise summation):
the kernels return the arrays that are summed.

Compiled once per machine (`cache=True` keeps the machine code beside this file, in the
user's cache directory when this folder is read-only, or in `NUMBA_CACHE_DIR`); see
docs/performance.md for the first-call cost.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def book_keys(idx, side, size, collateral, entry, amount, mmr, upper, lower, funding_index, drift):
    """Sort key, tier, funding coefficient and tier-crossing room of accounts `idx`
    (see `PerpPopulation._book_keys`): per account, the tier lines
    (wallet + amount − side·units·entry) / (units·(MMR − side)) and the highest (long) or
    lowest (short) of them, the first on ties and a NaN line winning as in argmax/argmin."""
    m, n_tiers = len(idx), len(mmr)
    key, coef, room = np.empty(m), np.empty(m), np.empty(m)
    tier = np.empty(m, dtype=np.int64)
    for j in range(m):
        i = idx[j]
        sgn, units, wallet, price = float(side[i]), size[i], collateral[i], entry[i]
        best, value = 0, 0.0
        for t in range(n_tiers):
            line = (wallet + amount[t] - sgn * units * price) / (units * (mmr[t] - sgn))
            if t == 0:
                value = line
            elif math.isnan(value):
                break
            elif math.isnan(line) or (line > value if sgn > 0 else line < value):
                best, value = t, line
        c = 1.0 / (1.0 - sgn * mmr[best])
        shifted = (funding_index[1] if sgn < 0 else funding_index[0]) * c
        tier[j], coef[j] = best, c
        key[j] = -sgn * value + shifted  # ascending = liquidated first
        bound = upper[best] if drift > 0 else lower[best]
        if drift < 0 and best == 0:
            bound = -np.inf
        room[j] = drift * (bound / units - value + sgn * shifted)
    return key, tier, coef, room


@njit(cache=True)
def pick_closes(draws, side, size, stage, pending, pristine):
    """The distinct slots among the sorted `draws` that hold an open account not under
    liquidation nor with an order outstanding, with their sides and sizes; marks them
    pending and not pristine."""
    out, sides, sizes = (
        np.empty(len(draws), np.int64),
        np.empty(len(draws), side.dtype),
        np.empty(len(draws)),
    )
    k, last = 0, -1
    for j in range(len(draws)):
        i = draws[j]
        if i == last:
            continue
        last = i
        if size[i] > 0 and stage[i] == 0 and not pending[i]:
            out[k], sides[k], sizes[k] = i, side[i], size[i]
            k += 1
            pending[i] = True
            pristine[i] = False
    return out[:k], sides[:k], sizes[:k]


@njit(cache=True)
def _extremes_update(high, low, sgn, liquidation):
    """np.max / np.min semantics, one value at a time (a NaN wins and stays)."""
    if sgn > 0:
        if math.isnan(liquidation) or liquidation > high:
            high = liquidation
    elif math.isnan(liquidation) or liquidation < low:
        low = liquidation
    return high, low


@njit(cache=True)
def tail_extremes(key, coef, side, pristine, funding_index):
    """The highest long and lowest short liquidation price −side·(key − Φ·coef) among the
    pristine accounts (−inf / +inf when there are none; NaN if one is NaN, as np.max/min)."""
    high, low = -np.inf, np.inf
    for r in range(len(key)):
        if not pristine[r] or side[r] == 0:
            continue
        sgn = float(side[r])
        index = funding_index[0] if sgn > 0 else funding_index[1]
        high, low = _extremes_update(high, low, sgn, -sgn * (key[r] - index * coef[r]))
    return high, low


@njit(cache=True)
def tail_hits(key, coef, side, pristine, funding_index, price, inclusive):
    """Pristine accounts the `price` liquidates (key ≤ / < −side·price + Φ·coef), no longer
    pristine; and `tail_extremes` of those left, from the same pass."""
    hits = np.empty(len(key), dtype=np.int64)
    n, high, low = 0, -np.inf, np.inf
    for r in range(len(key)):
        if not pristine[r] or side[r] == 0:
            continue
        sgn = float(side[r])
        index = funding_index[0] if sgn > 0 else funding_index[1]
        bound = -sgn * price + index * coef[r]
        if key[r] <= bound if inclusive else key[r] < bound:
            hits[n] = r
            n += 1
            pristine[r] = False
        else:
            high, low = _extremes_update(high, low, sgn, -sgn * (key[r] - index * coef[r]))
    return hits[:n], high, low


@njit(cache=True)
def tail_crossings(key, coef, room, side, pristine, funding_index, drift):
    """Pristine accounts whose tier-crossing room funding's shift drift·side·Φ·coef exceeds,
    no longer pristine; and `tail_extremes` of those left, from the same pass."""
    moved = np.empty(len(key), dtype=np.int64)
    n, high, low = 0, -np.inf, np.inf
    for r in range(len(key)):
        if not pristine[r] or side[r] == 0:
            continue
        sgn = float(side[r])
        index = funding_index[0] if sgn > 0 else funding_index[1]
        if room[r] < drift * sgn * index * coef[r]:
            moved[n] = r
            n += 1
            pristine[r] = False
        else:
            high, low = _extremes_update(high, low, sgn, -sgn * (key[r] - index * coef[r]))
    return moved[:n], high, low


@njit(cache=True)
def settle_closes(
    idx, side, size, collateral, reserve, entry, funding_ref, stage, pending, pristine,
    funding_index, price, with_reserve,
):  # fmt: skip
    """Close accounts `idx` at `price`: returns their sides, sizes and equity (wallet with
    funding settled + reserve + side·size·(price − entry)), and clears their columns (size,
    collateral and reserve 0, funding settled, stage 0, neither pending nor pristine).
    Without `with_reserve` (cross margin: the reserve column is zeros) the reserve is
    neither read nor written — one cache line less per account; the equity adds 0.0, as
    before, so its bits are the same."""
    m = len(idx)
    sides, sizes, equity = np.empty(m, dtype=side.dtype), np.empty(m), np.empty(m)
    for j in range(m):
        i = idx[j]
        s, units = side[i], size[i]
        index = funding_index[1] if s < 0 else funding_index[0]
        wallet = collateral[i] - units * (index - funding_ref[i])
        held = reserve[i] if with_reserve else 0.0
        equity[j] = wallet + held + s * units * (price - entry[i])
        sides[j], sizes[j] = s, units
        size[i] = collateral[i] = 0.0
        if with_reserve:
            reserve[i] = 0.0
        funding_ref[i] = index
        stage[i] = 0
        pending[i] = pristine[i] = False
    return sides, sizes, equity


@njit(cache=True)
def _tier(upper, notional, last):
    """The tier of a position of `notional`: the first whose upper bound is not below it
    (the last for a NaN notional), as `TierTable.tier`."""
    if math.isnan(notional):
        return last
    t = 0
    while t < last and upper[t] < notional:
        t += 1
    return t


@njit(cache=True)
def open_accounts(
    lo, side, size, leverage, buffer, price, upper, max_leverage, cross, funding_index,
    col_side, col_size, col_entry, col_collateral, col_reserve, col_funding_ref,
):  # fmt: skip
    """Open the accounts queued by `PerpPopulation._open_positions` in slots lo, lo + 1, …
    at `price` (`_settle_openings`): leverage clipped to [1, the maximum of the tier of the
    notional size·price] (`TierTable.tier`: the first inclusive upper bound at or above it,
    the last for NaN), position margin size·price / leverage, wallet = margin·(1 + buffer)
    (cross: all collateral, reserve 0; isolated: collateral = margin, reserve the rest),
    funding settled at the index. Returns how many leverages were clipped and the wallets
    (for NumPy's sum)."""
    k, last = len(side), len(upper) - 1
    wallets = np.empty(k)
    clipped = 0
    for j in range(k):
        units = size[j]
        notional = units * price
        t = _tier(upper, notional, last)
        allowed, lev = max_leverage[t], leverage[j]
        if lev < 1.0 or lev > allowed:
            clipped += 1
        lev = min(max(lev, 1.0), allowed) if not math.isnan(lev) else lev
        margin = units * price / lev
        wallet = margin * (1.0 + buffer[j])
        wallets[j] = wallet
        i = lo + j
        col_side[i], col_size[i], col_entry[i] = side[j], units, price
        col_collateral[i] = wallet if cross else margin
        col_reserve[i] = 0.0 if cross else wallet - margin
        col_funding_ref[i] = funding_index[1] if side[j] < 0 else funding_index[0]
    return clipped, wallets


@njit(cache=True)
def stable_ties(order, ordered):
    """Make a sort's `order` stable in place: within each run of equal keys of `ordered`
    (the keys in that order; NaN, sorted last, counted equal) indices ascend."""
    n, j = len(order), 0
    while j < n:
        k, first = j + 1, ordered[j]
        while k < n and (ordered[k] == first or (math.isnan(ordered[k]) and math.isnan(first))):
            k += 1
        if k - j > 1:
            order[j:k] = np.sort(order[j:k])
        j = k


@njit(cache=True)
def book_split(
    n, end, known, size, collateral, reserve, side, pristine, sortkey, sorted_group, book_room,
    tail_key, tail_tier, tail_room, n_tiers, with_room,
):  # fmt: skip
    """What `PerpPopulation._sort_book` starts from, from the `n` used slots: the wallets
    (collateral + reserve) of closed accounts (size not > 0), to be summed; the book's
    untouched open accounts (slots below `end`, pristine, keys `known`) with their groups,
    keys and rooms, in slot order; the rest of the open accounts in slot order (the tail's
    and the touched ones), with the groups, keys and rooms of the tail's untouched ones
    (group = tier, + `n_tiers` for a short); and the touched ones (`fresh`, to be keyed
    again) with their positions in the rest. Without `with_room` the rooms are not read.
    Two passes: a count, so that each array has its exact length (arrays of `n` slots,
    mostly unused, raised the 1M path's peak RSS by ≈ 40 MiB), then the fill."""
    n_dead = n_book = n_fresh = 0
    for i in range(n):
        if not size[i] > 0:
            n_dead += 1
        elif not (known and pristine[i]):
            n_fresh += 1
        elif i < end:
            n_book += 1
    m_rest = n - n_dead - n_book
    dead = np.empty(n_dead)
    book, book_group, book_key = (
        np.empty(n_book, np.int64),
        np.empty(n_book, np.int16),
        np.empty(n_book),
    )
    rest, rest_group, rest_key = (
        np.empty(m_rest, np.int64),
        np.empty(m_rest, np.int16),
        np.empty(m_rest),
    )
    book_rooms, rest_rooms = (
        np.empty(n_book if with_room else 0),
        np.empty(m_rest if with_room else 0),
    )
    fresh, at = np.empty(n_fresh, np.int64), np.empty(n_fresh, np.int64)
    n_dead = n_book = n_rest = n_fresh = 0
    for i in range(n):
        if not size[i] > 0:
            dead[n_dead] = collateral[i] + reserve[i]
            n_dead += 1
        elif not (known and pristine[i]):
            fresh[n_fresh], at[n_fresh] = i, n_rest
            n_fresh += 1
            rest[n_rest] = i
            n_rest += 1
        elif i < end:
            book[n_book], book_group[n_book], book_key[n_book] = i, sorted_group[i], sortkey[i]
            if with_room:
                book_rooms[n_book] = book_room[i]
            n_book += 1
        else:
            r = i - end
            rest[n_rest], rest_key[n_rest] = i, tail_key[r]
            rest_group[n_rest] = tail_tier[r] + (0 if side[i] > 0 else n_tiers)
            if with_room:
                rest_rooms[n_rest] = tail_room[r]
            n_rest += 1
    return (
        dead, book, book_group, book_key, book_rooms, rest, rest_group, rest_key, rest_rooms,
        fresh, at,
    )  # fmt: skip


@njit(cache=True)
def merge_by_group(
    first, first_group, first_key, first_room, second, second_group, second_key, second_room,
    with_room,
):  # fmt: skip
    """Merge two index arrays, each in (group, key) order with their groups, keys and
    rooms, into one in that order (ties go to `first`; NaN keys sort last, NumPy's order);
    returns the indices, groups, keys and rooms merged (no rooms without `with_room`)."""
    m = len(first) + len(second)
    out, group, key = np.empty(m, dtype=np.int64), np.empty(m, first_group.dtype), np.empty(m)
    room = np.empty(m if with_room else 0)
    a = b = 0
    for o in range(m):
        if b == len(second):
            take_second = False
        elif a == len(first):
            take_second = True
        else:
            gi, gj = first_group[a], second_group[b]
            if gi != gj:
                take_second = gj < gi
            else:  # NumPy's NaN-aware "less than": second's key < first's
                ki, kj = first_key[a], second_key[b]
                take_second = kj < ki or (math.isnan(ki) and not math.isnan(kj))
        if take_second:
            out[o], group[o], key[o] = second[b], second_group[b], second_key[b]
            if with_room:
                room[o] = second_room[b]
            b += 1
        else:
            out[o], group[o], key[o] = first[a], first_group[a], first_key[a]
            if with_room:
                room[o] = first_room[a]
            a += 1
    return out, group, key, room


@njit(cache=True)
def margin_tier(
    idx, side, size, collateral, entry, funding_ref, funding_index, price, upper, mmr, amount
):  # fmt: skip
    """Margin balance, maintenance margin and tier of accounts `idx` at `price` (see
    `PerpPopulation.margin`): wallet = collateral − size·(Φ − Φ at settlement), balance =
    wallet + side·size·(price − entry); tier = the bracket of the notional size·price
    (`TierTable.tier`: the first inclusive upper bound at or above it, the last for NaN) and
    MM = notional·MMR − amount."""
    m, last = len(idx), len(upper) - 1
    balance, maintenance = np.empty(m), np.empty(m)
    tier = np.empty(m, dtype=np.int64)
    for j in range(m):
        i = idx[j]
        s, units = side[i], size[i]
        index = funding_index[1] if s < 0 else funding_index[0]
        wallet = collateral[i] - units * (index - funding_ref[i])
        balance[j] = wallet + s * units * (price - entry[i])
        notional = units * price
        t = _tier(upper, notional, last)
        tier[j] = t
        maintenance[j] = notional * mmr[t] - amount[t]
    return balance, maintenance, tier


@njit(cache=True)
def book_hits(
    price, g_sign, g_side_index, g_coef, g_head, g_next, g_end, sortkey, pristine,
    funding_index, inclusive,
):  # fmt: skip
    """The book's accounts the `price` liquidates (`PerpPopulation._triggered_from_book`):
    in each segment g whose head key is ≤ (< when not `inclusive`) its bound
    −sign·price + Φ·coef, the keys up to the bound (a binary search, as `np.searchsorted`
    right / left) from the segment's next account on; returns the pristine ones, in segment
    order, and leaves them not pristine, the segment's next account and head key moved past
    them. Also returns the screen (`_book_band`) of the book after the pass: the prices
    strictly between `low` and `high` liquidate no account of it."""
    n_groups = len(g_head)
    hits = np.empty(0, dtype=np.int64)
    count = 0
    for g in range(n_groups):
        bound = -g_sign[g] * price + funding_index[g_side_index[g]] * g_coef[g]
        head = g_head[g]
        if not (head <= bound if inclusive else head < bound):
            continue
        lo, hi = g_next[g], g_end[g]
        a, b = lo, hi  # first key > bound (inclusive) or ≥ bound, NaN keys last
        while a < b:
            mid = (a + b) // 2
            if sortkey[mid] <= bound if inclusive else sortkey[mid] < bound:
                a = mid + 1
            else:
                b = mid
        cut = a
        if count + cut - lo > len(hits):
            grown = np.empty(max(2 * len(hits), count + cut - lo), dtype=np.int64)
            grown[:count] = hits[:count]
            hits = grown
        for i in range(lo, cut):
            if pristine[i]:
                hits[count] = i
                count += 1
                pristine[i] = False
        g_next[g] = cut
        g_head[g] = sortkey[cut] if cut < hi else np.inf
    low, high = book_band(g_sign, g_side_index, g_coef, g_head, funding_index)
    return hits[:count], low, high


@njit(cache=True)
def book_band(g_sign, g_side_index, g_coef, g_head, funding_index):
    """Prices strictly between `low` and `high` liquidate no account of the book (a screen
    `book_hits` can skip). Segment g's next account is liquidated at the prices where its
    head key h reaches −sign·price + T (T = Φ·coef): a long segment at prices up to T − h,
    a short one from h − T on; each threshold is widened by 1e-7 of |T| + |h|, far beyond
    the rounding of either expression, so a price past it can never reach the head."""
    low, high = -np.inf, np.inf
    for g in range(len(g_head)):
        head = g_head[g]
        if head == np.inf:  # the segment is used up
            continue
        shifted = funding_index[g_side_index[g]] * g_coef[g]
        slack = 1e-7 * (abs(shifted) + abs(head))
        if not math.isfinite(slack):
            return np.inf, -np.inf  # no screen: every price is checked
        if g_sign[g] > 0:
            low = max(low, shifted - head + slack)
        else:
            high = min(high, head - shifted - slack)
    return low, high


@njit(cache=True)
def watch_split(watch, size, pending):
    """The watch list without closed accounts (size 0), and those of it with no liquidation
    order outstanding (`PerpPopulation._triggered_from_watch`), in order, in one pass."""
    live = np.empty(len(watch), dtype=np.int64)
    free = np.empty(len(watch), dtype=np.int64)
    n_live = n_free = 0
    for i in watch:
        if size[i] > 0:
            live[n_live] = i
            n_live += 1
            if not pending[i]:
                free[n_free] = i
                n_free += 1
    return live[:n_live], free[:n_free]


@njit(cache=True)
def cex_triage(idx, stage, size, balance, tier, upper, price):
    """The binance-like waterfall's first cut (`PerpPopulation._liquidate`) of accounts `idx`
    with their margin balances and tiers: which start a liquidation (stage 0), which of
    those above the first tier with margin left de-risk with one order down to the top of
    the next lower tier (size − bound/price units), and the rest (for the fund or ADL), in
    order; leaves every account at stage 1."""
    m = len(idx)
    starting = np.empty(m, dtype=np.bool_)
    send, quantity = np.empty(m, dtype=np.int64), np.empty(m)
    rest = np.empty(m, dtype=np.int64)
    n_send = n_rest = 0
    for j in range(m):
        i = idx[j]
        starting[j] = stage[i] == 0
        if starting[j] and tier[j] > 0 and balance[j] > 0:
            send[n_send] = i
            quantity[n_send] = size[i] - upper[tier[j] - 1] / price
            n_send += 1
        else:
            rest[n_rest] = i
            n_rest += 1
    for j in range(m):
        stage[idx[j]] = 1
    return starting, send[:n_send], quantity[:n_send], rest[:n_rest]


@njit(cache=True)
def close_positions(idx, side, size, collateral, funding_ref, stage, funding_index):
    """Clear positions `idx` (size and collateral 0, funding settled at the index, stage 0;
    `PerpPopulation._close`); returns the sizes they had, longs and shorts, in order (for
    NumPy's sums)."""
    m = len(idx)
    longs, shorts = np.empty(m), np.empty(m)
    n_long = n_short = 0
    for j in range(m):  # read every size before clearing any
        i = idx[j]
        if side[i] == 1:
            longs[n_long] = size[i]
            n_long += 1
        elif side[i] == -1:
            shorts[n_short] = size[i]
            n_short += 1
    for j in range(m):
        i = idx[j]
        size[i] = collateral[i] = 0.0
        funding_ref[i] = funding_index[1] if side[i] < 0 else funding_index[0]
        stage[i] = 0
    return longs[:n_long], shorts[:n_short]

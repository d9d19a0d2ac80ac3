"""Compiled loops of the futures books' margin calls and openings
(`populations.futures_margin`).

Each kernel does in one pass over the accounts concerned what a dozen NumPy calls on small
arrays did, with the same floating-point operations in the same order (no fastmath, so no
fused multiply-add): every number is bit-identical to the NumPy expressions they replace
(`tests/populations/test_futures_kernels.py` checks both on random inputs). Sums follow
NumPy's own pairwise summation tree (`pairwise_plan`), so they equal `ndarray.sum()` to the
bit; a book's Σ |position| keeps the tree's partial sums where no position moved. The
call prices keep an index (each block of `BLOCK` slots' highest floor and lowest cap), so
a call round scans only the blocks the price crossed, not the book. Kept
in NumPy: random draws and `exp` (NumPy's own vectorized `exp` may differ from LLVM's in
the last bit). Compiled once per machine (`cache=True`), as the perp book's kernels
(`perp_kernels`); none is recursive (a recursive kernel crashes when loaded from the cache).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def call_prices(accounts, position, cash, pending, pct_frac, usd_per_unit, floor, cap):
    """Write the call prices of `accounts` (indices) into `floor` and `cap`, and return
    their highest floor and lowest cap (NaN if any is NaN, as NumPy's max and min).

    Equity − maintenance = level + slope·price, with slope = position − pct·|position| and
    level = cash − usd·|position|: a long (slope > 0) is called below −level/slope, a short
    (slope < 0) above it; at slope 0 a negative level is called at any price (floor +inf),
    else never. Accounts without a position or with a liquidation pending are not called."""
    highest, lowest = -np.inf, np.inf
    for j in range(len(accounts)):
        i = accounts[j]
        units = position[i]
        size = abs(units)
        slope = units - pct_frac * size
        level = cash[i] - usd_per_unit * size
        active = units != 0.0 and pending[i] == 0.0
        low, high = -np.inf, np.inf
        if active:
            if slope > 0.0:
                low = -level / slope
            elif slope == 0.0:
                low = np.inf if level < 0.0 else -np.inf
            elif slope < 0.0:
                high = -level / slope
        floor[i], cap[i] = low, high
        if math.isnan(low) or math.isnan(highest):
            highest = np.nan
        elif low > highest:
            highest = low
        if math.isnan(high) or math.isnan(lowest):
            lowest = np.nan
        elif high < lowest:
            lowest = high
    return highest, lowest


BLOCK = 128  # accounts a block of the call-price index covers


@njit(cache=True)
def block_count(n):
    """Blocks of the call-price index of a book of n slots."""
    return -(-n // BLOCK)


@njit(cache=True)
def _highest(a, lo, hi):
    """max(a[lo:hi]) as NumPy's: NaN if any is NaN; −inf for none."""
    out = -np.inf
    for i in range(lo, hi):
        if math.isnan(a[i]):
            return np.nan
        if a[i] > out:
            out = a[i]
    return out


@njit(cache=True)
def _lowest(a, lo, hi):
    """min(a[lo:hi]) as NumPy's: NaN if any is NaN; +inf for none."""
    out = np.inf
    for i in range(lo, hi):
        if math.isnan(a[i]):
            return np.nan
        if a[i] < out:
            out = a[i]
    return out


@njit(cache=True)
def index_blocks(floor, cap, top, low, accounts):
    """Write into `top` and `low` the highest floor and lowest cap of each block (BLOCK
    slots) holding one of `accounts` (ascending), whose call prices were just written.
    Returns the book's extremes: the highest floor and lowest cap of all its slots, as
    NumPy's `floor.max()` and `cap.min()` (NaN if any is NaN)."""
    n, last = len(floor), -1
    for j in range(len(accounts)):
        b = accounts[j] // BLOCK
        if b != last:
            lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
            top[b], low[b] = _highest(floor, lo, hi), _lowest(cap, lo, hi)
            last = b
    return _highest(top, 0, len(top)), _lowest(low, 0, len(low))


@njit(cache=True)
def margin_calls(floor, cap, top, low, used, below, above, price, position, cash,
                 buffer, pending, maintenance_per_unit, initial_per_unit, pct_frac,
                 usd_per_unit):  # fmt: skip
    """A continuous-timing call round in one pass (`FuturesPopulation._call`): the first
    `used` accounts whose floor is above `below` or cap below `above` (crossed) and whose
    equity at `price` is below maintenance (`maintenance_per_unit` · |position|) are called
    back to initial margin: the need (`initial_per_unit` · |position| − equity) moves from
    the buffer to the margin balance where the buffer covers it, else the account's whole
    position is queued for liquidation (`pending`). The called accounts' call prices are
    then recomputed (as `call_prices`), with their blocks' extremes (`index_blocks`).

    Only the blocks whose highest floor (`top`) or lowest cap (`low`) is crossed, or NaN,
    are scanned: a crossing usually reaches a few accounts of a book of tens of thousands.
    Returns the called accounts (ascending), which paid from their buffer, how many did,
    the event log's sums (NumPy's, `_pairwise`): Σ position and Σ need of the called,
    Σ need of those that paid, Σ pending of those liquidated; then the book's extremes
    after."""
    crossed = np.empty(block_count(used), dtype=np.int64)  # the blocks to scan
    m = 0
    for b in range(len(crossed)):
        t, lw = top[b], low[b]
        if t > below or lw < above or math.isnan(t) or math.isnan(lw):
            crossed[m] = b
            m += 1
    called = np.empty(m * BLOCK, dtype=np.int64)
    units, need = np.empty(m * BLOCK), np.empty(m * BLOCK)
    n = 0
    for b in crossed[:m]:
        for i in range(b * BLOCK, min(used, (b + 1) * BLOCK)):
            if floor[i] > below or cap[i] < above:
                x = position[i]
                equity = cash[i] + x * price
                if equity < maintenance_per_unit * abs(x):
                    called[n], units[n] = i, x
                    need[n] = initial_per_unit * abs(x) - equity
                    n += 1
    called = called[:n]
    paid = np.empty(n, dtype=np.bool_)
    met_need, liquidating = np.empty(n), np.empty(n)
    met = 0
    for j in range(n):
        i = called[j]
        paid[j] = buffer[i] >= need[j]
        if paid[j]:
            buffer[i] -= need[j]
            cash[i] += need[j]
            met_need[met] = need[j]
            met += 1
        else:
            pending[i] = -position[i]
            liquidating[j - met] = pending[i]
    call_prices(called, position, cash, pending, pct_frac, usd_per_unit, floor, cap)
    highest, lowest = index_blocks(floor, cap, top, low, called)
    sums = (
        0.0 + _pairwise(units, 0, n),
        0.0 + _pairwise(need, 0, n),
        0.0 + _pairwise(met_need, 0, met),
        0.0 + _pairwise(liquidating, 0, n - met),
    )
    return called, paid, met, sums, highest, lowest


@njit(cache=True)
def _leaf_sum(a, lo, n):
    """NumPy's pairwise summation of a[lo:lo + n] for n ≤ 128 (one leaf of its tree):
    a plain loop below 8 elements, else eight interleaved partial sums then the rest."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


def pairwise_plan(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tree NumPy's `sum` of n contiguous float64 follows (halves rounded down to a
    multiple of 8, leaves of ≤ 128): the leaves' starts and lengths, their sums (to fill),
    and the postfix program combining them (j ≥ 0: leaf j's sum; −1: the sum of the two
    last values)."""
    starts, lengths, program = [], [], []

    def walk(lo: int, m: int) -> None:
        if m <= 128:
            program.append(len(starts))
            starts.append(lo)
            lengths.append(m)
            return
        half = m // 2 - (m // 2) % 8
        walk(lo, half)
        walk(lo + half, m - half)
        program.append(-1)

    walk(0, n)
    as_int = lambda x: np.array(x, dtype=np.int64)  # noqa: E731
    return as_int(starts), as_int(lengths), np.zeros(len(starts)), as_int(program)


@njit(cache=True)
def pairwise_sum(a, starts, lengths, sums, program, lo, hi):
    """`a.sum()` of a contiguous float64 array as NumPy computes it (pairwise, on the
    `pairwise_plan(len(a))` tree), recomputing only the leaf sums that meet a[lo:hi] (the
    elements written since the last call; the others are kept in `sums`)."""
    for j in range(len(starts)):
        if starts[j] < hi and starts[j] + lengths[j] > lo:
            sums[j] = _leaf_sum(a, starts[j], lengths[j])
    stack = np.empty(64)
    top = 0
    for op in program:
        if op >= 0:
            stack[top] = sums[op]
            top += 1
        else:
            top -= 1
            stack[top - 1] = stack[top - 1] + stack[top]
    return 0.0 + stack[0]  # the reduction's start, 0.0 (so −0.0 sums to 0.0)


@njit(cache=True)
def _pairwise(a, lo, n):
    """NumPy's pairwise summation of a[lo:lo + n] (its tree, as `pairwise_plan`), walked
    with explicit stacks (a recursive kernel crashes when loaded from Numba's cache)."""
    if n <= 128:
        return _leaf_sum(a, lo, n)
    starts, sizes, stages = np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.int64)
    values = np.empty(64)
    starts[0], sizes[0], stages[0] = lo, n, 0
    top, count = 1, 0
    while top:
        start, size, stage = starts[top - 1], sizes[top - 1], stages[top - 1]
        half = size // 2 - (size // 2) % 8
        if size <= 128:  # a leaf: its sum
            values[count] = _leaf_sum(a, start, size)
            count += 1
            top -= 1
        elif stage < 2:  # the left half, then the right half
            stages[top - 1] = stage + 1
            starts[top] = start if stage == 0 else start + half
            sizes[top] = half if stage == 0 else size - half
            stages[top] = 0
            top += 1
        else:  # both halves summed: their sum
            count -= 1
            values[count - 1] = values[count - 1] + values[count]
            top -= 1
    return values[0]


@njit(cache=True)
def opening_sizes(long_mean, short_mean, longs, lognormal):
    """New accounts' sizes (mean × lognormal draw; the first `longs` long, the rest short),
    their signed positions, and Σ position as NumPy's `position.sum()`."""
    k = len(lognormal)
    size, position = np.empty(k), np.empty(k)
    for j in range(k):
        size[j] = (long_mean if j < longs else short_mean) * lognormal[j]
        position[j] = size[j] if j < longs else -size[j]
    return size, position, 0.0 + _pairwise(position, 0, k)


@njit(cache=True)
def _floored(x):
    """np.maximum(x, 0.0): NaN stays NaN, −0.0 gives 0.0."""
    return x if x > 0.0 or math.isnan(x) else 0.0


@njit(cache=True)
def open_accounts(lo, position, size, price, margin_per_unit, cushion, buffer,
                  book_position, book_size, book_cash, book_buffer, pending, pct_frac,
                  usd_per_unit, floor, cap, top, low, plan, moved_lo, moved_hi):  # fmt: skip
    """Write new accounts into the free slots from `lo` on, opened at `price` with equity
    cushion × initial margin (`margin_per_unit` · size) and `buffer` × that margin outside
    (`cushion` and `buffer`: the draws, floored at 0 here as `np.maximum(draw, 0.0)`),
    and set their call prices (`call_prices`, `index_blocks`). Returns the deposits
    (Σ equity + Σ buffer), Σ notional (NumPy's sums), the book's highest floor and lowest
    cap after, and its Σ size after (`pairwise_sum` on `plan`, book_size[moved_lo:moved_hi]
    written before)."""
    k = len(position)
    equity, outside, notional = np.empty(k), np.empty(k), np.empty(k)
    for j in range(k):
        i = lo + j
        margin = margin_per_unit * size[j]
        equity[j], outside[j] = _floored(cushion[j]) * margin, _floored(buffer[j]) * margin
        notional[j] = size[j] * price
        book_position[i], book_size[i] = position[j], size[j]
        book_cash[i], book_buffer[i] = equity[j] - position[j] * price, outside[j]
    accounts = np.arange(lo, lo + k)
    call_prices(accounts, book_position, book_cash, pending, pct_frac, usd_per_unit, floor, cap)
    highest, lowest = index_blocks(floor, cap, top, low, accounts)
    deposits = (0.0 + _pairwise(equity, 0, k)) + (0.0 + _pairwise(outside, 0, k))
    starts, lengths, sums, program = plan
    gross = pairwise_sum(book_size, starts, lengths, sums, program, min(moved_lo, lo),
                         max(moved_hi, lo + k))  # fmt: skip
    return deposits, 0.0 + _pairwise(notional, 0, k), highest, lowest, gross

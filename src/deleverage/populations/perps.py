"""Perpetual-futures accounts (SPEC §4.1; facts §1), as arrays.

One asset, one venue rule set (`binance-like`, `bybit-like` or `hyperliquid-like`; see
`deleverage.venues`), cross or isolated margin, up to millions of accounts.

Mark price. Margin and liquidation use the engine's mark price (facts 1.1.6, 1.2.10, 1.5.8):
the one simulated price with the visible book's transient wick smoothed over the exchange's
window (`market.mark_price_window`), so a sweep that the book refills within seconds does
not liquidate by itself. Fills are at the market price. There is no separate index or
oracle: the funding premium (facts 1.1.3) is zero and funding is
the interest rate: F = clamp(I, ±0.05%) = 0.01% per 8 h paid by longs to shorts (1.1.1-1.1.2),
every 8 h (binance-like) or hourly at 1/8 of it (hyperliquid-like, 1.5.7). Payments are
transfers inside the population: the rate applies to the matched interest min(long, short),
so longs pay exactly what shorts receive (excess longs or shorts face counterparties outside
the population, with whom funding is not modelled). The insurance fund pays no funding.

Accounting. A position of q units (side s = ±1) entered at e is held as s·q units of the
asset plus −s·q·e of cash ("spot equivalent"), so every holder's equity is cash + units·price.
Funding, liquidation fees, takeovers by the insurance fund and auto-deleveraging (ADL) move
units and cash between accounts and the fund and leave the population's totals unchanged;
only trades with the market change them, by the filled quantity and its value at the fill
price. `holdings` (net units of accounts and fund) and `cash` (wallets + fund − cost of open
positions − deposits of new accounts) are ledgers updated by exactly those trades. A loss
beyond an account's collateral lands on the fund or on ADL counterparties, never nowhere.

Open interest is a flow (SPEC §4; `oi_rebuild_half_life`). Every hour of trading, new accounts
open for the share 1 − 0.5^(1 h/half-life) of the contracts (units) the book holds below
its input, with the input's long share, sizes, leverage and wallet buffers. Their opening
trades are one market order through `orders` (longs buy, shorts sell, the net goes to the
market), so they enter at the fill price of the moment; their wallets are deposits from
outside the venue (`deposits_usd`). Contracts, not dollars: a price move alone opens nothing.
Traders also close positions (`holding_half_life`): every hour each open account not under
liquidation closes at market with the probability of its half-life and takes its equity off
the venue; the next batch of new accounts replaces the contracts closed. Without it a
position lives until it is liquidated, so after a long one-way drift every account left sits
at a liquidation level the drift has not reached yet: a front of levels that each new low
cuts into, where a real book has turned over (the calm-day check in the tests).

Liquidation (facts 1.1.7), while the venue trades:
- binance-like: at margin ratio MM / margin balance ≥ 100% (1.2.5), an account above the
  first tier with margin left sends one IOC market order that drops it one tier (the
  tier-drop of 1.3.3, 1.4.1); it pays the liquidation fee to the insurance fund. If it is
  still at or above 100% at the next check, or could not de-risk, the fund takes the
  position over at the bankruptcy price (keeping the remaining margin) while its
  taken-over notional stays within `fund_capacity` × fund size (1.2.7). Past that, ADL
  only ever shares a deficit: a position with margin left at the mark is sent to the book
  as one market order (fee capped by its margin; a fill worse than bankruptcy is covered by
  the fund, 1.3.3), and a position already in deficit is auto-deleveraged against the
  opposite positions ranked by LeveragePnL, at its bankruptcy price, no fee (1.2.8), so the
  counterparties absorb exactly its deficit. The fee on a partial de-risking takes only the
  margin above the remaining position's maintenance margin and liquidation fee (1.4.1), so
  that the account can be compliant "after losses and fee" (1.2.5).
- hyperliquid-like: below maintenance (1.5.1), a market order for the position, 20% first
  when it is above $100k and the rest after a 30 s cooldown (1.5.3); below 2/3 of
  maintenance the liquidator vault takes position and margin over (1.5.4); at negative
  account value the position is auto-deleveraged against opposite positions ranked by
  (mark/entry)·(notional/account value) (1.5.5), at the mark price: the vault covers the
  deficit (`adl_price: bankruptcy` makes the counterparties absorb it instead, as on the
  centralized venues). A market fill worse than bankruptcy leaves a deficit that the vault
  covers. All cascade rounds of a step happen at the step's
  start time, so the remainder of a chunked position waits for the next step (≥ 1 min).
- The fund works taken-over positions off to the market at most `market.participation_rate`
  of the asset's normal volume a step (1.2.7: "according to a preset algorithm"); what it
  still holds counts against its capacity, so a cascade beyond it goes to ADL. ADL
  counterparties that run out leave the rest to the fund, whatever its capacity. With the
  `insurance_adl` channel off the fund has unlimited capacity, takes every bankrupt
  position, and no ADL happens (its balance may go negative: the loss is still accounted
  for).

Speed (SPEC §9, §11). Untouched accounts live in a book sorted by liquidation price, in one
segment per (side, maintenance tier at the liquidation price); the accounts a price
liquidates are a prefix of each segment, found by one `searchsorted`, so a round costs
O(segments + log n) plus the accounts liquidated; after each search the book keeps the band
of prices that reach no segment's next account (`_book_band`, moved by every search and
reset by funding and re-sorts), and a mark inside it — most marks — skips the search.
Funding moves every liquidation price of a segment by the same amount, `Φ/(1 − side·MMR)`
for a funding index Φ, which the search adds instead of rewriting keys. An account whose
liquidation price funding pushes across a tier boundary would change segment: at each
settlement those few are found by a second sorted array (their distance to the boundary) and
moved to a small watch list. Accounts touched once (partly liquidated, deleveraged, moved)
join the watch list, which is checked by a full vectorized margin computation every round.
New accounts take spare slots after the book and join the watch list; when they fill the
spare slots, the book is sorted again from the current wallets (O(n log n), about once per
10% of the book opened), and closed accounts leave the arrays, their remaining wallets kept
in `idle_usd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deleverage.populations import perp_kernels as kernels
from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.populations.entries import entry_ages, entry_window, extremes_since
from deleverage.results.events import EventLog
from deleverage.scenario.perp_venue import rules_for
from deleverage.scenario.schema import PerpBook
from deleverage.venues import binance, hyperliquid
from deleverage.venues.funding import funding_rate, settlements_between
from deleverage.venues.insurance import (
    adl_match,
    offload_allowance_left,
    rank_counterparties,
    takeover_count,
)
from deleverage.venues.tiers import TierTable

# order owners: the accounts' liquidation orders, the fund's offload, new positions, and
# positions their traders close
ACCOUNTS, FUND, OPENING, CLOSING = 0, 1, 2, 3
SIDE_NAMES = {1: "long", -1: "short"}
ACCOUNT_COLUMNS = ("side", "size", "entry_price", "wallet_usd", "leverage")
_EMPTY = np.zeros(0, dtype=np.int64)
_NO_FLOATS, _NO_FLAGS = np.zeros(0), np.zeros(0, dtype=bool)  # `_sort_book`'s first call
_NO_GROUP, _NO_TIER = np.zeros(0, dtype=np.int16), _EMPTY
NO_SCREEN = (np.inf, -np.inf)  # a `_book_band` no price is inside: the book is checked
# funding shift (× the price) the index of tier-crossing rooms covers beyond the present one
ROOM_MARGIN = 0.02


@dataclass(frozen=True)
class Accounts:
    """Positions at the start: side ±1, size in units (> 0), entry price, wallet balance in
    USD, and leverage at entry (position margin = size·entry/leverage)."""

    side: np.ndarray
    size: np.ndarray
    entry: np.ndarray
    wallet_usd: np.ndarray
    leverage: np.ndarray
    clipped: int = 0  # generated accounts whose leverage draw was clipped to [1, tier max]

    @property
    def position_margin(self) -> np.ndarray:
        return self.size * self.entry / self.leverage


def read_accounts(path: Path) -> Accounts:
    """Accounts from a CSV or Parquet file with columns side (long/short or ±1), size, entry_price,
    wallet_usd, leverage. Raises ValueError naming the first offending column and row."""
    try:
        parquet = path.suffix.lower() in (".parquet", ".pq")
        frame = pd.read_parquet(path) if parquet else pd.read_csv(path)
    except Exception as exc:  # parser errors come in many types; all mean "unreadable"
        raise ValueError(
            f"expected a CSV or Parquet accounts file, could not read {path}: {exc}"
        ) from exc
    missing = [c for c in ACCOUNT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"expected columns {list(ACCOUNT_COLUMNS)} in {path.name}, missing {missing}"
        )
    if frame.empty:
        raise ValueError(f"expected at least one account in {path.name}, found none")
    side_text = frame["side"].astype(str).str.strip().str.lower()
    side = side_text.map({"long": 1, "short": -1, "1": 1, "-1": -1, "1.0": 1, "-1.0": -1})
    values = {
        c: pd.to_numeric(frame[c], errors="coerce").to_numpy(float) for c in ACCOUNT_COLUMNS[1:]
    }
    checks = (
        ("side", side.isna().to_numpy(), "long or short"),
        ("size", ~(values["size"] > 0), "a positive size in units"),
        ("entry_price", ~(values["entry_price"] > 0), "a positive entry price"),
        ("leverage", ~(values["leverage"] >= 1), "leverage of at least 1"),
        (
            "wallet_usd",
            ~(values["wallet_usd"] >= values["size"] * values["entry_price"] / values["leverage"]),
            "a wallet of at least the position margin size·entry_price/leverage",
        ),
    )
    for column, bad, expected in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path.name} row {row + 2}: column {column!r}: expected {expected}, found "
                f"{frame[column].iloc[row]!r} ({int(bad.sum())} such rows)"
            )
    return Accounts(
        side.to_numpy(np.int8),
        values["size"],
        values["entry_price"],
        values["wallet_usd"],
        values["leverage"],
    )


def generate_accounts(
    spec: PerpBook,
    table: TierTable,
    price0: float,
    rng: np.random.Generator,
    entry_history: np.ndarray | None = None,
    entry_weights: np.ndarray | None = None,
) -> Accounts:
    """Accounts from positioning inputs (see `PerpBook`), all alive at the start.

    Notionals are lognormal (σ = `size_dispersion`) and sum to 2·OI·long_share long and
    2·OI·(1 − long_share) short at the initial price. Leverage is clipped to the tier
    maximum of the notional at entry.

    With `entry_history` (the asset's observed prices over `entry_lookback`, oldest first,
    ending at the start) each account's entry time is one of its points and its entry price
    the price then, drawn with `entry_weights` when given (the age law of positions their
    traders close, `holding_half_life`) or uniformly. Survivorship (SPEC §4): a position
    whose liquidation condition — margin balance ≤ maintenance margin by the venue's tiers
    (facts 1.2.1, 1.3.2, 1.5.1) — the path since its entry met does not exist; it redraws
    entry time and leverage. The condition is monotone in price, so it is checked at the
    lowest (long) or highest (short) price since entry. The path is only as fine as the
    history: daily closes miss intraday extremes, so some accounts a wick would have
    liquidated survive.

    Without a history, entries are lognormal around the initial price (σ = `entry_spread`)
    and only solvency at the initial price is required. Either way an account whose 100
    draws all fail enters at the initial price (at entry, leverage ≤ tier maximum is always
    solvent)."""
    n = spec.accounts
    # each side with a positive share gets at least one account (when there are two)
    n_long = min(
        max(round(n * spec.long_share), int(spec.long_share > 0)), n - (spec.long_share < 1)
    )
    side = np.concatenate([np.ones(n_long, np.int8), -np.ones(n - n_long, np.int8)])
    weights = np.exp(spec.size_dispersion * rng.standard_normal(n))
    notional = np.zeros(n)
    for mask, share in ((side > 0, spec.long_share), (side < 0, 1.0 - spec.long_share)):
        if mask.any():
            notional[mask] = (
                weights[mask] / weights[mask].sum() * 2 * spec.open_interest_usd * share
            )
    size = notional / price0
    buffer = _buffer(spec, rng, n)
    if entry_history is not None:
        low, high = extremes_since(entry_history, price0)
    entry = np.empty(n)
    leverage = np.empty(n)
    redraw = np.arange(n)
    for _ in range(100):
        k = len(redraw)
        if k == 0:
            break
        if entry_history is not None:
            when = (
                rng.integers(0, len(entry_history), k)
                if entry_weights is None
                else rng.choice(len(entry_history), k, p=entry_weights)
            )
            entry[redraw] = entry_history[when]
            worst = np.where(side[redraw] > 0, low[when], high[when])
        else:
            entry[redraw] = price0 * np.exp(spec.entry_spread * rng.standard_normal(k))
            worst = price0
        leverage[redraw] = np.asarray(spec.leverage.sample(rng, k), float)
        ok = _solvent(
            side[redraw], size[redraw], entry[redraw], leverage[redraw], buffer[redraw],
            spec.margin_mode, table, worst,
        )  # fmt: skip
        redraw = redraw[~ok]
    entry[redraw] = price0  # at entry = price, leverage ≤ tier maximum is always solvent
    allowed = table.max_leverage[table.tier(size * entry)]
    clipped = int(np.count_nonzero((leverage < 1.0) | (leverage > allowed)))
    leverage = np.clip(leverage, 1.0, allowed)
    margin = size * entry / leverage
    return Accounts(side, size, entry, margin * (1.0 + buffer), leverage, clipped)


def _order_by_group(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Indices sorting by (group, key), ties kept in order: np.lexsort's result, with two
    argsorts (faster on large arrays of few groups). By key: NumPy's default (SIMD) sort,
    made stable by ordering each run of equal keys by index (`perp_kernels.stable_ties`);
    then by group as 16-bit integers, which NumPy sorts stably by radix, in O(n) (a stable
    order is unique: same result)."""
    by_key = np.argsort(key)
    kernels.stable_ties(by_key, key[by_key])
    return by_key[np.argsort(group[by_key].astype(np.int16), kind="stable")]


def _buffer(spec: PerpBook, rng: np.random.Generator, n: int) -> np.ndarray:
    """Wallet beyond the position margin ÷ position margin, per account (≥ 0)."""
    if spec.wallet_buffer is None:
        return np.zeros(n)
    return np.maximum(np.asarray(spec.wallet_buffer.sample(rng, n), float), 0.0)


def _solvent(side, size, entry, leverage, buffer, mode, table: TierTable, price) -> np.ndarray:
    """Margin balance above maintenance at `price` (a scalar or one price per account)."""
    leverage = np.clip(leverage, 1.0, table.max_leverage[table.tier(size * entry)])
    margin = size * entry / leverage
    backing = margin * (1.0 + buffer) if mode == "cross" else margin
    balance = backing + side * size * (price - entry)
    return balance > table.maintenance_margin(size * price)


class PerpPopulation:
    kind = "perp_book"
    book_screen = True  # skip the book's search for prices inside `_book_band` (tests: off)

    def __init__(self, spec: PerpBook, ctx: BuildContext):
        scenario = ctx.scenario
        self.name = spec.name
        self.asset = ctx.asset_index[spec.asset]
        self.asset_id = spec.asset
        self.currency = ctx.scenario.assets[ctx.asset_index[spec.asset]].currency
        venue_id = spec.venue or scenario.assets[self.asset].venue  # where the book trades
        self.venue_id = venue_id
        self.enabled = ctx.enabled
        self.adl_enabled = scenario.channels.insurance_adl
        rules_name = (
            spec.margin_rules or scenario.venues[scenario.venue_index()[venue_id]].margin_rules
        )
        fee = None if spec.liquidation_fee_pct is None else spec.liquidation_fee_pct / 100.0
        self.rules = rules_for(
            spec, scenario, rules_name, liquidation_fee=fee, fund_capacity=spec.fund_capacity,
            adl_price=spec.adl_price,
        )  # fmt: skip  # the rule set with the book's or its asset's tier table
        self.cex_waterfall = self.rules.name in ("binance-like", "bybit-like")
        self.table = self.rules.table
        # insurance_adl off: the fund has no cap and takes every bankrupt position; no ADL
        self.capacity = self.rules.fund_capacity if self.adl_enabled else None
        # one price per asset: premium 0, so F = clamp(I) (facts 1.1.1), per settlement
        self.funding_rate = funding_rate(
            0.0,
            self.rules.funding_interval_hours,
            spec.funding_interest_pct / 100.0,
            spec.funding_clamp_pct / 100.0,
            self.rules.funding_cap,
        )
        self.step_seconds = ctx.step_hours * 3600.0
        price0 = float(ctx.price0[self.asset])
        # The fund works its taken-over positions off like a percent-of-volume order
        # (facts 1.2.7: offloaded "according to a preset algorithm"), so a cascade beyond its
        # capacity goes to ADL rather than onto the book at once.
        self._offload_cap_usd = (
            scenario.market.participation_rate
            * scenario.assets[self.asset].adv_usd
            / float(ctx.steps_per_day[self.asset])
        )
        self._offload_left_usd = self._offload_cap_usd
        self._last_mark = price0
        self._queued_offload = 0.0
        if spec.file is not None:
            accounts = read_accounts(Path(spec.file))
        else:
            history = entry_window(ctx, spec.asset, spec.entry_lookback)
            weights = None
            if history is not None and spec.holding_half_life is not None:
                ages = entry_ages(ctx, spec.asset, spec.entry_lookback)
                weights = 0.5 ** (ages / spec.holding_half_life.total_seconds())
                weights /= weights.sum()
            accounts = generate_accounts(spec, self.table, price0, ctx.rng, history, weights)
        self._setup(accounts, spec.margin_mode, spec.insurance_fund_usd)
        self._clipped = accounts.clipped  # logged at the first mark
        # open interest as a flow: the contracts (units) the input holds, per side
        self.rng, self.law = ctx.rng, spec if spec.oi_rebuild_half_life is not None else None
        self.close_share = 0.0
        if self.law is not None:
            half_life_s = spec.oi_rebuild_half_life.total_seconds()
            # new accounts arrive in hourly batches (the same expected flow, far fewer book
            # re-sorts and opening rounds than one batch a step)
            self.rebuild_every = max(1, round(3600.0 / self.step_seconds))
            interval_s = self.rebuild_every * self.step_seconds
            self.rebuild_share = 1.0 - 0.5 ** (interval_s / half_life_s)
            self.target_units = spec.open_interest_usd / price0
            shares = np.array([spec.long_share, 1.0 - spec.long_share])
            counts = np.array([np.sum(accounts.side > 0), np.sum(accounts.side < 0)])
            side_units = 2.0 * self.target_units * shares
            self.mean_units = np.where(counts > 0, side_units / np.maximum(counts, 1), np.inf)
            # positions their traders close: a share per hourly batch, replaced by new ones
            hold = spec.holding_half_life
            self.close_share = (
                0.0 if hold is None else 1.0 - 0.5 ** (interval_s / hold.total_seconds())
            )
        self._closing: np.ndarray | None = None
        self._closing_units = 0.0  # their order's units (long +), summed when drawn
        self._closed_units = np.zeros(2)  # long, short units closed since the last opening

    # ------------------------------------------------------------------ build

    def _setup(self, accounts: Accounts, mode: str, fund_usd: float) -> None:
        self.mode = mode
        self.side = accounts.side.astype(np.int8)
        margin = accounts.position_margin
        self.collateral = accounts.wallet_usd.copy() if mode == "cross" else margin
        self.reserve = accounts.wallet_usd - margin if mode == "isolated" else np.zeros(len(margin))
        self.size, self.entry = accounts.size.astype(float), accounts.entry.astype(float)
        n = len(self.side)
        self.funding_ref = np.zeros(n)  # funding index at the last settlement
        self.stage = np.zeros(n, dtype=np.int8)  # 1: liquidation under way
        self.pending = np.zeros(n, dtype=bool)  # has an unfilled liquidation order
        self.last_chunk_s = None if self.cex_waterfall else np.full(n, -np.inf)
        self.used = n  # slots in use; slots beyond the sorted book hold newly opened accounts

        self.funding_index = np.zeros(2)  # cumulative funding paid per unit: long, short
        self.drift = float(np.sign(self.funding_rate))
        self.open_units = np.array([self.size[self.side > 0].sum(), self.size[self.side < 0].sum()])
        self.fund_units = 0.0
        self.fund_cash = float(fund_usd)
        self._fund_empty = self.fund_cash <= 0.0
        self.idle_usd = 0.0  # wallets left by closed accounts, dropped from the arrays
        # wallets brought to the venue by newly opened accounts, net of the equity taken out
        # by accounts their traders closed
        self.deposits_usd = 0.0
        self._opening: tuple[np.ndarray, ...] | None = None
        self._watch = _EMPTY
        self._watch_checked_price, self._watch_safe_distance = np.nan, 0.0
        self._pending_idx = _EMPTY
        self._pending_qty = np.zeros(0)
        self._pending_partial = np.zeros(0, dtype=bool)
        self._step = -1
        self._units = float(np.sum(self.side * self.size))
        self._cash = (
            float(np.sum(self.collateral + self.reserve - self.side * self.size * self.entry))
            + self.fund_cash
        )
        self._sort_book(spare=0)

    def _book_keys(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        """Sort key, tier, funding coefficient and tier-crossing room of accounts `idx`
        (funding settled), in the frame of a zero funding index Φ (see
        `_triggered_from_book`): key = −side·liquidation price + Φ·coef with
        coef = 1/(1 − side·MMR), since funding Φ moves a liquidation price by Φ·coef; room =
        the distance of the liquidation price to its tier bound in the direction funding
        moves it (drift = sign of the rate) + the shift funding has already made, or None
        when funding cannot cross a bound. The liquidation price is the highest (long) /
        lowest (short) of the per-tier prices, since MM is the largest tier line
        (venues.tiers): one compiled pass over the accounts and tiers
        (`perp_kernels.book_keys`)."""
        table = self.table
        key, tier, coef, room = kernels.book_keys(
            idx, self.side, self.size, self.collateral, self.entry, table.amount_usd,
            table.mmr, table.upper_usd, table.lower_usd, self.funding_index, self.drift,
        )  # fmt: skip
        if len(table.mmr) == 1 or self.drift == 0.0:
            room = None
        return key, tier, coef, room

    def _sort_book(self, spare: int) -> None:
        """Sort the open positions into the book by liquidation price, per (side, tier)
        segment, leaving `spare` empty slots after them (the tail) for accounts opened later.

        Called at the start and, with no liquidation order outstanding, whenever the new
        accounts fill the tail. Keys, tiers and rooms live in the
        frame of a zero funding index, so those of untouched accounts (the book and the tail)
        are kept and only touched accounts are keyed again; the book, already in order, is
        merged with the rest segment by segment (O(n), no full sort); touched accounts settle
        their funding first, so their keys come from their wallets now. Closed accounts leave
        the arrays; their wallets stay in `idle_usd`."""
        n_tiers = len(self.table.mmr)
        with_room = n_tiers > 1 and self.drift != 0.0
        # the book's new order; the old keys and the tail's are dropped before the columns move
        perm, self._sorted_group, self._sortkey, sorted_room = self._merged(n_tiers, with_room)
        self._book_room = sorted_room if with_room else None
        # the tail: keys of new accounts, unsorted, and the first price that reaches one
        self._tail_key, self._tail_coef, self._tail_room = np.zeros((3, spare))
        self._tail_tier = np.zeros(spare, dtype=np.int64)
        self._tail_long, self._tail_short = -np.inf, np.inf
        m = len(perm)
        names = ["side", "size", "entry", "collateral", "funding_ref", "stage"]
        if self.mode == "isolated":
            names.append("reserve")
        else:  # cross margin keeps no reserve: zeros throughout (`_setup`, openings, closes)
            self.reserve = np.zeros(m + spare)
        for name in names:
            old = getattr(self, name)
            new = np.empty(m + spare, dtype=old.dtype)
            np.take(old, perm, out=new[:m])
            new[m:] = 0
            setattr(self, name, new)
        if self.last_chunk_s is not None:
            self.last_chunk_s = np.concatenate([self.last_chunk_s[perm], np.full(spare, -np.inf)])
        self.used = self.book_end = m
        self.pending = np.zeros(m + spare, dtype=bool)
        self.pristine = np.zeros(m + spare, dtype=bool)  # in the sorted book or the tail
        self.pristine[:m] = self.stage[:m] == 0
        self._watch = np.flatnonzero(self.stage[:m] != 0)  # liquidations under way
        self._watch_changed()

        ids = np.arange(2 * n_tiers, dtype=self._sorted_group.dtype)  # no cast of the book
        self.g_start = np.searchsorted(self._sorted_group, ids, side="left")
        self.g_end = np.searchsorted(self._sorted_group, ids, side="right")
        keep = self.g_end > self.g_start
        ids, self.g_start, self.g_end = ids[keep], self.g_start[keep], self.g_end[keep]
        self.g_ids = ids
        self.g_next = self.g_start.copy()
        self.g_sign = np.where(ids < n_tiers, 1.0, -1.0)
        self.g_side_index = (ids >= n_tiers).astype(np.int64)  # 0 long, 1 short
        self.g_coef = 1.0 / (1.0 - self.g_sign * self.table.mmr[ids % n_tiers])
        self.g_head = self._sortkey[self.g_start]
        self._book_band = NO_SCREEN

        # tier-crossing rooms sorted per segment (see module docstring)
        self._room_sorted = self._room_order = None
        if with_room:
            self._index_rooms()

    def _merged(self, n_tiers: int, with_room: bool) -> tuple[np.ndarray, ...]:
        """The open accounts' slots in the book's new order, with their groups, keys and
        rooms (`_sort_book`; its temporaries are freed before the columns move)."""
        n = self.used
        known = hasattr(self, "_sortkey")  # keys of untouched accounts: the book's, the tail's
        end = self.book_end if known else 0
        # what the last sort and the tail know: the keys, groups and rooms of untouched accounts
        book_key, book_group, tail_key, tail_tier, pristine = (
            (self._sortkey, self._sorted_group, self._tail_key, self._tail_tier, self.pristine)
            if known else (_NO_FLOATS, _NO_GROUP, _NO_FLOATS, _NO_TIER, _NO_FLAGS)
        )  # fmt: skip
        book_room, tail_room = (
            (self._book_room, self._tail_room) if known and with_room else (_NO_FLOATS, _NO_FLOATS)
        )
        # one compiled call: closed accounts' wallets; the book's untouched accounts, in order; the
        # rest (the tail's open accounts and the book's touched ones), of which the touched
        # (`fresh`, at rows `at` of the rest) are keyed again
        dead, book, book_group, book_key, book_room, rest, rest_group, rest_key, rest_room, \
            fresh, at = kernels.book_split(
                n, end, known, self.size, self.collateral, self.reserve, self.side, pristine,
                book_key, book_group, book_room, tail_key, tail_tier, tail_room, n_tiers,
                with_room,
            )  # fmt: skip
        self.idle_usd += float(np.sum(dead))
        self._settle_funding(fresh)
        key, tier, _, room = self._book_keys(fresh)
        rest_key[at] = key
        rest_group[at] = tier + np.where(self.side[fresh] > 0, 0, n_tiers)
        if with_room:
            rest_room[at] = room
        # the book's untouched accounts are in (group, key) order already; the rest is sorted
        order = _order_by_group(rest_group, rest_key)
        if with_room:
            rest_room = rest_room[order]
        return kernels.merge_by_group(
            book, book_group, book_key, book_room, rest[order], rest_group[order],
            rest_key[order], rest_room, with_room,
        )  # fmt: skip

    def _funding_shift(self) -> np.ndarray:
        """How far funding has moved the liquidation prices of each segment, towards its
        tier bounds (≥ 0, growing with every settlement): the rooms' frame."""
        return self.drift * self.g_sign * self.funding_index[self.g_side_index] * self.g_coef

    def _index_rooms(self) -> None:
        """Sort by (segment, room) the book accounts funding could push across a tier bound
        before the shift grows by `ROOM_MARGIN` of the price (a few % of the book: rooms are
        mostly far larger), and remember that limit; `_release_tier_crossings` indexes again
        if funding ever passes it, so every account whose room it uses up is found, in the
        order a sort of all the rooms would give."""
        shift = self._funding_shift()
        self._room_limit = float(shift.max(initial=0.0)) + ROOM_MARGIN * self._last_mark
        near = np.flatnonzero(self._book_room < self._room_limit)
        order = near[_order_by_group(self._sorted_group[near], self._book_room[near])]
        self._room_order, self._room_sorted = order, self._book_room[order]
        group = self._sorted_group[order]
        self.g_room_start = np.searchsorted(group, self.g_ids, side="left")
        self.g_room_end = np.searchsorted(group, self.g_ids, side="right")
        self.g_room_next = self.g_room_start.copy()

    # ------------------------------------------------------------------ population interface

    def mark(self, view: MarketView, log: EventLog) -> None:
        if not self.enabled:
            return
        price = float(view.mark[self.asset])  # margin and liquidation use the mark price
        self._last_mark = price
        if self._clipped:
            self._log_clipped(log, self._clipped, "at the start")
            self._clipped = 0
        if view.step != self._step:
            self._step = view.step
            self._offload_left_usd = self._offload_cap_usd
            self._pay_funding(view, price, log)
            due = self.law is not None and view.step % self.rebuild_every == 0
            if due and view.is_open[self.asset]:
                self._open_positions()  # first: it may re-sort the book's slots
                self._queue_closes()
        if not view.is_open[self.asset]:
            return  # no mark price, no liquidation engine while the venue is shut
        from_book = self._triggered_from_book(price)
        if self.used > self.book_end and not self._tail_long < price < self._tail_short:
            from_tail = self._triggered_from_tail(price)  # the tail's screen, inline
            from_book = np.concatenate([from_book, from_tail]) if len(from_tail) else from_book
        from_watch = self._triggered_from_watch(price)
        if len(from_book) or len(from_watch):
            triggered = np.concatenate([from_book, from_watch]) if len(from_watch) else from_book
            self._liquidate(triggered, price, view.time.value / 1e9, log)
            self._watch_add(from_book)
            self._watch_changed()

    def orders(self) -> Orders:
        if self.fund_units == 0.0:  # most rounds: no taken-over position, often no order
            self._queued_offload = 0.0
            if self._opening is None and self._closing is None and not len(self._pending_idx):
                return Orders.empty()
        else:
            self._queued_offload = self._offload_units()
        owners, quantity = [], []
        if len(self._pending_idx):
            owners.append(ACCOUNTS)
            quantity.append(-float(np.sum(self.side[self._pending_idx] * self._pending_qty)))
        if self._queued_offload != 0.0:
            owners.append(FUND)
            quantity.append(-self._queued_offload)
        if self._opening is not None:
            _, side, size, _, _ = self._opening
            owners.append(OPENING)
            quantity.append(float(np.sum(side * size)))
        if self._closing is not None:
            owners.append(CLOSING)
            quantity.append(-self._closing_units)
        return Orders(
            np.full(len(owners), self.asset, dtype=np.int64),
            np.array(quantity),
            np.array(owners, dtype=np.int64),
        )

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        self._watch_changed()
        for owner, done, fill_price in zip(orders.owner, filled, price, strict=True):
            if not done:
                continue
            if owner == ACCOUNTS:
                self._settle_liquidation_orders(float(fill_price), log)
            elif owner == FUND:
                self._settle_fund_offload(float(fill_price), log)
            elif owner == OPENING:
                self._settle_openings(float(fill_price), log)
            else:
                self._settle_closes(float(fill_price), log)

    def holdings(self, n_assets: int) -> np.ndarray:
        """Net units of the asset held by accounts and the insurance fund (+ long)."""
        out = np.zeros(n_assets)
        out[self.asset] = self._units
        return out

    def cash(self) -> float:
        """Wallets + insurance fund − cost of open positions (spot equivalent) − deposits of
        new accounts (their traders' cash outside the venue), USD."""
        return self._cash

    def cash_by_currency(self) -> dict[str, float]:
        return {self.currency: self._cash}

    # ------------------------------------------------------------------ bookkeeping views

    def balance_sheet(self, price: float) -> dict[str, float]:
        """Totals recomputed from the account arrays (for checks): units and cash as the
        ledgers should hold them, the accounts' equity and the fund's equity at `price`."""
        accrued = self.size * (self.funding_index[self._side_index(self.side)] - self.funding_ref)
        position = self.side * self.size
        cash = self.collateral + self.reserve - accrued - position * self.entry
        return {
            "units": float(position.sum() + self.fund_units),
            "cash_usd": float(cash.sum() + self.fund_cash + self.idle_usd - self.deposits_usd),
            "accounts_equity_usd": float((cash + position * price).sum() + self.idle_usd),
            "fund_equity_usd": self.fund_equity(price),
        }

    def recomputed_totals(self, n_assets: int) -> tuple[np.ndarray, dict[str, float]]:
        """`holdings` and `cash_by_currency` recomputed from the account and fund arrays
        (the ledgers see only trades with the market; fees, funding, takeovers and ADL move
        money inside the arrays): the engine's invariant check compares the two."""
        sheet = self.balance_sheet(self._last_mark)
        units = np.zeros(n_assets)
        units[self.asset] = sheet["units"]
        return units, {self.currency: sheet["cash_usd"]}

    def open_interest_usd(self, price: float) -> float:
        """One-sided open interest of the accounts, (long + short units)/2 at `price`, USD."""
        return 0.5 * float(self.open_units.sum()) * price

    def fund_equity(self, price: float) -> float:
        """Insurance fund (or vault) balance with its open position at `price`, USD."""
        return self.fund_cash + self.fund_units * price

    def margin(self, idx: np.ndarray, price: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Margin balance and maintenance margin of accounts `idx` at `price` (one price, or
        one per account), USD."""
        if isinstance(price, float):
            balance, maintenance, _ = self._margin_tier(idx, price)
            return balance, maintenance
        side = self.side[idx]
        balance = self._wallet_balance(idx) + side * self.size[idx] * (price - self.entry[idx])
        maintenance = self.table.maintenance_margin(self.size[idx] * price)
        return self._with_collateral(idx, balance), maintenance

    def _margin_tier(self, idx: np.ndarray, price: float) -> tuple[np.ndarray, ...]:
        """`margin` and the tier of each position's notional at `price`, in one compiled
        pass over the accounts (`perp_kernels.margin_tier`)."""
        table = self.table
        balance, maintenance, tier = kernels.margin_tier(
            idx, self.side, self.size, self.collateral, self.entry, self.funding_ref,
            self.funding_index, price, table.upper_usd, table.mmr, table.amount_usd,
        )  # fmt: skip
        return self._with_collateral(idx, balance), maintenance, tier

    def _with_collateral(self, idx: np.ndarray, balance: np.ndarray) -> np.ndarray:
        """The margin balance with what else the wallets hold (none here: USD wallets)."""
        return balance

    @staticmethod
    def _side_index(side: np.ndarray) -> np.ndarray:
        return (side < 0).astype(np.intp)

    def _wallet_balance(self, idx: np.ndarray) -> np.ndarray:
        """Collateral net of funding accrued since the account's last settlement."""
        accrued = self.size[idx] * (
            self.funding_index[self._side_index(self.side[idx])] - self.funding_ref[idx]
        )
        return self.collateral[idx] - accrued

    def _settle_funding(self, idx: np.ndarray) -> None:
        self.collateral[idx] = self._wallet_balance(idx)
        self.funding_ref[idx] = self.funding_index[self._side_index(self.side[idx])]

    def _watch_add(self, idx: np.ndarray) -> None:
        idx = idx[self.size[idx] > 0]
        if len(idx):
            self._watch = np.concatenate([self._watch, idx])
            self._watch_changed()

    # ------------------------------------------------------------------ funding

    def _pay_funding(self, view: MarketView, price: float, log: EventLog) -> None:
        now = view.time.value / 1e9
        interval_s = self.rules.funding_interval_hours * 3600.0
        if math.floor(now / interval_s) == math.floor((now - self.step_seconds) / interval_s):
            return  # most steps: no settlement instant in (now − step, now] (a screen)
        count = settlements_between(now - self.step_seconds, now, self.rules.funding_interval_hours)
        paid = 0.0
        for _ in range(count):
            long_units, short_units = self.open_units
            matched = min(long_units, short_units)
            if matched <= 0.0 or self.funding_rate == 0.0:
                break
            payment = self.funding_rate * price * matched  # longs → shorts, USD
            self.funding_index += (payment / long_units, -payment / short_units)
            self._book_band = NO_SCREEN  # the segments' bounds moved
            paid += payment
        if paid == 0.0:
            return
        self._watch_changed()
        self._tail_funding()
        log.add(
            "perp_funding",
            population=self.name,
            venue=self.venue_id,
            asset=self.asset_id,
            count=count,
            notional_usd=paid,
            price=price,
            detail=f"{self.funding_rate:.6%} per settlement, "
            + ("longs pay shorts" if self.funding_rate > 0 else "shorts pay longs"),
        )
        if self._room_sorted is not None:
            self._release_tier_crossings()

    def _release_tier_crossings(self) -> None:
        """Move to the watch list the book accounts whose liquidation price funding has pushed
        across a tier boundary (their segment's shift no longer describes them)."""
        shift = self._funding_shift()
        if shift.max(initial=0.0) > self._room_limit:  # funding used up the margin: index again
            self._index_rooms()
        for g in range(len(self.g_start)):
            lo, hi, done = self.g_room_start[g], self.g_room_end[g], self.g_room_next[g]
            cut = lo + int(np.searchsorted(self._room_sorted[lo:hi], shift[g], side="left"))
            if cut > done:
                moved = self._room_order[done:cut]
                moved = moved[self.pristine[moved]]
                self.pristine[moved] = False
                self._watch_add(moved)
                self.g_room_next[g] = cut

    # ------------------------------------------------------------------ new positions

    def _open_positions(self) -> None:
        """Queue new accounts for `rebuild_share` of the contracts missing from the input
        (SPEC §4: open interest is a flow), drawn from the input's laws: long share, lognormal
        sizes with the input's mean account per side, leverage and wallet buffer. The count
        per side is rounded at random, so the units opened have the right expectation and a
        shortfall is made up in later steps. Their market order opens them at the fill price
        (`_settle_openings`)."""
        if self._opening is not None or self._closing is not None or len(self._pending_idx):
            return  # a rebuild of the book needs no order of accounts outstanding
        gap = max(self.target_units - 0.5 * float(self.open_units.sum()), 0.0)
        replace = float(self._closed_units.sum())  # contracts their traders closed
        if gap <= 0.0 and replace <= 0.0:
            return
        self._closed_units[:] = 0.0
        spec, rng = self.law, self.rng
        units = (2.0 * gap * self.rebuild_share + replace) * np.array(
            [spec.long_share, 1.0 - spec.long_share]
        )
        count = np.floor(units / self.mean_units + rng.random(2)).astype(np.int64)
        k = int(count.sum())
        if k == 0:
            return
        if self.used + k > len(self.size):
            self._sort_book(spare=max(k, 1024, self.used // 3))
        side = np.repeat(np.array([1, -1], np.int8), count)
        sigma = spec.size_dispersion  # lognormal sizes with the input's mean per side
        size = np.repeat(self.mean_units, count) * np.exp(
            sigma * rng.standard_normal(k) - 0.5 * sigma**2
        )
        leverage = np.asarray(spec.leverage.sample(rng, k), float)
        slots = np.arange(self.used, self.used + k)
        self.used += k
        self._opening = (slots, side, size, leverage, _buffer(spec, rng, k))

    def _queue_closes(self) -> None:
        """Traders close positions (`holding_half_life`): each open account not under
        liquidation closes with probability `close_share` this hour — slots drawn uniformly
        with replacement, k ~ Binomial(slots, share), so each slot is drawn with probability
        ≈ share whether or not it is open; the open ones close with one market order."""
        if not self.close_share or self._closing is not None or len(self._pending_idx):
            return
        k = int(self.rng.binomial(self.used, self.close_share))
        if k == 0:
            return
        # each slot once; out of the liquidation engine's reach until the close fills (a
        # step later when the round limit cuts the cascade): pending, not pristine
        idx, side, size = kernels.pick_closes(
            np.sort(self.rng.integers(0, self.used, k)), self.side, self.size, self.stage,
            self.pending, self.pristine,
        )  # fmt: skip
        if len(idx):
            self._closing = idx
            # the order's units, summed once: the closing accounts' sides and sizes cannot
            # change before it fills (pending: out of the liquidation engine's and ADL's reach)
            self._closing_units = float(np.sum(side * size))
            self._closed_units += (size[side > 0].sum(), size[side < 0].sum())

    def _settle_closes(self, price: float, log: EventLog) -> None:
        """Close the queued accounts at the fill `price`: their equity leaves the venue (net
        deposits fall); a loss beyond it, possible only on a fill past bankruptcy, is the
        fund's, as after a market liquidation."""
        idx, self._closing = self._closing, None
        # funding settled, equity read and the columns cleared (as `_close`) in one pass
        side, size, equity = kernels.settle_closes(
            idx, self.side, self.size, self.collateral, self.reserve, self.entry,
            self.funding_ref, self.stage, self.pending, self.pristine, self.funding_index, price,
            self.mode == "isolated",
        )  # fmt: skip
        deficit = np.maximum(-equity, 0.0)
        self.fund_cash -= float(deficit.sum())
        self.deposits_usd -= float(np.maximum(equity, 0.0).sum())
        traded = -side * size
        units = float(traded.sum())
        self._units += units
        self._cash -= units * price
        self.open_units -= (size[side == 1].sum(), size[side == -1].sum())
        self._log_by_side(
            log, "perp_close", side, traded, size * price, price,
            "positions their traders closed at market; equity withdrawn",
        )  # fmt: skip

    def _settle_openings(self, price: float, log: EventLog) -> None:
        """Open the queued accounts at the fill `price`: position margin size·price/leverage
        (leverage clipped to the tier maximum), wallet = margin·(1 + buffer) deposited from
        outside the venue (`deposits_usd`)."""
        slots, side, size, leverage, buffer = self._opening
        self._opening = None
        # the new accounts' slots are consecutive (`_open_positions`); their columns written
        # in one compiled pass
        lo, k = int(slots[0]), len(slots)
        new, tail = slice(lo, lo + k), slice(lo - self.book_end, lo - self.book_end + k)
        table = self.table
        clipped, wallet = kernels.open_accounts(
            lo, side, size, leverage, buffer, price, table.upper_usd, table.max_leverage,
            self.mode == "cross", self.funding_index, self.side, self.size, self.entry,
            self.collateral, self.reserve, self.funding_ref,
        )  # fmt: skip
        if clipped:
            self._log_clipped(log, clipped, "among new positions")
        self.open_units += (size[side > 0].sum(), size[side < 0].sum())
        self.deposits_usd += float(wallet.sum())
        traded = float(np.sum(side * size))
        self._units += traded
        self._cash -= traded * price
        key, tier, coef, room = self._book_keys(slots)
        self._tail_key[tail], self._tail_coef[tail], self._tail_tier[tail] = key, coef, tier
        if room is not None:
            self._tail_room[tail] = room
        self.pristine[new] = True
        high, low = kernels.tail_extremes(  # liquidation prices at Φ now
            key, coef, side, self.pristine[new], self.funding_index
        )
        self._tail_long, self._tail_short = max(self._tail_long, high), min(self._tail_short, low)
        self._log_by_side(
            log, "perp_open", side, side * size, size * price, price,
            "new positions at the price of the moment",
        )  # fmt: skip

    # ------------------------------------------------------------------ the tail

    def _tail_slots(self) -> tuple[slice, int]:
        """The tail's slots in the account columns, and how many (its rows in `_tail_*`)."""
        return slice(self.book_end, self.used), self.used - self.book_end

    def _tail_triggers(self) -> None:
        """The highest long and lowest short liquidation price in the tail now."""
        tail, k = self._tail_slots()
        self._tail_long, self._tail_short = kernels.tail_extremes(
            self._tail_key[:k], self._tail_coef[:k], self.side[tail], self.pristine[tail],
            self.funding_index,
        )  # fmt: skip

    def _triggered_from_tail(self, price: float) -> np.ndarray:
        """New accounts the price liquidates: the book's test on unsorted keys, run only when
        the price reaches the tail's first liquidation price (which moves in the same pass)."""
        if self._tail_long < price < self._tail_short:
            return _EMPTY
        tail, k = self._tail_slots()
        hit, self._tail_long, self._tail_short = kernels.tail_hits(
            self._tail_key[:k], self._tail_coef[:k], self.side[tail], self.pristine[tail],
            self.funding_index, price, self.rules.inclusive_trigger,
        )  # fmt: skip
        return self.book_end + hit

    def _tail_funding(self) -> None:
        """After a funding payment: tail accounts funding pushed across a tier bound go to
        the watch list (as in `_release_tier_crossings`); the first liquidation prices move."""
        if self.used == self.book_end:
            return
        if len(self.table.mmr) == 1 or self.drift == 0.0:  # no rooms (`_book_keys`)
            self._tail_triggers()
            return
        tail, k = self._tail_slots()
        moved, self._tail_long, self._tail_short = kernels.tail_crossings(
            self._tail_key[:k], self._tail_coef[:k], self._tail_room[:k], self.side[tail],
            self.pristine[tail], self.funding_index, self.drift,
        )  # fmt: skip
        self._watch_add(self.book_end + moved)

    # ------------------------------------------------------------------ triggers

    def _triggered_from_book(self, price: float) -> np.ndarray:
        """Book accounts the price liquidates, in one compiled pass over the segments
        (`perp_kernels.book_hits`), which also returns the screen: a price strictly inside
        `_book_band` reaches no segment's next account, so most marks return here."""
        low, high = self._book_band
        if low < price < high:
            return _EMPTY
        hits, low, high = kernels.book_hits(
            price, self.g_sign, self.g_side_index, self.g_coef, self.g_head, self.g_next,
            self.g_end, self._sortkey, self.pristine, self.funding_index,
            self.rules.inclusive_trigger,
        )  # fmt: skip
        self._book_band = (low, high) if self.book_screen else NO_SCREEN
        return hits

    def _triggered_from_watch(self, price: float) -> np.ndarray:
        if not len(self._watch):
            return _EMPTY
        # Between changes to the watched accounts, margin slack moves with the price at most
        # by size·(1 + MMR) ≤ 2·size per dollar, so a move smaller than the tightest
        # slack / (2·size) cannot trigger anyone: skip the scan (a pure speed-up).
        if abs(price - self._watch_checked_price) < self._watch_safe_distance:
            return _EMPTY
        self._watch, idx = kernels.watch_split(self._watch, self.size, self.pending)
        if not len(idx):  # all under way: nothing to check until an order fills
            self._watch_checked_price, self._watch_safe_distance = price, np.inf
            return _EMPTY
        balance, maintenance = self.margin(idx, price)
        hit = balance <= maintenance if self.rules.inclusive_trigger else balance < maintenance
        self.stage[idx[~hit]] = 0  # compliant again: a later breach is a new liquidation
        safe = (balance - maintenance)[~hit] / (2.0 * self.size[idx[~hit]])
        self._watch_checked_price = price
        self._watch_safe_distance = float(safe.min()) if len(safe) and not hit.any() else 0.0
        return idx[hit]

    def _watch_changed(self) -> None:
        self._watch_safe_distance = 0.0

    # ------------------------------------------------------------------ liquidation

    def _liquidate(self, idx: np.ndarray, price: float, now_s: float, log: EventLog) -> None:
        side, size = self.side[idx], self.size[idx]
        balance, maintenance, tier = self._margin_tier(idx, price)
        notional = size * price
        if self.cex_waterfall:
            # one IOC down to the top of the next lower tier, if there is margin to save
            # (facts 1.2.5, 1.3.3); otherwise, or on a second breach, takeover or ADL
            starting, derisk, quantity, rest = kernels.cex_triage(
                idx, self.stage, self.size, balance, tier, self.table.upper_usd, price
            )
        else:
            starting = self.stage[idx] == 0
        self._log_by_side(
            log, "perp_liquidation", side[starting], -side[starting] * size[starting],
            notional[starting], price, "accounts entering liquidation",
        )  # fmt: skip
        if self.cex_waterfall:
            self._send(derisk, quantity, partial=True)
            self._to_fund_or_adl(rest, price, log, "insurance fund")
            return
        # hyperliquid-like: ADL below zero (1.5.5), backstop below 2/3·MM (1.5.4), else market
        # orders, 20% first above $100k and the rest after the cooldown (1.5.3)
        negative = balance < 0
        backstop = ~negative & (balance < self.rules.backstop_share * maintenance)
        market = ~negative & ~backstop
        market &= now_s - self.last_chunk_s[idx] >= hyperliquid.COOLDOWN_SECONDS
        chunk = market & starting & (notional > hyperliquid.PARTIAL_ABOVE_USD)
        full = market & ~chunk
        self._send(idx[chunk], hyperliquid.PARTIAL_SHARE * size[chunk], partial=True)
        self._send(idx[full], size[full], partial=False)
        self.last_chunk_s[idx[chunk]] = now_s
        self.stage[idx] = 1
        self._to_fund_or_adl(idx[backstop], price, log, "liquidator vault backstop")
        if self.adl_enabled:
            self._deleverage(idx[negative], price, log)
        else:
            self._take_over(idx[negative], price, log, label="liquidator vault")

    def _to_fund_or_adl(self, idx: np.ndarray, price: float, log: EventLog, label: str) -> None:
        """Takeover while the fund has capacity (facts 1.2.7). Beyond it, ADL only shares a
        deficit (facts 1.1.7, 1.2.8): a position whose margin balance at the mark is still
        positive goes to the book as a market order for all of it (its margin left after the
        fee stays its own; a fill worse than bankruptcy is covered by the fund, 1.3.3), and
        only positions already in deficit are auto-deleveraged."""
        overflow = self._take_over(idx, price, log, label=label)
        if not len(overflow):
            return
        balance, _ = self.margin(overflow, price)
        solvent, bankrupt = overflow[balance >= 0.0], overflow[balance < 0.0]
        self._log_by_side(
            log, "insurance_fund_at_capacity", self.side[overflow],
            -self.side[overflow] * self.size[overflow], self.size[overflow] * price, price,
            "fund at capacity (facts 1.2.7): solvent positions to the book, deficits to ADL",
        )  # fmt: skip
        self._send(solvent, self.size[solvent], partial=False)
        self._deleverage(bankrupt, price, log)

    def _send(self, idx: np.ndarray, quantity: np.ndarray, partial: bool) -> None:
        """Queue market orders reducing positions `idx` by `quantity` units."""
        if not len(idx):
            return
        self.pending[idx] = True
        self._pending_idx = np.concatenate([self._pending_idx, idx])
        self._pending_qty = np.concatenate([self._pending_qty, quantity])
        self._pending_partial = np.concatenate([self._pending_partial, np.full(len(idx), partial)])

    def _close(self, idx: np.ndarray) -> None:
        """Positions `idx` are gone with all their collateral (the reserve of isolated
        accounts stays with them)."""
        longs, shorts = kernels.close_positions(
            idx, self.side, self.size, self.collateral, self.funding_ref, self.stage,
            self.funding_index,
        )  # fmt: skip
        self.open_units[0] -= longs.sum()
        self.open_units[1] -= shorts.sum()

    def _take_over(self, idx: np.ndarray, price: float, log: EventLog, label: str) -> np.ndarray:
        """The fund buys positions `idx` at their bankruptcy prices (so it keeps their margin
        or covers their deficit), in order, while within capacity; returns the rest."""
        if not len(idx):
            return idx
        side, size = self.side[idx], self.size[idx]
        wallet = self._wallet_balance(idx)
        n = len(idx)
        if self.capacity is not None:  # without a cap the fund takes them all
            balance = wallet + side * size * (price - self.entry[idx])
            n = takeover_count(
                self.fund_units, self.fund_equity(price), price, side * size, balance,
                self.capacity,
            )  # fmt: skip
        take, side, size = idx[:n], side[:n], size[:n]
        if n:
            bankruptcy = self.entry[take] - side * wallet[:n] / size
            units = side * size
            self.fund_units += float(np.sum(units))
            self.fund_cash -= float(np.sum(units * bankruptcy))
            self._close(take)
            self._check_fund(price, log)
            self._log_by_side(
                log, "perp_takeover", side, units, size * bankruptcy, None,
                f"{label} at the bankruptcy price",
            )  # fmt: skip
        return idx[n:]

    def _deleverage(self, idx: np.ndarray, price: float, log: EventLog) -> None:
        """Close bankrupt positions `idx` (margin balance < 0 at the mark) against the ranked
        profitable opposite positions (facts 1.2.8, 1.5.5), at their bankruptcy prices or at
        the mark (`rules.adl_price`); the fund takes what is left."""
        for sign in (1, -1):
            bankrupt = idx[self.side[idx] == sign]
            if not len(bankrupt):
                continue
            size = self.size[bankrupt]
            bankruptcy = self.entry[bankrupt] - sign * self._wallet_balance(bankrupt) / size
            n = self.used
            opposite = (self.side[:n] == -sign) & (self.size[:n] > 0) & ~self.pending[:n]
            candidates = np.flatnonzero(opposite)
            c_size, c_entry = self.size[candidates], self.entry[candidates]
            pnl = -sign * c_size * (price - c_entry)
            profitable = pnl > 0
            candidates, c_size, c_entry, pnl = (
                candidates[profitable],
                c_size[profitable],
                c_entry[profitable],
                pnl[profitable],
            )
            wallet = self._wallet_balance(candidates)
            if self.cex_waterfall:
                maintenance = self.table.maintenance_margin(c_size * price)
                score = binance.leverage_pnl(pnl, wallet, maintenance)
            else:
                score = hyperliquid.adl_score(-sign, price, c_entry, c_size * price, wallet + pnl)
            ranked = candidates[rank_counterparties(score, c_size, float(size.sum()))]
            # counterparties close at the bankruptcy price (facts 1.2.8), absorbing the
            # deficit, or at the mark (1.5.5), the fund (vault) covering the deficit
            at_mark = self.rules.adl_price == "mark"
            fill = np.full(len(size), price) if at_mark else bankruptcy
            closed, value, unmatched = adl_match(size, fill, self.size[ranked])
            self._settle_funding(ranked)
            self.collateral[ranked] += -sign * (value - closed * self.entry[ranked])
            full = closed >= self.size[ranked]
            self.size[ranked] = np.where(full, 0.0, self.size[ranked] - closed)
            self.open_units[0 if sign < 0 else 1] -= float(closed.sum())  # the opposite side
            newly = ranked[self.pristine[ranked]]
            self.pristine[newly] = False
            self._watch_add(newly)
            if len(ranked):
                log.add(
                    "perp_adl",
                    population=self.name,
                    venue=self.venue_id,
                    asset=self.asset_id,
                    count=len(ranked),
                    quantity=sign * float(closed.sum()),
                    notional_usd=float(value.sum()),
                    price=float(value.sum() / closed.sum()),
                    detail=f"{SIDE_NAMES[-sign]} positions deleveraged against bankrupt "
                    f"{SIDE_NAMES[sign]} positions",
                )
            # the last bankrupt positions in order are the unmatched ones
            covered = np.clip(size.sum() - unmatched - (np.cumsum(size) - size), 0.0, size)
            tail = size - covered
            if at_mark:  # the fund pays the deficit of the units closed at the mark
                deficit = float(np.sum(covered * sign * (bankruptcy - price)))
                self.fund_cash -= deficit
                if deficit > 0.0:
                    log.add(
                        "insurance_fund_cover",
                        population=self.name,
                        venue=self.venue_id,
                        asset=self.asset_id,
                        side=SIDE_NAMES[sign],
                        count=int(np.count_nonzero(covered)),
                        notional_usd=deficit,
                        price=price,
                        detail=f"{SIDE_NAMES[sign]}: deficit of positions deleveraged at the mark",
                    )
            if unmatched > 0:
                self.fund_units += sign * float(tail.sum())
                self.fund_cash -= sign * float(np.sum(tail * bankruptcy))
                log.add(
                    "perp_takeover",
                    population=self.name,
                    venue=self.venue_id,
                    asset=self.asset_id,
                    side=SIDE_NAMES[sign],
                    count=int(np.count_nonzero(tail)),
                    quantity=sign * float(tail.sum()),
                    notional_usd=float(np.sum(tail * bankruptcy)),
                    price=float(np.sum(tail * bankruptcy) / tail.sum()),
                    detail=f"{SIDE_NAMES[sign]}: ADL counterparties exhausted: the fund takes "
                    "the rest at the bankruptcy price, beyond its capacity",
                )
            self._close(bankrupt)
        self._check_fund(price, log)

    # ------------------------------------------------------------------ fills

    def _settle_liquidation_orders(self, price: float, log: EventLog) -> None:
        idx, quantity, partial = self._pending_idx, self._pending_qty, self._pending_partial
        self._pending_idx, self._pending_qty = _EMPTY, np.zeros(0)
        self._pending_partial = np.zeros(0, dtype=bool)
        self.pending[idx] = False
        side = self.side[idx]
        self._settle_funding(idx)
        self.collateral[idx] += side * quantity * (price - self.entry[idx])
        remaining = np.where(quantity >= self.size[idx], 0.0, self.size[idx] - quantity)
        self.size[idx] = remaining
        for sign, column in ((1, 0), (-1, 1)):
            self.open_units[column] -= quantity[side == sign].sum()
        left = self.collateral[idx] + side * remaining * (price - self.entry[idx])
        # The fee (to the fund) takes at most the margin left. On a partial de-risking it
        # takes only the margin above what the remaining position needs: its maintenance
        # margin plus the fee of its own liquidation (OKX triggers at MMR + fee rate, facts
        # 1.4.1). Otherwise a fee rate above the tier's MMR (1% against 0.4-0.5% on tiers
        # 1-2) would turn every de-risked account into a takeover, though "liquidation stops
        # if the account is compliant after losses and fee" (facts 1.2.5).
        rate = self.rules.liquidation_fee
        keep = self.table.maintenance_margin(remaining * price) + rate * remaining * price
        cap = np.where(partial & (remaining > 0.0), np.maximum(left - keep, 0.0), np.inf)
        fee = np.minimum(np.minimum(rate * quantity * price, cap), np.maximum(left, 0.0))
        self.collateral[idx] -= fee
        self.fund_cash += float(fee.sum())
        deficit = np.where(remaining == 0.0, np.maximum(-self.collateral[idx], 0.0), 0.0)
        if deficit.any():
            self.collateral[idx] += deficit
            self.fund_cash -= float(deficit.sum())
            covered = deficit > 0
            self._log_by_side(
                log, "insurance_fund_cover", side[covered], np.zeros(int(covered.sum())),
                deficit[covered], price, "loss beyond collateral after a market liquidation",
            )  # fmt: skip
            self._check_fund(price, log)
        traded = -side * quantity
        self._units += float(traded.sum())
        self._cash -= float(traded.sum()) * price
        for is_partial, label in ((True, "partial"), (False, "full")):
            mask = partial == is_partial
            self._log_by_side(
                log, "perp_market_liquidation", side[mask], traded[mask],
                quantity[mask] * price, price, f"{label} market order; fee to the fund",
                fee=fee[mask],
            )  # fmt: skip

    def _offload_units(self) -> float:
        """Units of the fund's position it sells (+) or buys back (−) this round: all of it,
        up to what is left of this step's participation in the asset's normal volume, sized
        at the mark (`insurance.offload_allowance_left`: what a fill uses of it)."""
        limit = self._offload_left_usd / self._last_mark
        return min(max(self.fund_units, -limit), limit)  # np.clip on floats, without NumPy

    def _settle_fund_offload(self, price: float, log: EventLog) -> None:
        units = self._queued_offload  # the quantity of the order that was filled
        self._offload_left_usd = offload_allowance_left(
            self._offload_left_usd, units, self.fund_units, self._last_mark
        )
        self.fund_cash += units * price
        self.fund_units -= units
        self._units -= units
        self._cash += units * price
        log.add(
            "insurance_fund_offload",
            population=self.name,
            venue=self.venue_id,
            asset=self.asset_id,
            quantity=-units,
            notional_usd=abs(units) * price,
            price=price,
            detail="taken-over positions sold to the market",
        )
        self._check_fund(price, log)

    def _check_fund(self, price: float, log: EventLog) -> None:
        """`insurance_fund_depleted` has one meaning: the fund's equity at the mark (cash +
        its taken-over position) has fallen to zero or below; `notional_usd` is the
        shortfall (≥ 0). Logged once each time it happens, after the fund was positive."""
        empty = self.fund_equity(price) <= 0.0
        if empty and not self._fund_empty:
            log.add(
                "insurance_fund_depleted",
                population=self.name,
                venue=self.venue_id,
                asset=self.asset_id,
                notional_usd=-self.fund_equity(price),
                price=price,
                detail="fund equity at or below zero: further deficits are unfunded losses "
                "the venue carries",
            )
        self._fund_empty = empty

    # ------------------------------------------------------------------ events

    def _log_clipped(self, log: EventLog, count: int, when: str) -> None:
        """Leverage draws outside [1, the tier's maximum] are clipped to it, and counted."""
        log.add(
            "perp_leverage_clipped",
            population=self.name,
            venue=self.venue_id,
            asset=self.asset_id,
            count=count,
            detail=f"leverage draws clipped to [1, tier maximum] {when}",
        )

    def _log_by_side(
        self,
        log: EventLog,
        kind: str,
        side: np.ndarray,
        quantity: np.ndarray,
        notional: np.ndarray,
        price: float | None,
        detail: str,
        fee: np.ndarray | None = None,
    ) -> None:
        """One row per side: count, signed units, notional and price (the mark, or the
        notional-weighted average when `price` is None)."""
        for sign in (1, -1):
            mask = side == sign
            count = int(mask.sum())
            if not count:
                continue
            units = float(quantity[mask].sum())
            usd = float(notional[mask].sum())
            log.add(
                kind,
                population=self.name,
                venue=self.venue_id,
                asset=self.asset_id,
                side=SIDE_NAMES[sign],
                count=count,
                quantity=units,
                notional_usd=usd,
                price=price if price is not None else usd / abs(units),
                fee_usd=float(fee[mask].sum()) if fee is not None else 0.0,
                detail=f"{SIDE_NAMES[sign]}: {detail}",
            )

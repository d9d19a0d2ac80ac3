"""Futures margin accounts (SPEC §4.2): COMEX-like silver and gold speculators.

Margins are % of notional (CME since 13 Jan 2026 for precious metals, facts 2.3), read
from the venue schedule in the market view, so a hike applies to open positions from its
effective step and changes nothing before (facts 2.2: effective after the close); or fixed
USD per contract (CME before that date, facts 2.7), from the asset's `initial_margin_usd`
and `margin_change` shocks in USD, which this population applies itself (`usd_schedule`):
a fixed dollar margin is a growing share of notional as the price falls. An
account whose equity falls below maintenance is called back to *initial* margin; it pays
from its outside cash buffer or is liquidated at market.

Accounting: an account's `cash_usd` is its margin balance less its position valued at the
last settlement price, so equity = cash + position · price. Variation margin at the daily
settlement (facts 2.1: one-day horizon) moves P&L into the margin balance without moving
cash; only trades move cash, at their fill price. The outside buffer is the account's too.

With an asset history, accounts are those alive at the start: each opened at a point of the
history and met every call the path since made, from its buffer (`_survivors`); without
one, the book is set at the start (equity = cushion × initial margin).

Open interest is a flow (SPEC §4; `oi_rebuild_half_life`): at each trading step new accounts
open for the share 1 − 0.5^(step/half-life) of the contracts (units) the book holds below
its input, with the input's long share, sizes, margin cushion and cash buffer, by one
market order (longs buy, shorts sell) at the fill price of the moment. Their equity and
buffer are deposits from outside (`deposits_usd`), so cash still moves only with trades.
They take free slots at the end of the arrays (doubled when full).

Call timing (`call_timing`). `continuous` (the default): an account is called the moment
its equity at the market price falls below maintenance and is liquidated at once if its
buffer cannot pay. `settlement`: as clearing members work, calls are computed at each daily
settlement from the settlement price (facts 2.1: one-day horizon; 2.2: margin changes take
effect after the close); a call the buffer cannot pay is due by the next settlement, and
the account is liquidated then only if it is still below maintenance.

Speed: equity − maintenance = level + price · slope with slope = position − m·|position| and
level = cash − usd·|position| (m: % of notional, usd: dollars per unit), so each account has
one call price (−level / slope: a floor for longs, a cap for shorts). A
round costs O(1) while the price stays between the highest floor and the lowest cap; a
crossing scans only the blocks of 128 slots whose own highest floor or lowest cap it
crossed (`top`, `low`: the call prices' index, kept with them), and only a margin change
recomputes them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.populations.entries import entry_window, extremes_since
from deleverage.populations.futures_kernels import (
    block_count,
    call_prices,
    index_blocks,
    margin_calls,
    open_accounts,
    opening_sizes,
    pairwise_plan,
    pairwise_sum,
)
from deleverage.results.events import EventLog
from deleverage.scenario.schema import FuturesBook


@dataclass(frozen=True)
class Margin:
    """A margin requirement per unit held at price p: pct/100 · p + usd_per_unit. Exchanges
    set either a share of notional (CME metals since 13 Jan 2026, facts 2.3) or fixed
    dollars per contract (before it; facts 2.7: silver $16,000 maintenance in May 2011),
    which is a growing share of notional as the price falls."""

    pct: float = 0.0
    usd_per_unit: float = 0.0

    def per_unit(self, price):
        return self.pct / 100.0 * price + self.usd_per_unit

    def scaled(self, factor: float) -> Margin:
        return Margin(self.pct * factor, self.usd_per_unit * factor)

    def __str__(self) -> str:
        return f"{self.pct}%" if self.usd_per_unit == 0.0 else f"{self.usd_per_unit:.6g} USD/unit"


def usd_schedule(scenario, asset_id: str) -> list[tuple[pd.Timestamp, Margin | None]]:
    """The asset's margins in USD per contract over time, as per-unit margins: the start's
    (if in USD) and each `margin_change`; None from a change in % of notional on (the
    engine's schedule applies then). Sorted by effective time."""
    asset = next(a for a in scenario.assets if a.id == asset_id)

    def per_unit(initial_usd, maintenance_usd):
        size = asset.contract_size
        return Margin(0.0, initial_usd / size), Margin(0.0, maintenance_usd / size)

    entries = []
    if asset.initial_margin_usd is not None:
        start = pd.Timestamp(scenario.clock.start)
        entries.append((start, per_unit(asset.initial_margin_usd, asset.maintenance_margin_usd)))
    for shock in scenario.shocks:
        if shock.type == "margin_change" and shock.asset == asset_id:
            margins = per_unit(shock.initial_usd, shock.maintenance_usd) if shock.in_usd else None
            entries.append((pd.Timestamp(shock.effective), margins))
    if all(margins is None for _, margins in entries):
        return []  # margins in % of notional only: the engine's schedule applies throughout
    return sorted(entries, key=lambda entry: entry[0])


class FuturesPopulation:
    kind = "futures_book"

    def __init__(self, spec: FuturesBook, ctx: BuildContext):
        self.name = spec.name
        self.asset = ctx.asset_index[spec.asset]
        self.asset_id = spec.asset
        self.currency = ctx.scenario.assets[ctx.asset_index[spec.asset]].currency
        self.enabled = ctx.enabled
        asset = ctx.scenario.assets[self.asset]
        self.venue = asset.venue
        # The population's margins stand in only while the schedule gives none (NaN).
        self.fallback_pct = (spec.initial_margin_pct, spec.maintenance_margin_pct)
        self.initial_multiplier = spec.initial_margin_multiplier
        self.usd_schedule = usd_schedule(ctx.scenario, spec.asset)
        self._usd_entry = -1  # the USD schedule's entry last in force
        self._schedule_time, self._schedule_entry = None, -1  # the entry at that time
        price, rng, n = ctx.price0[self.asset], ctx.rng, spec.accounts
        if asset.initial_margin_usd is not None:
            start_initial, start_maintenance = self.usd_schedule[0][1]
        else:
            start_initial = Margin(asset.initial_margin_pct or spec.initial_margin_pct)
            start_maintenance = Margin(asset.maintenance_margin_pct or spec.maintenance_margin_pct)
        start_initial = start_initial.scaled(self.initial_multiplier)

        # Account sizes are skewed (lognormal), each side summing to its share of notional.
        size = np.exp(rng.normal(0.0, 1.0, n))
        n_long = round(n * spec.long_share)
        is_long = np.arange(n) < n_long
        side_total = np.where(is_long, size[:n_long].sum(), size[n_long:].sum())
        side_share = np.where(is_long, spec.long_share, 1.0 - spec.long_share)
        notional = size / side_total * side_share * spec.notional_usd
        side = np.where(is_long, 1.0, -1.0)
        self.position = side * notional / price  # units, + long
        initial_margin_usd = start_initial.per_unit(price) * np.abs(self.position)
        equity = np.maximum(spec.margin_cushion.sample(rng, n), 0.0) * initial_margin_usd
        self.buffer_usd = np.maximum(spec.cash_buffer.sample(rng, n), 0.0) * initial_margin_usd
        window = entry_window(ctx, spec.asset, spec.entry_lookback)
        if window is not None:
            equity, self.buffer_usd = self._survivors(
                spec, window, price, start_initial, start_maintenance, equity, self.buffer_usd,
                rng,
            )  # fmt: skip
        self.cash_usd = equity - self.position * price
        self.pending = np.zeros(n)  # liquidation orders not yet filled, units
        self._pending_total = 0.0
        self.settlement_price = price
        self._settled_step = -1
        self._maintenance: Margin | None = None  # the margin the call prices were set with
        self._pct_margins: tuple[tuple[float, float], tuple[Margin, Margin]] | None = None
        self._raw_pct = None  # the schedule's (initial, maintenance) %, _pct_margins made from
        self.abs_position = np.abs(self.position)  # kept with `position`, for its sum
        self._gross_units: float | None = None  # Σ |position|, None after a position moved
        self._sum_plan = pairwise_plan(n)  # NumPy's summation tree of abs_position
        self._moved = (0, n)  # abs_position[lo:hi] written since the last sum
        self.floor = np.full(n, -np.inf)  # a long is called when the price falls below it
        self.cap = np.full(n, np.inf)  # a short is called when the price rises above it
        # the call prices' index: each block's highest floor and lowest cap (`BLOCK` slots)
        self.top, self.low = np.full(block_count(n), -np.inf), np.full(block_count(n), np.inf)
        self._call_below, self._call_above = -np.inf, np.inf  # highest floor, lowest cap
        self.call_timing = spec.call_timing
        self.call_due = np.zeros(n, dtype=bool)  # settlement timing: call unmet, due next
        # assets and owners of the orders by (liquidating, opening) (read-only, shared)
        self._order_keys = {}
        for key, owners in (((True, False), [0]), ((False, True), [1]), ((True, True), [0, 1])):
            arrays = (np.full(len(owners), self.asset), np.array(owners))
            for array in arrays:
                array.flags.writeable = False
            self._order_keys[key] = arrays

        # open interest as a flow: contracts (units) of the input, mean account per side
        self.rng, self.law, self.used = rng, spec, n
        self.deposits_usd = 0.0  # equity and buffers brought by newly opened accounts
        self._opening: tuple | None = None  # the queued accounts: first slot, arrays, margin
        self._opening_units = 0.0  # Σ position of the queued accounts (their order)
        self._opened_step = -1
        if spec.oi_rebuild_half_life is not None:
            half_life_hours = spec.oi_rebuild_half_life.total_seconds() / 3600.0
            self.rebuild_share = 1.0 - 0.5 ** (ctx.step_hours / half_life_hours)
            self.target_units = spec.notional_usd / price
            shares = np.array([spec.long_share, 1.0 - spec.long_share])
            counts = np.array([n_long, n - n_long])
            side_units = self.target_units * shares
            mean_units = np.where(counts > 0, side_units / np.maximum(counts, 1), np.inf)
            self._side_shares = (spec.long_share, 1.0 - spec.long_share)
            self._side_means = tuple(mean_units.tolist())  # units of a mean account per side

    def _survivors(self, spec, window, price0, initial, maintenance, equity, buffer, rng):
        """Equity and outside cash at the start of accounts opened at points of `window`
        (the history) and alive at the start (see `populations.entries`).

        An account opens with equity = margin_cushion × its initial margin at the entry
        price and cash_buffer × that margin outside (margins: the start's rates, the
        schedule before the start being unknown). At the lowest (long) or highest (short)
        price since entry, equity below maintenance is called back to initial margin; the
        account survives if its buffer meets the call, which then moves to the exchange. One
        call at the extreme needs at least the cash of any sequence of calls on the way
        there, so no survivor could not have paid. An account failing 100 draws of entry
        time, cushion and buffer keeps the draw made at the start (`equity`, `buffer`)."""
        low, high = extremes_since(window, price0)
        redraw = np.arange(len(equity))
        for _ in range(100):
            if not len(redraw):
                break
            k = len(redraw)
            when = rng.integers(0, len(window), k)
            entry, units = window[when], self.position[redraw]
            worst = np.where(units > 0, low[when], high[when])
            opening_margin = initial.per_unit(entry) * np.abs(units)
            at_entry = np.maximum(spec.margin_cushion.sample(rng, k), 0.0) * opening_margin
            outside = np.maximum(spec.cash_buffer.sample(rng, k), 0.0) * opening_margin
            at_worst = at_entry + units * (worst - entry)
            called = at_worst < maintenance.per_unit(worst) * np.abs(units)
            need = np.where(called, initial.per_unit(worst) * np.abs(units) - at_worst, 0.0)
            alive = need <= outside
            done = redraw[alive]
            equity[done] = (at_entry + need + units * (price0 - entry))[alive]
            buffer[done] = (outside - need)[alive]
            redraw = redraw[~alive]
        return equity, buffer

    @property
    def margin_balance(self) -> np.ndarray:
        """Cash at the exchange after the last variation-margin settlement, USD."""
        return self.cash_usd + self.position * self.settlement_price

    def open_interest_usd(self, price: float) -> float:
        """One-sided open interest of the accounts, (long + short units)/2 at `price`, USD."""
        return 0.5 * self.gross_units() * price

    def gross_units(self) -> float:
        """Σ |position| over the accounts, summed again only after positions moved: NumPy's
        `abs_position.sum()`, its pairwise partial sums kept where no position moved."""
        if self._gross_units is None:
            lo, hi = self._moved
            total = pairwise_sum(self.abs_position, *self._sum_plan, lo, hi)
            self._gross_units, self._moved = float(total), (len(self.abs_position), 0)
        return self._gross_units

    def _positions_moved(self, lo: int, hi: int) -> None:
        """abs_position[lo:hi] was written: the sum is stale there."""
        self._gross_units = None
        self._moved = (min(self._moved[0], lo), max(self._moved[1], hi))

    def equity(self, price: float) -> np.ndarray:
        return self.cash_usd + self.position * price

    def margins(self, view: MarketView, log: EventLog | None = None) -> tuple[Margin, Margin]:
        """(initial, maintenance) margins in force at this step, the accounts' initial
        multiplier applied: USD per contract while the USD schedule says so (a change in
        USD takes effect, like the engine's, at the first step starting at or after it),
        else the engine's % of notional."""
        if view.time is not self._schedule_time:  # the entry in force, once a step
            self._schedule_time, self._schedule_entry = view.time, -1
            for j, (when, _) in enumerate(self.usd_schedule):
                if when <= view.time:
                    self._schedule_entry = j
        entry = self._schedule_entry
        if entry >= 0 and self.usd_schedule[entry][1] is not None:
            initial, maintenance = self.usd_schedule[entry][1]
            if entry != self._usd_entry and log is not None:
                log.add("margin_effective", population=self.name, venue=self.venue,
                        asset=self.asset_id, detail=f"initial {initial} maintenance "
                        f"{maintenance} (USD per contract)")  # fmt: skip
            self._usd_entry = entry
            return initial.scaled(self.initial_multiplier), maintenance
        self._usd_entry = entry
        raw = (view.initial_margin_pct[self.asset], view.maintenance_margin_pct[self.asset])
        if raw == self._raw_pct:  # as at the last call (a NaN never equals: made again)
            return self._pct_margins[1]
        self._raw_pct = raw
        pct = (float(raw[0]), float(raw[1]))
        if math.isnan(pct[0]) or math.isnan(pct[1]):  # the schedule gives none yet
            pct = self.fallback_pct
        if self._pct_margins is None or self._pct_margins[0] != pct:  # made once per change
            initial, maintenance = pct
            margins = Margin(initial * self.initial_multiplier), Margin(maintenance)
            self._pct_margins = pct, margins
        return self._pct_margins[1]

    def mark(self, view: MarketView, log: EventLog) -> None:
        price = float(view.price[self.asset])
        settling = bool(view.settlement[self.asset]) and view.step != self._settled_step
        if settling:
            self._settle(price, log)
            self._settled_step = view.step
        if not self.enabled:
            return
        initial, maintenance = self.margins(view, log)
        if self.call_timing == "settlement":
            if settling:
                self._settlement_calls(price, initial, maintenance, log)
            return
        if self.law.oi_rebuild_half_life is not None and view.step != self._opened_step:
            self._opened_step = view.step
            if view.is_open[self.asset]:
                self._open_positions(initial)
        if maintenance is not self._maintenance and maintenance != self._maintenance:
            self._maintenance = maintenance
            self._refresh_call_prices()
        tolerance = 1e-12 * price  # call prices select the accounts; the test is exact
        if self._call_below + tolerance <= price <= self._call_above - tolerance:
            return
        self._call(price, initial, maintenance, log)

    def _settle(self, price: float, log: EventLog) -> None:
        variation = self.position * (price - self.settlement_price)
        self.settlement_price = price
        paid, received = -variation[variation < 0].sum(), variation[variation > 0].sum()
        if paid or received:
            log.add(
                "variation_margin",
                population=self.name,
                venue=self.venue,
                asset=self.asset_id,
                count=np.count_nonzero(variation),
                notional_usd=paid,
                price=price,
                detail=f"paid {paid:.0f} USD, received {received:.0f} USD",
            )

    def _refresh_call_prices(self) -> None:
        """Recompute the call prices of all accounts, then their extremes."""
        call_prices(
            np.arange(len(self.position)),
            self.position,
            self.cash_usd,
            self.pending,
            self._maintenance.pct / 100.0,
            self._maintenance.usd_per_unit,
            self.floor,
            self.cap,
        )
        self._call_below, self._call_above = index_blocks(
            self.floor, self.cap, self.top, self.low, np.arange(len(self.position))
        )

    def _call(self, price: float, initial: Margin, maintenance: Margin, log: EventLog) -> None:
        """Accounts crossed and below maintenance are called back to initial margin: the
        buffer moves to the exchange (cash unchanged) or the account is liquidated
        (`futures_kernels.margin_calls`); their call prices are recomputed."""
        tolerance = 1e-12 * price  # free slots (from `used` on) are never called
        called, paid, met, sums, highest, lowest = margin_calls(
            self.floor, self.cap, self.top, self.low, self.used, price - tolerance,
            price + tolerance, price,
            self.position, self.cash_usd, self.buffer_usd, self.pending,
            maintenance.per_unit(price), initial.per_unit(price),
            self._maintenance.pct / 100.0, self._maintenance.usd_per_unit,
        )  # fmt: skip
        if len(called) == 0:
            return
        quantity, need, met_need, liquidating = sums
        self._pending_total += liquidating
        log.add(
            "margin_call",
            population=self.name,
            venue=self.venue,
            asset=self.asset_id,
            count=len(called),
            quantity=quantity,
            notional_usd=need,
            price=price,
            detail=f"{met} met from buffer ({met_need:.0f} USD), "
            f"{len(called) - met} liquidated; maintenance {maintenance}",
        )
        if met < len(called):
            self._log_liquidations(called[~paid], price, log, "")
        self._call_below, self._call_above = highest, lowest

    def _settlement_calls(
        self, price: float, initial: Margin, maintenance: Margin, log: EventLog
    ) -> None:
        """`call_timing: settlement`: at a settlement, accounts below maintenance are called
        back to initial margin; the buffer pays what it can at once, and a call it cannot
        pay is due by the next settlement. One due since the last settlement and still
        below maintenance now is liquidated at market."""
        position = self.position
        equity = self.cash_usd + position * price
        required = maintenance.per_unit(price) * np.abs(position)
        below = (position != 0.0) & (self.pending == 0.0) & (equity < required)
        overdue = np.flatnonzero(below & self.call_due)
        fresh = np.flatnonzero(below & ~self.call_due)
        need = initial.per_unit(price) * np.abs(position[fresh]) - equity[fresh]
        can_pay = self.buffer_usd[fresh] >= need
        met = fresh[can_pay]
        self.buffer_usd[met] -= need[can_pay]
        self.cash_usd[met] += need[can_pay]
        self.call_due[:] = False
        self.call_due[fresh[~can_pay]] = True
        self.pending[overdue] = -position[overdue]
        self._pending_total += float(self.pending[overdue].sum())
        if len(fresh):
            log.add(
                "margin_call",
                population=self.name,
                venue=self.venue,
                asset=self.asset_id,
                count=len(fresh),
                quantity=float(position[fresh].sum()),
                notional_usd=float(need.sum()),
                price=price,
                detail=f"{len(met)} met from buffer ({need[can_pay].sum():.0f} USD), "
                f"{len(fresh) - len(met)} due by the next settlement; maintenance {maintenance}",
            )
        self._log_liquidations(overdue, price, log, "call unmet by the settlement it was due")

    def _log_liquidations(self, accounts: np.ndarray, price: float, log: EventLog, detail: str):
        """One `liquidation` row per side (long positions sold, short positions bought back)."""
        closing = self.pending[accounts]
        for side, mask in (("long", closing < 0.0), ("short", closing > 0.0)):
            if mask.any():
                log.add(
                    "liquidation",
                    population=self.name,
                    venue=self.venue,
                    asset=self.asset_id,
                    side=side,
                    count=int(mask.sum()),
                    quantity=float(closing[mask].sum()),
                    notional_usd=float(np.abs(closing[mask]).sum() * price),
                    price=price,
                    detail=detail,
                )

    def _open_positions(self, initial: Margin) -> None:
        """Queue new accounts for `rebuild_share` of the contracts missing from the input;
        counts per side are rounded at random so the units opened have the right
        expectation (a shortfall is made up later)."""
        if self._opening is not None:
            return
        gap = self.target_units - self.gross_units()
        if gap <= 0.0:
            return
        spec, rng = self.law, self.rng
        # per side, units / mean account + a uniform draw, floored (IEEE doubles: the same
        # arithmetic as on the two-element arrays)
        units = gap * self.rebuild_share
        draw = rng.random(2).tolist()
        (long_share, short_share), (long_mean, short_mean) = self._side_shares, self._side_means
        longs = math.floor(units * long_share / long_mean + draw[0])
        k = longs + math.floor(units * short_share / short_mean + draw[1])
        if k == 0:
            return
        if self.used + k > len(self.position):
            self._grow(max(k, len(self.position)))
        # the input's lognormal(0, 1) account sizes, with the input's mean per side
        size, position, self._opening_units = opening_sizes(
            long_mean, short_mean, longs, np.exp(rng.normal(0.0, 1.0, k) - 0.5)
        )
        # the draws (floored at 0 when the accounts open: `open_accounts`)
        cushion, buffer = spec.margin_cushion.sample(rng, k), spec.cash_buffer.sample(rng, k)
        self._opening = (self.used, position, size, initial, cushion, buffer)
        self.used += k

    def _grow(self, extra: int) -> None:
        """`extra` more free slots: no position, no cash, never called."""
        for name, fill in (("position", 0.0), ("abs_position", 0.0), ("cash_usd", 0.0),
                           ("buffer_usd", 0.0), ("pending", 0.0), ("floor", -np.inf),
                           ("cap", np.inf), ("call_due", False)):  # fmt: skip
            setattr(self, name, np.concatenate([getattr(self, name), np.full(extra, fill)]))
        blocks = block_count(len(self.position)) - len(self.top)  # new slots: ±inf
        self.top = np.concatenate([self.top, np.full(blocks, -np.inf)])
        self.low = np.concatenate([self.low, np.full(blocks, np.inf)])
        self._gross_units, self._sum_plan = None, pairwise_plan(len(self.abs_position))
        self._moved = (0, len(self.abs_position))

    def _settle_openings(self, price: float, log: EventLog) -> None:
        """Open the queued accounts at the fill `price` with equity = cushion × initial
        margin and their buffers, both deposited from outside."""
        start, position, size, initial, cushion, buffer = self._opening
        self._opening = None
        deposits, notional, self._call_below, self._call_above, gross = open_accounts(
            start, position, size, price, initial.per_unit(price), cushion, buffer,
            self.position, self.abs_position, self.cash_usd, self.buffer_usd, self.pending,
            self._maintenance.pct / 100.0, self._maintenance.usd_per_unit, self.floor, self.cap,
            self.top, self.low, self._sum_plan, *self._moved,
        )  # fmt: skip
        self._gross_units, self._moved = gross, (len(self.abs_position), 0)
        self.deposits_usd += deposits
        log.add(
            "futures_open",
            population=self.name,
            venue=self.venue,
            asset=self.asset_id,
            count=len(size),
            quantity=self._opening_units,
            notional_usd=notional,
            price=price,
            detail="new positions at the price of the moment",
        )

    def orders(self) -> Orders:
        """Owner 0: the liquidation orders, owner 1: the new accounts' opening order."""
        liquidating, opening = self._pending_total != 0.0, self._opening is not None
        if liquidating and opening:
            quantity = [self._pending_total, self._opening_units]
        elif liquidating or opening:
            quantity = [self._pending_total if liquidating else self._opening_units]
        else:
            return Orders.empty()
        assets, owners = self._order_keys[liquidating, opening]
        return Orders(assets, np.array(quantity), owners)

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        fills = zip(orders.owner.tolist(), filled.tolist(), price.tolist(), strict=True)
        for owner, done, fill_price in fills:
            if done and owner == 0:
                self._settle_liquidations(fill_price, log)
            elif done:
                self._settle_openings(fill_price, log)

    def _settle_liquidations(self, price: float, log: EventLog) -> None:
        closing = self.pending != 0.0
        quantity = self.pending[closing]
        self.cash_usd[closing] -= quantity * price
        self.position[closing] += quantity
        self.abs_position[closing] = np.abs(self.position[closing])
        self._positions_moved(0, len(self.abs_position))
        self.pending[closing] = 0.0
        self._pending_total = 0.0
        # A loss beyond the margin balance is paid from the buffer; what remains is owed
        # to the clearing broker and stays on the account as negative cash.
        deficit = np.maximum(-self.cash_usd[closing], 0.0)
        cover = np.minimum(deficit, self.buffer_usd[closing])
        self.buffer_usd[closing] -= cover
        self.cash_usd[closing] += cover
        unpaid = deficit - cover
        if unpaid.any():
            log.add(
                "bad_debt",
                population=self.name,
                venue=self.venue,
                asset=self.asset_id,
                count=np.count_nonzero(unpaid),
                notional_usd=float(unpaid.sum()),
                price=price,
                detail="loss beyond margin and buffer, owed to the clearing broker",
            )

    def holdings(self, n_assets: int) -> np.ndarray:
        out = np.zeros(n_assets)
        out[self.asset] = self.position.sum()
        return out

    def cash(self) -> float:
        """Margin balances + outside buffers − deposits of new accounts, USD."""
        return float(self.cash_usd.sum() + self.buffer_usd.sum()) - self.deposits_usd

    def cash_by_currency(self) -> dict[str, float]:
        return {self.currency: self.cash()}

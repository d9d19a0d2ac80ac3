"""Perp books with what one price and USD wallets cannot say (issue 13, items 7-8):
collateral assets in the wallets, the book's own venue, and a perp-spot basis.

Collateral (Binance Multi-Assets mode). A share of a perp book's accounts hold their wallet
in another asset of the scenario (a stablecoin, a staked token, BTC). It counts toward the
margin balance at its price × (1 − haircut), Binance's "collateral value ratio" (95% for
BTC/ETH/BNB, 90% for XRP/ADA/DOT/SOL, 99.99% for USDT/USDC in Binance's Multi-Assets mode
FAQ): margin balance = USD wallet + units·price·(1 − haircut) + unrealized PnL. Realized PnL,
funding and fees settle in USD, so the USD wallet can go negative against the collateral.
When an account is liquidated, the venue exchanges its collateral for USD at that haircut
value (Binance's auto-exchange on liquidation: a −20,000 BUSD balance takes 20,000 / 97.5% of
BTC) and the ordinary waterfall (`perps.PerpPopulation`) runs on USD; the venue sells the
units on the collateral's own market at once (a market order, so liquidations deepen a
depeg), and what the sale fetches beyond or short of the USD credited goes to the insurance
fund. A trader who closes exchanges only what covers a negative USD balance, and withdraws
the other units. Collateral units are holdings of the population (`holdings`): those of the
accounts at the start, plus the venue's units awaiting sale, less units deposited by new
accounts since (their wallets arrive as units from outside, as `deposits_usd` for USD).

Own venue (`venue`). The book trades on a venue other than its asset's. While that venue is
out (its `outages`, `outage` shocks on it), the book's liquidation engine, its traders' closes
and new positions and the fund's offload all stop, and orders already sent wait; the asset
keeps trading on its own venue. On return the accounts are marked at the price of that moment,
and everything the move crossed liquidates then. Funding settlements keep accruing.

Basis (`basis`). The perp's mark is spot × exp(b): Binance's Price 2 = index + moving average
of the basis (facts 1.2.10; the median with Price 1 and the last price is not modelled). The
book's net filled market orders move b by 1% per `depth_usd` (a one-sided liquidation cascade
sells the perp below spot) and arbitrage halves it every `half_life`. Fills stay at the
market's price (the engine has one price per asset); the basis moves the mark, so margins,
liquidation triggers and funding. Funding's premium index is b, sampled at each step and
averaged over the funding interval with weights rising linearly (facts 1.1.3-1.1.4), so
F = P + clamp(I − P, ±0.05%) per 8 h (1.1.1) pays shorts when the perp trades below spot.

Books with collateral or a basis check every account with the full vectorized margin
computation each round (the watch list of `PerpPopulation`): their liquidation prices move with
the collateral's price, and funding can change sign, so the book sorted by liquidation price,
which assumes USD wallets and one funding direction, is not used. That costs O(accounts) per
round where a USD book costs O(log accounts).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from deleverage.market.calendar import build_calendar
from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.populations.perps import CLOSING, NO_SCREEN, OPENING, PerpPopulation
from deleverage.results.events import EventLog
from deleverage.scenario.schema import PerpBook
from deleverage.venues.funding import funding_rate, settlements_between

NONE = -1  # collateral kind of a USD wallet
SALE = 16  # order owners SALE + k: the venue's sale of collateral asset k


class VenuePerpPopulation(PerpPopulation):
    def __init__(self, spec: PerpBook, ctx: BuildContext):
        self.watched = bool(spec.collateral) or spec.basis is not None  # no sorted book
        self.has_collateral = bool(spec.collateral)
        super().__init__(spec, ctx)
        self.book_open = None  # the book's own venue: open at each step
        if spec.venue is not None:
            venue = ctx.scenario.venue_index()[spec.venue]
            # the run's calendar, shared: an outage a price move starts reaches the book
            calendar = ctx.calendar if ctx.calendar is not None else build_calendar(ctx.scenario)
            self.book_open = calendar.open[venue]
        self.basis_spec = spec.basis
        self.basis = 0.0  # log of mark ÷ spot
        self._premium: list[float] = []  # basis at each step since the last settlement
        if spec.basis is not None:
            self.basis_per_usd = 0.01 / spec.basis.depth_usd
            self.basis_decay = 0.5 ** (self.step_seconds / spec.basis.half_life.total_seconds())
            self.funding_law = (
                spec.funding_interest_pct / 100.0, spec.funding_clamp_pct / 100.0,
            )  # fmt: skip
        if not self.has_collateral:
            return
        self.collat_asset = np.array([ctx.asset_index[c.asset] for c in spec.collateral])
        self.collat_ids = [c.asset for c in spec.collateral]
        self.collat_shares = np.array([c.share for c in spec.collateral])
        self.collat_ratio = 1.0 - np.array([c.haircut_pct for c in spec.collateral]) / 100.0
        self.collat_value = ctx.price0[self.collat_asset] * self.collat_ratio  # USD per unit
        k = len(spec.collateral)
        self.desk_units = np.zeros(k)  # units the venue took from liquidated wallets, to sell
        self.desk_advance = np.zeros(k)  # USD credited for them, recovered by the sale
        self.deposited_units = np.zeros(k)  # brought by new accounts, net of withdrawals
        self.idle_units = np.zeros(k)  # left by accounts closed out of the arrays (idle_usd)
        self._queued_sale = np.zeros(k)
        self._initial = True  # the wallets at the start: their units exist already
        self._assign(np.arange(self.used))
        self._initial = False
        self._logged_start = False
        self._units_ledger = self._collateral_units_held()  # moved by the desk's sales only

    # ------------------------------------------------------------------ collateral

    def _assign(self, idx: np.ndarray) -> None:
        """Accounts `idx` hold their wallet in collateral asset k with probability
        share_k: units = wallet / (price·(1 − haircut)), so the collateral is worth the
        wallet drawn at the moment it is deposited."""
        p = np.append(self.collat_shares, max(1.0 - self.collat_shares.sum(), 0.0))
        kind = self.rng.choice(len(p), size=len(idx), p=p / p.sum())
        kind = np.where(kind == len(self.collat_shares), NONE, kind).astype(np.int8)
        held = idx[kind >= 0]
        k = kind[kind >= 0]
        usd = self.collateral[held]
        units = usd / self.collat_value[k]
        self.collat_kind[held] = k
        self.collat_units[held] = units
        self.collateral[held] = 0.0
        if self._initial:  # held before the run: USD never in the wallets
            self._cash -= float(usd.sum())
        else:  # deposited as units, not as USD
            self.deposits_usd -= float(usd.sum())
            self.deposited_units += np.bincount(k, units, len(self.collat_ids))

    def _convert(self, idx: np.ndarray, usd_needed: np.ndarray | None, log: EventLog | None):
        """The venue exchanges collateral of accounts `idx` for USD at its haircut value: all
        of it, or the units worth `usd_needed`; the units go to its desk, to be sold."""
        held = self.collat_units[idx] > 0
        idx = idx[held]
        if not len(idx):
            return
        k = self.collat_kind[idx]
        units = self.collat_units[idx]
        if usd_needed is not None:
            units = np.minimum(units, np.maximum(usd_needed[held], 0.0) / self.collat_value[k])
        usd = units * self.collat_value[k]
        self.collateral[idx] += usd
        self.collat_units[idx] -= units
        self.collat_kind[idx] = np.where(self.collat_units[idx] > 0, k, NONE)
        self.desk_units += np.bincount(k, units, len(self.collat_ids))
        self.desk_advance += np.bincount(k, usd, len(self.collat_ids))
        if log is None:
            return
        for j, asset in enumerate(self.collat_ids):
            mask = k == j
            if mask.any():
                log.add(
                    "perp_collateral_converted",
                    population=self.name,
                    venue=self.venue_id,
                    asset=asset,
                    count=int(mask.sum()),
                    quantity=-float(units[mask].sum()),
                    notional_usd=float(usd[mask].sum()),
                    price=float(self.collat_value[j] / self.collat_ratio[j]),
                    detail="collateral exchanged to USD at price × (1 − haircut) on liquidation",
                )

    def _withdraw_for_close(self, price: float) -> None:
        """Accounts about to close at `price`: units covering a negative USD balance are
        exchanged; the others leave with their trader."""
        idx = self._closing
        idx = idx[self.collat_units[idx] > 0]
        if not len(idx):
            return
        side, size = self.side[idx], self.size[idx]
        usd = (
            self._wallet_balance(idx) + self.reserve[idx] + side * size * (price - self.entry[idx])
        )
        self._convert(idx, -usd, None)
        left = self.collat_units[idx] > 0
        k = self.collat_kind[idx[left]]
        self.deposited_units -= np.bincount(k, self.collat_units[idx[left]], len(self.collat_ids))
        self.collat_units[idx] = 0.0
        self.collat_kind[idx] = NONE

    def _collateral_units_held(self) -> np.ndarray:
        """Units per collateral asset: the accounts', the desk's, less those deposited."""
        live = self.collat_kind[: self.used] >= 0
        held = np.bincount(
            self.collat_kind[: self.used][live],
            self.collat_units[: self.used][live],
            len(self.collat_ids),
        )
        return held + self.idle_units + self.desk_units - self.deposited_units

    def _settle_sales(self, orders: Orders, filled: np.ndarray, price: np.ndarray, log) -> None:
        for owner, done, fill in zip(orders.owner, filled, price, strict=True):
            if not done:
                continue
            j = int(owner) - SALE
            units = self._queued_sale[j]
            share = self.desk_advance[j] * units / self.desk_units[j]
            proceeds = units * float(fill)
            self.desk_units[j] -= units
            self.desk_advance[j] -= share
            self.fund_cash += proceeds - share  # the venue's gain or loss on the exchange
            self._cash += proceeds
            self._units_ledger[j] -= units
            self._queued_sale[j] = 0.0
            log.add(
                "perp_collateral_sold",
                population=self.name,
                venue=self.venue_id,
                asset=self.collat_ids[j],
                quantity=-units,
                notional_usd=proceeds,
                price=float(fill),
                fee_usd=proceeds - share,
                detail="liquidated collateral sold on its market; the difference from the "
                "USD credited goes to the insurance fund",
            )

    def _mark_collateral(self, view: MarketView, log: EventLog) -> None:
        value = view.price[self.collat_asset] * self.collat_ratio
        if not np.array_equal(value, self.collat_value):
            self.collat_value = value
            self._watch_changed()  # margins moved without the perp's price
        if not self._logged_start and self.enabled:
            self._logged_start = True
            for j, asset in enumerate(self.collat_ids):
                held = self.collat_kind[: self.used] == j
                log.add(
                    "perp_collateral",
                    population=self.name,
                    venue=self.venue_id,
                    asset=asset,
                    count=int(held.sum()),
                    notional_usd=float(self.collateral_value_usd(np.flatnonzero(held)).sum()),
                    detail="wallets held in the asset at the start, haircut value",
                )

    def collateral_value_usd(self, idx: np.ndarray) -> np.ndarray:
        """Haircut value of the collateral of accounts `idx`, USD."""
        kind = self.collat_kind[idx]
        return self.collat_units[idx] * self.collat_value[np.maximum(kind, 0)] * (kind >= 0)

    # ------------------------------------------------------------------ venue and basis

    def _book_open(self, step: int) -> bool:
        return self.book_open is None or bool(self.book_open[step])

    def _move_basis(self, orders: Orders, filled: np.ndarray, price: np.ndarray) -> None:
        """The book's net filled market orders move its basis: 1% per `depth_usd`."""
        done = np.asarray(filled, dtype=bool)
        net_usd = float(np.sum(orders.quantity[done] * price[done]))
        self.basis += self.basis_per_usd * net_usd

    def premium_index(self) -> float:
        """The basis averaged since the last settlement, weights 1..N (facts 1.1.4)."""
        if not self._premium:
            return self.basis
        weights = np.arange(1, len(self._premium) + 1, dtype=float)
        return float(np.dot(weights, self._premium) / weights.sum())

    # ------------------------------------------------------------------ overrides

    def _with_collateral(self, idx: np.ndarray, balance: np.ndarray) -> np.ndarray:
        return balance + self.collateral_value_usd(idx) if self.has_collateral else balance

    def mark(self, view: MarketView, log: EventLog) -> None:
        if self.has_collateral:
            self._mark_collateral(view, log)
        if self.basis_spec is not None and view.step != self._step:
            self.basis *= self.basis_decay  # arbitrage since the last step
            self._premium.append(self.basis)
        changes = {}
        if self.basis_spec is not None:
            mark = np.array(view.mark, dtype=float)
            mark[self.asset] *= np.exp(self.basis)
            changes["mark_price"] = mark
        if not self._book_open(view.step):
            is_open = view.is_open.copy()
            is_open[self.asset] = False  # for this book only: the asset trades elsewhere
            changes["is_open"] = is_open
        super().mark(replace(view, **changes) if changes else view, log)

    def _pay_funding(self, view: MarketView, price: float, log: EventLog) -> None:
        """With a basis, each settlement's rate comes from the premium index since the last
        one: F = P + clamp(I − P, ±clamp) per 8 h, scaled to the interval and capped
        (facts 1.1.1, 1.2.12, 1.5.7)."""
        if self.basis_spec is not None:
            now = view.time.value / 1e9
            interval = self.rules.funding_interval_hours
            if settlements_between(now - self.step_seconds, now, interval):
                interest, clamp = self.funding_law
                self.funding_rate = funding_rate(
                    self.premium_index(), interval, interest, clamp, self.rules.funding_cap
                )
                self._premium = []
        super()._pay_funding(view, price, log)

    def orders(self) -> Orders:
        if not self._book_open(max(self._step, 0)):
            self._queued_offload = 0.0
            return Orders.empty()  # the venue is out: orders wait
        book = super().orders()
        if not self.has_collateral or not self.desk_units.any():
            return book
        self._queued_sale = self.desk_units.copy()
        sell = np.flatnonzero(self._queued_sale > 0)
        return Orders(
            np.concatenate([book.asset, self.collat_asset[sell]]),
            np.concatenate([book.quantity, -self._queued_sale[sell]]),
            np.concatenate([book.owner, SALE + sell]),
        )

    def holdings(self, n_assets: int) -> np.ndarray:
        out = super().holdings(n_assets)
        if self.has_collateral:
            np.add.at(out, self.collat_asset, self._units_ledger)
        return out

    def recomputed_totals(self, n_assets: int) -> tuple[np.ndarray, dict[str, float]]:
        units, cash = super().recomputed_totals(n_assets)
        if self.has_collateral:
            np.add.at(units, self.collat_asset, self._collateral_units_held())
        return units, cash

    def _liquidate(self, idx: np.ndarray, price: float, now_s: float, log: EventLog) -> None:
        if self.has_collateral:
            self._convert(idx, None, log)  # the waterfall then runs on USD
        super()._liquidate(idx, price, now_s, log)

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        filled = np.asarray(filled, dtype=bool)
        if self.has_collateral:
            sale = orders.owner >= SALE
            if sale.any():
                self._settle_sales(
                    Orders(orders.asset[sale], orders.quantity[sale], orders.owner[sale]),
                    filled[sale], price[sale], log,
                )  # fmt: skip
                keep = ~sale
                orders = Orders(orders.asset[keep], orders.quantity[keep], orders.owner[keep])
                filled, price = filled[keep], price[keep]
        done = set(orders.owner[filled].tolist())
        if self.has_collateral and CLOSING in done and self._closing is not None:
            close_price = float(price[list(orders.owner).index(CLOSING)])
            self._withdraw_for_close(close_price)
        opened = self._opening[0] if OPENING in done and self._opening is not None else None
        if self.basis_spec is not None:
            self._move_basis(orders, filled, price)
        super().apply_fills(orders, filled, price, log)
        if opened is not None and self.watched:
            if self.has_collateral:
                self._assign(opened)
            self.pristine[opened] = False  # every account is on the watch list
            self._watch_add(opened)

    def _close(self, idx: np.ndarray) -> None:
        super()._close(idx)
        if self.has_collateral:
            self.collat_units[idx] = 0.0
            self.collat_kind[idx] = NONE

    def balance_sheet(self, price: float) -> dict[str, float]:
        sheet = super().balance_sheet(price)
        if self.has_collateral:
            sheet["cash_usd"] -= float(self.desk_advance.sum())  # owed by the desk's sale
            live = np.flatnonzero(self.collat_units[: self.used] > 0)
            sheet["accounts_equity_usd"] += float(self.collateral_value_usd(live).sum())
        return sheet

    def _sort_book(self, spare: int) -> None:
        """Books with collateral or a basis: no sorted book. Closed accounts leave the
        arrays, `spare` slots follow for new ones, and every account is on the watch list
        (the structures the book's searches read are left empty)."""
        if not self.watched:
            super()._sort_book(spare)
            return
        n = self.used
        live = np.flatnonzero(self.size[:n] > 0)
        closed = np.ones(n, dtype=bool)
        closed[live] = False
        self.idle_usd += float(np.sum((self.collateral + self.reserve)[:n][closed]))
        names = ["side", "size", "entry", "collateral", "reserve", "funding_ref", "stage"]
        if self.has_collateral:
            if not hasattr(self, "collat_units"):
                self.collat_units = np.zeros(len(self.size))
                self.collat_kind = np.full(len(self.size), NONE, dtype=np.int8)
            names += ["collat_units", "collat_kind"]
            gone = closed & (self.collat_kind[:n] >= 0)  # e.g. closed in full by ADL
            if gone.any():  # (none at the first layout, before `idle_units` exists)
                self.idle_units += np.bincount(
                    self.collat_kind[:n][gone], self.collat_units[:n][gone], len(self.collat_ids)
                )
        m = len(live)
        for name in names:
            old = getattr(self, name)
            new = np.full(m + spare, NONE if name == "collat_kind" else 0, dtype=old.dtype)
            new[:m] = old[live]
            setattr(self, name, new)
        if self.last_chunk_s is not None:
            self.last_chunk_s = np.concatenate([self.last_chunk_s[live], np.full(spare, -np.inf)])
        self.used = self.book_end = m
        self.pending = np.zeros(m + spare, dtype=bool)
        self.pristine = np.zeros(m + spare, dtype=bool)
        self._watch = np.arange(m)
        self._watch_changed()
        self._sortkey, self._sorted_group = np.zeros(0), np.zeros(0, dtype=np.int64)
        self._tail_key, self._tail_coef, self._tail_room = np.zeros((3, spare))
        self._tail_tier = np.zeros(spare, dtype=np.int64)
        self._tail_long, self._tail_short = -np.inf, np.inf
        empty = np.zeros(0, dtype=np.int64)
        self.g_start, self.g_end, self.g_next, self.g_side_index = empty, empty, empty, empty
        self.g_sign, self.g_coef, self.g_head = np.zeros(0), np.zeros(0), np.zeros(0)
        self._book_band = NO_SCREEN
        self._room_sorted = self._room_order = None


def build_perp_population(spec: PerpBook, ctx: BuildContext) -> PerpPopulation:
    """A perp book; one with collateral assets, its own venue or a basis is a
    `VenuePerpPopulation` (a USD book on its asset's venue is exactly `PerpPopulation`)."""
    special = spec.collateral or spec.venue is not None or spec.basis is not None
    return VenuePerpPopulation(spec, ctx) if special else PerpPopulation(spec, ctx)

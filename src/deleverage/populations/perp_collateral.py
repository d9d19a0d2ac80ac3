"""Perp wallets holding collateral assets (issue 13, item 8; Binance Multi-Assets mode).

A share of a perp book's accounts hold their wallet in another asset of the scenario (a
stablecoin, a staked token, BTC). It counts toward the margin balance at its price × (1 −
haircut), Binance's "collateral value ratio" (95% for BTC/ETH/BNB, 90% for XRP/ADA/DOT/SOL,
99.99% for USDT/USDC in Binance's Multi-Assets mode FAQ): margin balance = USD wallet +
units·price·(1 − haircut) + unrealized PnL. Realized PnL, funding and fees settle in USD, so
the USD wallet can go negative against the collateral. When an account is liquidated, or its
trader closes, the venue converts its collateral to USD at that haircut value (Binance's
auto-exchange on liquidation: "20,000 BUSD / 97.5%" of BTC is exchanged to cover a 20,000
deficit) and the ordinary waterfall (`perps.PerpPopulation`) runs on USD.

Units of collateral are the traders' property, outside the engine's ledgers: they are neither
traded on the collateral's market (the conversion is not routed to its book, an
approximation) nor counted in `holdings`. A wallet put into collateral leaves the USD ledger
and a conversion brings it back (`swapped_usd`, like the deposits of new accounts).

Every account of such a book is checked by the full vectorized margin computation each round
(the watch list of `PerpPopulation`): its liquidation price moves with the collateral's
price, so the book sorted by liquidation price, which assumes USD wallets, is not used. That
costs O(accounts) per round, where a USD book costs O(log accounts).
"""

from __future__ import annotations

import numpy as np

from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.populations.perps import CLOSING, OPENING, PerpPopulation
from deleverage.results.events import EventLog
from deleverage.scenario.schema import PerpBook

NONE = -1  # collateral kind of a USD wallet


class CollateralPerpPopulation(PerpPopulation):
    def __init__(self, spec: PerpBook, ctx: BuildContext):
        super().__init__(spec, ctx)
        self.collat_asset = np.array([ctx.asset_index[c.asset] for c in spec.collateral])
        self.collat_ids = [c.asset for c in spec.collateral]
        self.collat_shares = np.array([c.share for c in spec.collateral])
        self.collat_ratio = 1.0 - np.array([c.haircut_pct for c in spec.collateral]) / 100.0
        self.collat_value = ctx.price0[self.collat_asset] * self.collat_ratio  # USD per unit
        self.swapped_usd = 0.0
        self._assign(np.arange(self.used), watched=True)
        self._logged_start = False

    # ------------------------------------------------------------------ collateral

    def _assign(self, idx: np.ndarray, watched: bool = False) -> None:
        """Accounts `idx` hold their wallet in collateral asset k with probability
        share_k: units = wallet / (price·(1 − haircut)), so the collateral is worth the
        wallet drawn at the moment it is deposited."""
        p = np.append(self.collat_shares, max(1.0 - self.collat_shares.sum(), 0.0))
        kind = self.rng.choice(len(p), size=len(idx), p=p / p.sum())
        kind = np.where(kind == len(self.collat_shares), NONE, kind).astype(np.int8)
        held = idx[kind >= 0]
        k = kind[kind >= 0]
        usd = self.collateral[held]
        self.collat_kind[held] = k
        self.collat_units[held] = usd / self.collat_value[k]
        self.collateral[held] = 0.0
        self.swapped_usd += float(usd.sum())
        self.pristine[idx] = False  # every account is on the watch list
        if not watched:
            self._watch_add(idx)

    def _convert(self, idx: np.ndarray, log: EventLog | None, why: str) -> None:
        """The venue exchanges the collateral of accounts `idx` to USD at its haircut value."""
        idx = idx[self.collat_units[idx] > 0]
        if not len(idx):
            return
        k = self.collat_kind[idx]
        usd = self.collat_units[idx] * self.collat_value[k]
        self.collateral[idx] += usd
        self.swapped_usd -= float(usd.sum())
        self.collat_units[idx] = 0.0
        self.collat_kind[idx] = NONE
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
                    notional_usd=float(usd[mask].sum()),
                    price=float(self.collat_value[j] / self.collat_ratio[j]),
                    detail=f"collateral exchanged to USD at price × (1 − haircut) on {why}",
                )

    def collateral_value_usd(self, idx: np.ndarray) -> np.ndarray:
        """Haircut value of the collateral of accounts `idx`, USD."""
        kind = self.collat_kind[idx]
        return self.collat_units[idx] * self.collat_value[np.maximum(kind, 0)] * (kind >= 0)

    # ------------------------------------------------------------------ overrides

    def margin(self, idx: np.ndarray, price: float) -> tuple[np.ndarray, np.ndarray]:
        balance, maintenance = super().margin(idx, price)
        return balance + self.collateral_value_usd(idx), maintenance

    def mark(self, view: MarketView, log: EventLog) -> None:
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
        super().mark(view, log)

    def _liquidate(self, idx: np.ndarray, price: float, now_s: float, log: EventLog) -> None:
        self._convert(idx, log, "liquidation")  # the waterfall then runs on USD
        super()._liquidate(idx, price, now_s, log)

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        done = set(orders.owner[np.asarray(filled, bool)].tolist())
        if CLOSING in done and self._closing is not None:
            self._convert(self._closing, None, "close")  # withdrawn at its value in USD
        opened = self._opening[0] if OPENING in done and self._opening is not None else None
        super().apply_fills(orders, filled, price, log)
        if opened is not None:
            self._assign(opened)

    def _close(self, idx: np.ndarray) -> None:
        super()._close(idx)
        self.collat_units[idx] = 0.0
        self.collat_kind[idx] = NONE

    def balance_sheet(self, price: float) -> dict[str, float]:
        sheet = super().balance_sheet(price)
        sheet["cash_usd"] += self.swapped_usd
        live = np.flatnonzero(self.collat_units[: self.used] > 0)
        sheet["accounts_equity_usd"] += float(self.collateral_value_usd(live).sum())
        return sheet

    def _sort_book(self, spare: int) -> None:
        """No sorted book: closed accounts leave the arrays, `spare` slots follow for new
        ones, and every account is on the watch list (the structures the book's searches
        read are left empty)."""
        n = self.used
        live = np.flatnonzero(self.size[:n] > 0)
        closed = np.ones(n, dtype=bool)
        closed[live] = False
        self.idle_usd += float(np.sum((self.collateral + self.reserve)[:n][closed]))
        if not hasattr(self, "collat_units"):
            self.collat_units = np.zeros(len(self.size))
            self.collat_kind = np.full(len(self.size), NONE, dtype=np.int8)
        m = len(live)
        names = ("side", "size", "entry", "collateral", "reserve", "funding_ref", "stage")
        for name in (*names, "collat_units", "collat_kind"):
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
        self._room_sorted = self._room_order = None


def build_perp_population(spec: PerpBook, ctx: BuildContext) -> PerpPopulation:
    """A perp book; one whose wallets hold collateral assets is a `CollateralPerpPopulation`."""
    return CollateralPerpPopulation(spec, ctx) if spec.collateral else PerpPopulation(spec, ctx)

"""Leveraged and inverse volatility ETPs (issue 13, item 11): the daily leverage reset.

A product with daily leverage L on a VIX-futures index returns L·r on a day the index
returns r (XIV, SVXY: L = −1; TVIX, UVXY: L = +2; XIV's pricing supplement, ProShares'
prospectus). Its issuer hedges with L × NAV of the futures. After a move r since the last
close the hedge is worth L·NAV·(1 + r) while the product now needs L·NAV·(1 + L·r), so at
the close the issuer trades

    (L² − L) · NAV · r      (USD of futures; r the index's return since the last close)

which is ≥ 0 whenever r > 0 for any L outside [0, 1]: inverse and leveraged products both
buy a rise and sell a fall (BIS Quarterly Review, March 2018: both had to buy right before
the 16:15 ET settlement on 5 Feb 2018). The trades move the settlement price on which the
NAV is struck, so the issuer chases it: every cascade round of the settlement step trades
again to L × NAV at the new price, in the direction of its first trade of that step (it
does not sell back into the book's refill), until within `rebalance_band` of it. With a
`rebalance_window` the gap is worked before that: each earlier step of the window sends an
equal share of what remains, once a step.

Termination (XIV's "acceleration event"): once the intraday indicative value is
`terminate_drop_pct` or more below the prior day's closing indicative value, the product is
accelerated; its issuer buys back its whole hedge at once, and the product trades no more.

Arrays are per product (a handful); the work per round is a few array operations. With the
channel `vol_etp_rebalancing` off the hedges stay as they were at the start (no trades);
indicative values, closes and terminations are still followed and logged.
"""

from __future__ import annotations

import numpy as np

from deleverage.market.calendar import build_calendar
from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.results.events import EventLog
from deleverage.scenario.schema import Scenario
from deleverage.scenario.vol_etps import VolEtps


def _steps_to_settlement(settles: np.ndarray, window_steps: float) -> np.ndarray:
    """(T,) int: for the steps of the window that ends with each settlement step, the
    number of steps left up to and including it (1 at the settlement step); 0 elsewhere."""
    n = max(1, int(np.ceil(window_steps - 1e-9)))
    left = np.zeros(len(settles), dtype=np.int64)
    for k in np.flatnonzero(settles):
        begin = max(0, k - n + 1)
        left[begin : k + 1] = np.arange(k - begin + 1, 0, -1)
    return left


def _settlement_steps(scenario: Scenario, asset: int) -> np.ndarray:
    """(T,) True for the open step of the asset's venue that contains one of its daily
    settlement times: the close of each session, also of an overnight session that opened
    the day before (a Friday close of a Sunday-Thursday opening week)."""
    calendar = build_calendar(scenario)
    v = scenario.venue_index()[scenario.assets[asset].venue]
    venue = scenario.venues[v]
    local = calendar.step_starts.tz_convert(venue.session.timezone)
    minute = (local.hour * 60 + local.minute + local.second / 60).to_numpy()
    width = scenario.clock.step.total_seconds() / 60
    inside = np.zeros(len(minute), dtype=bool)
    for at in venue.settlement:
        inside |= (minute <= at) & (at < minute + width)
    return calendar.open[v] & inside


class VolEtpPopulation:
    kind = "vol_etps"

    def __init__(self, spec: VolEtps, ctx: BuildContext):
        self.name = spec.name
        self.asset = ctx.asset_index[spec.asset]
        self.asset_id = spec.asset
        self.currency = ctx.scenario.assets[self.asset].currency
        self.enabled = ctx.enabled
        self.band = spec.rebalance_band
        self.products = [p.name for p in spec.products]
        self.leverage = np.array([p.leverage for p in spec.products])
        drop = [
            np.nan if p.terminate_drop_pct is None else p.terminate_drop_pct for p in spec.products
        ]
        self.floor_share = 1.0 - np.array(drop) / 100.0  # NaN: never terminated (NaN ≤ is False)
        self.nav_close = np.array([p.nav_usd for p in spec.products])  # at the last close
        self.close_price = float(ctx.price0[self.asset])  # index level at the last close
        self.units = self.leverage * self.nav_close / self.close_price  # the issuers' hedges
        self.live = np.ones(len(self.products), dtype=bool)
        self.nav_terminated = np.full(len(self.products), np.nan)
        self.cash_usd = 0.0  # paid (−) and received (+) for futures since the start
        self.settles = _settlement_steps(ctx.scenario, self.asset)  # (T,) bool
        window = spec.rebalance_window or ctx.scenario.clock.step
        self.steps_left = _steps_to_settlement(self.settles, window / ctx.scenario.clock.step)
        self._worked_step = -1  # the last window step whose share was sent
        self._settling_step = -1  # the step whose close is being struck
        self._direction = np.zeros(len(self.products))  # of each product's first close trade
        self._settle_price = self.close_price  # the last price seen in that step
        self._orders = Orders.empty()

    def nav(self, price: float) -> np.ndarray:
        """Indicative value of each product at the index level `price` (0 at the worst: a
        product's value cannot go below zero); a terminated product keeps its final value."""
        moved = self.nav_close * np.maximum(
            1.0 + self.leverage * (price / self.close_price - 1.0), 0.0
        )
        return np.where(self.live, moved, self.nav_terminated)

    def mark(self, view: MarketView, log: EventLog) -> None:
        a = self.asset
        price = float(view.price[a])
        if self._settling_step >= 0 and view.step != self._settling_step:
            self._strike_close(log)
        if not view.is_open[a]:
            self._orders = Orders.empty()
            return
        nav = self.nav(price)
        self._terminate(nav, price, log)
        target = self.units.copy()
        chase = np.ones(len(self.products), dtype=bool)
        left = self.steps_left[view.step]
        if left > 1 and view.step != self._worked_step:  # a share of the gap, once a step
            self._worked_step = view.step
            target = np.where(
                self.live, self.units + (self.leverage * nav / price - self.units) / left, 0.0
            )
        elif self.settles[view.step]:
            first = view.step != self._settling_step
            self._settling_step, self._settle_price = view.step, price
            target = np.where(self.live, self.leverage * nav / price, 0.0)
            if first:
                self._direction = np.sign(target - self.units)
            chase = np.sign(target - self.units) == self._direction
        target[~self.live] = 0.0
        trade = target - self.units
        exposure = np.abs(self.leverage) * np.where(self.live, nav, 0.0)
        due = np.where(
            self.live, chase & (np.abs(trade) * price > self.band * exposure), trade != 0.0
        )
        due &= self.enabled
        owner = np.flatnonzero(due)
        self._orders = Orders(np.full(len(owner), a), trade[owner], owner)

    def _terminate(self, nav: np.ndarray, price: float, log: EventLog) -> None:
        hit = self.live & (self.nav_close > 0) & (nav <= self.floor_share * self.nav_close)
        for i in np.flatnonzero(hit):
            log.add(
                "vol_etp_terminated",
                population=self.name,
                asset=self.asset_id,
                quantity=-self.units[i],
                notional_usd=float(nav[i]),
                price=price,
                detail=f"{self.products[i]}: indicative value "
                f"{100.0 * (nav[i] / self.nav_close[i] - 1.0):.1f}% from the prior close",
            )
        self.nav_terminated[hit] = nav[hit]
        self.live &= ~hit

    def _strike_close(self, log: EventLog) -> None:
        """The settlement step is over: its last price is the close the NAV is struck on."""
        price = self._settle_price
        nav = self.nav(price)
        change = 100.0 * (
            np.divide(nav, self.nav_close, out=np.ones_like(nav), where=self.nav_close > 0) - 1.0
        )
        for i in np.flatnonzero(self.live):
            log.add(
                "vol_etp_close",
                population=self.name,
                asset=self.asset_id,
                quantity=self.units[i],
                notional_usd=float(nav[i]),
                price=price,
                detail=f"{self.products[i]}: NAV {change[i]:+.1f}%",
            )
        self.nav_close = np.where(self.live, nav, self.nav_close)
        self.close_price = price
        self._settling_step = -1

    def orders(self) -> Orders:
        return self._orders

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        for k in np.flatnonzero(filled):
            i, quantity = orders.owner[k], orders.quantity[k]
            self.units[i] += quantity
            self.cash_usd -= quantity * price[k]
            log.add(
                "vol_etp_rebalance",
                population=self.name,
                asset=self.asset_id,
                quantity=quantity,
                notional_usd=abs(quantity) * price[k],
                price=price[k],
                detail=self.products[i],
            )
        self._orders = Orders.empty()  # the next round's mark sends what is still due

    def holdings(self, n_assets: int) -> np.ndarray:
        out = np.zeros(n_assets)
        out[self.asset] = self.units.sum()
        return out

    def cash(self) -> float:
        return self.cash_usd

    def cash_by_currency(self) -> dict[str, float]:
        return {self.currency: self.cash_usd}

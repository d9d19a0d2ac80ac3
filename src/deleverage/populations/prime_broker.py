"""Multi-asset funds financed by a prime broker in USD (SPEC §4.4).

The broker lends against the book: margin requirement = Σ haircut·value. Its haircuts
rise as prices fall, haircut = base · (1 + k · drawdown from the running peak): margins
that grow with recent price moves, the "margin spiral" of Brunnermeier–Pedersen (facts
4.1–4.2). Where an asset has an exchange margin (a futures position), the haircut is at
least the exchange's maintenance margin, so a CME hike on silver (facts 2.5–2.6) raises
the fund's requirement the step it takes effect.

A fund whose equity falls below the requirement has a margin call anywhere in its book;
it sells by the pecking order until the requirement is `margin_target` × equity, each
dollar sold releasing its haircut. Peripheral assets go first, so a silver margin call
sells bitcoin. A fund above `default_leverage` (assets ÷ equity; Cont–Schaanning's
minimum, facts 4.9) defaults and the broker liquidates its whole book. The broker loan is
negative USD cash; sales repay it at their fill prices; no interest is accrued. Once a
defaulted fund's book is sold, the loan its sales did not repay is the broker's bad debt,
logged (`bad_debt`) at the fill prices; it stays on the fund as negative cash, so no dollar
vanishes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from deleverage.populations.base import (
    BuildContext,
    MarketView,
    Orders,
    pooled_leverage,
    pooled_leverage_lanes,
)
from deleverage.populations.lanes import lanes_of, same_shapes, stack_rows
from deleverage.populations.pecking import (
    TIER_RANK,
    FundBook,
    FundBookPopulation,
    draw_portfolios,
    pecking_order_sales,
)
from deleverage.results.events import EventLog
from deleverage.scenario.schema import PrimeBrokerFunds


class MarginState(NamedTuple):
    """Per fund, USD (haircuts per asset, fractions)."""

    haircut: np.ndarray  # (K,) margin per dollar held
    equity: np.ndarray
    requirement: np.ndarray  # Σ haircut · value
    leverage: np.ndarray  # assets ÷ equity; inf at zero or negative equity


class PrimeBrokerPopulation(FundBookPopulation):
    kind = "pb_funds"

    def __init__(self, spec: PrimeBrokerFunds, ctx: BuildContext):
        self.name = spec.name
        self.spec = spec
        self.enabled = ctx.enabled
        self.pecking_order = ctx.scenario.channels.pecking_order
        index, assets = ctx.asset_index, ctx.scenario.assets
        self.asset_ids = list(spec.weights)
        columns = np.array([index[a] for a in self.asset_ids])
        self.tier = np.array([TIER_RANK[assets[c].tier] for c in columns])
        self.base_haircut = np.array([spec.haircut_pct[a] / 100.0 for a in self.asset_ids])
        price = ctx.price0[columns]
        self.peak = price.copy()

        equity, units = draw_portfolios(spec, price, ctx.rng)
        # A fund in call at the start would already have met it: drawn books above the
        # broker's requirement start cut back to the level a call restores (SPEC §4).
        exchange = np.array([(assets[c].maintenance_margin_pct or 0.0) / 100.0 for c in columns])
        requirement = units @ (price * np.maximum(self.base_haircut, exchange))
        in_call = requirement > equity
        cut = np.where(in_call, spec.margin_target * equity / requirement, 1.0)
        units = units * cut[:, None]
        cash = (equity - units @ price)[:, None]  # the broker loan, negative
        self.book = FundBook(columns, np.zeros(len(columns), dtype=np.int64), units, cash)
        self.defaulted = np.zeros(spec.funds, dtype=bool)
        self.settled = np.zeros(spec.funds, dtype=bool)  # defaulted, book sold, debt logged
        self._no_equity = np.full(spec.funds, np.inf)  # the leverage where equity is gone
        self._call_bar, self._default_bar = np.zeros(spec.funds), np.zeros(spec.funds)
        self._update_defaults(self.defaulted)

    @classmethod
    def stack(cls, populations: list[PrimeBrokerPopulation]) -> PrimeBrokerLanes | None:
        """The lanes' funds as one slot (`populations.lanes`), or None if their books differ
        in size or assets."""
        first = populations[0]
        if not same_shapes(populations, ("peak", "defaulted")) or not same_shapes(
            [p.book for p in populations], ("units", "cash")
        ):
            return None
        if any(not np.array_equal(p.book.columns, first.book.columns) for p in populations):
            return None
        return PrimeBrokerLanes(populations)

    def _update_defaults(self, default: np.ndarray) -> None:
        """Record defaults; defaulted funds drop out of the screen."""
        self.defaulted |= default  # in place: a lane's arrays may be rows of a slot's
        self._call_bar[:] = np.where(self.defaulted, np.inf, 0.0)
        self._default_bar[:] = np.where(self.defaulted, np.inf, self.spec.default_leverage)

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        """Settle the sales; a defaulted fund whose book is now sold leaves the broker the
        loan its sales did not repay (bad debt at the fill prices)."""
        super().apply_fills(orders, filled, price, log)
        done = self.defaulted & ~self.settled
        done &= ~(self.book.units != 0.0).any(axis=1) & ~(self.book.pending != 0.0).any(axis=1)
        if not done.any():
            return
        self.settled |= done
        unpaid = np.maximum(-self.book.cash[done, 0], 0.0)
        if unpaid.any():
            log.add(
                "bad_debt",
                population=self.name,
                count=int(np.count_nonzero(unpaid)),
                notional_usd=float(unpaid.sum()),
                detail="broker loan left after selling defaulted funds' books at the fill prices",
            )

    def haircuts(self, view: MarketView, price: np.ndarray | None = None) -> np.ndarray:
        """Margin per asset as a fraction of value: broker haircut, at least the exchange's
        (`price`: the view's prices of the book's columns, when the caller has them)."""
        price = view.price[self.book.columns] if price is None else price
        drawdown = 1.0 - price / self.peak
        broker = self.base_haircut * (1.0 + self.spec.haircut_sensitivity * drawdown)
        exchange = view.maintenance_margin_pct[self.book.columns] / 100.0
        return np.minimum(np.fmax(broker, exchange), 1.0)

    def gross_leverage(self, price: np.ndarray) -> float:
        """Gross exposure ÷ equity of the funds not in default, pooled (on the projected
        book, `price` the engine's (A,) vector)."""
        p = price[self.book.columns]
        units, cash = self.book.projected(p)
        gross = np.abs(units) @ p
        return pooled_leverage(gross, units @ p + cash[:, 0], ~self.defaulted)

    def margin_state(self, view: MarketView, price: np.ndarray | None = None) -> MarginState:
        """Per fund, on the projected book (pending orders filled at the view's prices;
        `price`: those of the book's columns, when the caller has them)."""
        price = view.price[self.book.columns] if price is None else price
        units, cash = self.book.projected(price)
        haircut = self.haircuts(view, price)
        held = units @ price
        equity = held + cash[:, 0]
        assets = held + np.maximum(cash[:, 0], 0.0)
        leverage = np.divide(assets, equity, out=self._no_equity.copy(), where=equity > 0.0)
        return MarginState(haircut, equity, units @ (price * haircut), leverage)

    def mark(self, view: MarketView, log: EventLog) -> None:
        if not self.enabled:
            return
        price = view.price[self.book.columns]
        np.maximum(self.peak, price, out=self.peak)
        self._act(self.margin_state(view, price), price, log)

    def _act(self, state: MarginState, price: np.ndarray, log: EventLog) -> None:
        """Call, default and sell on this round's margin state (`price`: the book's columns)."""
        haircut, equity, requirement, leverage = state
        # a cheap screen first: is any live fund in call or past its default leverage?
        called = (requirement - equity > self._call_bar).any()
        if not (called or (leverage > self._default_bar).any()):
            return
        live = ~self.defaulted
        default = live & (leverage > self.spec.default_leverage)
        call = live & ~default & (equity < requirement)
        if not (default.any() or call.any()):
            return

        values = self.book.projected(price)[0] * price
        release = np.where(call, requirement - self.spec.margin_target * equity, 0.0)
        sales = pecking_order_sales(
            values, self.tier, release, pecking_order=self.pecking_order, weights=haircut
        )
        sales[default] = values[default]
        self._update_defaults(default)
        order = "pecking order" if self.pecking_order else "proportional"
        self.book.queue_sales(sales, price, log, self.name, self.asset_ids, order)
        if call.any():
            log.add(
                "margin_call",
                population=self.name,
                count=np.count_nonzero(call),
                notional_usd=float((requirement - equity)[call].sum()),
                detail=f"requirement above equity; release {release.sum():.0f} USD of margin",
            )
        if default.any():
            log.add(
                "fund_default",
                population=self.name,
                count=np.count_nonzero(default),
                notional_usd=float(values[default].sum()),
                detail=f"leverage above {self.spec.default_leverage} or no equity: "
                "the broker liquidates the book",
            )


class PrimeBrokerLanes:
    """The prime-broker funds of several lanes as one slot (`populations.lanes`): the margin
    state of every active lane in one pass, each lane's own `_act` where its screen finds a
    call or a default. Arrays (L, F, K); each lane's population works on its row."""

    def __init__(self, populations: list[PrimeBrokerPopulation]):
        self.lanes = populations
        first = populations[0]
        self.columns = first.book.columns
        self.quote_matrix = first.book._quote_matrix
        self.enabled = np.array([p.enabled for p in populations])
        self.all_enabled = bool(self.enabled.all())
        own = stack_rows(populations, ("peak", "_call_bar", "_default_bar"))
        self.peak, self.call_bar, self.default_bar = (
            own[name] for name in ("peak", "_call_bar", "_default_bar")
        )
        book = stack_rows([p.book for p in populations], ("units", "cash", "pending"))
        self.units, self.cash, self.pending = book["units"], book["cash"], book["pending"]
        self.base_haircut = np.stack([p.base_haircut for p in populations])
        self.sensitivity = np.array([[p.spec.haircut_sensitivity] for p in populations])

    def gross_leverage_lanes(self, price: np.ndarray) -> np.ndarray:
        """Every lane's `gross_leverage` at its row of `price` (L, A)."""
        p = price[:, self.columns]
        units, cash = self._projected(np.arange(len(self.lanes)), p)
        gross = (np.abs(units) @ p[:, :, None])[..., 0]
        equity = (units @ p[:, :, None])[..., 0] + cash[..., 0]
        live = ~np.stack([lane.defaulted for lane in self.lanes])
        return pooled_leverage_lanes(gross, equity, live)

    def _projected(self, rows: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`FundBook.projected` of lanes `rows` at their prices (rows, K)."""
        units, cash = self.units[rows], self.cash[rows]
        open_ = [n for n, j in enumerate(rows.tolist()) if self.lanes[j].book._open]
        if open_:  # pending orders filled at these prices
            pending = self.pending[rows[open_]]
            cash[open_] -= (pending * price[open_, None, :]) @ self.quote_matrix
            units[open_] += pending
        return units, cash

    def mark_lanes(self, view: MarketView, rows: np.ndarray, logs) -> None:
        if not self.all_enabled:
            view, rows, logs = lanes_of(view, rows, logs, self.enabled[rows])
            if not len(rows):
                return
        price = view.price[:, self.columns]
        peak = np.maximum(self.peak[rows], price)
        self.peak[rows] = peak
        units, cash = self._projected(rows, price)
        drawdown = 1.0 - price / peak
        broker = self.base_haircut[rows] * (1.0 + self.sensitivity[rows] * drawdown)
        exchange = view.maintenance_margin_pct[:, self.columns] / 100.0
        haircut = np.minimum(np.fmax(broker, exchange), 1.0)
        held = (units @ price[:, :, None])[..., 0]
        cash = cash[..., 0]
        equity = held + cash
        assets = held + np.maximum(cash, 0.0)
        leverage = np.divide(assets, equity, out=np.full_like(equity, np.inf), where=equity > 0.0)
        requirement = (units @ (price * haircut)[:, :, None])[..., 0]
        called = requirement - equity > self.call_bar[rows]
        called |= leverage > self.default_bar[rows]
        if not called.any():
            return
        for n in np.flatnonzero(called.any(axis=1)).tolist():
            state = MarginState(haircut[n], equity[n], requirement[n], leverage[n])
            self.lanes[rows[n]]._act(state, price[n], logs[n])

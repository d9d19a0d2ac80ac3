"""Yen carry-trade funds (SPEC §4.3): borrow yen, hold a multi-asset USD portfolio.

Balance sheet of fund f, in USD, with the pair priced in yen per dollar (USDJPY = S):

    equity = Σ units·price + dollars + yen / S,     yen = −B_jpy (the loan, negative)
    leverage = assets ÷ equity                       (assets: holdings and positive cash)

so a stronger yen (S down) raises the loan's dollar value and the leverage with asset
prices unchanged. The rule is Cont–Schaanning's threshold model (facts 4.8–4.9) stated on
assets ÷ equity (their equity ÷ assets buffer 4%, target 5% and minimum 3% are leverages
25, 20 and 33): above `buffer_leverage` sell down to `target_leverage`, i.e. raise and
repay X = assets − target·equity; above `default_leverage` (or at zero equity) default
and liquidate everything. Gains trigger no buying (facts 4.8). Sales follow the pecking
order (`pecking.py`).

Repaying yen is buying yen: the fund sells X units of the pair (one unit is one dollar,
priced S yen). Units of USDJPY and cash are conserved exactly: the pair's column holds the
dollars the fund has delivered (negative after repayments), so the fund's dollars are its
USD cash plus that column, and the yen it receives at the fill price (X·fill) go straight
to the loan. With `fx_feedback` off the fund converts at the current rate with an outside
FX desk instead, and no order reaches the book: the fund's dollars fall and its yen rise
by the `desk_usd` and `desk_yen` it has exchanged, and the desk holds exactly the
opposite amounts. Fund and desk are both in this population, so the transfer cancels
inside `holdings` and `cash`, which do not move: conservation still holds, exactly.

Voluntary unwind: carry = investment rate − funding cost, the two legs of the rate
differential (e.g. Fed funds and the BoJ policy rate), each a constant or a dated path read
at the step's start; funding cost = funding rate + spread, plus β·Δ yield of a bond only
when the scenario links one (`rate_asset`): a flight-to-safety bond rally does not cheapen
yen funding by itself. A fund whose carry ÷ annualized USDJPY volatility falls below its
threshold repays `unwind_share` of its loan once (the Aug-2024 pattern, facts 4.12:
procyclical deleveraging). The volatility is an EWMA of the pair's step returns seen by the funds.
Interest is not accrued: over a few weeks carry matters through decisions, and cash moves
only by trades. The `carry_unwind` channel switches all of this population's trading off.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

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
from deleverage.scenario.schema import CarryFunds, rate_at

USD, JPY = 0, 1  # quote currencies of the fund book's cash columns
TRADING_DAYS = 252


class BalanceSheet(NamedTuple):
    """Per fund, USD."""

    held: np.ndarray  # holdings at market
    dollars: np.ndarray  # USD cash plus dollars held or delivered in the pair
    loan: np.ndarray  # yen loan valued at the current USDJPY
    assets: np.ndarray  # holdings plus positive cash
    equity: np.ndarray  # holdings + dollars − loan
    leverage: np.ndarray  # assets ÷ equity; inf at zero or negative equity


class CarryFundsPopulation(FundBookPopulation):
    kind = "carry_funds"

    def __init__(self, spec: CarryFunds, ctx: BuildContext):
        self.name = spec.name
        self.spec = spec
        self.enabled = ctx.enabled
        channels = ctx.scenario.channels
        self.pecking_order, self.fx_feedback = channels.pecking_order, channels.fx_feedback
        index, assets = ctx.asset_index, ctx.scenario.assets
        self.asset_ids = [*spec.weights, spec.fx_asset]
        columns = np.array([index[a] for a in self.asset_ids])
        self.fx = len(spec.weights)  # the pair's column in the fund book
        self.tier = np.array([TIER_RANK[assets[c].tier] for c in columns])
        price = ctx.price0[columns]

        equity, held = draw_portfolios(spec, price[: self.fx], ctx.rng)
        n = spec.funds
        units = np.zeros((n, len(columns)))
        units[:, : self.fx] = held
        cash = np.zeros((n, 2))
        cash[:, JPY] = -(held @ price[: self.fx] - equity) * price[self.fx]  # the yen loan
        quote = np.where(np.arange(len(columns)) == self.fx, JPY, USD)
        currencies = ("USD", assets[columns[self.fx]].currency)
        self.book = FundBook(columns, quote, units, cash, currencies)
        self.threshold = spec.carry_to_vol_threshold.sample(ctx.rng, n)
        self.defaulted = np.zeros(n, dtype=bool)
        self.settled = np.zeros(n, dtype=bool)  # defaulted, book sold, bad debt logged
        self._last_fill_fx = None  # USDJPY of the funds' last yen purchase
        self.unwound = np.zeros(n, dtype=bool)
        self.desk_usd = np.zeros(n)  # dollars each fund delivered to the outside FX desk
        self.desk_yen = np.zeros(n)  # and yen it received (fx_feedback off)
        self._desk_trades = 0  # exchanges with the desk so far (for `_cash_parts`)
        self._cash_key, self._cash_cache = None, None
        self._sheet_key, self._sheet = None, None  # the last balance sheet and its inputs
        self._no_equity = np.full(n, np.inf)  # the leverage where equity is gone (copied)
        self.leverage = self.balance_sheet(ctx.price0).leverage

        self.rate_column = None if spec.rate_asset is None else index[spec.rate_asset]
        self.yield0 = None if spec.rate_asset is None else assets[self.rate_column].yield_pct
        pair = assets[index[spec.fx_asset]]
        hours = next(v for v in ctx.scenario.venues if v.id == pair.venue).session.hours_per_day
        self.steps_per_day = hours / ctx.step_hours
        self.step_variance = pair.daily_vol**2 / self.steps_per_day
        self.vol_decay = 0.5 ** (ctx.step_hours * 3600.0 / spec.vol_half_life.total_seconds())
        self._last_fx = float(price[self.fx])
        self._step = -1
        self._legs_time, self._legs = None, (np.nan, np.nan)
        # both legs at every step start of the clock, read once (a dated path's lookup a
        # step was most of this population's cost); other times are looked up as they come
        clock = ctx.scenario.clock
        starts = pd.date_range(clock.start, periods=clock.n_steps, freq=clock.step)
        starts = starts.as_unit("ns").asi8  # int64 ns, as `rate_at` reads times
        self._leg_table = (
            starts,
            rate_at(spec.investment_rate, starts).tolist(),
            rate_at(spec.funding_rate, starts).tolist(),
        )
        self._ratio_key, self._ratio = None, np.nan  # carry ÷ vol of a step (no rate_asset)
        self._sell_above = np.zeros(n)
        self._update_flags(self.defaulted, self.unwound)

    @classmethod
    def stack(cls, populations: list[CarryFundsPopulation]) -> CarryLanes | None:
        """The lanes' funds as one slot (`populations.lanes`), or None if their books differ
        in size or assets."""
        first = populations[0]
        books = [p.book for p in populations]
        if not same_shapes(populations, ("defaulted",)) or not same_shapes(books, ("units",)):
            return None
        if any(not np.array_equal(b.columns, first.book.columns) for b in books):
            return None
        return CarryLanes(populations)

    def balance_sheet(self, price: np.ndarray) -> BalanceSheet:
        """Per fund, USD, on the projected book: pending orders filled at `price` (the
        engine's (A,) price vector). The same book at the same prices (the step's last round
        and the leverage recorded after it) is not valued twice."""
        p = price[self.book.columns]
        key = (self.book.version, self._desk_trades, p.tobytes())
        if key == self._sheet_key:
            return self._sheet
        units, cash = self.book.projected(p)
        held = units[:, : self.fx] @ p[: self.fx]
        dollars, idle, yen = self._cash_parts(units, cash)
        yen_usd = yen / p[self.fx]
        equity = held + dollars + yen_usd
        assets = held + idle + np.maximum(yen_usd, 0.0)
        leverage = np.divide(assets, equity, out=self._no_equity.copy(), where=equity > 0.0)
        sheet = BalanceSheet(held, dollars, np.maximum(-yen_usd, 0.0), assets, equity, leverage)
        self._sheet_key, self._sheet = key, sheet
        return sheet

    def _cash_parts(self, units, cash) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per fund: dollars, the positive part of them, and yen (the loan, negative). They
        move only with trades, queued orders and the FX desk: on a book without pending
        orders they are read again only after one of those."""
        key = (self.book.version, self._desk_trades)
        if self.book._open or key != self._cash_key:
            dollars = cash[:, USD] + units[:, self.fx] - self.desk_usd
            parts = dollars, np.maximum(dollars, 0.0), cash[:, JPY] + self.desk_yen
            if self.book._open:  # projected at this price
                return parts
            self._cash_key, self._cash_cache = key, parts
        return self._cash_cache

    def gross_leverage(self, price: np.ndarray) -> float:
        """Assets ÷ equity of the funds not in default, pooled (the balance sheet's
        leverage, summed over funds)."""
        sheet = self.balance_sheet(price)
        return pooled_leverage(sheet.assets, sheet.equity, ~self.defaulted)

    def _update_flags(self, default: np.ndarray, unwind: np.ndarray) -> None:
        """Record defaults and unwinds, and the screen they imply for later rounds."""
        self.defaulted |= default  # in place: a lane's arrays may be rows of a slot's
        self.unwound |= unwind
        self._sell_above[:] = np.where(self.defaulted, np.inf, self.spec.buffer_leverage)
        waiting = self.threshold[~self.defaulted & ~self.unwound]
        self._unwind_below = float(waiting.max(initial=-np.inf))

    def rates(self, view: MarketView) -> tuple[float, float]:
        """(investment rate, funding cost) in % p.a. at the step's start: the two legs of
        the rate differential, the funding leg plus the spread and, only with an explicit
        `rate_asset`, β·Δ its yield."""
        spec = self.spec
        starts, investment_legs, funding_legs = self._leg_table
        k = view.step
        if 0 <= k < len(starts) and starts[k] == view.time.value:
            investment, funding = investment_legs[k], funding_legs[k]
        else:
            if view.time != self._legs_time:  # the dated legs, once per step
                now = np.array([view.time.value])
                legs = rate_at(spec.investment_rate, now), rate_at(spec.funding_rate, now)
                self._legs_time, self._legs = view.time, (float(legs[0][0]), float(legs[1][0]))
            investment, funding = self._legs
        funding += spec.funding_spread_pct
        if self.rate_column is not None:
            beta = 1.0 if spec.funding_beta is None else spec.funding_beta
            funding += beta * (view.yield_pct[self.rate_column] - self.yield0)
        return investment, funding

    def carry_to_vol(self, view: MarketView) -> float:
        """Carry (% p.a.) ÷ annualized USDJPY volatility (%)."""
        investment, funding = self.rates(view)
        return (investment - funding) / (100.0 * self.annual_vol())

    def annual_vol(self) -> float:
        """The funds' annualized USDJPY volatility (EWMA of step returns), a fraction."""
        return math.sqrt(self.step_variance * self.steps_per_day * TRADING_DAYS)

    def _observe_fx(self, view: MarketView) -> None:
        """Once per step: update the EWMA variance of the pair's open-market step returns."""
        if view.step == self._step:
            return
        self._step = view.step
        fx_price = float(view.price[self.book.columns[self.fx]])
        if view.is_open[self.book.columns[self.fx]]:
            r = np.log(fx_price / self._last_fx)
            self.step_variance = self.vol_decay * self.step_variance + (1 - self.vol_decay) * r * r
        self._last_fx = fx_price

    def mark(self, view: MarketView, log: EventLog) -> None:
        if not self.enabled:
            return
        ratio = self._ratio_at(view)
        sheet = self.balance_sheet(view.price)
        self.leverage = sheet.leverage
        self._act(view, sheet, ratio, log)

    def _ratio_at(self, view: MarketView) -> float:
        """Observe the pair (once a step) and return this round's carry ÷ volatility."""
        self._observe_fx(view)
        if self.rate_column is not None:  # the linked yield moves with every round's price
            return self.carry_to_vol(view)
        if self._ratio_key != (view.step, view.time):  # else it is the step's
            self._ratio_key, self._ratio = (view.step, view.time), self.carry_to_vol(view)
        return self._ratio

    def _act(self, view: MarketView, sheet: BalanceSheet, ratio: float, log: EventLog) -> None:
        """Default, deleverage or unwind on this round's balance sheet and carry ÷ vol."""
        spec = self.spec
        held, dollars, loan, assets, equity, leverage = sheet
        # a cheap screen first: does any live fund breach its buffer or want out?
        if not ((leverage > self._sell_above).any() or ratio < self._unwind_below):
            return
        live = ~self.defaulted
        default = live & (leverage > spec.default_leverage)
        breach = live & ~default & (leverage > spec.buffer_leverage)
        unwind = live & ~default & ~breach & ~self.unwound & (ratio < self.threshold)
        unwind &= loan > 0.0
        if not (default.any() or breach.any() or unwind.any()):
            return

        p = view.price[self.book.columns]
        values = self.book.projected(p)[0] * p
        values[:, self.fx] = 0.0
        idle = np.maximum(dollars, 0.0)
        amount = np.where(breach, assets - spec.target_leverage * equity, 0.0)
        amount = np.where(unwind, spec.unwind_share * loan, amount)
        amount = np.where(default, held + idle, amount)
        sales = pecking_order_sales(
            values, self.tier, np.maximum(amount - idle, 0.0), pecking_order=self.pecking_order
        )
        repay = np.minimum(sales.sum(axis=1) + np.minimum(idle, amount), loan)
        self._update_flags(default, unwind)
        order = "pecking order" if self.pecking_order else "proportional"
        investment, funding = self.rates(view)
        self.book.queue_sales(sales, p, log, self.name, self.asset_ids, order)
        self._repay(repay, float(p[self.fx]), log)
        for kind, funds, detail in (
            ("fund_default", default, f"leverage above {spec.default_leverage} or no equity"),
            ("deleverage", breach, f"leverage above {spec.buffer_leverage}: sell to target"),
            (
                "voluntary_unwind",
                unwind,
                f"carry/vol {ratio:.3f} below threshold: investment {investment:.2f}% − "
                f"funding {funding:.2f}% over {100 * self.annual_vol():.1f}% volatility",
            ),
        ):
            if funds.any():
                log.add(
                    kind,
                    population=self.name,
                    count=np.count_nonzero(funds),
                    notional_usd=float(amount[funds].sum()),
                    detail=detail,
                )

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        """Settle the fills. A defaulted fund whose holdings and yen purchase have all
        filled leaves its lenders what its dollars do not cover: bad debt valued at the
        prices the sales actually got and the USDJPY of its yen purchase."""
        fx_fill = price[filled & (orders.owner == self.fx)]
        super().apply_fills(orders, filled, price, log)
        if len(fx_fill):
            self._last_fill_fx = float(fx_fill[0])
        done = self.defaulted & ~self.settled & ~(self.book.pending != 0.0).any(axis=1)
        done &= ~(self.book.units[:, : self.fx] != 0.0).any(axis=1)
        if not done.any():
            return
        self.settled |= done
        fx = self._last_fill_fx or self._last_fx
        cash, units = self.book.cash[done], self.book.units[done]
        dollars = cash[:, USD] + units[:, self.fx] - self.desk_usd[done]
        equity = dollars + (cash[:, JPY] + self.desk_yen[done]) / fx
        unpaid = np.maximum(-equity, 0.0)
        if unpaid.any():
            log.add(
                "bad_debt",
                population=self.name,
                asset=self.asset_ids[self.fx],
                count=np.count_nonzero(unpaid),
                notional_usd=float(unpaid.sum()),
                price=fx,
                detail="yen loan left unpaid by defaulted funds, at the fill prices",
            )

    def _repay(self, repay_usd: np.ndarray, fx_price: float, log: EventLog) -> None:
        """Buy back `repay_usd` worth of yen: sell that many units of the pair."""
        total = float(repay_usd.sum())
        if total == 0.0:
            return
        if self.fx_feedback:
            order = np.zeros_like(self.book.pending)
            order[:, self.fx] = -repay_usd
            self.book.queue(order)
            how = "USDJPY sell order"
        else:
            self.desk_usd += repay_usd
            self.desk_yen += repay_usd * fx_price
            self._desk_trades += 1
            how = "outside FX desk at the current rate, no order"
        log.add(
            "fx_repay",
            population=self.name,
            asset=self.asset_ids[self.fx],
            count=np.count_nonzero(repay_usd),
            quantity=-total,
            notional_usd=total,
            price=fx_price,
            detail=f"{total * fx_price:.0f} JPY repaid via {how}",
        )


class CarryLanes:
    """The carry funds of several lanes as one slot (`populations.lanes`): every active
    lane's balance sheet and carry ÷ volatility in one pass (arrays (L, F, K)), each lane's
    own `_act` where its screen finds a breach or an unwind."""

    def __init__(self, populations: list[CarryFundsPopulation]):
        self.lanes = populations
        first = populations[0]
        self.columns, self.fx = first.book.columns, first.fx
        self.enabled = np.array([p.enabled for p in populations])
        self.all_enabled = bool(self.enabled.all())
        book = stack_rows([p.book for p in populations], ("units", "cash", "pending"))
        self.units, self.cash, self.pending = book["units"], book["cash"], book["pending"]
        own = stack_rows(populations, ("desk_usd", "desk_yen", "_sell_above", "defaulted"))
        self.desk_usd, self.desk_yen, self.sell_above, self.defaulted = (
            own[name] for name in ("desk_usd", "desk_yen", "_sell_above", "defaulted")
        )
        # carry ÷ vol from the step tables (`rates`), where no bond yield moves the funding
        self.tabled = all(p.rate_column is None for p in populations)
        self.starts = first._leg_table[0]
        self.investment = np.array([p._leg_table[1] for p in populations])  # (L, steps)
        self.funding = np.array([p._leg_table[2] for p in populations])
        self.spread = np.array([p.spec.funding_spread_pct for p in populations])
        self.decay = np.array([p.vol_decay for p in populations])
        self.steps_per_day = np.array([p.steps_per_day for p in populations])

    def _sheets(self, rows, price: np.ndarray) -> BalanceSheet:
        """`balance_sheet` of lanes `rows` at their `price` rows (the engine's (·, A)), on
        their books without pending orders (a lane with orders pending values itself)."""
        fx = self.fx
        p = price[:, self.columns]
        units, cash = self.units[rows], self.cash[rows]
        held = (units[..., :fx] @ p[:, :fx, None])[..., 0]
        dollars = cash[..., USD] + units[..., fx] - self.desk_usd[rows]
        yen_usd = (cash[..., JPY] + self.desk_yen[rows]) / p[:, fx, None]
        equity = held + dollars + yen_usd
        assets = held + np.maximum(dollars, 0.0) + np.maximum(yen_usd, 0.0)
        leverage = np.divide(assets, equity, out=np.full_like(equity, np.inf), where=equity > 0.0)
        return BalanceSheet(held, dollars, np.maximum(-yen_usd, 0.0), assets, equity, leverage)

    def gross_leverage_lanes(self, price: np.ndarray) -> np.ndarray:
        """Every lane's `gross_leverage` at its row of `price` (L, A)."""
        sheet = self._sheets(slice(None), price)
        assets, equity = sheet.assets, sheet.equity
        for j, lane in enumerate(self.lanes):
            if lane.book._open:  # the projected book
                own = lane.balance_sheet(price[j])
                assets[j], equity[j] = own.assets, own.equity
        return pooled_leverage_lanes(assets, equity, ~self.defaulted)

    def _ratios(self, view: MarketView, rows: list[int]) -> list[float]:
        """Each lane's carry ÷ vol this round (`_ratio_at`): a lane's first round of a step
        observes the pair and reads the step's rates, all such lanes at once."""
        lanes, step, time = self.lanes, view.step, view.time
        new = [n for n, j in enumerate(rows) if lanes[j]._step != step]
        if new and self.tabled and 0 <= step < len(self.starts) and self.starts[step] == time.value:
            at = np.array([rows[n] for n in new])
            column = self.columns[self.fx]
            fx_price = view.price[new, column]
            last = np.array([lanes[j]._last_fx for j in at.tolist()])
            variance = np.array([lanes[j].step_variance for j in at.tolist()])
            r = np.log(fx_price / last)
            decay = self.decay[at]
            updated = decay * variance + (1 - decay) * r * r
            variance = np.where(view.is_open[new, column], updated, variance)
            annual = np.sqrt(variance * self.steps_per_day[at] * TRADING_DAYS)
            funding = self.funding[at, step] + self.spread[at]
            ratio = (self.investment[at, step] - funding) / (100.0 * annual)
            for i, j in enumerate(at.tolist()):
                lane = lanes[j]
                lane._step, lane._last_fx = step, float(fx_price[i])
                lane.step_variance = float(variance[i])
                lane._ratio_key, lane._ratio = (step, time), float(ratio[i])
        ratios = []
        for n, j in enumerate(rows):
            lane = lanes[j]
            key = lane._ratio_key
            if lane.rate_column is None and key is not None and key[0] == step and key[1] is time:
                ratios.append(lane._ratio)
            else:
                ratios.append(lane._ratio_at(view.row(n)))
        return ratios

    def mark_lanes(self, view: MarketView, rows: np.ndarray, logs) -> None:
        if not self.all_enabled:
            view, rows, logs = lanes_of(view, rows, logs, self.enabled[rows])
            if not len(rows):
                return
        sheet = self._sheets(rows, view.price)
        breach = (sheet.leverage > self.sell_above[rows]).any(axis=1)
        rows = rows.tolist()
        for n, (j, ratio) in enumerate(zip(rows, self._ratios(view, rows), strict=True)):
            lane = self.lanes[j]
            if lane.book._open:  # the projected book (pending orders filled at these prices)
                own = lane.balance_sheet(view.price[n])
                lane.leverage = own.leverage
                lane._act(view.row(n), own, ratio, logs[n])
                continue
            lane.leverage = sheet.leverage[n]
            if breach[n] or ratio < lane._unwind_below:
                lane._act(view.row(n), BalanceSheet(*(x[n] for x in sheet)), ratio, logs[n])

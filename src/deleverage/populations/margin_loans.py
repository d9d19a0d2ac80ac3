"""Retail margin-loan (credit) accounts (issue 13, item 5; `type: margin_loans`).

Each account holds units of one asset bought partly with its broker's loan: `cash_usd` is
its cash at the broker, negative while it borrows, so equity = cash + units · price and the
loan-to-value is −cash ÷ (units · price). Outside cash (`buffer_usd`) is the account's too.

Brokers mark accounts once a day on the closing price (FINRA Rule 4210(a)(2): current
market value is the previous business day's close) and call an account whose equity has
fallen below the maintenance share of its market value (US: 25%, FINRA 4210(c); China: a
collateral ratio, value ÷ loan, below 130%, topped up to 150% by T+1, sold on T+2). Here,
at each daily cycle — the venue's settlement time if it has one, else the step after its
session closes (a lunch break is not a close), else 00:00 UTC for a venue open 24/7:

* a new call asks for the cash that restores `call_to` (a deposit raises equity, not
  value); the outside cash pays it at once if it can, else the call is due in `due_cycles`
  cycles (0: at once);
* at the cycle a call falls due, an account still below maintenance at that close is sold
  by the broker: enough units, at that close, to bring equity back to `call_to` of the
  value (selling x dollars repays x of the loan: equity stays, value falls by x), all of
  them if its equity is gone. The sale is a market order: it trades when the venue next
  trades (a close's sale at the next open), at the fill price. An account the price lifted
  back above maintenance meanwhile is no longer called.

A loss beyond the account (negative equity after the sale) is paid from the outside cash,
the rest owed to the broker (`bad_debt`). Loan interest is left out (days, not months).

Speed: one call price per account (equity < m · value ⇔ price < −cash ÷ (units · (1 − m))),
so a cycle is a few array operations over the accounts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.market.calendar import session_mask, settlement_mask
from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.results.events import EventLog
from deleverage.scenario.schema import MarginLoans


def cycle_mask(ctx: BuildContext, venue_id: str) -> np.ndarray:
    """(T,) True for the steps in which the broker's daily cycle falls."""
    scenario = ctx.scenario
    clock = scenario.clock
    starts = pd.date_range(clock.start, periods=clock.n_steps, freq=pd.Timedelta(clock.step))
    venue = scenario.venues[scenario.venue_index()[venue_id]]
    if venue.settlement:
        return settlement_mask(venue.session, venue.settlement, starts, clock.step)
    trading = session_mask(venue.session, starts)
    if not trading.all():  # the step after each session closes
        return np.r_[False, trading[:-1] & ~trading[1:]]
    return np.r_[False, starts[1:].normalize() != (starts[1:] - clock.step).normalize()]


class MarginLoanPopulation:
    kind = "margin_loans"

    def __init__(self, spec: MarginLoans, ctx: BuildContext):
        self.name = spec.name
        self.asset = ctx.asset_index[spec.asset]
        self.asset_id = spec.asset
        asset = ctx.scenario.assets[self.asset]
        self.currency = asset.currency
        self.venue = asset.venue
        self.enabled = ctx.enabled
        self.maintenance, self.call_to = spec.maintenance_share, spec.call_to_share
        self.due_cycles = spec.due_cycles
        self.cycle = cycle_mask(ctx, asset.venue)
        self._cycled_step = -1

        price, rng, n = ctx.price0[self.asset], ctx.rng, spec.accounts
        size = np.exp(rng.normal(0.0, 1.0, n))  # skewed account sizes (lognormal)
        value = size / size.sum() * spec.market_value_usd
        ltv = np.clip(spec.loan_to_value.sample(rng, n), 0.0, 1.0 - self.maintenance)
        self.units = value / price
        self.cash_usd = -ltv * value
        self.buffer_usd = np.maximum(spec.cash_buffer.sample(rng, n), 0.0) * value
        self.due_in = np.zeros(n, dtype=np.int64)  # cycles left to pay an open call (0: none)
        self.pending = np.zeros(n)  # units the broker is selling, not yet filled (≤ 0)

    def equity(self, price: float) -> np.ndarray:
        return self.cash_usd + self.units * price

    def call_price(self) -> np.ndarray:
        """Price below which each account's equity is under maintenance (0: no loan)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            floor = -self.cash_usd / (self.units * (1.0 - self.maintenance))
        return np.where(self.units > 0.0, np.maximum(floor, 0.0), 0.0)

    def mark(self, view: MarketView, log: EventLog) -> None:
        k = view.step
        if not self.enabled or not self.cycle[k] or k == self._cycled_step:
            return
        self._cycled_step = k
        price = float(view.price[self.asset])
        value = self.units * price
        equity = self.cash_usd + value
        # below maintenance beyond rounding (an account a call restored to it stays there)
        short = equity < (self.maintenance - 1e-12) * value
        below = (self.units > 0.0) & (self.pending == 0.0) & short
        called = self.due_in > 0
        self.due_in[called & ~below] = 0  # lifted back above maintenance: the call is off
        self.due_in[called & below] -= 1
        due = below & called & (self.due_in == 0)
        fresh = np.flatnonzero(below & ~called)
        need = self.call_to * value[fresh] - equity[fresh]
        pays = self.buffer_usd[fresh] >= need
        met = fresh[pays]
        self.buffer_usd[met] -= need[pays]
        self.cash_usd[met] += need[pays]
        unmet = fresh[~pays]
        if self.due_cycles == 0:
            due[unmet] = True
        else:
            self.due_in[unmet] = self.due_cycles
        if len(fresh):
            log.add("margin_call", population=self.name, venue=self.venue,
                    asset=self.asset_id, count=len(fresh), quantity=float(self.units[fresh].sum()),
                    notional_usd=float(need.sum()), price=price,
                    detail=f"{len(met)} met from outside cash ({need[pays].sum():.0f} USD), "
                    f"{len(unmet)} due in {self.due_cycles} cycles; maintenance "
                    f"{self.maintenance:.2%} of market value")  # fmt: skip
        self._sell(np.flatnonzero(due), price, value, equity, log)

    def _sell(self, accounts, price, value, equity, log) -> None:
        """Queue the broker's sales: x dollars sold repay x of the loan, so equity ÷ value
        returns to `call_to` for x = value − equity ÷ call_to; everything if equity ≤ 0."""
        if not len(accounts):
            return
        target = np.where(
            equity[accounts] > 0.0, value[accounts] - equity[accounts] / self.call_to, np.inf
        )
        sold = np.minimum(target / price, self.units[accounts])
        self.pending[accounts] = -sold
        self.due_in[accounts] = 0
        log.add("liquidation", population=self.name, venue=self.venue, asset=self.asset_id,
                side="long", count=len(accounts), quantity=-float(sold.sum()),
                notional_usd=float(sold.sum() * price), price=price,
                detail="broker sale: margin call unmet by its due date")  # fmt: skip

    def orders(self) -> Orders:
        total = float(self.pending.sum())
        if total == 0.0:
            return Orders.empty()
        return Orders(np.array([self.asset]), np.array([total]), np.array([0]))

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        if not (len(filled) and filled[0]):
            return
        fill = float(price[0])
        selling = self.pending != 0.0
        quantity = self.pending[selling]
        self.units[selling] += quantity
        self.cash_usd[selling] -= quantity * fill
        self.pending[selling] = 0.0
        # a loss beyond the account is paid from outside cash, the rest owed to the broker
        deficit = np.maximum(-self.equity(fill)[selling], 0.0)
        cover = np.minimum(deficit, self.buffer_usd[selling])
        self.buffer_usd[selling] -= cover
        self.cash_usd[selling] += cover
        unpaid = deficit - cover
        if unpaid.any():
            log.add("bad_debt", population=self.name, venue=self.venue, asset=self.asset_id,
                    count=np.count_nonzero(unpaid), notional_usd=float(unpaid.sum()),
                    price=fill, detail="loss beyond the account, owed to the broker")  # fmt: skip

    def holdings(self, n_assets: int) -> np.ndarray:
        out = np.zeros(n_assets)
        out[self.asset] = self.units.sum()
        return out

    def cash(self) -> float:
        return float(self.cash_usd.sum() + self.buffer_usd.sum())

    def cash_by_currency(self) -> dict[str, float]:
        return {self.currency: self.cash()}

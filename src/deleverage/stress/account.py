"""The user's book as one more account in the scenario's market (SPEC §8).

`UserBook` implements the population interface (`populations.base`): the engine marks it,
sends its orders through the same books as everyone else's and settles its fills, so a
large book's own forced selling moves the prices it is marked at. With `static=True` it is
a revaluation only: its orders fill at the price of the moment, without reaching the market
(the static stress test's answer, on a run of the market without the book).

Two kinds of margin account, with the rules the scenario's populations follow:
- the margined account (exchange and broker positions, cash by currency, loans): equity =
  cash − loans + positions at market, in USD. Below maintenance (exchange % of notional
  from the venue's schedule in force, facts 2.2-2.6; the broker's haircut schedule) the
  account is called back to initial margin, as `FuturesPopulation` is. The user posts from
  the reserve, then sells by the response policy; a call it cannot meet is a liquidation:
  the broker closes every position of the account at market.
- one venue sub-account per perp position: collateral = notional at entry ÷ leverage (cross:
  plus the wallet), maintenance and liquidation price from the venue's rule set
  (`venues.perp_rules`, tiered MM, facts 1.2.3), triggered on the mark price and executed
  by the venue's waterfall: binance-like/bybit-like one IOC down a tier when there is margin
  to save (with the liquidation fee), else takeover at the bankruptcy price (the user loses
  the collateral, the venue offloads the position to the market); hyperliquid-like a market
  order (20% first above $100k, the rest after the cooldown), the vault below 2/3 of
  maintenance, the leftover back to the user (facts 1.5.3-1.5.4). Funding is paid every
  settlement at the perp book's rate (premium 0, facts 1.1.1).

Accounting ("spot equivalent", as the perp and futures populations): a futures or perp
position of q units entered at e is q units plus −q·e of cash, so equity is cash + units ·
price and only trades move the engine's cash. What the venue takes (fees, funding, the
collateral of a taken-over position) moves to a venue ledger inside this population, so
units and cash are conserved.
"""

from __future__ import annotations

import numpy as np

from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.populations.pecking import TIER_RANK
from deleverage.results.events import EventLog
from deleverage.stress.loader import currencies, exchange_margins, venue_rules
from deleverage.stress.schema import BrokerMargin, Portfolio
from deleverage.venues import hyperliquid
from deleverage.venues.funding import INTEREST_8H, funding_rate, settlements_between
from deleverage.venues.tiers import liquidation_price

EXCHANGE, BROKER, PERP = 0, 1, 2
NEVER = -1


def broker_requirement(notional_usd: float, margin: BrokerMargin) -> float:
    """Haircut schedule: the base rate up to the first bracket, each bracket's rate on the
    notional above its start."""
    starts = [0.0] + [b.above_usd for b in margin.brackets]
    rates = [margin.haircut_pct] + [b.haircut_pct for b in margin.brackets]
    ends = [*starts[1:], np.inf]
    pieces = np.clip(notional_usd - np.array(starts), 0.0, np.array(ends) - np.array(starts))
    return float(pieces @ np.array(rates) / 100.0)


def ordered_sales(capacity: np.ndarray, rank: np.ndarray, need: float) -> np.ndarray:
    """Share of each position to sell so that Σ share·capacity = `need`: lower ranks first,
    proportional within a rank (the pecking order of `populations.pecking`)."""
    groups = np.unique(rank)
    per_group = np.array([capacity[rank == g].sum() for g in groups])
    before = np.concatenate([[0.0], np.cumsum(per_group)[:-1]])  # exact: no cancellation
    raised = np.clip(need - before, 0.0, per_group)
    share = np.divide(raised, per_group, out=np.zeros_like(raised), where=per_group > 0.0)
    return share[np.searchsorted(groups, rank)]


class UserBook:
    kind = "user_portfolio"

    def __init__(self, portfolio: Portfolio, ctx: BuildContext, static: bool = False):
        scenario = ctx.scenario
        self.name = portfolio.name
        self.static = static
        self.asset_ids = [a.id for a in scenario.assets]
        index = ctx.asset_index
        positions = portfolio.positions
        self.asset = np.array([index[p.asset] for p in positions])
        self.kinds = np.array([{"exchange": EXCHANGE, "broker": BROKER, "perp": PERP}[
            p.margin.type] for p in positions])  # fmt: skip
        self.margins = [p.margin for p in positions]
        self.fallback_pct = [
            exchange_margins(scenario, p.margin, p.asset) if p.margin.type == "exchange" else None
            for p in positions
        ]
        self.venues = [p.venue for p in positions]
        money = currencies(scenario)
        quote = [scenario.assets[a].currency for a in self.asset]
        self.currencies = sorted({"USD", *portfolio.cash, *quote,
                                  *(loan.currency for loan in portfolio.borrowing)})  # fmt: skip
        self.fx_asset = np.array(
            [-1 if money[c] is None else index[money[c]] for c in self.currencies]
        )
        self.quote = np.array([self.currencies.index(c) for c in quote])
        tier = [TIER_RANK[scenario.assets[a].tier] for a in self.asset]
        if portfolio.response.kind == "fixed_list":
            listed = portfolio.response.order
            tier = [listed.index(p.asset) if p.asset in listed else len(listed) for p in positions]
        self.rank = np.array(tier)
        self.response = portfolio.response.kind

        price0 = ctx.price0[self.asset]
        self.units = np.array([p.quantity for p in positions], dtype=float)
        self.balance = np.array([portfolio.cash.get(c, 0.0) for c in self.currencies])
        self.debt = np.zeros(len(self.currencies))
        self.debt_rate = np.zeros(len(self.currencies))  # simple interest per hour
        for loan in portfolio.borrowing:
            q = self.currencies.index(loan.currency)
            self.debt[q] += loan.amount
            self.debt_rate[q] += loan.amount * loan.rate_pct / 100.0 / (365.0 * 24.0)
        self.reserve_usd = portfolio.response.reserve_usd
        futures = self.kinds == EXCHANGE
        np.add.at(self.balance, self.quote[futures], -(self.units * price0)[futures])

        # perp sub-accounts (all positions get a slot; only perps use theirs)
        entry = np.array([p.entry_price or float(ctx.price0[index[p.asset]]) for p in positions])
        perp = self.kinds == PERP
        self.perp_cash = np.where(perp, -self.units * entry, 0.0)  # USD, spot equivalent
        self.collateral = np.zeros(len(positions))
        self.rules, self.funding = [None] * len(positions), np.zeros(len(positions))
        for k in np.flatnonzero(perp):
            margin, rules, book = self.margins[k], *venue_rules(scenario, positions[k].asset)
            self.rules[k] = rules
            self.collateral[k] = abs(self.units[k]) * entry[k] / margin.leverage + margin.wallet_usd
            interest = INTEREST_8H if book is None else book.funding_interest_pct / 100.0
            clamp = 5e-4 if book is None else book.funding_clamp_pct / 100.0
            self.funding[k] = funding_rate(
                0.0, rules.funding_interval_hours, interest, clamp, rules.funding_cap
            )
        self.venue_usd = 0.0  # fees, funding and taken-over collateral: the venue's
        self.venue_owned = np.zeros(len(positions), dtype=bool)  # taken over by the venue
        self.stage = np.zeros(len(positions), dtype=np.int64)  # perp liquidation started
        self.last_chunk_s = np.full(len(positions), -np.inf)
        self.stops = [(index[s.asset], s.trigger, s.quantity) for s in portfolio.stops]
        self.stop_position = np.array(
            [[p.asset for p in positions].index(s.asset) for s in portfolio.stops], dtype=np.int64
        )

        self.pending = np.zeros(len(positions))  # units to trade, + buy
        self._orders = Orders.empty()
        self.step_seconds = ctx.step_hours * 3600.0
        self.step_hours = ctx.step_hours
        self._step = NEVER
        self.liquidating = False  # the broker is closing the margined account
        self._called = NEVER  # step of the last margin call
        n = scenario.clock.n_steps
        self.record = {
            "equity_usd": np.full(n, np.nan),
            "requirement_usd": np.full(n, np.nan),
            "held_shortfall_usd": np.zeros(n),
            "mark": np.full((n, len(positions)), np.nan),
        }
        self.first_call = self.liquidation = NEVER
        self.perp_liquidation = np.full(len(positions), NEVER)
        self.liquidation_price = np.full(len(positions), np.nan)
        self.calls = 0
        # the book held as it is, without any trade: its shortfall below maintenance
        self._held = (self.units.copy(), self.balance.copy(), self.perp_cash.copy(),
                      self.collateral.copy())  # fmt: skip
        self.equity0 = self.equity(ctx.price0, ctx.unit_usd0)

    # ------------------------------------------------------------------ valuation

    def usd_per(self, price: np.ndarray) -> np.ndarray:
        """USD value of one unit of each cash currency."""
        safe = np.where(self.fx_asset >= 0, self.fx_asset, 0)
        return np.where(self.fx_asset >= 0, 1.0 / price[safe], 1.0)

    def _main(self, price, unit_usd, units, cash, debt, rates) -> tuple[float, float, float]:
        """Equity, maintenance and initial requirement of the margined account, USD."""
        main = self.kinds != PERP
        notional = np.abs(units) * unit_usd[self.asset]
        value = (units * unit_usd[self.asset])[main].sum()
        equity = float((cash - debt) @ self.usd_per(price) + value)
        maintenance, initial = rates
        return (
            equity,
            float(maintenance[main] @ notional[main]),
            float(initial[main] @ notional[main]),
        )

    def _rates(self, view: MarketView) -> tuple[np.ndarray, np.ndarray]:
        """Maintenance and initial margin per position as fractions of notional (perps: 0
        here, they have their own accounts). Broker rates are the schedule's average."""
        maintenance, initial = np.zeros(len(self.asset)), np.zeros(len(self.asset))
        for k, margin in enumerate(self.margins):
            a = self.asset[k]
            if margin.type == "exchange":
                m, i = view.maintenance_margin_pct[a], view.initial_margin_pct[a]
                if np.isnan(m) or np.isnan(i):  # the schedule gives none yet
                    i, m = self.fallback_pct[k]
                maintenance[k], initial[k] = m / 100.0, i / 100.0
            elif margin.type == "broker":
                notional = abs(self.units[k] + self.pending[k]) * view.unit_usd[a]
                rate = broker_requirement(notional, margin) / notional if notional else 0.0
                maintenance[k] = initial[k] = rate
        return maintenance, initial

    def perp_balance(self, k: int, price: float) -> float:
        return self.collateral[k] + self.perp_cash[k] + self.units[k] * price

    def equity(self, price: np.ndarray, unit_usd: np.ndarray) -> float:
        """The user's wealth in USD: margined account + reserve + perp accounts not taken
        over by the venue."""
        main = (self.balance - self.debt) @ self.usd_per(price)
        positions = self.units * unit_usd[self.asset]
        perp = self.kinds == PERP
        own = perp & ~self.venue_owned
        perps = self.collateral[own].sum() + self.perp_cash[own].sum() + positions[own].sum()
        return float(main + positions[~perp].sum() + self.reserve_usd + perps)

    # ------------------------------------------------------------------ a round

    def mark(self, view: MarketView, log: EventLog) -> None:
        first_round = view.step != self._step
        if first_round:
            self._step = view.step
            self._accrue(view, log)
            if self.static:
                self._held_shortfall(view)
        self._stops(view, log)
        self._perps(view, log)
        self._margin_call(view, log)
        if self.static:  # revaluation only: fill at the price of the moment, no impact
            open_ = self.is_open(view) & (self.pending != 0.0)
            k = np.flatnonzero(open_)
            self._fill(k, self.pending[k], view.price[self.asset[k]], log)
            self._orders = Orders.empty()
        else:
            k = np.flatnonzero(self.pending != 0.0)
            self._orders = Orders(self.asset[k], self.pending[k], k)
        self.record["equity_usd"][view.step] = self.equity(view.price, view.unit_usd)
        self.record["mark"][view.step] = view.mark[self.asset]

    def is_open(self, view: MarketView) -> np.ndarray:
        return view.is_open[self.asset]

    def _accrue(self, view: MarketView, log: EventLog) -> None:
        """Loan interest (owed to the lender: the loan grows) and perp funding."""
        self.debt += self.debt_rate * self.step_hours
        now = view.time.value / 1e9
        for k in np.flatnonzero((self.kinds == PERP) & (self.units != 0.0) & ~self.venue_owned):
            count = settlements_between(
                now - self.step_seconds, now, self.rules[k].funding_interval_hours
            )
            if count:
                mark = view.mark[self.asset[k]]
                paid = count * self.funding[k] * self.units[k] * mark
                self.collateral[k] -= paid  # longs pay shorts (outside the book: the venue)
                self.venue_usd += paid
                log.add("perp_funding", population=self.name, venue=self.venues[k],
                        asset=self.asset_ids[self.asset[k]], count=count, notional_usd=paid,
                        price=mark)  # fmt: skip

    def _held_shortfall(self, view: MarketView) -> None:
        """Cash short of maintenance if the starting book were held untouched: the extra
        cash that keeps it out of any call at this step (margined account + each perp)."""
        units, cash, perp_cash, collateral = self._held
        equity, maintenance, _ = self._main(
            view.price, view.unit_usd, units, cash, self.debt, self._rates_held(view, units)
        )
        short = max(maintenance - equity - self.reserve_usd, 0.0)
        for k in np.flatnonzero(self.kinds == PERP):
            mark = view.mark[self.asset[k]]
            balance = collateral[k] + perp_cash[k] + units[k] * mark
            mm = float(self.rules[k].table.maintenance_margin(abs(units[k]) * mark))
            short += max(mm - balance, 0.0)
        self.record["held_shortfall_usd"][view.step] = short

    def _rates_held(self, view: MarketView, units: np.ndarray):
        saved = self.units, self.pending
        self.units, self.pending = units, np.zeros_like(units)
        try:
            return self._rates(view)
        finally:
            self.units, self.pending = saved

    def _stops(self, view: MarketView, log: EventLog) -> None:
        keep = []
        for (a, trigger, quantity), k in zip(self.stops, self.stop_position, strict=True):
            price = view.price[a]
            hit = price <= trigger if quantity < 0 else price >= trigger
            if not (hit and view.is_open[a]):
                keep.append(((a, trigger, quantity), k))
                continue
            held = 0.0 if self.venue_owned[k] else self.units[k] + self.pending[k]
            size = np.sign(quantity) * min(abs(quantity), max(-np.sign(quantity) * held, 0.0))
            if size == 0.0:
                continue  # nothing left to stop out: the stop is cancelled
            self.pending[k] += size
            log.add("stop_loss", population=self.name, asset=self.asset_ids[a], quantity=size,
                    notional_usd=abs(size) * view.unit_usd[a], price=price,
                    detail=f"stop at {trigger:g}")  # fmt: skip
        self.stops = [s for s, _ in keep]
        self.stop_position = np.array([k for _, k in keep], dtype=np.int64)

    # ------------------------------------------------------------------ perps

    def _perps(self, view: MarketView, log: EventLog) -> None:
        now = view.time.value / 1e9
        live = (self.kinds == PERP) & (self.units != 0.0) & (self.pending == 0.0)
        for k in np.flatnonzero(live & ~self.venue_owned & self.is_open(view)):
            rules, mark = self.rules[k], float(view.mark[self.asset[k]])
            size, side = abs(self.units[k]), np.sign(self.units[k])
            balance = self.perp_balance(k, mark)
            maintenance = float(rules.table.maintenance_margin(size * mark))
            hit = balance <= maintenance if rules.inclusive_trigger else balance < maintenance
            if not hit:
                self.stage[k] = 0
                continue
            entry = -self.perp_cash[k] / self.units[k]
            liq = float(liquidation_price(self.collateral[k], side, size, entry, rules.table))
            if self.perp_liquidation[k] == NEVER:
                self.perp_liquidation[k] = view.step
                self.liquidation_price[k] = liq
            log.add("perp_liquidation", population=self.name, venue=self.venues[k],
                    asset=self.asset_ids[self.asset[k]], quantity=-self.units[k],
                    notional_usd=size * mark, price=mark,
                    detail=f"liquidation price {liq:.2f} ({rules.name})")  # fmt: skip
            if rules.backstop_share is None:  # centralized waterfall (facts 1.2.5, 1.3.3)
                tier = int(rules.table.tier(size * mark))
                if self.stage[k] == 0 and tier > 0 and balance > 0.0:
                    lower = rules.table.upper_usd[tier - 1]
                    self.pending[k] = -side * (size - lower / mark)
                    self.stage[k] = 1
                else:
                    self._take_over(k, log, "insurance fund at the bankruptcy price")
                continue
            if balance < rules.backstop_share * maintenance:  # hyperliquid-like (1.5.3-1.5.5)
                self._take_over(k, log, "liquidator vault")
            elif now - self.last_chunk_s[k] >= hyperliquid.COOLDOWN_SECONDS:
                chunk = self.stage[k] == 0 and size * mark > hyperliquid.PARTIAL_ABOVE_USD
                share = hyperliquid.PARTIAL_SHARE if chunk else 1.0
                self.pending[k] = -self.units[k] * share
                self.last_chunk_s[k] = now if chunk else self.last_chunk_s[k]
                self.stage[k] = 1

    def _take_over(self, k: int, log: EventLog, who: str) -> None:
        """The venue takes the position and its collateral; it offloads the position to
        the market (its fills are the venue's)."""
        self.venue_usd += self.collateral[k]
        self.collateral[k] = 0.0
        self.venue_owned[k] = True
        self.pending[k] = -self.units[k]
        asset = self.asset_ids[self.asset[k]]
        log.add("perp_takeover", population=self.name, venue=self.venues[k], asset=asset,
                quantity=-self.units[k], detail=who)  # fmt: skip

    # ------------------------------------------------------------------ margined account

    def _margin_call(self, view: MarketView, log: EventLog) -> None:
        main = self.kinds != PERP
        if self.liquidating or view.step == self._called:
            return  # one call a step: the response to it is what the next step sees
        if not np.any(self.units[main] + self.pending[main]):
            return
        price, unit_usd = view.price, view.unit_usd
        # decisions on the projected account: pending orders filled at the price of now
        units = self.units + self.pending
        cash = self.balance.copy()
        np.add.at(cash, self.quote[main], -(self.pending * price[self.asset])[main])
        rates = self._rates(view)
        equity, maintenance, initial = self._main(price, unit_usd, units, cash, self.debt, rates)
        self.record["requirement_usd"][view.step] = maintenance
        if equity >= maintenance:
            return
        self._called = view.step
        if self.first_call == NEVER:
            self.first_call = view.step
        self.calls += 1
        need = initial - equity
        posted = min(self.reserve_usd, need)
        self.reserve_usd -= posted
        self.balance[self.currencies.index("USD")] += posted
        need -= posted
        sold = 0.0
        if need > 0.0 and self.response != "cash":
            value = np.where(main, np.abs(units) * unit_usd[self.asset], 0.0)
            capacity = value * rates[1]
            if capacity.sum() >= need:
                share = ordered_sales(capacity, self.rank, need)
                self.pending -= share * units
                sold, need = float(share @ value), 0.0
        log.add("margin_call", population=self.name, notional_usd=initial - equity,
                detail=f"posted {posted:.0f} USD from reserve, sold {sold:.0f} USD, "
                f"short {need:.0f} USD; maintenance {maintenance:.0f} USD")  # fmt: skip
        if need > 0.0:
            self._liquidate_main(view, log)

    def _liquidate_main(self, view: MarketView, log: EventLog) -> None:
        main = self.kinds != PERP
        self.liquidating = True
        if self.liquidation == NEVER:
            self.liquidation = view.step
        self.pending[main] = -self.units[main]
        for k in np.flatnonzero(main & (self.units != 0.0)):
            a = self.asset[k]
            log.add("liquidation", population=self.name, venue=self.venues[k],
                    asset=self.asset_ids[a], quantity=-self.units[k],
                    notional_usd=abs(self.units[k]) * view.unit_usd[a], price=view.price[a],
                    detail="call not met: the broker closes the account")  # fmt: skip

    # ------------------------------------------------------------------ fills

    def orders(self) -> Orders:
        return self._orders

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        self._fill(orders.owner[filled], orders.quantity[filled], price[filled], log)
        self._orders = Orders.empty()

    def _fill(self, k: np.ndarray, quantity: np.ndarray, price: np.ndarray, log: EventLog):
        if not len(k):
            return
        self.units[k] += quantity
        self.pending[k] -= quantity
        perp = self.kinds[k] == PERP
        np.add.at(self.balance, self.quote[k[~perp]], -(quantity * price)[~perp])
        self.perp_cash[k[perp]] -= (quantity * price)[perp]
        for j, q, p in zip(k[perp], quantity[perp], price[perp], strict=True):
            if self.venue_owned[j] or self.stage[j] == 0:
                continue  # the venue's offload, or the user's own stop
            fee = self.rules[j].liquidation_fee * abs(q) * p
            self.collateral[j] -= fee
            self.venue_usd += fee
        for j in k[perp]:
            if self.units[j] == 0.0 and not self.venue_owned[j]:
                # closed by the market: what is left goes back to the margined account
                self.balance[self.currencies.index("USD")] += self.collateral[j] + self.perp_cash[j]
                self.collateral[j] = self.perp_cash[j] = 0.0
        if self.liquidating and not np.any(self.units[self.kinds != PERP]):
            self.liquidating = False

    # ------------------------------------------------------------------ ledgers

    def holdings(self, n_assets: int) -> np.ndarray:
        if self.static:
            return np.zeros(n_assets)
        return np.bincount(self.asset, self.units, n_assets)

    def cash_total(self) -> np.ndarray:
        """Cash per currency as the engine books trades (loans are claims, not cash)."""
        cash = self.balance.copy()
        usd = self.currencies.index("USD")
        cash[usd] += (self.reserve_usd + self.collateral.sum() + self.perp_cash.sum()
                      + self.venue_usd)  # fmt: skip
        return cash

    def cash(self) -> float:
        return float(self.cash_total().sum())

    def cash_by_currency(self) -> dict[str, float]:
        if self.static:
            return {}
        return dict(zip(self.currencies, map(float, self.cash_total()), strict=True))

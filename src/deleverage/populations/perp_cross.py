"""Perp accounts whose one USD wallet backs positions in several coins: cross margin across
assets (issue 13, item 8, the rest), as (accounts × coins) arrays.

The rule (Binance USDⓈ-M, cross margin; facts 1.2.1, 1.2.5; Binance's account endpoint
reports `totalMarginBalance` = `totalWalletBalance` + `totalUnrealizedProfit` and
`totalMaintMargin` over all positions): for account i with wallet W_i and positions q_ic
entered at e_ic,

    margin balance  B_i = W_i + Σ_c q_ic·(p_c − e_ic)
    maintenance     M_i = Σ_c [ |q_ic|·p_c·MMR_c(tier) − amount_c(tier) ]   (each coin's table)

and the account is liquidated when the margin ratio M/B reaches 100% (binance-like, bybit-like;
below maintenance on hyperliquid-like). Equivalently, with every other coin fixed, coin 1 is
liquidated at Binance's cross-margin liquidation price (Binance FAQ "liquidation price
formula for USDⓈ-M futures contracts under the cross margin mode"):
LP = (WB − TMM1 + UPNL1 + cumB − side·|q|·EP) / (|q|·MMR − side·|q|), with TMM1 and UPNL1
the maintenance margin and unrealized PnL of all the other contracts: the isolated formula
of facts 1.2.3 with WB − TMM1 + UPNL1 as the collateral (`cross_liquidation_price`). A loss in
one coin therefore liquidates the wallet's positions in the other coins too, and a gain in
one coin carries a losing position past its isolated liquidation price.

Liquidation, all of the account's positions at once (Binance: "if an account becomes
bankrupt (negative wallet balance), the Insurance Fund will balance the account back to 0"):
- margin left (B > 0): one market order per coin closes its positions, sent through `orders`
  to each coin's market like a perp book's; each fill realizes its PnL into the wallet and pays
  the liquidation fee (rate × notional filled) to the insurance fund, capped by the margin
  left; once every position is closed, a negative wallet (fills past bankruptcy) is covered
  by the fund;
- no margin left (B ≤ 0): the fund takes every position over at the mark and covers the
  deficit, then works its positions off to each coin's market at most
  `market.participation_rate` of the coin's normal volume a step, as a perp book's fund.
One insurance fund per population (Binance keeps one for all perps but BTCUSDT and ETHUSDT,
facts 1.2.7).

Accounting as in `perps.py` ("spot equivalent"): a position is q units of the coin and −q·e
of cash, so `holdings` (units per coin of accounts and fund) and `cash` (wallets + fund −
cost of open positions) move only with trades at their fill prices; `recomputed_totals`
recomputes both from the arrays for the engine's invariant check.

Not modelled here (a `perp_book` has them): the tier-drop partial liquidation, fund
capacity and ADL (the fund takes every bankrupt account, as a perp book with the
`insurance_adl` channel off), funding payments, new accounts and traders' closes, entry
prices from a history (entries are at the initial price), collateral assets, a basis.

Speed: every live account is checked every round, O(accounts × coins) vectorized, as a perp
book with collateral does (`perp_venue.py`); no Python loop over accounts.
"""

from __future__ import annotations

import numpy as np

from deleverage.populations.base import BuildContext, MarketView, Orders
from deleverage.results.events import EventLog
from deleverage.scenario.perp_cross import PerpCrossMargin
from deleverage.venues.insurance import offload_allowance_left
from deleverage.venues.tiers import TierTable, liquidation_price

SIDE_NAMES = {1: "long", -1: "short"}


def generate_positions(
    spec: PerpCrossMargin, tables: list[TierTable], price0: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Signed units (accounts × coins), entries, wallets and the count of leverage draws
    clipped. Per coin, a share `long_share` of the accounts (at random) is long; notionals are
    lognormal and sum to 2·OI·long_share long and 2·OI·(1 − long_share) short. The wallet is
    the gross notional ÷ leverage, at least Σ notional ÷ the tier's maximum leverage."""
    n, k = spec.accounts, len(spec.coins)
    q = np.zeros((n, k))
    allowed_margin = np.zeros(n)
    for c, coin in enumerate(spec.coins):
        n_long = min(
            max(round(n * coin.long_share), int(coin.long_share > 0)), n - (coin.long_share < 1)
        )
        side = rng.permutation(np.where(np.arange(n) < n_long, 1.0, -1.0))
        weight = np.exp(spec.size_dispersion * rng.standard_normal(n))
        notional = np.zeros(n)
        for sign, share in ((1.0, coin.long_share), (-1.0, 1.0 - coin.long_share)):
            mask = side == sign
            if mask.any():
                notional[mask] = (
                    weight[mask] / weight[mask].sum() * 2 * coin.open_interest_usd * share
                )
        q[:, c] = side * notional / price0[c]
        allowed_margin += notional / tables[c].max_leverage[tables[c].tier(notional)]
    gross = np.abs(q) @ price0
    leverage = np.asarray(spec.leverage.sample(rng, n), float)
    wanted = gross / np.maximum(leverage, 1.0)
    clipped = int(np.count_nonzero((leverage < 1.0) | (wanted < allowed_margin)))
    wallet = np.maximum(wanted, allowed_margin)
    return q, np.broadcast_to(price0, q.shape).copy(), wallet, clipped


def cross_liquidation_price(
    wallet: float,
    q: np.ndarray,
    entry: np.ndarray,
    price: np.ndarray,
    tables: list[TierTable],
    coin: int,
) -> float:
    """Binance's cross-margin liquidation price of coin `coin` with the other coins at
    `price`: the isolated formula (facts 1.2.3, over all tiers) with collateral WB − TMM1 +
    UPNL1 (maintenance margin and unrealized PnL of the other contracts)."""
    others = [c for c in range(len(q)) if c != coin and q[c] != 0.0]
    tmm = sum(float(tables[c].maintenance_margin(abs(q[c]) * price[c])) for c in others)
    upnl = sum(q[c] * (price[c] - entry[c]) for c in others)
    return float(
        liquidation_price(
            np.array([wallet - tmm + upnl]),
            np.sign(q[coin]),
            np.array([abs(q[coin])]),
            np.array([entry[coin]]),
            tables[coin],
        )[0]
    )


class CrossMarginPopulation:
    kind = "perp_cross_margin"

    def __init__(self, spec: PerpCrossMargin, ctx: BuildContext):
        scenario = ctx.scenario
        self.name = spec.name
        self.enabled = ctx.enabled
        self.coin_ids = [coin.asset for coin in spec.coins]
        self.assets = np.array([ctx.asset_index[a] for a in self.coin_ids], dtype=np.int64)
        self.venue_id = spec.venue_of(scenario).id
        self.rules, self.tables = spec.rules(scenario)
        price0 = np.asarray(ctx.price0, float)[self.assets]
        adv = np.array([scenario.assets[a].adv_usd for a in self.assets])
        self._offload_cap_usd = (
            scenario.market.participation_rate * adv / ctx.steps_per_day[self.assets]
        )
        q, entry, wallet, self._clipped = generate_positions(spec, self.tables, price0, ctx.rng)
        self.setup(q, entry, wallet, spec.insurance_fund_usd, price0)

    def setup(self, q, entry, wallet, fund_usd: float, mark: np.ndarray) -> None:
        """Accounts: signed units and entries (accounts × coins), USD wallets; the fund."""
        self.q, self.entry = np.array(q, float), np.array(entry, float)
        self.wallet = np.array(wallet, float)
        self.pending = np.zeros_like(self.q)  # units each account's liquidation orders close
        self.liquidating = np.zeros(len(self.wallet), dtype=bool)
        k = self.q.shape[1]
        self.fund_units, self.fund_cash = np.zeros(k), float(fund_usd)
        self._queued_offload, self._offload_left_usd = np.zeros(k), self._offload_cap_usd.copy()
        self._last_mark, self._step = np.array(mark, float), -1
        self._units = self.q.sum(axis=0)
        self._cash = float(self.wallet.sum() - np.sum(self.q * self.entry)) + self.fund_cash

    # ------------------------------------------------------------------ margin

    def margin(self, idx: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Margin balance (wallet + Σ unrealized PnL) and maintenance margin (Σ of each
        coin's tiered MM) of accounts `idx` at the coins' marks `price`, USD."""
        q = self.q[idx]
        balance = self.wallet[idx] + (q * (price - self.entry[idx])).sum(axis=1)
        notional = np.abs(q) * price
        maintenance = sum(t.maintenance_margin(notional[:, c]) for c, t in enumerate(self.tables))
        return balance, np.asarray(maintenance, float)

    def triggered(self, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Live accounts whose margin ratio M/B reaches 100% (binance-like) or exceeds it
        (hyperliquid-like), with their margin balances."""
        idx = np.flatnonzero(~self.liquidating & np.any(self.q != 0.0, axis=1))
        balance, maintenance = self.margin(idx, price)
        hit = maintenance >= balance if self.rules.inclusive_trigger else maintenance > balance
        return idx[hit], balance[hit]

    # ------------------------------------------------------------------ population interface

    def mark(self, view: MarketView, log: EventLog) -> None:
        if not self.enabled:
            return
        if self._clipped:
            log.add(
                "perp_leverage_clipped",
                population=self.name,
                venue=self.venue_id,
                count=self._clipped,
                detail="wallets raised to the tiers' initial margin",
            )
            self._clipped = 0
        if view.step != self._step:
            self._step = view.step
            self._offload_left_usd = self._offload_cap_usd.copy()
        if not view.is_open[self.assets].any():
            return
        price = np.asarray(view.mark, float)[self.assets]
        self._last_mark = price
        idx, balance = self.triggered(price)
        if len(idx):
            self._liquidate(idx, balance, price, log)

    def orders(self) -> Orders:
        k = len(self.coin_ids)
        limit = self._offload_left_usd / self._last_mark
        self._queued_offload = np.clip(self.fund_units, -limit, limit)
        quantity = np.concatenate([-self.pending.sum(axis=0), -self._queued_offload])
        owner = np.flatnonzero(quantity != 0.0)
        if not len(owner):
            return Orders.empty()
        return Orders(self.assets[owner % k], quantity[owner], owner)

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        k = len(self.coin_ids)
        for owner, done, fill in zip(orders.owner, filled, price, strict=True):
            if done:
                settle = self._settle_liquidations if owner < k else self._settle_offload
                settle(int(owner) % k, float(fill), log)

    def holdings(self, n_assets: int) -> np.ndarray:
        out = np.zeros(n_assets)
        out[self.assets] = self._units
        return out

    def cash(self) -> float:
        return self._cash

    def cash_by_currency(self) -> dict[str, float]:
        return {"USD": self._cash}

    def recomputed_totals(self, n_assets: int) -> tuple[np.ndarray, dict[str, float]]:
        """Units and cash recomputed from the account and fund arrays (see `perps.py`)."""
        units = np.zeros(n_assets)
        units[self.assets] = self.q.sum(axis=0) + self.fund_units
        cash = float(self.wallet.sum() - np.sum(self.q * self.entry)) + self.fund_cash
        return units, {"USD": cash}

    def fund_equity(self, price: np.ndarray) -> float:
        return self.fund_cash + float(self.fund_units @ price)

    # ------------------------------------------------------------------ liquidation

    def _liquidate(self, idx: np.ndarray, balance: np.ndarray, price, log: EventLog) -> None:
        q = self.q[idx]
        for c in range(len(self.coin_ids)):
            self._log_by_side(
                log,
                "perp_liquidation",
                c,
                np.sign(q[:, c]),
                -q[:, c],
                np.abs(q[:, c]) * price[c],
                float(price[c]),
                "accounts entering liquidation (cross wallet)",
            )
        solvent, bankrupt = idx[balance > 0.0], idx[balance <= 0.0]
        self.pending[solvent] = self.q[solvent]
        self.liquidating[solvent] = True
        if len(bankrupt):
            self._take_over(bankrupt, price, log)

    def _take_over(self, idx: np.ndarray, price: np.ndarray, log: EventLog) -> None:
        """The fund takes every position of bankrupt accounts `idx` at the mark and brings
        their wallets back to zero (it covers the deficit)."""
        q = self.q[idx]
        self.wallet[idx] += (q * (price - self.entry[idx])).sum(axis=1)
        self.fund_units += q.sum(axis=0)
        self.fund_cash -= float(q.sum(axis=0) @ price)
        deficit = float(np.maximum(-self.wallet[idx], 0.0).sum())
        self.fund_cash -= deficit
        self.wallet[idx] = np.maximum(self.wallet[idx], 0.0)
        self.q[idx] = 0.0
        for c in range(len(self.coin_ids)):
            self._log_by_side(
                log,
                "perp_takeover",
                c,
                np.sign(q[:, c]),
                q[:, c],
                np.abs(q[:, c]) * price[c],
                float(price[c]),
                "insurance fund at the mark (cross wallet)",
            )
        log.add(
            "insurance_fund_cover",
            population=self.name,
            venue=self.venue_id,
            count=len(idx),
            notional_usd=deficit,
            detail="deficit of bankrupt cross wallets",
        )

    def _settle_liquidations(self, c: int, fill: float, log: EventLog) -> None:
        idx = np.flatnonzero(self.pending[:, c])
        units = self.pending[idx, c]
        self.wallet[idx] += units * (fill - self.entry[idx, c])
        self.q[idx, c] = 0.0
        self.pending[idx, c] = 0.0
        # the fee takes at most the margin left: wallet + the other positions' PnL at the mark
        left, _ = self.margin(idx, self._last_mark)
        fee = np.minimum(self.rules.liquidation_fee * np.abs(units) * fill, np.maximum(left, 0.0))
        self.wallet[idx] -= fee
        self.fund_cash += float(fee.sum())
        done = idx[~np.any(self.pending[idx] != 0.0, axis=1)]
        deficit = np.maximum(-self.wallet[done], 0.0)
        if deficit.any():  # closed past bankruptcy: the fund brings the wallet back to zero
            self.wallet[done] += deficit
            self.fund_cash -= float(deficit.sum())
            log.add(
                "insurance_fund_cover",
                population=self.name,
                venue=self.venue_id,
                asset=self.coin_ids[c],
                count=int(np.count_nonzero(deficit)),
                notional_usd=float(deficit.sum()),
                price=fill,
                detail="loss beyond the cross wallet after market liquidations",
            )
        self.liquidating[done] = False
        traded = -float(units.sum())
        self._units[c] += traded
        self._cash -= traded * fill
        self._log_by_side(
            log,
            "perp_market_liquidation",
            c,
            np.sign(units),
            -units,
            np.abs(units) * fill,
            fill,
            "market order; fee to the fund",
            fee=fee,
        )

    def _settle_offload(self, c: int, fill: float, log: EventLog) -> None:
        units = float(self._queued_offload[c])
        self._offload_left_usd[c] = offload_allowance_left(
            float(self._offload_left_usd[c]),
            units,
            float(self.fund_units[c]),
            float(self._last_mark[c]),
        )
        self.fund_units[c] -= units
        self.fund_cash += units * fill
        self._units[c] -= units
        self._cash += units * fill
        log.add(
            "insurance_fund_offload",
            population=self.name,
            venue=self.venue_id,
            asset=self.coin_ids[c],
            quantity=-units,
            notional_usd=abs(units) * fill,
            price=fill,
            detail="taken-over positions sold to the market",
        )

    def _log_by_side(self, log, kind, c, side, quantity, notional, price, detail, fee=None):
        """One row per side of coin `c`'s positions: count, signed units, notional, fee."""
        for sign in (1, -1):
            mask = side == sign
            if not mask.any():
                continue
            log.add(
                kind,
                population=self.name,
                venue=self.venue_id,
                asset=self.coin_ids[c],
                side=SIDE_NAMES[sign],
                count=int(mask.sum()),
                quantity=float(quantity[mask].sum()),
                notional_usd=float(notional[mask].sum()),
                price=price,
                fee_usd=float(fee[mask].sum()) if fee is not None else 0.0,
                detail=f"{SIDE_NAMES[sign]}: {detail}",
            )

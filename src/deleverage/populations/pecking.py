"""How funds raise cash (SPEC §4.3–4.4): the pecking order, and the book of fund holdings,
cash and queued sales that carry funds and prime-brokered funds share.

The pecking order is the seed article's ranking: peripheral assets (crypto, commodity
futures, small caps) are sold first, semi-core (large caps, corporate bonds) next, core
(Treasuries, gold, blue chips) last; proportional within a tier. Coen–Lepore–Schaanning
(BoE SWP 793) model most-liquid-first liquidation the same way; the Cont–Schaanning
baseline is proportional liquidation (facts 4.10), which is what `pecking_order=False`
gives. Everything is vectorized over funds: arrays are funds × assets.
"""

from __future__ import annotations

import numpy as np

from deleverage.populations.base import Orders
from deleverage.results.events import EventLog
from deleverage.scenario.schema import CarryFunds, PrimeBrokerFunds

TIER_RANK = {"peripheral": 0, "semi_core": 1, "core": 2}


def pecking_order_sales(
    values_usd: np.ndarray,
    tier: np.ndarray,
    amount: np.ndarray,
    *,
    pecking_order: bool = True,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Sales per fund and asset (USD, F × A) that raise `amount` (F,).

    `values_usd` (F × A) are the holdings' values, `tier` (A,) their rank (0 peripheral,
    1 semi-core, 2 core). A tier is sold only once every earlier tier is sold out; within
    a tier sales are proportional to value. With `pecking_order` off every asset is one
    tier (proportional sales across the book). `amount` is measured in Σ weights·sales:
    cash by default; with `weights` = haircuts (F × A or A) it is the margin requirement
    released. A fund that cannot raise its amount sells everything.
    """
    values = np.maximum(values_usd, 0.0)
    capacity = values if weights is None else values * weights
    group = np.asarray(tier) if pecking_order else np.zeros(values.shape[1], dtype=np.int64)
    membership = (group[:, None] == np.arange(len(TIER_RANK))).astype(float)  # A × G
    per_group = capacity @ membership  # F × G
    before = np.cumsum(per_group, axis=1) - per_group
    raised = np.clip(np.asarray(amount, dtype=float)[:, None] - before, 0.0, per_group)
    share = np.divide(raised, per_group, out=np.zeros_like(raised), where=per_group > 0.0)
    return values * share[:, group]


class FundBook:
    """Units held, cash and queued orders of F funds over K assets (arrays F × K).

    Cash is kept per quote currency (F × Q): a trade in an asset quoted in currency q moves
    cash[:, q] by −quantity·price, exactly as the engine books it, so `cash()` changes only
    by trades. Orders wait in `pending` until the asset's venue fills them; decisions use
    the projected book (holdings plus pending orders, proceeds at the mark), so an order
    in flight is never sent twice.
    """

    def __init__(
        self,
        columns: np.ndarray,
        quote: np.ndarray,
        units: np.ndarray,
        cash: np.ndarray,
        currencies: tuple[str, ...] = ("USD",),
    ):
        self.columns = columns  # (K,) engine asset index of each column
        self.quote = quote  # (K,) quote-currency index of each column
        self.units = units  # (F, K)
        self.cash = cash  # (F, Q)
        self.currencies = currencies  # (Q,) names of the cash columns
        self.pending = np.zeros_like(units)  # (F, K) units, + buy
        self._open = False  # any pending order
        self.version = 0  # counts changes of units, cash and pending (for cached reads)
        self._quote_matrix = (quote[:, None] == np.arange(cash.shape[1])).astype(float)

    def projected(self, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Units and cash once every pending order fills at `price` (K,). Read only."""
        if not self._open:
            return self.units, self.cash
        return self.units + self.pending, self.cash - (self.pending * price) @ self._quote_matrix

    def queue(self, quantity: np.ndarray) -> None:
        """Add orders (units, F × K, + buy) to the pending ones."""
        self.pending += quantity
        self._open = bool(self.pending.any())
        self.version += 1

    def orders(self) -> Orders:
        if not self._open:
            return Orders.empty()
        # A column whose funds' orders net to zero is still sent (as a zero order): it then
        # fills at the current price like every crossing order, instead of waiting forever.
        open_ = np.flatnonzero(self.pending.any(axis=0))
        return Orders(self.columns[open_], self.pending[:, open_].sum(axis=0), open_)

    def apply_fills(self, orders: Orders, filled: np.ndarray, price: np.ndarray) -> None:
        columns = orders.owner[filled]
        if len(columns) == 0:
            return
        quantity = self.pending[:, columns]
        self.units[:, columns] += quantity
        self.cash -= (quantity * price[filled]) @ self._quote_matrix[columns]
        self.pending[:, columns] = 0.0
        self._open = bool(self.pending.any())
        self.version += 1

    def queue_sales(
        self,
        sales_usd: np.ndarray,
        price: np.ndarray,
        log: EventLog,
        population: str,
        asset_ids: list[str],
        detail: str,
    ) -> None:
        """Queue sales (USD at `price`, F × K) as sell orders; one `forced_sale` row per asset."""
        units = sales_usd / price
        self.queue(-units)
        for j in np.flatnonzero(units.sum(axis=0) > 0.0):
            log.add(
                "forced_sale",
                population=population,
                asset=asset_ids[j],
                count=np.count_nonzero(units[:, j]),
                quantity=-float(units[:, j].sum()),
                notional_usd=float(sales_usd[:, j].sum()),
                price=float(price[j]),
                detail=detail,
            )

    def holdings(self, n_assets: int) -> np.ndarray:
        return np.bincount(self.columns, self.units.sum(axis=0), n_assets)


class FundBookPopulation:
    """The population interface for funds whose state is a `FundBook` (`self.book`)."""

    book: FundBook

    def orders(self) -> Orders:
        return self.book.orders()

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        self.book.apply_fills(orders, filled, price)

    def holdings(self, n_assets: int) -> np.ndarray:
        return self.book.holdings(n_assets)

    def cash(self) -> float:
        """Cash as the engine books trades, in each asset's quote currency."""
        return float(self.book.cash.sum())

    def cash_by_currency(self) -> dict[str, float]:
        totals = self.book.cash.sum(axis=0)
        return {
            name: float(total) for name, total in zip(self.book.currencies, totals, strict=True)
        }


def draw_portfolios(
    spec: CarryFunds | PrimeBrokerFunds, price: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Equity (F,) and units held (F × K, K = len(spec.weights)) of each fund at the start.

    Fund sizes are skewed (lognormal, σ = 1, as the stop-loss books); each fund's weights
    scatter around the population's by `weight_dispersion`; assets = leverage · equity."""
    n = spec.funds
    size = np.exp(rng.normal(0.0, 1.0, n))
    equity = size / size.sum() * spec.equity_usd
    leverage = np.maximum(spec.leverage.sample(rng, n), 1.0)
    base = np.array(list(spec.weights.values()))
    weights = base * np.exp(spec.weight_dispersion * rng.standard_normal((n, len(base))))
    weights /= weights.sum(axis=1, keepdims=True)
    return equity, (leverage * equity)[:, None] * weights / price

"""Scenario keys for perp venues (issue 13, item 8): maintenance-margin tier tables per asset
and collateral assets held in perp wallets.

Kept apart from `schema.py`, which imports these models for `Venue.tier_tables`,
`PerpBook.tiers` and `PerpBook.collateral`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deleverage.venues import perp_rules, tables
from deleverage.venues.tiers import TierTable

TableName = Literal[
    "binance-btcusdt-2021",
    "binance-xrpusdt-2024",
    "bybit-btcusdt",
    "hyperliquid-btc",
    "hyperliquid-eth",
    "hyperliquid-sol",
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class TierRow(_Model):
    """One bracket of a tier table: notional up to `up_to_usd` (inclusive), its maintenance
    margin rate and the largest leverage a position may open with in it."""

    up_to_usd: Annotated[float, Field(gt=0.0, le=1e15)]
    mmr_pct: Annotated[float, Field(gt=0.0, le=100.0)]
    max_leverage: Annotated[float, Field(ge=1.0, le=1000.0)]


class TierRows(_Model):
    """A tier table written out: brackets in increasing notional, rates that do not fall,
    leverage that does not rise; maintenance amounts are derived so that MM is continuous
    (facts 1.2.1, 1.3.2). Positions beyond the last bracket stay in it."""

    rows: list[TierRow] = Field(min_length=1)
    source: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TierRows:
        rows = self.rows
        for k in range(1, len(rows)):
            before, row = rows[k - 1], rows[k]
            if row.up_to_usd <= before.up_to_usd:
                raise ValueError(
                    f"rows.{k}.up_to_usd: expected brackets in increasing notional, found "
                    f"{row.up_to_usd:g} after {before.up_to_usd:g}"
                )
            if row.mmr_pct < before.mmr_pct:
                raise ValueError(
                    f"rows.{k}.mmr_pct: expected rates that do not fall with notional (MM "
                    f"continuous and convex), found {row.mmr_pct:g} after {before.mmr_pct:g}"
                )
            if row.max_leverage > before.max_leverage:
                raise ValueError(
                    f"rows.{k}.max_leverage: expected leverage that does not rise with "
                    f"notional, found {row.max_leverage:g} after {before.max_leverage:g}"
                )
        for k, row in enumerate(rows):
            if row.mmr_pct / 100.0 * row.max_leverage > 1.0:
                raise ValueError(
                    f"rows.{k}: expected a maintenance rate at most the initial margin "
                    f"1/max_leverage, found {row.mmr_pct:g}% at {row.max_leverage:g}x"
                )
        return self


TierSpec = TableName | TierRows


class Collateral(_Model):
    """A share of the book's wallets held in another asset of the scenario (Binance
    Multi-Assets mode, cross margin only): it counts toward margin at its price × (1 −
    haircut) (the "collateral value ratio", e.g. 95% for BTC/ETH/BNB, 90% for XRP/ADA/DOT/SOL,
    99.99% for USDC as Binance lists them). On liquidation the venue converts it to USD at that
    value (Binance's auto-exchange)."""

    asset: str
    share: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="share of the accounts (each its whole wallet) holding this asset"
    )
    haircut_pct: Annotated[float, Field(ge=0.0, lt=100.0)] = Field(
        description="100 − collateral value ratio, %"
    )
    source: str | None = None


class BasketCoin(_Model):
    """One coin of a basket: its own open interest, accounts, and optionally its own long
    share, tier table and insurance fund; the rest comes from the basket's `book`."""

    asset: str
    open_interest_usd: Annotated[float, Field(gt=0.0, le=1e15)]
    accounts: Annotated[int, Field(ge=1, le=20_000_000)]
    long_share: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    tiers: TierSpec | None = None
    insurance_fund_usd: Annotated[float, Field(ge=0.0, le=1e15)] | None = None


class PerpBasket(_Model):
    """Many coins in one population (issue 13, item 9): one perp book per coin, each with its
    own asset, open interest, accounts and tier table, and the basket's other keys (`book`:
    any `perp_book` key, e.g. leverage, wallet_buffer, margin_mode, oi_rebuild_half_life).
    The loader writes it out as books named `<name>-<asset>` (targets and `uncertain` paths
    name those). `insurance_fund_usd` is split across the coins in proportion to open
    interest unless a coin gives its own: each book keeps its own fund (a fund shared by
    several perps, as Binance's for all but BTC and ETH, facts 1.2.7, is not modelled)."""

    type: Literal["perp_basket"]
    name: str
    coins: list[BasketCoin] = Field(min_length=1)
    book: dict[str, Any] = Field(default_factory=dict)
    insurance_fund_usd: Annotated[float, Field(ge=0.0, le=1e15)] = 0.0
    source: str | None = None


_COIN_KEYS = ("asset", "open_interest_usd", "accounts", "long_share", "tiers")


def expand_baskets(raw: Any) -> Any:
    """`raw` with each well-formed `perp_basket` written out as one `perp_book` per coin.
    A malformed basket is left as it is, for the schema to report."""
    populations = raw.get("populations") if isinstance(raw, dict) else None
    if not isinstance(populations, list):
        return raw
    out = []
    for item in populations:
        coins = item.get("coins") if isinstance(item, dict) else None
        well_formed = (
            isinstance(item, dict)
            and item.get("type") == "perp_basket"
            and isinstance(item.get("book", {}), dict)
            and isinstance(coins, list)
            and coins
            and all(isinstance(c, dict) and isinstance(c.get("open_interest_usd"), int | float)
                    for c in coins)
        )  # fmt: skip
        if not well_formed:
            out.append(item)
            continue
        total = sum(float(c["open_interest_usd"]) for c in coins)
        fund = item.get("insurance_fund_usd", 0.0)
        for coin in coins:
            book = {**item.get("book", {}), "type": "perp_book"}
            book["name"] = f"{item.get('name')}-{coin.get('asset')}"
            book.update({k: coin[k] for k in _COIN_KEYS if k in coin})
            own = coin.get("insurance_fund_usd")
            if own is not None:
                book["insurance_fund_usd"] = own
            elif isinstance(fund, int | float) and total > 0:
                book["insurance_fund_usd"] = fund * float(coin["open_interest_usd"]) / total
            if item.get("source") is not None and "source" not in book:
                book["source"] = item["source"]
            out.append(book)
    return {**raw, "populations": out}


def tier_table(spec: TierSpec) -> TierTable:
    """The `TierTable` a scenario names or writes."""
    if isinstance(spec, str):
        return tables.NAMED[spec]
    return tables.from_rows(
        [row.up_to_usd for row in spec.rows],
        [row.mmr_pct / 100.0 for row in spec.rows],
        [row.max_leverage for row in spec.rows],
    )


def book_table(book: Any, scenario: Any) -> TierTable | None:
    """The tier table a perp book uses: its own `tiers`, else its venue's table for its asset,
    else None (the rule set's default)."""
    if book.tiers is not None:
        return tier_table(book.tiers)
    venue = book_venue(book, scenario)
    if venue is not None and book.asset in venue.tier_tables:
        return tier_table(venue.tier_tables[book.asset])
    return None


def book_venue(book: Any, scenario: Any) -> Any:
    """The venue a perp book trades on: its own `venue`, else its asset's (None if undefined)."""
    asset = next((a for a in scenario.assets if a.id == book.asset), None)
    venue_id = book.venue or (asset.venue if asset else None)
    return next((v for v in scenario.venues if v.id == venue_id), None)


def rules_for(book: Any, scenario: Any, rules_name: str, **overrides: Any):
    """The book's rule set with its tier table (`perp_rules` with the per-asset table)."""
    return perp_rules(
        rules_name, max_leverage=book.max_leverage, table=book_table(book, scenario), **overrides
    )


def collateral_problems(book: Any, assets: dict[str, Any]) -> list[tuple[str, str]]:
    """Collateral assets: defined, priced in USD, shares summing to at most 1, cross margin."""
    problems = []
    for j, item in enumerate(book.collateral):
        where = f"collateral.{j}.asset"
        asset = assets.get(item.asset)
        if asset is None:
            problems.append(
                (where, f"expected a defined asset ({', '.join(assets)}), found {item.asset!r}")
            )
        elif asset.currency != "USD":
            problems.append(
                (where, f"expected an asset priced in USD, found {item.asset!r} in "
                 f"{asset.currency}")
            )  # fmt: skip
    if book.collateral and book.margin_mode != "cross":
        problems.append(
            ("margin_mode", "expected cross with collateral assets (Multi-Assets mode is "
             f"cross margin only), found {book.margin_mode}")
        )  # fmt: skip
    total = sum(item.share for item in book.collateral)
    if total > 1.0 + 1e-12:
        problems.append(("collateral", f"expected shares summing to at most 1, found {total:g}"))
    if len({item.asset for item in book.collateral}) < len(book.collateral):
        problems.append(("collateral", "expected each collateral asset once"))
    return problems

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

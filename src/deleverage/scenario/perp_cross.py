"""Scenario keys of a cross-margin perp book across coins (issue 13, item 8, the rest): one
USD wallet per account backing positions in several coins (Binance USDⓈ-M cross margin).

Imported by `scenario.schema` (the `Population` union); it uses the schema's base types,
so `deleverage.scenario.schema` is always imported first (the package imports it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from deleverage.scenario.perp_venue import TierSpec, tier_table
from deleverage.scenario.schema import Asset, Distribution, Fraction, Model, Usd
from deleverage.venues import perp_rules

if TYPE_CHECKING:
    from deleverage.scenario.schema import Scenario

PERP_RULE_SETS = ("binance-like", "bybit-like", "hyperliquid-like")


class CrossCoin(Model):
    """One coin of the wallets: its open interest (one-sided, at the initial price), long
    share, and optionally its own tier table (default: the venue's table for the asset,
    else the rule set's)."""

    asset: str
    open_interest_usd: Usd
    long_share: Fraction = 0.5
    tiers: TierSpec | None = None


class PerpCrossMargin(Model):
    """Perp accounts whose one USD wallet backs a position in every coin listed (Binance
    USDⓈ-M cross margin): margin balance = wallet + Σ unrealized PnL over the coins,
    maintenance = Σ over the coins of notional × MMR(tier) − maintenance amount with each
    coin's tier table; the account is liquidated, all its positions, when maintenance reaches
    the margin balance. Each account holds every coin, its side drawn with the coin's long
    share and its notional lognormal (σ = `size_dispersion`); its wallet is its gross notional
    ÷ its `leverage` draw (clipped so that every position is within its tier's maximum)."""

    type: Literal["perp_cross_margin"]
    name: str
    accounts: Annotated[int, Field(ge=1, le=20_000_000)]
    coins: list[CrossCoin] = Field(min_length=1)
    leverage: Distribution = Field(description="gross notional ÷ wallet at the start")
    size_dispersion: Annotated[float, Field(ge=0.0, le=5.0)] = 1.5
    margin_rules: Literal["binance-like", "bybit-like", "hyperliquid-like"] | None = Field(
        None, description="rule set; default: the margin_rules of the venue"
    )
    venue: str | None = Field(None, description="the venue; default: the first coin's venue")
    liquidation_fee_pct: Annotated[float, Field(ge=0.0, le=100.0)] | None = Field(
        None, description="% of liquidated notional to the insurance fund; default per rules"
    )
    insurance_fund_usd: Annotated[float, Field(ge=0.0, le=1e15)] = 0.0
    source: str | None = None

    @model_validator(mode="after")
    def _each_coin_once(self) -> PerpCrossMargin:
        names = [c.asset for c in self.coins]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"expected each coin once, found {repeated[0]!r} twice")
        return self

    def check_assets(self, assets: dict[str, Asset]) -> list[tuple[str, str]]:
        """Each coin a defined asset priced in USD (one USD wallet)."""
        problems = []
        for j, coin in enumerate(self.coins):
            asset = assets.get(coin.asset)
            if asset is None:
                problems.append(
                    (
                        f"coins.{j}.asset",
                        f"expected a defined asset ({', '.join(assets)}), found {coin.asset!r}",
                    )
                )
            elif asset.currency != "USD":
                problems.append(
                    (
                        f"coins.{j}.asset",
                        f"expected an asset priced in USD (one "
                        f"USD wallet), found {coin.asset!r} in {asset.currency}",
                    )
                )
        return problems

    def check_scenario(self, scenario: Scenario) -> list[tuple[str, str]]:
        """A defined venue with a perp rule set (the book's own or the venue's)."""
        venue = self.venue_of(scenario)
        if venue is None:
            if self.venue is None:
                return []  # an undefined first coin is reported by `check_assets`
            names = ", ".join(v.id for v in scenario.venues)
            return [("venue", f"expected a defined venue ({names}), found {self.venue!r}")]
        if self.margin_rules is None and venue.margin_rules not in PERP_RULE_SETS:
            return [
                (
                    "margin_rules",
                    f"expected {', '.join(PERP_RULE_SETS)} here or on the "
                    f"venue, found venue {venue.id!r} with {venue.margin_rules!r}",
                )
            ]
        return []

    def venue_of(self, scenario: Scenario):
        """The venue the book trades on: its own, else its first coin's (None if undefined)."""
        asset = next((a for a in scenario.assets if a.id == self.coins[0].asset), None)
        venue_id = self.venue or (asset.venue if asset else None)
        return next((v for v in scenario.venues if v.id == venue_id), None)

    def rules(self, scenario: Scenario):
        """The rule set and one tier table per coin (the coin's, the venue's for the asset,
        else the rule set's)."""
        venue = self.venue_of(scenario)
        name = self.margin_rules or venue.margin_rules
        fee = None if self.liquidation_fee_pct is None else self.liquidation_fee_pct / 100.0
        rules = perp_rules(name, liquidation_fee=fee)
        tables = []
        for coin in self.coins:
            spec = coin.tiers or venue.tier_tables.get(coin.asset)
            tables.append(tier_table(spec) if spec is not None else rules.table)
        return rules, tables

"""Scenario keys of leveraged and inverse volatility exchange-traded products (issue 13,
item 11): a population of products on one VIX-futures asset that reset their leverage
every day at the close, and may be terminated by an acceleration event.

Imported by `scenario.schema` (the `Population` union); it uses the schema's base types,
so `deleverage.scenario.schema` is always imported first (the package imports it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from deleverage.scenario.schema import (
    Asset,
    Duration,
    Fraction,
    Model,
    Usd,
    usd_holdings_only,
)

if TYPE_CHECKING:
    from deleverage.scenario.schema import Scenario


class VolEtp(Model):
    """One product: it returns `leverage` × the daily return of the futures index it tracks
    (XIV −1, SVXY −1 until 27 Feb 2018, TVIX and UVXY +2). Its issuer holds
    `leverage` × NAV of the futures and trades the difference at each close."""

    name: str
    leverage: Annotated[float, Field(ge=-5.0, le=5.0)] = Field(
        description="daily leverage L on the index (−1 inverse, +2 leveraged long)"
    )
    nav_usd: Usd = Field(description="net asset (indicative) value at the clock start")
    terminate_drop_pct: Annotated[float, Field(gt=0.0, lt=100.0)] | None = Field(
        None,
        description="acceleration event: the product is terminated (its hedge unwound) "
        "once its intraday indicative value is this % or more below the prior close "
        "(XIV's pricing supplement: 80). None: never",
    )
    source: str | None = None

    @model_validator(mode="after")
    def _nonzero(self) -> VolEtp:
        if self.leverage == 0.0:
            raise ValueError("expected a nonzero leverage, found 0")
        return self


class VolEtps(Model):
    """Leveraged and inverse VIX ETPs (facts: BIS Quarterly Review, March 2018 box). Each
    product's indicative value moves by L·r with the index's return r since the last close;
    at the step of the asset venue's daily settlement its issuer rebalances to L × the new
    NAV, a trade of (L² − L)·NAV·r: a purchase whenever the index rose, for inverse and
    leveraged products alike. The rebalance is chased round by round inside that step (the
    trades move the settlement price the NAV is struck on) until within `rebalance_band`.
    A product with `terminate_drop_pct` is terminated when its indicative value falls that
    far below the prior close: its issuer buys back its whole hedge at once."""

    type: Literal["vol_etps"]
    name: str
    asset: str = Field(description="the VIX-futures index asset the products track")
    products: list[VolEtp] = Field(min_length=1)
    rebalance_window: Duration | None = Field(
        None,
        description="trade toward the target over this window ending with the settlement "
        "step, an equal share of the remaining gap each step (issuers rebalance 'usually in "
        "the last hour', BIS). None: all in the settlement step",
    )
    rebalance_band: Fraction = Field(
        0.001, description="trade when the hedge is off target by this share of L·NAV"
    )
    source: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> VolEtps:
        names = [p.name for p in self.products]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"expected unique product names, found {repeated[0]!r} twice")
        return self

    def check_assets(self, assets: dict[str, Asset]) -> list[tuple[str, str]]:
        return usd_holdings_only(assets, [self.asset], "asset")

    def check_scenario(self, scenario: Scenario) -> list[tuple[str, str]]:
        """The products reset at their venue's daily settlement: it must have one."""
        asset = next((a for a in scenario.assets if a.id == self.asset), None)
        venue = next((v for v in scenario.venues if asset and v.id == asset.venue), None)
        if venue is not None and not venue.settlement:
            return [
                (
                    "asset",
                    f"expected an asset whose venue has a daily settlement (the products "
                    f"reset at it), found venue {venue.id!r} without `settlement`",
                )
            ]
        return []

"""The portfolio file (SPEC §8): a user's positions, cash, loans, margin terms, resting stop
orders and the response to a margin call, validated like a scenario file.

One field checks itself here (types, signs, ranges, finiteness); everything that needs the
scenario (assets, venues, the venue's rule set and maximum leverage) is checked in
`stress.loader`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ExchangeMargin(Model):
    """Exchange-set % of notional (futures): the venue's schedule in the scenario, so a
    margin hike applies from its effective time. The % here stand in only while the
    schedule gives none."""

    type: Literal["exchange"]
    initial_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    maintenance_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = None


class HaircutBracket(Model):
    above_usd: NonNegative = Field(description="the bracket starts at this position notional")
    haircut_pct: Percent


class BrokerMargin(Model):
    """A broker's haircut schedule: `haircut_pct` of the notional up to the first bracket,
    each bracket's rate on the notional above its start (a concentration charge)."""

    type: Literal["broker"]
    haircut_pct: Percent
    brackets: list[HaircutBracket] = Field(default_factory=list)

    @model_validator(mode="after")
    def _increasing(self) -> BrokerMargin:
        starts = [b.above_usd for b in self.brackets]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError("brackets must start at strictly increasing above_usd")
        return self


class PerpMargin(Model):
    """A perpetual future on a venue with a perp rule set: leverage at entry (position
    margin = notional ÷ leverage) and the margin mode. Cross margin adds `wallet_usd` of
    the venue wallet to the position's collateral."""

    type: Literal["perp"]
    leverage: Annotated[float, Field(ge=1.0)]
    mode: Literal["isolated", "cross"] = "isolated"
    wallet_usd: NonNegative = 0.0

    @model_validator(mode="after")
    def _wallet(self) -> PerpMargin:
        if self.mode == "isolated" and self.wallet_usd > 0.0:
            raise ValueError("wallet_usd backs cross-margin positions only")
        return self


Margin = Annotated[ExchangeMargin | BrokerMargin | PerpMargin, Field(discriminator="type")]


class Position(Model):
    asset: str
    quantity: float = Field(description="units, + long, − short")
    venue: str
    margin: Margin
    entry_price: Positive | None = Field(None, description="perps: entry (default: the start)")

    @model_validator(mode="after")
    def _nonzero(self) -> Position:
        if self.quantity == 0.0:
            raise ValueError("quantity must be non-zero")
        return self


class Loan(Model):
    currency: str
    amount: Positive
    rate_pct: float = Field(description="interest, % per year (simple, accrued every step)")


class Stop(Model):
    """A resting stop: when the asset trades through `trigger`, a market order for
    `quantity` units (− sell) goes to the market. A sell stop triggers at or below its
    price, a buy stop at or above."""

    asset: str
    trigger: Positive
    quantity: float

    @model_validator(mode="after")
    def _nonzero(self) -> Stop:
        if self.quantity == 0.0:
            raise ValueError("quantity must be non-zero")
        return self


class Response(Model):
    """What the user does on a margin call on the margined (exchange and broker) account:
    post from `reserve_usd` (cash outside the account) first, then `cash` does nothing
    more, `pecking_order` sells peripheral assets first, core last (the populations' rule),
    `fixed_list` sells in the order of `order`. A call it cannot meet is a liquidation: the
    broker closes every position of the account at market."""

    kind: Literal["cash", "pecking_order", "fixed_list"] = "cash"
    reserve_usd: NonNegative = 0.0
    order: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _order(self) -> Response:
        if self.kind == "fixed_list" and not self.order:
            raise ValueError("fixed_list needs an order of assets")
        if self.kind != "fixed_list" and self.order:
            raise ValueError("order is used by kind fixed_list only")
        return self


class Portfolio(Model):
    name: str
    description: str = ""
    cash: dict[str, NonNegative] = Field(
        default_factory=dict, description="free cash by currency (a debt is a loan)"
    )
    borrowing: list[Loan] = Field(default_factory=list)
    positions: list[Position] = Field(min_length=1)
    stops: list[Stop] = Field(default_factory=list)
    response: Response = Response()

    def scaled(self, factor: float) -> Portfolio:
        """The same book `factor` times larger: positions, cash, loans, stops, reserve and
        cross wallets; leverage, haircuts and triggers unchanged."""
        raw = self.model_dump()
        raw["cash"] = {name: amount * factor for name, amount in raw["cash"].items()}
        for item in raw["borrowing"]:
            item["amount"] *= factor
        for item in raw["positions"] + raw["stops"]:
            item["quantity"] *= factor
        for item in raw["positions"]:
            if item["margin"]["type"] == "perp":
                item["margin"]["wallet_usd"] *= factor
        raw["response"]["reserve_usd"] *= factor
        return Portfolio.model_validate(raw)

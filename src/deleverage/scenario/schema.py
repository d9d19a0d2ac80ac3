"""Typed, immutable scenario schema (SPEC §2, §5).

Every model forbids unknown keys, so a typo is an error that names the key, never a
silently ignored setting. Times are UTC; durations accept "5min", "1h", "2d", "30s".
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

CHANNELS = (
    "carry_unwind",
    "margin_calls",
    "perp_liquidations",
    "insurance_adl",
    "mm_retreat",
    "stop_loss",
    "vol_targeting",
    "pecking_order",
    "etf_flows",
    "fx_feedback",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _parse_duration(value: object) -> object:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected a duration like '5min', '1h' or '2d', found {value!r}")
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _utc(value: datetime) -> datetime:
    """Naive times are UTC; aware times are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"expected an IANA time zone such as 'America/New_York', found {name!r}"
        ) from exc
    return name


def _parse_clock_time(value: object) -> object:
    """'HH:MM' local time; '24:00' is the end of the day (stored as minutes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 09:30 as the sexagesimal number 570 (minutes).
        return value
    if isinstance(value, time):
        return value.hour * 60 + value.minute
    if isinstance(value, str):
        match = re.match(r"^(\d{1,2}):(\d{2})$", value.strip())
        if (
            match
            and int(match.group(1)) * 60 + int(match.group(2)) <= 1440
            and int(match.group(2)) < 60
        ):
            return int(match.group(1)) * 60 + int(match.group(2))
    raise ValueError(f"expected a local time 'HH:MM' (00:00 to 24:00), found {value!r}")


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    PlainSerializer(_format_duration, return_type=str),
]
UtcTime = Annotated[datetime, AfterValidator(_utc)]
ClockMinutes = Annotated[
    int,
    BeforeValidator(_parse_clock_time),
    Field(ge=0, le=1440),
    PlainSerializer(lambda m: f"{m // 60:02d}:{m % 60:02d}", return_type=str),
]
TimeZone = Annotated[str, AfterValidator(_check_zone)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- clock


class Clock(Model):
    """Simulation window [start, end) in UTC with a fixed step (1 min to 1 day)."""

    start: UtcTime
    end: UtcTime
    step: Duration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _window(self) -> Clock:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%Y-%m-%d %H:%M}) must be after start")
        if not timedelta(minutes=1) <= self.step <= timedelta(days=1):
            raise ValueError(
                f"step must be between 1min and 1d, found {_format_duration(self.step)}"
            )
        return self

    @property
    def n_steps(self) -> int:
        return int((self.end - self.start) / self.step)


# --------------------------------------------------------------------------- venues


class Session(Model):
    """Trading hours in the venue's local time. close ≤ open means an overnight session
    (e.g. CME Globex 18:00-17:00, FX 17:00-17:00); the days named are the days it opens."""

    timezone: TimeZone = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    open: ClockMinutes = 0
    close: ClockMinutes = 1440
    holidays: list[date] = Field(default_factory=list)

    @property
    def hours_per_day(self) -> float:
        """close ≤ open is an overnight session (open = close: 24 h from `open`)."""
        minutes = (
            self.close - self.open if self.close > self.open else 1440 - self.open + self.close
        )
        return minutes / 60.0


class Outage(Model):
    start: UtcTime
    duration: Duration


class Venue(Model):
    id: str
    kind: Literal["crypto", "futures", "equity", "fx", "bond", "otc"] = "otc"
    session: Session = Session()
    settlement: list[ClockMinutes] = Field(
        default_factory=list, description="daily settlement times, venue local time"
    )
    margin_rules: Literal[
        "none", "binance-like", "hyperliquid-like", "cme-like", "prime-broker"
    ] = "none"
    outages: list[Outage] = Field(default_factory=list)


# --------------------------------------------------------------------------- assets


class Liquidity(Model):
    """Latent order book parameters (SPEC §3.2)."""

    impact_y: Positive = Field(0.7, description="square-root prefactor Y (facts 3.1.5)")
    resilience_half_life: Duration = timedelta(hours=1)
    permanent_fraction: Fraction = Field(
        0.5, description="share of resolved transient impact absorbed into the price"
    )


class PriceHistory(Model):
    file: str
    column: str = "close"
    time_column: str = "date"


class Asset(Model):
    id: str
    asset_class: Literal["crypto", "equity", "equity_index", "metal", "fx", "bond", "commodity"] = (
        Field(alias="class")
    )
    tier: Literal["core", "semi_core", "peripheral"]
    venue: str
    currency: str = "USD"
    price: Positive | None = Field(None, description="initial price in `currency` units")
    price_history: PriceHistory | None = None
    daily_vol: Positive = Field(description="daily volatility of log price (fraction)")
    adv_usd: Positive = Field(description="average daily traded volume, USD")
    block: str | None = Field(None, description="correlation block; default: the asset class")
    liquidity: Liquidity = Liquidity()
    duration_years: Positive | None = Field(None, description="modified duration, bonds only")
    yield_pct: float | None = Field(None, description="initial yield in % p.a., bonds only")
    initial_margin_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = Field(
        None, description="exchange initial margin at the start, % of notional (futures)"
    )
    maintenance_margin_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = Field(
        None, description="exchange maintenance margin at the start, % of notional"
    )
    source: str | None = None

    @model_validator(mode="after")
    def _initial_price(self) -> Asset:
        if (self.price is None) == (self.price_history is None):
            raise ValueError("give exactly one of 'price' or 'price_history'")
        return self

    @property
    def correlation_block(self) -> str:
        return self.block or self.asset_class


# --------------------------------------------------------------------------- market


class Correlation(Model):
    within_block: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.5
    across_blocks: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.15
    pairs: list[tuple[str, str, Annotated[float, Field(ge=-1.0, le=1.0)]]] = Field(
        default_factory=list
    )
    student_df: Annotated[float, Field(gt=2.0)] | None = Field(
        None, description="Student-t degrees of freedom for the noise; None = Gaussian"
    )


class MarketMakers(Model):
    """Depth setters (SPEC §3.2): depth ∝ (σ_normal/σ_realized)^vol_sensitivity, floored."""

    vol_half_life: Duration = timedelta(hours=4)
    vol_sensitivity: Annotated[float, Field(ge=0.0)] = 1.0
    depth_floor: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    inventory_limit_adv: Positive = Field(
        0.5, description="inventory at which depth on the loading side hits the floor, × ADV"
    )
    inventory_half_life: Duration = Field(
        timedelta(days=1), description="rate at which desks lay inventory off to end investors"
    )


class Market(Model):
    correlation: Correlation = Correlation()
    market_makers: MarketMakers = MarketMakers()
    noise_scale: Annotated[float, Field(ge=0.0)] = Field(
        1.0, description="multiplies the exogenous noise; 0 switches it off"
    )
    max_rounds: Annotated[int, Field(ge=1, le=1000)] = 50


# --------------------------------------------------------------------------- distributions


class Distribution(Model):
    """A univariate law: uniform(low, high), normal(mean, sd), lognormal(median, sigma),
    triangular(low, mode, high), or fixed(value)."""

    dist: Literal["uniform", "normal", "lognormal", "triangular", "fixed"]
    low: float | None = None
    high: float | None = None
    mode: float | None = None
    mean: float | None = None
    sd: Annotated[float, Field(ge=0.0)] | None = None
    median: Positive | None = None
    sigma: Annotated[float, Field(ge=0.0)] | None = None
    value: float | None = None

    @model_validator(mode="after")
    def _params(self) -> Distribution:
        need = {
            "uniform": ("low", "high"),
            "normal": ("mean", "sd"),
            "lognormal": ("median", "sigma"),
            "triangular": ("low", "mode", "high"),
            "fixed": ("value",),
        }[self.dist]
        missing = [name for name in need if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.dist} needs {', '.join(need)}; missing {', '.join(missing)}")
        if self.dist in ("uniform", "triangular") and not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.dist == "triangular" and not self.low <= self.mode <= self.high:
            raise ValueError("mode must lie between low and high")
        return self

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        """Draw `size` values (a float when size is None)."""
        if self.dist == "uniform":
            return rng.uniform(self.low, self.high, size)
        if self.dist == "normal":
            return rng.normal(self.mean, self.sd, size)
        if self.dist == "lognormal":
            return self.median * np.exp(self.sigma * rng.standard_normal(size))
        if self.dist == "triangular":
            if self.low == self.high:
                return np.full(size, self.low) if size is not None else self.low
            return rng.triangular(self.low, self.mode, self.high, size)
        return np.full(size, self.value) if size is not None else self.value

    def center(self) -> float:
        """A value every law can produce (its mode or median)."""
        return {
            "uniform": self.low,
            "triangular": self.mode,
            "normal": self.mean,
            "lognormal": self.median,
            "fixed": self.value,
        }[self.dist]


# --------------------------------------------------------------------------- populations


class StopLossBook(Model):
    """Resting stop orders of unleveraged holders (SPEC §4.5): each account sells its
    whole position (buys back, for shorts) once the price falls `stop_distance` below its
    running high (rises above its running low)."""

    type: Literal["stop_loss"]
    name: str
    asset: str
    side: Literal["long", "short"] = "long"
    accounts: Annotated[int, Field(ge=1, le=50_000_000)]
    notional_usd: Positive
    stop_distance: Distribution
    source: str | None = None


Population = Annotated[StopLossBook, Field(discriminator="type")]


# --------------------------------------------------------------------------- shocks


class _Shock(Model):
    label: str | None = None
    source: str | None = None


class NewsShock(_Shock):
    type: Literal["news"]
    time: UtcTime
    returns: dict[str, float] = Field(description="log-return jump per asset")


class PolicyShock(NewsShock):
    type: Literal["policy"]  # type: ignore[assignment]


class EarningsShock(_Shock):
    """Jump = sensitivity · surprise · (1 + crowding_amplifier · crowding), where surprise
    is measured against the whisper number when given (what the marginal holder expected),
    else against consensus."""

    type: Literal["earnings"]
    time: UtcTime
    asset: str
    actual: float
    consensus: float
    whisper: float | None = None
    sensitivity: Annotated[float, Field(ge=0.0)] = 2.0
    crowding: Fraction = 0.0
    crowding_amplifier: Annotated[float, Field(ge=0.0)] = 1.0

    @property
    def surprise(self) -> float:
        expected = self.whisper if self.whisper is not None else self.consensus
        return (self.actual - expected) / abs(expected)

    @property
    def log_return(self) -> float:
        return self.sensitivity * self.surprise * (1.0 + self.crowding_amplifier * self.crowding)


class RateShock(_Shock):
    """Yield change on a bond asset; price moves by −duration·Δy."""

    type: Literal["rate"]
    time: UtcTime
    asset: str
    change_bp: float


class FxShock(_Shock):
    type: Literal["fx"]
    time: UtcTime
    pair: str
    change: float = Field(description="log-return jump of the pair (e.g. USDJPY −0.023)")


class MarginChange(_Shock):
    type: Literal["margin_change"]
    announced: UtcTime
    effective: UtcTime
    venue: str
    asset: str
    initial_pct: Annotated[float, Field(gt=0.0, le=100.0)]
    maintenance_pct: Annotated[float, Field(gt=0.0, le=100.0)]

    @model_validator(mode="after")
    def _order(self) -> MarginChange:
        if self.effective < self.announced:
            raise ValueError("effective time is before the announcement")
        if self.maintenance_pct > self.initial_pct:
            raise ValueError("maintenance_pct exceeds initial_pct")
        return self


class OutageShock(_Shock):
    type: Literal["outage"]
    venue: str
    start: UtcTime
    duration: Duration


class MMRetreat(_Shock):
    """Market makers cut depth to `depth_multiplier` and may leave an empty `gap_pct`
    around mid (facts 3.2.1, 3.2.4) between start and start + duration."""

    type: Literal["mm_retreat"]
    assets: list[str] = Field(min_length=1)
    start: UtcTime
    duration: Duration
    depth_multiplier: Annotated[float, Field(gt=0.0, le=1.0)]
    gap_pct: Annotated[float, Field(ge=0.0, lt=50.0)] = 0.0


class FlowShock(_Shock):
    """Exogenous buy (+) or sell (−) programme, USD, spread over `duration`."""

    type: Literal["flow"]
    asset: str
    start: UtcTime
    duration: Duration
    notional_usd: float
    shape: Literal["uniform", "front_loaded"] = "uniform"


class DriverShock(_Shock):
    """The asset follows an observed series exogenously (its noise is switched off).
    `kind: price` replays prices; `kind: yield` replays a yield in % through duration.
    Give either a `file` (CSV or Parquet) or inline `points` [[time, value], ...]."""

    type: Literal["driver"]
    asset: str
    kind: Literal["price", "yield"] = "price"
    file: str | None = None
    column: str | None = None
    time_column: str = "date"
    points: list[tuple[UtcTime, float]] | None = None
    interpolation: Literal["step", "linear"] = "linear"

    @model_validator(mode="after")
    def _one_source(self) -> DriverShock:
        if (self.file is None) == (self.points is None):
            raise ValueError("give exactly one of 'file' or 'points'")
        if self.file is not None and self.column is None:
            raise ValueError("'column' is required with 'file'")
        return self


Shock = Annotated[
    NewsShock
    | PolicyShock
    | EarningsShock
    | RateShock
    | FxShock
    | MarginChange
    | OutageShock
    | MMRetreat
    | FlowShock
    | DriverShock,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- scenario


class Channels(Model):
    """Feedback channels (SPEC §6); each can be switched off by name."""

    carry_unwind: bool = True
    margin_calls: bool = True
    perp_liquidations: bool = True
    insurance_adl: bool = True
    mm_retreat: bool = True
    stop_loss: bool = True
    vol_targeting: bool = True
    pecking_order: bool = True
    etf_flows: bool = True
    fx_feedback: bool = True


class Uncertain(Model):
    """A prior over one input, sampled per Monte Carlo path; `path` is a --set key path."""

    path: str
    prior: Distribution
    source: str | None = None


class Target(Model):
    """An observed outcome to compare a run against (SPEC §10); never an input."""

    metric: str
    asset: str | None = None
    value: float
    unit: str
    window: tuple[UtcTime, UtcTime] | None = None
    source: str | None = None


class Scenario(Model):
    name: str
    description: str = ""
    clock: Clock
    market: Market = Market()
    venues: list[Venue] = Field(min_length=1)
    assets: list[Asset] = Field(min_length=1)
    populations: list[Population] = Field(default_factory=list)
    shocks: list[Shock] = Field(default_factory=list)
    channels: Channels = Channels()
    uncertain: list[Uncertain] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)

    def asset_index(self) -> dict[str, int]:
        return {asset.id: i for i, asset in enumerate(self.assets)}

    def venue_index(self) -> dict[str, int]:
        return {venue.id: i for i, venue in enumerate(self.venues)}

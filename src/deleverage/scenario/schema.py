"""Typed, immutable scenario schema (SPEC §2, §5).

Every model forbids unknown keys, so a typo is an error that names the key, never a
silently ignored setting. Times are UTC; durations accept "5min", "1h", "2d", "30s".
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    model_validator,
)

from deleverage.scenario.currency import CurrencyCode
from deleverage.scenario.currency import asset_problems as currency_keys_problem
from deleverage.scenario.perp_venue import Collateral, PerpBasket, TierSpec, collateral_problems

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
    "vol_etp_rebalancing",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"expected a positive duration such as '30s' or '1h', found {value}")
    return value


def _nonnegative_duration(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"expected a duration of 0 or more, found {value}")
    return value


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
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise ValueError(
            f"expected an IANA time zone such as 'America/New_York', found {shown!r}"
        ) from None
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


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# How editors see the custom types (`deleverage schema`): durations and clock times are
# written as text, the way scenario files give them.
_DURATION_JSON = {
    "anyOf": [
        {"type": "string", "pattern": _DURATION.pattern},
        {"type": "number", "description": "seconds"},
    ],
    "description": "a duration such as '30s', '5min', '1h' or '2d'",
}
Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    AfterValidator(_positive_duration),
    PlainSerializer(_format_duration, return_type=str),
    WithJsonSchema(_DURATION_JSON),
]
# round_seconds and mark_price_window may be 0 (instant rounds, no smoothing)
DurationOrZero = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    AfterValidator(_nonnegative_duration),
    PlainSerializer(_format_duration, return_type=str),
    WithJsonSchema(_DURATION_JSON),
]
UtcTime = Annotated[datetime, AfterValidator(_utc)]
ClockMinutes = Annotated[
    int,
    BeforeValidator(_parse_clock_time),
    Field(ge=0, le=1440),
    PlainSerializer(_hhmm, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*\d{1,2}:\d{2}\s*$"},
                {"type": "integer", "minimum": 0, "maximum": 1440},
            ],
            "description": "a local time 'HH:MM' (00:00 to 24:00)",
        }
    ),
]
TimeZone = Annotated[str, AfterValidator(_check_zone)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
# An amount of dollars held or traded: positive, at most $1 quadrillion (10× world GDP)
Usd = Annotated[float, Field(gt=0.0, le=1e15)]
# A price in its currency's units: from a millionth to a trillion (beyond, products of
# prices and sizes leave the range of floating point)
Price = Annotated[float, Field(ge=1e-6, le=1e12)]
# A log-return jump: |r| ≤ 5 is a move of ×148 or −99.3%, beyond any observed shock
LogJump = Annotated[float, Field(ge=-5.0, le=5.0)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Model(BaseModel):
    """Immutable, no unknown keys, and no NaN or infinite number anywhere (a YAML 1e999 or
    .nan is an error, not a NaN result)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    def model_copy(self, *, update=None, deep: bool = False):
        """A copy; with `update`, validated again like a file (pydantic's own copy skips
        validation, so an update could bring back every mistake the schema refuses)."""
        copied = super().model_copy(update=update, deep=deep)
        if not update:
            return copied
        return type(self).model_validate(copied.model_dump(by_alias=True, round_trip=True))


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
        if self.step > self.end - self.start:
            raise ValueError(
                f"expected a step no longer than the window, found step "
                f"{_format_duration(self.step)} for {self.end - self.start}"
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
    breaks: list[tuple[ClockMinutes, ClockMinutes]] = Field(
        default_factory=list,
        description="intraday breaks [start, end) in local time, inside the session, e.g. "
        "Tokyo's lunch [['11:30', '12:30']]: closed like a night (no trading, orders wait)",
    )

    @model_validator(mode="after")
    def _breaks(self) -> Session:
        for start, end in self.breaks:
            found = f"{_hhmm(start)}-{_hhmm(end)}"
            if end <= start:
                raise ValueError(f"expected a break that ends after it starts, found {found}")
            if not self._inside(start, end):
                session = f"{_hhmm(self.open)}-{_hhmm(self.close)}"
                raise ValueError(f"expected a break inside the session {session}, found {found}")
        for (_, end), (start, _) in itertools.pairwise(sorted(self.breaks)):
            if start < end:
                raise ValueError(
                    f"expected breaks that do not overlap, found one from {_hhmm(start)} "
                    f"before another ends at {_hhmm(end)}"
                )
        return self

    def _inside(self, start: int, end: int) -> bool:
        """[start, end) lies within the session's open hours of one day."""
        if self.close > self.open:
            return self.open < start and end < self.close
        return start >= self.open or end < self.close  # overnight: not in the closed gap

    @property
    def hours_per_day(self) -> float:
        """close ≤ open is an overnight session (open = close: 24 h from `open`), less
        its breaks."""
        minutes = (
            self.close - self.open if self.close > self.open else 1440 - self.open + self.close
        )
        return (minutes - sum(end - start for start, end in self.breaks)) / 60.0


class Outage(Model):
    start: UtcTime
    duration: Duration


class TriggeredOutage(Model):
    """An outage that starts when a price moves, not at a scheduled time (issue 13, item 6):
    the first step whose starting price of `asset` is `move_pct` % below the highest (down),
    above the lowest (up) or either (both) of its step-start prices within the `within`
    before it closes the venue for `duration`. Once per run unless `repeat`, then again on
    a move made after the outage ended. Exchanges that went down in a crash (12 Mar 2020) are inputs
    of this kind: the trigger, not the time, is what is known before the event."""

    asset: str
    move_pct: Annotated[float, Field(gt=0.0, lt=100.0)]
    within: Duration
    direction: Literal["down", "up", "both"] = "down"
    duration: Duration
    repeat: bool = False
    source: str | None = None


class Venue(Model):
    id: str
    kind: Literal["crypto", "futures", "equity", "fx", "bond", "otc"] = "otc"
    session: Session = Session()
    settlement: list[ClockMinutes] = Field(
        default_factory=list, description="daily settlement times, venue local time"
    )
    margin_rules: Literal[
        "none", "binance-like", "bybit-like", "hyperliquid-like", "cme-like", "prime-broker"
    ] = "none"
    outages: list[Outage] = Field(default_factory=list)
    triggered_outages: list[TriggeredOutage] = Field(
        default_factory=list, description="outages that start when a price moves"
    )
    tier_tables: dict[str, TierSpec] = Field(
        default_factory=dict,
        description="maintenance-margin tier table per asset of the venue's perp books (a "
        "named table or rows); default: the rule set's table for every asset",
    )


# --------------------------------------------------------------------------- assets


class VisibleDepth(Model):
    """The book a sweep within minutes meets (SPEC §3.2): USD resting on each side within
    `band_pct` of mid at rest (facts 3.2.6-3.2.7: aggregated BTC ≈ $86-150M within 1%)."""

    usd: Annotated[float, Field(ge=1e4, le=1e15)] = Field(
        description="USD resting on one side within band_pct of mid (at least $10k)"
    )
    band_pct: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    shape: Annotated[float, Field(gt=0.0, le=2.0)] = Field(
        2.0,
        description="cumulative depth within x of mid ∝ x^shape inside the band: 2 is the "
        "latent book's linear density (the default, where nothing is measured); BTC books "
        "measure 0.5-0.67 (docs/scenarios/feb-2026.md §2.5)",
    )
    source: str | None = None


class Liquidity(Model):
    """Order-book parameters at two horizons (SPEC §3.2). The latent book is calibrated to
    the square-root law on daily volume; the optional visible book is the thin part near mid
    that a fast sweep meets, refilled from the latent book at a finite rate."""

    impact_y: Annotated[float, Field(ge=0.01, le=5.0)] = Field(
        0.7, description="square-root prefactor Y (facts 3.1.5: of order 1; 0.01 to 5)"
    )
    resilience_half_life: Duration = Field(
        timedelta(days=1),
        description="half-life of the latent book's displacement: a day, so that a metaorder "
        "spread over hours to a day pays the square-root cost (impact decays on the scale of "
        "the metaorder's own duration)",
    )
    permanent_fraction: Fraction = Field(
        0.5, description="share of resolved transient impact absorbed into the price"
    )
    visible_depth: VisibleDepth | None = Field(
        None, description="visible book at rest; None: the latent book is all there is"
    )
    visible_refill_half_life: Duration = Field(
        timedelta(seconds=30),
        description="half-life of the visible book's refill at normal depth (÷ the desks' "
        "depth multiplier while they are away): seconds at rest, so that a metaorder spread "
        "over an hour or more pays the latent square-root cost; minutes when desks leave "
        "(facts 3.2.4: books empty for several minutes)",
    )
    weekend_depth_multiplier: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        1.0, description="visible depth on Saturdays and Sundays (UTC) ÷ weekday depth"
    )


class History(Model):
    """The observed path of an asset before the clock start (SPEC §4: "the starting state is
    a state that exists"): a CSV/Parquet `file` or inline `points` [[time, price], ...].
    It sets the initial price (unless `price` is given), realized volatility, trend signals,
    value anchors and the entry prices of leveraged positions. Points after the clock
    start are never read.

    Time stamps: a point is read as known at its time (`stamp: close`, the default). A bar
    dated at its open (a daily file whose `date` is the trading day, e.g. Yahoo daily bars
    at 00:00 of the day) gives a close known only one `bar` later: say `stamp: open`, and
    each close is placed at its time + `bar`, so a run never starts from a close that was
    not yet printed."""

    file: str | None = None
    column: str = "close"
    time_column: str = "date"
    points: list[tuple[UtcTime, Price]] | None = Field(None, min_length=1)
    stamp: Literal["close", "open"] = Field(
        "close",
        description="close: each point is known at its time; open: points are bars dated "
        "at their open, whose close is known `bar` later",
    )
    bar: Duration = Field(timedelta(days=1), description="bar length, with stamp: open")
    source: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> History:
        if (self.file is None) == (self.points is None):
            raise ValueError("give exactly one of 'file' or 'points'")
        return self


class Asset(Model):
    id: str
    asset_class: Literal["crypto", "equity", "equity_index", "metal", "fx", "bond", "commodity"] = (
        Field(alias="class")
    )
    tier: Literal["core", "semi_core", "peripheral"]
    venue: str
    currency: CurrencyCode = Field(
        "USD",
        description="quote currency (ISO 4217): prices are in it; USD figures translate "
        "through an fx pair at the same step (docs/scenarios/language.md, 'Currencies')",
    )
    price: Price | None = Field(None, description="initial price in `currency` units")
    history: History | None = Field(None, description="observed path before the clock start")
    daily_vol: Annotated[float, Field(ge=1e-4, le=1.0)] = Field(
        description="daily volatility of log price (fraction, 1e-4 to 1: 0.01% to 100% a day)"
    )
    adv_usd: Annotated[float, Field(ge=1e5, le=1e15)] = Field(
        description="average daily traded volume, USD; at least $100k: the impact laws (facts "
        "3.1) are calibrated on liquid markets, and far thinner books let forced flows drive "
        "the price to zero"
    )
    block: str | None = Field(None, description="correlation block; default: the asset class")
    liquidity: Liquidity = Liquidity()
    duration_years: Positive | None = Field(None, description="modified duration, bonds only")
    yield_pct: float | None = Field(None, description="initial yield in % p.a., bonds only")
    fundamental_half_life: Duration | None = Field(
        None, description="pull of the exogenous price toward its initial value; None = random walk"
    )
    initial_margin_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = Field(
        None, description="exchange initial margin at the start, % of notional (futures)"
    )
    maintenance_margin_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = Field(
        None, description="exchange maintenance margin at the start, % of notional"
    )
    contract_size: Positive | None = Field(
        None, description="units of the asset in one futures contract (COMEX silver: 5,000 oz)"
    )
    initial_margin_usd: Usd | None = Field(
        None,
        description="exchange initial margin at the start, USD per contract (how CME set "
        "metals margins until 13 Jan 2026, facts 2.3, 2.7); needs contract_size",
    )
    maintenance_margin_usd: Usd | None = Field(
        None, description="exchange maintenance margin at the start, USD per contract"
    )
    source: str | None = None
    fx_pair: str | None = Field(
        None,
        description="the fx pair translating a non-USD `currency` into USD (USDJPY or "
        "EURUSD); default: the scenario's one pair quoting that currency",
    )
    base: CurrencyCode | None = Field(
        None,
        description="fx pairs: the currency one unit is; default USD for a pair priced in "
        "another currency (USDJPY); EURUSD is base EUR, currency USD",
    )

    @model_validator(mode="after")
    def _dollar_margins(self) -> Asset:
        dollars = (self.initial_margin_usd, self.maintenance_margin_usd)
        if (dollars[0] is None) != (dollars[1] is None):
            raise ValueError("give both initial_margin_usd and maintenance_margin_usd, or neither")
        if dollars[0] is not None:
            if self.contract_size is None:
                raise ValueError("margins in USD per contract need contract_size")
            if self.initial_margin_pct is not None or self.maintenance_margin_pct is not None:
                raise ValueError("give margins in % of notional or in USD per contract, not both")
            if dollars[1] > dollars[0]:
                raise ValueError("maintenance_margin_usd exceeds initial_margin_usd")
        return self

    @model_validator(mode="after")
    def _initial_price(self) -> Asset:
        if self.price is None and self.history is None:
            raise ValueError("give 'price', or a 'history' whose last point sets it")
        if problem := currency_keys_problem(self):
            raise ValueError(problem)
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
    """Depth setters (SPEC §3.2, facts 3.2.3): the latent book scales with
    (σ_normal/σ_realized)^vol_sensitivity on `vol_half_life`, floored at `depth_floor`. Where
    an asset has a visible book, desks also leave it within minutes: its depth scales with
    the short-horizon volatility (`fast_vol_half_life`), with one-sided flow (net flow per
    step over the normal volume pace, decayed on `imbalance_half_life`; depth on the side
    being hit ÷ (1 + imbalance / imbalance_tolerance)) and with inventory; it drops at once
    and comes back with `recovery_half_life`, never below `visible_depth_floor`."""

    vol_half_life: Duration = timedelta(hours=4)
    vol_sensitivity: Annotated[float, Field(ge=0.0)] = 1.0
    depth_floor: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    inventory_limit_adv: Positive = Field(
        0.5, description="inventory at which depth on the loading side hits the floor, × ADV"
    )
    inventory_half_life: Duration = Field(
        timedelta(days=1), description="rate at which desks lay inventory off to end investors"
    )
    fast_vol_half_life: Duration = Field(
        timedelta(minutes=30), description="short-horizon volatility the visible book follows"
    )
    imbalance_half_life: Duration = Field(
        timedelta(minutes=30), description="memory of one-sided flow"
    )
    imbalance_tolerance: Positive = Field(
        1.0, description="one-sided flow, × the normal volume pace, that halves visible depth"
    )
    recovery_half_life: Duration = Field(
        timedelta(hours=1), description="half-life of the visible book's return after a drop"
    )
    visible_depth_floor: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.02, description="lowest visible depth ÷ depth at rest (facts 3.2.1: E-mini ÷20-45)"
    )


LimitReset = Literal["session", "settlement", "utc_day"]
_RESET_DOC = (
    "when the reference price resets to the price of the moment: session (the venue's "
    "session open: the previous close), settlement (after each daily settlement) or utc_day "
    "(00:00 UTC, for venues that never close)"
)


class PriceLimit(Model):
    """Exchange price limits on one asset: it trades at most `down_pct` below and `up_pct`
    above its reference price (e.g. CME equity index futures: ±7% outside US hours). A move
    beyond waits until the reference resets; orders that would trade through wait."""

    asset: str
    down_pct: Annotated[float, Field(gt=0.0, lt=100.0)] | None = Field(
        None, description="limit down, % below the reference"
    )
    up_pct: Annotated[float, Field(gt=0.0, le=1000.0)] | None = Field(
        None, description="limit up, % above the reference"
    )
    reset: LimitReset = Field("session", description=_RESET_DOC)
    source: str | None = None

    @model_validator(mode="after")
    def _one_side(self) -> PriceLimit:
        if self.down_pct is None and self.up_pct is None:
            raise ValueError("give down_pct, up_pct or both")
        return self


class BreakerLevel(Model):
    decline_pct: Annotated[float, Field(gt=0.0, lt=100.0)] = Field(
        description="fall of the index below its reference that triggers this level, %"
    )
    halt: Duration | None = Field(
        None, description="length of the halt; none: the rest of the day (until the reset)"
    )
    not_after: ClockMinutes | None = Field(
        None,
        description="local time (the index venue's zone) from which this level no longer "
        "halts (US rule: 15:25 for levels 1 and 2)",
    )


class CircuitBreaker(Model):
    """A market-wide circuit breaker: when `index` falls a level's `decline_pct` below its
    reference, trading in `assets` halts (each level once per day). The US rule halts all
    equities 15 min at −7% and −13% of the S&P 500's previous close (not at or after 15:25
    New York) and for the rest of the day at −20%."""

    index: str
    assets: list[str] = Field(
        default_factory=list, description="assets halted; default: the index alone"
    )
    levels: list[BreakerLevel] = Field(min_length=1)
    reset: LimitReset = Field("session", description=_RESET_DOC)
    source: str | None = None

    @model_validator(mode="after")
    def _increasing(self) -> CircuitBreaker:
        declines = [level.decline_pct for level in self.levels]
        if any(b <= a for a, b in itertools.pairwise(declines)):
            raise ValueError(f"expected levels with increasing decline_pct, found {declines}")
        return self


class Market(Model):
    correlation: Correlation = Correlation()
    market_makers: MarketMakers = MarketMakers()
    noise_scale: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        1.0, description="multiplies the exogenous noise (at most 10); 0 switches it off"
    )
    max_rounds: Annotated[int, Field(ge=1, le=1000)] = 50
    round_seconds: DurationOrZero = Field(
        timedelta(seconds=10),
        description="time between cascade rounds inside a step: forced sellers react to a new "
        "price within seconds (mark prices update every 1-3 s, facts 1.2.10, 1.5.8); the "
        "visible book refills for this long between rounds",
    )
    mark_price_window: DurationOrZero = Field(
        timedelta(seconds=30),
        description="window over which exchanges smooth the basis into the mark price that "
        "margin and liquidation use (facts 1.1.6, 1.2.10: 30 one-second points since "
        "2025-09-18; 1.5.8: a 150 s EMA): the visible book's wick enters it as an EMA with "
        "the same centre of mass",
    )
    participation_rate: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.1,
        description="vol-target and trend funds work their rebalances like a percent-of-volume "
        "algorithm: at most this share of the asset's normal volume a step, all funds of a "
        "population together (forced sellers, value buyers and ETF creations, spread over "
        "their session, are not capped)",
    )
    price_limits: list[PriceLimit] = Field(
        default_factory=list, description="limit up / limit down per asset"
    )
    circuit_breakers: list[CircuitBreaker] = Field(
        default_factory=list, description="trading halts triggered by an index's fall"
    )
    cross_impact: list[tuple[str, str, Annotated[float, Field(ge=-1.0, le=1.0)]]] = Field(
        default_factory=list,
        description="[from, to, c]: a net flow moving `from`'s book by Δy (the square-root "
        "law) moves `to` by c · σ_to · Δy / σ_from (market/cross_impact.py); give both "
        "directions for a symmetric link; none: flows move only their own asset",
    )

    @model_validator(mode="after")
    def _cross_links(self) -> Market:
        seen = set()
        for source, target, _ in self.cross_impact:
            if source == target:
                raise ValueError(f"cross_impact: expected two different assets, found "
                                 f"{source!r} to itself")  # fmt: skip
            if (source, target) in seen:
                raise ValueError(f"cross_impact: expected one coefficient per direction, "
                                 f"found {source!r} to {target!r} twice")  # fmt: skip
            seen.add((source, target))
        return self


# --------------------------------------------------------------------------- rates

# An interest rate in % p.a.: from −5% (well below the most negative policy rate on
# record, −0.75%) to 50% (beyond any G10 money-market rate since 1980)
RatePct = Annotated[float, Field(ge=-5.0, le=50.0)]


class RatePath(Model):
    """A rate in % p.a. that changes on dates (a policy decision, a daily fixing): points
    [[time, pct], ...] in time order, like a driver's. A step sees the last point at or
    before its start (`step`: a decision takes effect from the first step that starts at
    or after it) or the straight line between points (`linear`), the last value after the
    last point. The first point is the rate in force at clock.start, so it is dated at or
    before it."""

    points: list[tuple[UtcTime, RatePct]] = Field(min_length=1)
    interpolation: Literal["step", "linear"] = "step"
    source: str | None = None

    @model_validator(mode="after")
    def _in_time_order(self) -> RatePath:
        for (before, _), (after, _) in itertools.pairwise(self.points):
            if after == before:
                raise ValueError(f"expected one rate per time, found two at {after:%Y-%m-%d %H:%M}")
            if after < before:
                raise ValueError(
                    "expected points in increasing time order, found "
                    f"{after:%Y-%m-%d %H:%M} after {before:%Y-%m-%d %H:%M}"
                )
        return self

    def at(self, times: np.ndarray) -> np.ndarray:
        """The rate at `times` (int64 nanoseconds since the epoch, UTC)."""
        when = np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t, _ in self.points])
        x, pct = when.astype(np.int64).astype(float), np.array([v for _, v in self.points])
        t = np.asarray(times, dtype=np.int64).astype(float)
        if self.interpolation == "linear":
            return np.interp(t, x, pct)
        return pct[np.clip(np.searchsorted(x, t, side="right") - 1, 0, None)]


def _rate_kind(value: object) -> str:
    return "rate-path" if isinstance(value, dict | RatePath) else "rate-constant"


# A constant rate (a number) or a dated path; the tags, which contain a hyphen, are not
# keys of the file (the loader leaves them out of the key path it reports)
Rate = Annotated[
    Annotated[RatePct, Tag("rate-constant")] | Annotated[RatePath, Tag("rate-path")],
    Discriminator(_rate_kind),
]


def rate_at(rate: float | RatePath, times: np.ndarray) -> np.ndarray:
    """A `Rate` at `times` (int64 nanoseconds, UTC), % p.a."""
    if isinstance(rate, RatePath):
        return rate.at(times)
    return np.full(np.shape(times), float(rate))


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
    sigma: Annotated[float, Field(ge=0.0, le=10.0)] | None = None
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
        if self.dist in ("uniform", "triangular") and self.low == self.high:
            return np.full(size, self.low) if size is not None else self.low  # incl. 0 and −0
        if self.dist == "uniform":
            return rng.uniform(self.low, self.high, size)
        if self.dist == "normal":
            return rng.normal(self.mean, self.sd, size)
        if self.dist == "lognormal":
            return self.median * np.exp(self.sigma * rng.standard_normal(size))
        if self.dist == "triangular":
            return rng.triangular(self.low, self.mode, self.high, size)
        return np.full(size, self.value) if size is not None else self.value

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """The law's quantiles at probabilities `u` in (0, 1) (for correlated draws)."""
        from scipy import stats

        if self.dist == "uniform":
            return self.low + u * (self.high - self.low)
        if self.dist == "normal":
            return stats.norm.ppf(u, self.mean, self.sd)
        if self.dist == "lognormal":
            return self.median * np.exp(self.sigma * stats.norm.ppf(u))
        if self.dist == "triangular":
            width = self.high - self.low
            if width == 0.0:
                return np.full_like(u, self.low)
            return stats.triang.ppf(u, (self.mode - self.low) / width, self.low, width)
        return np.full_like(u, self.value)

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
    notional_usd: Usd
    stop_distance: Distribution
    source: str | None = None


def usd_holdings_only(assets: dict[str, Asset], ids, key: str) -> list[tuple[str, str]]:
    """Problems for holdings that are not USD-quoted (these funds keep their cash in USD)."""
    return [
        (key, f"expected USD assets, found {asset_id!r} priced in {assets[asset_id].currency}")
        for asset_id in ids
        if asset_id in assets and assets[asset_id].currency != "USD"
    ]


def usd_accounts_only(assets: dict[str, Asset], asset_id: str) -> list[tuple[str, str]]:
    """Margin accounts keep their books in USD: a USD-quoted asset or a USD/xxx pair."""
    asset = assets.get(asset_id)
    if asset is None or asset.currency == "USD" or asset.asset_class == "fx":
        return []
    return [
        (
            "asset",
            f"expected a USD-quoted asset or a USD/xxx pair (margin accounts in "
            f"USD), found {asset_id!r} priced in {asset.currency}",
        )
    ]


class ValueFunds(Model):
    """Value investors who buy below an anchor with finite capital (SPEC §4.6). With
    `max_leverage` above 1 they are the leveraged funds of Thurner, Farmer and Geanakoplos
    (2012; facts 4.3-4.5): demand β·m·W/p for mispricing m = (V − p)/V, capped at λ_max·W/p."""

    type: Literal["value_funds"]
    name: str
    asset: str
    funds: Annotated[int, Field(ge=1, le=100_000)]
    capital_usd: Usd = Field(description="total equity at the start, split equally")
    anchor: Positive | None = Field(
        None,
        description="value V, price units; default: the mean of the asset's history prices, "
        "else the initial price",
    )
    aggressiveness: Distribution = Field(description="β per fund (TFG: 5 to 50)")
    max_leverage: Annotated[float, Field(ge=1.0)] = 1.0
    default_equity_share: Fraction = Field(0.1, description="default below this share of W0")
    rebalance_every: Duration | None = Field(
        None, description="voluntary trades this often (None: every step); forced sales at once"
    )
    source: str | None = None


class VolTargetFunds(Model):
    """Funds that scale a fixed-weight portfolio to a volatility target (SPEC §4.5):
    exposure = capital · target_vol / realized_vol, capped at `max_leverage`. With an asset
    history, realized_vol starts from it and the funds start at that exposure."""

    type: Literal["vol_target"]
    name: str
    weights: dict[str, Positive] = Field(description="portfolio weights by asset (normalized)")
    funds: Annotated[int, Field(ge=1, le=100_000)] = 1
    capital_usd: Usd
    target_vol: Positive = Field(description="daily volatility target of the portfolio")
    max_leverage: Annotated[float, Field(ge=0.0)] = 2.0
    vol_half_life: Duration = timedelta(days=2)
    rebalance_every: Duration = timedelta(days=1)
    rebalance_band: Fraction = Field(0.05, description="trade when off target by this share")
    source: str | None = None


class TrendFollowers(Model):
    """Trend followers (CTAs): per asset, position = capital · weight · signal · target_vol /
    realized_vol with signal = tanh(momentum / σ) from an EWMA of log prices (SPEC §4.5).
    With an asset history, both EWMAs start from it and the funds start at that position."""

    type: Literal["trend_followers"]
    name: str
    weights: dict[str, Positive]
    funds: Annotated[int, Field(ge=1, le=100_000)] = 1
    capital_usd: Usd
    target_vol: Positive = Field(0.01, description="daily volatility target per asset")
    lookback: Duration = timedelta(days=10)
    max_leverage: Annotated[float, Field(ge=0.0)] = 3.0
    vol_half_life: Duration = timedelta(days=5)
    rebalance_every: Duration = timedelta(days=1)
    rebalance_band: Fraction = 0.05
    source: str | None = None


class EtfFlows(Model):
    """Performance-chasing ETF / treasury-company holders (SPEC §4.6): net creations per
    business day = sensitivity · (trailing log return over `lookback`) · AUM, traded while
    the `creation_venue` is open (US spot BTC ETFs create and redeem on US business days
    only, facts 5.3.9, though bitcoin trades 24/7)."""

    type: Literal["etf_flows"]
    name: str
    asset: str
    aum_usd: Usd
    sensitivity: Annotated[float, Field(ge=0.0)] = Field(
        description="daily flow as a share of AUM per unit of trailing log return"
    )
    lookback: Duration = timedelta(days=5)
    creation_venue: str | None = Field(
        None,
        description="venue whose open days the fund creates/redeems on; default: the asset's",
    )
    source: str | None = None

    def check_assets(self, assets: dict[str, Asset]) -> list[tuple[str, str]]:
        return usd_holdings_only(assets, [self.asset], "asset")


class FuturesBook(Model):
    """Futures margin accounts in one asset (SPEC §4.2; COMEX-like speculators, facts §2).

    Margins are % of notional from the venue schedule (the asset's margins and its
    `margin_change` shocks); `initial_margin_pct`/`maintenance_margin_pct` here apply only
    while the schedule gives none. An account whose equity falls below maintenance meets
    the call from its outside cash back to initial margin, or is liquidated at market."""

    type: Literal["futures_book"]
    name: str
    asset: str
    accounts: Annotated[int, Field(ge=1, le=10_000_000)]
    notional_usd: Usd = Field(description="gross notional of open positions at the start")
    long_share: Fraction = Field(0.5, description="share of the notional held long")
    margin_cushion: Distribution = Field(
        description="account equity ÷ its initial margin (1 = exactly at initial) when it "
        "opened: at its entry in the asset's history, else at the start"
    )
    cash_buffer: Distribution = Field(
        description="outside cash ÷ the account's initial margin when it opened"
    )
    entry_lookback: Duration = Field(
        timedelta(days=30),
        description="with an asset history: entry times are drawn from this window of it, "
        "and only accounts the path since did not liquidate exist",
    )
    oi_rebuild_half_life: Duration | None = Field(
        None,
        description="open interest is a flow: each trading step new accounts open at the "
        "price of the moment, with the input's long share, size, cushion and buffer laws, "
        "for the share 1 − 0.5^(step/half-life) of the contracts (units) the book holds below "
        "its input; None: no new positions",
    )
    initial_margin_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    maintenance_margin_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    call_timing: Literal["continuous", "settlement"] = Field(
        "continuous",
        description="continuous: called and, if the buffer cannot pay, liquidated the moment "
        "equity falls below maintenance; settlement: calls computed at each daily settlement "
        "and due by the next one (how clearing members work; facts 2.1-2.2)",
    )
    initial_margin_multiplier: Annotated[float, Field(ge=1.0)] = Field(
        1.0,
        description="the accounts' initial margin ÷ the schedule's: 1.1 for heightened-risk-"
        "profile (speculative) accounts (facts 2.3, 2.5)",
    )
    source: str | None = None

    @model_validator(mode="after")
    def _margins(self) -> FuturesBook:
        if (self.initial_margin_pct is None) != (self.maintenance_margin_pct is None):
            raise ValueError("give both initial_margin_pct and maintenance_margin_pct, or neither")
        if self.initial_margin_pct is not None and (
            self.maintenance_margin_pct > self.initial_margin_pct
        ):
            raise ValueError("maintenance_margin_pct exceeds initial_margin_pct")
        return self

    def check_assets(self, assets: dict[str, Asset]) -> list[tuple[str, str]]:
        asset = assets.get(self.asset)
        on_asset = asset and (
            None not in (asset.initial_margin_pct, asset.maintenance_margin_pct)
            or asset.initial_margin_usd is not None
        )
        if asset and not on_asset and self.initial_margin_pct is None:
            return [("initial_margin_pct", "expected margins on the asset or the population")]
        return usd_accounts_only(assets, self.asset)


class MarginLoans(Model):
    """Retail margin-loan (credit) accounts long one asset, financed by their broker (issue
    13, item 5). Equity = market value − loan. At each daily cycle (the venue's settlement
    time, else its close, else 00:00 UTC for a venue open 24/7) an account whose equity is
    below `maintenance` of its market value is called back to `call_to`; its outside cash
    pays at once if it can, else the call is due in `due_cycles` cycles, and if the account
    is still below maintenance then, the broker sells enough at market at the next trading
    to restore `call_to` (all of it if equity is gone). US: Regulation T 50% initial, FINRA
    Rule 4210 25% maintenance; China: a maintenance collateral ratio (assets ÷ loan) of 130%,
    topped up to 150% by T+1, sold from T+2 (docs/scenarios/language.md, "Retail margin
    loans")."""

    type: Literal["margin_loans"]
    name: str
    asset: str
    accounts: Annotated[int, Field(ge=1, le=10_000_000)]
    market_value_usd: Usd = Field(description="market value of the securities held at the start")
    loan_to_value: Distribution = Field(
        description="each account's loan ÷ its market value at the start; values beyond "
        "1 − maintenance are held there (no account starts in a call)"
    )
    cash_buffer: Distribution = Field(
        description="each account's outside cash ÷ its market value at the start"
    )
    maintenance_pct: Annotated[float, Field(gt=0.0, lt=100.0)] | None = Field(
        None, description="equity ÷ market value below which the broker calls (FINRA 4210: 25)"
    )
    call_to_pct: Annotated[float, Field(gt=0.0, lt=100.0)] | None = Field(
        None, description="equity ÷ market value a call restores (default: maintenance_pct)"
    )
    maintenance_ratio_pct: Annotated[float, Field(gt=100.0, le=1000.0)] | None = Field(
        None, description="or, as Chinese brokers state it: market value ÷ loan, in % "
        "below which the broker calls (130)",
    )  # fmt: skip
    call_to_ratio_pct: Annotated[float, Field(gt=100.0, le=1000.0)] | None = Field(
        None, description="the collateral ratio a call restores (150; default: the maintenance)"
    )
    due_cycles: Annotated[int, Field(ge=0, le=15)] = Field(
        1,
        description="daily cycles the client has to pay a call; 0: the broker sells at once "
        "(China: 1, called after T's close, sold from T+2's open; FINRA 4210(f)(6): at most 15 "
        "business days)",
    )
    source: str | None = None

    @model_validator(mode="after")
    def _levels(self) -> MarginLoans:
        if (self.maintenance_pct is None) == (self.maintenance_ratio_pct is None):
            raise ValueError("give maintenance_pct or maintenance_ratio_pct (exactly one)")
        if self.maintenance_pct is not None and self.call_to_ratio_pct is not None:
            raise ValueError("give call_to_pct with maintenance_pct (not call_to_ratio_pct)")
        if self.maintenance_ratio_pct is not None and self.call_to_pct is not None:
            raise ValueError("give call_to_ratio_pct with maintenance_ratio_pct (not call_to_pct)")
        if self.call_to_share < self.maintenance_share:
            raise ValueError("expected a call that restores at least the maintenance level")
        return self

    @staticmethod
    def _share(pct: float | None, ratio_pct: float | None) -> float | None:
        """Equity ÷ market value: a collateral ratio R = value ÷ loan is 1 − 1/R."""
        if pct is not None:
            return pct / 100.0
        return None if ratio_pct is None else 1.0 - 100.0 / ratio_pct

    @property
    def maintenance_share(self) -> float:
        return self._share(self.maintenance_pct, self.maintenance_ratio_pct)

    @property
    def call_to_share(self) -> float:
        share = self._share(self.call_to_pct, self.call_to_ratio_pct)
        return self.maintenance_share if share is None else share


class CarryFunds(Model):
    """Carry-trade funds (SPEC §4.3): borrow the funding currency (JPY), hold a USD
    portfolio.

    Leverage is assets ÷ equity (USD, the loan valued at `fx_asset`). Above
    `buffer_leverage` a fund sells down to `target_leverage` by the pecking order and
    repays the loan; above `default_leverage` (or at zero equity) it defaults and is
    liquidated. These are Cont–Schaanning's buffer, target and minimum (facts 4.8–4.9)
    stated on assets ÷ equity: their equity ratios 4% / 5% / 3% are leverages 25 / 20 / 33.

    Carry = investment_rate − funding cost, funding cost = funding_rate +
    funding_spread_pct (+ funding_beta · the change in `rate_asset`'s yield, only when the
    scenario names one; β = 1 if not given). Each leg of the rate differential is a
    constant or a dated path (a policy-rate change on a date). Older files' `funding_pct`
    and `usd_yield_pct` are read as constant `funding_rate` and `investment_rate`."""

    type: Literal["carry_funds"]
    name: str
    funds: Annotated[int, Field(ge=1, le=1_000_000)]
    equity_usd: Usd = Field(description="total equity at the start")
    weights: dict[str, Positive] = Field(description="portfolio weights by asset (normalized)")
    weight_dispersion: Annotated[float, Field(ge=0.0, le=5.0)] = Field(
        0.0, description="lognormal σ of each fund's weights around the population's"
    )
    fx_asset: str = Field("USDJPY", description="the funding pair, priced in yen per dollar")
    leverage: Distribution = Field(description="assets ÷ equity at the start, per fund")
    target_leverage: Positive
    buffer_leverage: Positive
    default_leverage: Positive
    investment_rate: Rate = Field(
        description="investment-currency (USD) rate the portfolio earns, % p.a. (e.g. Fed "
        "funds, SOFR): a number or {points: [[time, pct], ...]}"
    )
    funding_rate: Rate = Field(
        description="funding-currency rate, % p.a. (e.g. the BoJ policy rate, TONA): a "
        "number or {points: [[time, pct], ...]}"
    )
    funding_spread_pct: Annotated[float, Field(ge=-10.0, le=10.0)] = Field(
        0.0, description="what the funds pay over the funding rate, % p.a."
    )
    rate_asset: str | None = Field(
        None,
        description="optional: a bond whose yield change moves the funding cost (an "
        "explicit link; without it bond moves do not touch funding)",
    )
    funding_beta: Annotated[float, Field(ge=-10.0, le=10.0)] | None = Field(
        None, description="change in funding cost per change in rate_asset's yield (1 if not given)"
    )
    carry_to_vol_threshold: Distribution = Field(
        description="per fund: unwind when carry ÷ annualized USDJPY volatility falls below"
    )
    vol_half_life: Duration = Field(timedelta(days=1), description="USDJPY realized volatility")
    unwind_share: Fraction = Field(
        1.0, description="share of the yen loan a voluntary unwind repays"
    )
    source: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _older_keys(cls, data: object) -> object:
        """`funding_pct` / `usd_yield_pct` (constant legs) as older files wrote them."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in (("funding_pct", "funding_rate"), ("usd_yield_pct", "investment_rate")):
            if old in data:
                if new in data:
                    raise ValueError(f"give {new} or the older {old}, not both")
                data[new] = data.pop(old)
        return data

    @model_validator(mode="after")
    def _thresholds(self) -> CarryFunds:
        if not 1.0 <= self.target_leverage <= self.buffer_leverage < self.default_leverage:
            raise ValueError(
                "expected 1 ≤ target_leverage ≤ buffer_leverage < default_leverage, found "
                f"{self.target_leverage}, {self.buffer_leverage}, {self.default_leverage}"
            )
        if self.fx_asset in self.weights:
            raise ValueError(f"the funding pair {self.fx_asset!r} cannot be a holding")
        if self.rate_asset is None and self.funding_beta is not None:
            raise ValueError("funding_beta needs a rate_asset (the bond whose yield it links)")
        return self

    def check_assets(self, assets: dict[str, Asset]) -> list[tuple[str, str]]:
        problems = []
        fx = assets.get(self.fx_asset)
        rate = assets.get(self.rate_asset) if self.rate_asset is not None else None
        if fx and fx.currency == "USD":
            problems.append(("fx_asset", f"expected a pair priced in yen, found {fx.currency!r}"))
        if rate and (rate.duration_years is None or rate.yield_pct is None):
            problems.append(("rate_asset", "expected a bond with duration_years and yield_pct"))
        for asset_id in self.weights:
            if asset_id in assets and assets[asset_id].currency != "USD":
                problems.append(("weights", f"expected USD assets, found {asset_id!r}"))
        return problems


class PrimeBrokerFunds(Model):
    """Multi-asset funds financed by a prime broker in USD (SPEC §4.4).

    Margin requirement = Σ haircut·value, the haircut per asset being the broker's
    `haircut_pct`·(1 + haircut_sensitivity·drawdown from the running peak), and at least
    the exchange maintenance margin where the asset has one. A fund whose equity falls
    below the requirement sells by the pecking order until the requirement is
    `margin_target` × equity; above `default_leverage` (assets ÷ equity) it defaults."""

    type: Literal["pb_funds"]
    name: str
    funds: Annotated[int, Field(ge=1, le=1_000_000)]
    equity_usd: Usd = Field(description="total equity at the start")
    weights: dict[str, Positive] = Field(description="portfolio weights by asset (normalized)")
    weight_dispersion: Annotated[float, Field(ge=0.0, le=5.0)] = 0.0
    leverage: Distribution = Field(description="assets ÷ equity at the start, per fund")
    haircut_pct: dict[str, Annotated[float, Field(ge=0.0, le=100.0)]] = Field(
        description="broker haircut per held asset at the start, % of value"
    )
    haircut_sensitivity: Annotated[float, Field(ge=0.0)] = 1.0
    margin_target: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.8
    default_leverage: Annotated[float, Field(gt=1.0)]
    source: str | None = None

    @model_validator(mode="after")
    def _haircuts(self) -> PrimeBrokerFunds:
        if set(self.haircut_pct) != set(self.weights):
            raise ValueError("expected one haircut_pct per asset in weights")
        return self

    def check_assets(self, assets: dict[str, Asset]) -> list[tuple[str, str]]:
        return [
            ("weights", f"expected USD assets, found {asset_id!r}")
            for asset_id in self.weights
            if asset_id in assets and assets[asset_id].currency != "USD"
        ]


class Basis(Model):
    """The perp's own price against spot (issue 13, item 7; docs/scenarios/language.md):
    mark = spot × exp(basis). The book's net market orders move the basis by 1% per
    `depth_usd` (buying lifts the perp above spot, a cascade of long liquidations pushes it
    below); arbitrage pulls it back to zero with `half_life`. Funding's premium index is the
    basis, averaged over each funding interval with linearly rising weights (facts 1.1.3-1.1.4)."""

    depth_usd: Annotated[float, Field(gt=0.0, le=1e15)] = Field(
        description="net USD of the book's market orders that moves its price 1% from spot"
    )
    half_life: Duration = Field(description="half-life of the basis (arbitrage)")
    source: str | None = None


class PerpBook(Model):
    """Perpetual-futures accounts on one asset (SPEC §4.1; facts §1).

    Generated from positioning — `accounts`, `open_interest_usd`, `long_share`, `leverage` —
    or loaded from a CSV/Parquet `file` with one row per account: `side` (long/short),
    `size` (units), `entry_price`, `wallet_usd` and `leverage` (position margin =
    size·entry/leverage). Open interest is counted one-sided as exchanges report it:
    long notional = 2·OI·long_share, short notional = 2·OI·(1 − long_share); longs beyond
    the shorts face counterparties outside the population. In cross margin the whole wallet
    backs the position; in isolated margin only the position margin does."""

    type: Literal["perp_book"]
    name: str
    asset: str
    margin_rules: Literal["binance-like", "bybit-like", "hyperliquid-like"] | None = Field(
        None, description="rule set; default: the margin_rules of the asset's venue"
    )
    margin_mode: Literal["cross", "isolated"] = "cross"
    accounts: Annotated[int, Field(ge=1, le=20_000_000)] | None = None
    open_interest_usd: Usd | None = Field(
        None, description="one-sided open interest at the initial price, USD"
    )
    long_share: Fraction = Field(0.5, description="share of the gross notional held long")
    leverage: Distribution | None = Field(
        None,
        description="notional ÷ position margin at entry, per account; bounded laws must stay "
        "within the rule set's maximum, draws of unbounded ones are clipped to the tier and "
        "counted (event perp_leverage_clipped)",
    )
    size_dispersion: Annotated[float, Field(ge=0.0, le=5.0)] = Field(
        1.5, description="lognormal σ of account notionals (at most 5)"
    )
    wallet_buffer: Distribution | None = Field(
        None, description="wallet beyond the position margin ÷ position margin; None: 0"
    )
    entry_spread: Annotated[float, Field(ge=0.0, le=2.0)] = Field(
        0.05,
        description="without an asset history: lognormal σ of entry prices around the "
        "initial price (accounts need only be solvent at the start)",
    )
    entry_lookback: Duration = Field(
        timedelta(days=30),
        description="with an asset history: entry times are drawn from this window of it, "
        "and only positions the path since did not liquidate exist",
    )
    file: str | None = Field(None, description="accounts file (CSV or Parquet)")
    max_leverage: Positive | None = Field(
        None, description="hyperliquid-like: maximum leverage (MMR = 1/(2·max)); default 40"
    )
    liquidation_fee_pct: Annotated[float, Field(ge=0.0, le=100.0)] | None = Field(
        None, description="% of liquidated notional to the insurance fund; default per rules"
    )
    insurance_fund_usd: Annotated[float, Field(ge=0.0, le=1e15)] = Field(
        0.0, description="insurance fund (binance-like) or liquidator vault at the start"
    )
    fund_capacity: Positive | None = Field(
        None, description="max taken-over notional ÷ fund size; default 1 (binance-like)"
    )
    adl_price: Literal["bankruptcy", "mark"] | None = Field(
        None,
        description="price at which ADL closes counterparties; default per rules: bankruptcy "
        "on binance-like and bybit-like (facts 1.2.8: counterparties absorb the deficit), mark "
        "on hyperliquid-like (facts 1.5.5: the vault covers the deficit)",
    )
    funding_interest_pct: float = Field(0.01, description="interest rate I, % per 8 h")
    funding_clamp_pct: Annotated[float, Field(ge=0.0)] = Field(0.05, description="% per 8 h")
    oi_rebuild_half_life: Duration | None = Field(
        None,
        description="open interest is a flow: every hour of trading new accounts open at the "
        "price of the moment, with the input's long share, size, leverage and wallet laws, "
        "for the share 1 − 0.5^(1 h/half-life) of the contracts (units) the book holds below "
        "its input; None: no new positions",
    )
    holding_half_life: Duration | None = Field(
        None,
        description="positions are closed by their traders, not only by liquidation: every "
        "hour of trading each open account closes at market with probability "
        "1 − 0.5^(1 h/half-life) and takes its equity off the venue; new accounts drawn from "
        "the same laws replace the contracts closed, at the price of the moment (needs "
        "oi_rebuild_half_life). Ages of the accounts alive at the start follow the same law. "
        "None: positions live until liquidated",
    )
    source: str | None = None
    tiers: TierSpec | None = Field(
        None, description="tier table of this book; default: its venue's for the asset"
    )
    collateral: list[Collateral] = Field(
        default_factory=list,
        description="shares of the wallets held in other assets, valued at price × (1 − "
        "haircut); the rest in USD",
    )

    venue: str | None = Field(
        None,
        description="venue the book trades on, if not its asset's: its outages stop this "
        "book's liquidation engine and orders while the asset trades elsewhere",
    )
    basis: Basis | None = Field(None, description="the perp's own price against spot; None: 0")

    @model_validator(mode="after")
    def _positioning(self) -> PerpBook:
        generated = (self.accounts, self.open_interest_usd, self.leverage)
        if self.file is None and any(item is None for item in generated):
            raise ValueError("give accounts, open_interest_usd and leverage, or a file")
        if self.file is not None and any(item is not None for item in generated):
            raise ValueError("give either a file or accounts/open_interest_usd/leverage")
        if self.file is not None and self.oi_rebuild_half_life is not None:
            raise ValueError("oi_rebuild_half_life needs generated positioning, not a file")
        if self.holding_half_life is not None and self.oi_rebuild_half_life is None:
            raise ValueError(
                "holding_half_life needs oi_rebuild_half_life (closed contracts are replaced)"
            )
        return self

    def check_assets(self, assets: dict[str, Asset]) -> list[tuple[str, str]]:
        return usd_accounts_only(assets, self.asset) + collateral_problems(self, assets)


from deleverage.scenario.perp_cross import PerpCrossMargin  # noqa: E402 (as VolEtps)
from deleverage.scenario.vol_etps import VolEtps  # noqa: E402 (uses the types above)

Population = Annotated[
    StopLossBook
    | ValueFunds
    | VolTargetFunds
    | TrendFollowers
    | EtfFlows
    | FuturesBook
    | MarginLoans
    | CarryFunds
    | PrimeBrokerFunds
    | PerpBook
    | PerpBasket  # written out as perp books by the loader (scenario.perp_venue)
    | VolEtps
    | PerpCrossMargin,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- shocks


class _Shock(Model):
    label: str | None = None
    source: str | None = None


class NewsShock(_Shock):
    type: Literal["news"]
    time: UtcTime
    returns: dict[str, LogJump] = Field(description="log-return jump per asset")


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

    @model_validator(mode="after")
    def _nonzero_expectation(self) -> EarningsShock:
        expected = "whisper" if self.whisper is not None else "consensus"
        if getattr(self, expected) == 0.0:
            raise ValueError(
                f"expected a nonzero {expected}: the surprise is measured relative to it"
            )
        if not abs(self.log_return) <= 5.0:
            raise ValueError(
                f"expected a jump |sensitivity·surprise·(1 + amplifier·crowding)| ≤ 5, found "
                f"{self.log_return:.4g}"
            )
        return self

    @property
    def surprise(self) -> float:
        expected = self.whisper if self.whisper is not None else self.consensus
        return (self.actual - expected) / abs(expected)

    @property
    def log_return(self) -> float:
        return self.sensitivity * self.surprise * (1.0 + self.crowding_amplifier * self.crowding)


class FactorShock(_Shock):
    """One surprise moves many assets through their sensitivities (a payrolls print, a
    tariff post): jump_i = beta_i · size, a log return per asset. `size` is the surprise in
    the units the betas are per; or give `actual`, `expected` and `scale` and size =
    (actual − expected) / scale (e.g. a surprise in standard deviations of past surprises)."""

    type: Literal["factor"]
    time: UtcTime
    betas: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] = Field(
        min_length=1, description="log return per unit of size, per asset"
    )
    size: float | None = Field(None, description="the surprise, in the betas' units")
    actual: float | None = None
    expected: float | None = None
    scale: Positive = Field(1.0, description="size = (actual − expected) / scale")

    @model_validator(mode="after")
    def _surprise(self) -> FactorShock:
        if (self.size is None) == (self.actual is None or self.expected is None):
            raise ValueError("give size, or actual and expected (not both)")
        worst = max(abs(beta * self.surprise) for beta in self.betas.values())
        if not worst <= 5.0:
            raise ValueError(f"expected jumps |beta · size| ≤ 5, found {worst:.4g}")
        return self

    @property
    def surprise(self) -> float:
        if self.size is not None:
            return self.size
        return (self.actual - self.expected) / self.scale


class RateShock(_Shock):
    """Yield change on a bond asset; price moves by −duration·Δy."""

    type: Literal["rate"]
    time: UtcTime
    asset: str
    change_bp: Annotated[float, Field(ge=-2000.0, le=2000.0)] = Field(
        description="yield change in basis points (at most ±20 percentage points)"
    )


class FxShock(_Shock):
    type: Literal["fx"]
    time: UtcTime
    pair: str
    change: LogJump = Field(description="log-return jump of the pair (e.g. USDJPY −0.023)")


class MarginChange(_Shock):
    """A new exchange margin from `effective` on: % of notional (`initial_pct`,
    `maintenance_pct`) or USD per contract (`initial_usd`, `maintenance_usd`, on an asset
    with a contract_size; futures books apply these)."""

    type: Literal["margin_change"]
    announced: UtcTime
    effective: UtcTime
    venue: str
    asset: str
    initial_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    maintenance_pct: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    initial_usd: Usd | None = Field(None, description="initial margin, USD per contract")
    maintenance_usd: Usd | None = Field(None, description="maintenance margin, USD per contract")

    @model_validator(mode="after")
    def _order(self) -> MarginChange:
        if self.effective < self.announced:
            raise ValueError("effective time is before the announcement")
        pct = (self.initial_pct, self.maintenance_pct)
        usd = (self.initial_usd, self.maintenance_usd)
        one_kind = (None not in pct and usd == (None, None)) or (
            None not in usd and pct == (None, None)
        )
        if not one_kind:
            raise ValueError(
                "give initial_pct and maintenance_pct, or initial_usd and maintenance_usd"
            )
        initial, maintenance = pct if None not in pct else usd
        if maintenance > initial:
            raise ValueError("maintenance exceeds initial margin")
        return self

    @property
    def in_usd(self) -> bool:
        return self.initial_usd is not None


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
    notional_usd: Annotated[float, Field(ge=-1e15, le=1e15)]
    shape: Literal["uniform", "front_loaded"] = "uniform"


class DriverShock(_Shock):
    """The asset follows an observed series exogenously (its noise is switched off).
    `kind: price` replays prices; `kind: yield` replays a yield in % through duration.
    Give either a `file` (CSV or Parquet) or inline `points` [[time, value], ...]. From
    the step containing `until` on, the asset is free again (endogenous): a scenario can
    replay an observed run-up and let the crash be simulated (SPEC §5)."""

    type: Literal["driver"]
    asset: str
    kind: Literal["price", "yield"] = "price"
    file: str | None = None
    column: str | None = None
    time_column: str = "date"
    points: list[tuple[UtcTime, float]] | None = Field(None, min_length=1)
    interpolation: Literal["step", "linear"] = "linear"
    until: UtcTime | None = Field(None, description="the asset is free from this time on")

    @model_validator(mode="after")
    def _one_source(self) -> DriverShock:
        if (self.file is None) == (self.points is None):
            raise ValueError("give exactly one of 'file' or 'points'")
        if self.file is not None and self.column is None:
            raise ValueError("'column' is required with 'file'")
        if self.kind == "price" and self.points is not None:
            bad = [value for _, value in self.points if not 1e-6 <= value <= 1e12]
            if bad:
                raise ValueError(f"expected positive prices (1e-6 to 1e12), found {bad[0]!r}")
        return self


Shock = Annotated[
    NewsShock
    | PolicyShock
    | EarningsShock
    | FactorShock
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
    vol_etp_rebalancing: bool = True


class Shares(Model):
    """Shares of a total drawn per path: shares ~ Dirichlet(concentration · weights), so
    they always sum to one and centre on the weights; each path is set to total · share."""

    total: float = Field(description="what the shares divide (e.g. open interest, USD)")
    weights: list[Positive] = Field(min_length=2, description="mean shares (normalized)")
    concentration: Annotated[float, Field(gt=0.0, le=1e6)] = Field(
        10.0, description="higher: draws closer to the weights (Dirichlet α = this · weight)"
    )

    def mean(self) -> np.ndarray:
        weights = np.asarray(self.weights, dtype=float)
        return weights / weights.sum()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.dirichlet(self.concentration * self.mean())


class Uncertain(Model):
    """A prior over inputs, sampled per Monte Carlo path; `path` is a --set key path.

    `paths` (instead of `path`): one draw for several inputs, which it sets (`mode: set`)
    or scales (`mode: scale`: each input's own value × the draw, e.g. all depths × one
    liquidity draw). `shares` (instead of a prior): the inputs are shares of a total that
    sum to it on every path. `name` and `correlation`: draws of named priors are correlated
    (a Gaussian copula: correlated normals mapped through each prior's quantiles)."""

    name: str | None = Field(None, description="for `correlation` entries of other priors")
    path: str | None = None
    paths: list[str] | None = Field(None, min_length=1)
    prior: Distribution | None = None
    shares: Shares | None = None
    mode: Literal["set", "scale"] = Field(
        "set", description="set: the draw is the value; scale: it multiplies the value"
    )
    correlation: dict[str, Annotated[float, Field(gt=-1.0, lt=1.0)]] = Field(
        default_factory=dict, description="correlation of this draw with named priors' draws"
    )
    source: str | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> Uncertain:
        if (self.path is None) == (self.paths is None):
            raise ValueError("give exactly one of 'path' or 'paths'")
        if (self.prior is None) == (self.shares is None):
            raise ValueError("give exactly one of 'prior' or 'shares'")
        if self.shares is not None:
            if self.paths is None or len(self.paths) != len(self.shares.weights):
                raise ValueError("expected 'paths' with one path per share weight")
            if self.mode != "set" or self.correlation:
                raise ValueError("shares set their paths; no mode: scale or correlation")
        return self

    @property
    def targets(self) -> list[str]:
        """The key paths this item sets."""
        return [self.path] if self.path is not None else list(self.paths)


PRICE_METRICS = ("start", "end", "low", "return", "max_drawdown", "worst_1h", "worst_24h")
PERCENT_PRICE_METRICS = ("return", "max_drawdown", "worst_1h", "worst_24h")
_LIQUIDATION_FILTERS = ("asset", "venue", "population", "side")


@dataclass(frozen=True)
class EventMetric:
    """A target computed from the event log: which populations produce it, in which units,
    and which filters narrow it."""

    populations: tuple[str, ...]  # population types whose events count
    units: tuple[str, ...]  # accepted units ("currency": the asset's or pair's currency)
    filters: tuple[str, ...]  # of asset, venue, population, side
    doc: str


EVENT_METRICS: dict[str, EventMetric] = {
    "liquidations": EventMetric(("perp_book",), ("USD",), _LIQUIDATION_FILTERS,
                                "perp liquidation notional in the window, USD"),
    "liquidations_24h": EventMetric(("perp_book",), ("USD",), _LIQUIDATION_FILTERS,
                                    "largest 24 h of perp liquidation notional, USD"),
    "liquidated_accounts": EventMetric(("perp_book",), ("accounts", "count"),
                                       _LIQUIDATION_FILTERS,
                                       "perp liquidation orders in the window"),
    "liquidated_accounts_24h": EventMetric(("perp_book",), ("accounts", "count"),
                                           _LIQUIDATION_FILTERS,
                                           "largest 24 h of perp liquidation orders"),
    "margin_book_liquidations": EventMetric(
        ("futures_book", "pb_funds", "margin_loans"), ("USD",), _LIQUIDATION_FILTERS,
        "futures accounts liquidated and prime-broker forced sales in the window, USD"),
    "margin_book_liquidated_accounts": EventMetric(
        ("futures_book", "pb_funds", "margin_loans"), ("accounts", "count"), _LIQUIDATION_FILTERS,
        "futures accounts liquidated and prime-brokered funds forced to sell (per asset)"),
    "adl_accounts": EventMetric(("perp_book",), ("accounts", "count"),
                                ("asset", "venue", "population"),
                                "accounts auto-deleveraged in the window"),
    "open_interest_change": EventMetric(
        ("perp_book", "futures_book"), ("%",), ("asset", "venue", "population"),
        "change of the books' one-sided open interest (USD) from the window's start to its "
        "end, %, read on hourly snapshots"),
    "carry_repaid": EventMetric(("carry_funds",), ("USD", "currency"), ("population",),
                                "funding currency bought back by carry funds in the window, "
                                "in USD or in the funding currency (e.g. JPY)"),
    "etf_flow": EventMetric(("etf_flows",), ("USD",), ("asset", "population"),
                            "net ETF creations (+) or redemptions (−) in the window, USD"),
}  # fmt: skip


class Target(Model):
    """An observed outcome to compare a run against (SPEC §10); never an input.

    Computed metrics: the price metrics of one asset (start, end, low: in its currency;
    return, max_drawdown, worst_1h, worst_24h: %) and the event metrics of `EVENT_METRICS`
    (liquidations by asset, venue, population and side, counts, margin-book liquidations,
    ADL counts, open-interest change, currency repaid by carry funds, ETF flows). Any
    other metric is recorded as observed only (its modelled value is NaN, and said so)."""

    metric: str = Field(
        description="price metric ("
        + ", ".join(PRICE_METRICS)
        + ") or event metric ("
        + ", ".join(EVENT_METRICS)
        + "); another name is kept as observed only"
    )
    asset: str | None = None
    venue: str | None = Field(None, description="event metrics: only this venue's assets")
    population: str | None = Field(None, description="event metrics: only this population")
    side: Literal["long", "short"] | None = Field(
        None, description="liquidation metrics: only positions on this side"
    )
    value: float
    unit: str
    window: tuple[UtcTime, UtcTime] | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _window_order(self) -> Target:
        if self.window is not None and not self.window[0] < self.window[1]:
            raise ValueError("expected a window [start, end) with start before end")
        return self

    def filters(self) -> dict[str, str]:
        """The filters set on this target, by name."""
        return {
            key: getattr(self, key)
            for key in ("venue", "population", "side")
            if getattr(self, key) is not None
        }


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

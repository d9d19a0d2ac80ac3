"""The market's parameters (immutable, from the scenario) and its state (arrays that one
step advances). Each is built for one path, arrays indexed by asset (`(A, T)`: by asset and
step); `market.lanes.stack_lanes` puts the paths of a batch side by side as lanes, a
leading axis on every array ((L, A), (L, A, T)), so one step advances them all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

import numpy as np

from deleverage.engine.timeline import Timeline
from deleverage.market import book
from deleverage.market.calendar import Calendar
from deleverage.market.fx import Translation
from deleverage.market.makers import MarketMakers
from deleverage.scenario.schema import Scenario


def half_life_share(step: timedelta, half_life: timedelta) -> float:
    """Share of a quantity that decays in one step given its half-life."""
    return 1.0 - 0.5 ** (step / half_life)


def _ema_weight(elapsed: timedelta, window: timedelta) -> float:
    """Weight of the newest value after `elapsed` in an EMA with the centre of mass of a
    simple moving average over `window` (α = 2/(N + 1) per point, continuous-time)."""
    if window.total_seconds() == 0:
        return 1.0
    return 1.0 - float(np.exp(-2.0 * elapsed / window))


@dataclass(frozen=True)
class MarketParams:
    """Everything about the market that a run never changes."""

    asset_ids: list[str]
    asset_index: dict[str, int]  # asset id -> column
    currency_of: list[str]  # quote currency per asset
    price0: np.ndarray  # (A,) initial prices
    usd_base: np.ndarray  # (A,) bool: a USD/xxx pair (one unit is one dollar)
    steps_per_day: np.ndarray  # (A,) steps in one trading day of the asset's venue
    noise_sd: np.ndarray  # (A,) log-price noise per open step (a driven step has none)
    resolved: np.ndarray  # (A,) share of book displacement resolved per open step
    permanent: np.ndarray  # (A,) share of resolved displacement that stays in the price
    pull: np.ndarray  # (A,) pull toward the fundamental anchor per open step
    latent_depth: np.ndarray  # (A,) Λ of the latent book at the initial prices, units
    has_visible: np.ndarray  # (A,) bool: the asset has a visible book near mid
    visible_units: np.ndarray  # (A,) units within the band at rest, initial prices (NaN: none)
    visible_band: np.ndarray  # (A,) log-distance of the visible depth input (NaN: none)
    visible_shape: np.ndarray  # (A,) cumulative visible depth ∝ distance^shape
    visible_half_life_steps: np.ndarray  # (A,) refill half-life of the visible book, steps
    weekend_depth: np.ndarray  # (A, T) visible depth multiplier of the day (1 on weekdays)
    duration: np.ndarray  # (A,) modified duration of bonds (NaN otherwise)
    yield0: np.ndarray  # (A,) initial yields in % (NaN for non-bonds)
    asset_open: np.ndarray  # (A, T) bool: the asset's venue trades in the step
    asset_settles: np.ndarray  # (A, T) bool: the venue settles in the step
    step_hours: float
    max_rounds: int
    round_steps: float  # time between cascade rounds, in steps
    mark_weight_round: float  # EMA weight of the mark's wick per cascade round
    mark_weight_step: float  # the same over a whole step
    mm_feedback: bool  # channel mm_retreat: desks cut depth on volatility and inventory
    fx: Translation  # USD value of quote currencies at the same step's FX prices

    @cached_property
    def unit_usd0(self) -> np.ndarray:
        return self.unit_usd(self.price0)

    @cached_property
    def round_limits(self) -> list[int]:
        """Each lane's round limit, for parameters stacked on lanes (they may differ in it:
        a prior on `market.max_rounds` makes it an (L, 1) column)."""
        return np.broadcast_to(self.max_rounds, (len(self.price0), 1))[:, 0].tolist()

    @cached_property
    def any_visible(self) -> bool:
        return bool(self.has_visible.any())

    @cached_property
    def all_visible(self) -> bool:
        return bool(self.has_visible.all())

    def unit_usd(self, price: np.ndarray) -> np.ndarray:
        """USD value of one unit: the price translated at the same prices' FX rate, or 1
        for a USD/xxx pair."""
        return self.fx.unit_usd(price)

    def implied_yield(self, price: np.ndarray) -> np.ndarray:
        return self.yield0 - np.log(price / self.price0) / self.duration * 100.0

    @classmethod
    def build(
        cls, scenario: Scenario, calendar: Calendar, timeline: Timeline, price0: np.ndarray
    ) -> MarketParams:
        clock, assets = scenario.clock, scenario.assets
        venues = scenario.venue_index()
        venue_of = np.array([venues[a.venue] for a in assets])
        vol = np.array([a.daily_vol for a in assets])
        fx = Translation.build(scenario)
        hours = np.array([scenario.venues[v].session.hours_per_day for v in venue_of])
        steps_per_day = hours * 3600.0 / clock.step.total_seconds()
        noise_sd = scenario.market.noise_scale * vol / np.sqrt(steps_per_day)
        adv = np.array([a.adv_usd for a in assets])
        unit_usd0 = fx.unit_usd(price0)
        visible = [a.liquidity.visible_depth for a in assets]
        has_visible = np.array([v is not None for v in visible])
        depth_usd = np.array([np.nan if v is None else v.usd for v in visible])
        band = np.array([np.nan if v is None else v.band_pct / 100.0 for v in visible])
        refill_seconds = np.array(
            [a.liquidity.visible_refill_half_life.total_seconds() for a in assets]
        )
        weekend = np.asarray(calendar.step_starts.day_of_week >= 5)
        weekend_multiplier = np.array([a.liquidity.weekend_depth_multiplier for a in assets])
        return cls(
            asset_ids=[a.id for a in assets],
            asset_index=scenario.asset_index(),
            currency_of=[a.currency for a in assets],
            price0=price0,
            usd_base=fx.usd_base,
            steps_per_day=steps_per_day,
            noise_sd=noise_sd,
            resolved=np.array(
                [half_life_share(clock.step, a.liquidity.resilience_half_life) for a in assets]
            ),
            permanent=np.array([a.liquidity.permanent_fraction for a in assets]),
            pull=np.array(
                [
                    0.0
                    if a.fundamental_half_life is None
                    else half_life_share(clock.step, a.fundamental_half_life)
                    for a in assets
                ]
            ),
            latent_depth=book.base_depth_units(
                adv,
                vol,
                np.array([a.liquidity.impact_y for a in assets]),
                unit_usd0,
            ),
            has_visible=has_visible,
            visible_units=depth_usd / unit_usd0,
            visible_band=band,
            visible_shape=np.array([np.nan if v is None else v.shape for v in visible]),
            visible_half_life_steps=refill_seconds / clock.step.total_seconds(),
            weekend_depth=np.where(weekend[None, :], weekend_multiplier[:, None], 1.0),
            duration=np.array([a.duration_years or np.nan for a in assets]),
            yield0=np.array([np.nan if a.yield_pct is None else a.yield_pct for a in assets]),
            asset_open=calendar.open[venue_of],
            asset_settles=calendar.settlement[venue_of],
            step_hours=clock.step.total_seconds() / 3600.0,
            max_rounds=scenario.market.max_rounds,
            round_steps=scenario.market.round_seconds / clock.step,
            mark_weight_round=_ema_weight(
                scenario.market.round_seconds, scenario.market.mark_price_window
            ),
            mark_weight_step=_ema_weight(clock.step, scenario.market.mark_price_window),
            mm_feedback=scenario.channels.mm_retreat,
            fx=fx,
        )


@dataclass
class MarketState:
    """What one step advances: the books, the reference prices, waiting jumps, the
    exchange margins in force and the market makers."""

    log_reference: np.ndarray  # (A,) log of the price each book is centred on
    log_anchor: np.ndarray  # (A,) fundamental anchor (for a pull toward value)
    displacement: np.ndarray  # (A,) latent book's transient impact (log units)
    visible_displacement: np.ndarray  # (A,) visible book's extra displacement (log units)
    mark_wick: np.ndarray  # (A,) the visible displacement as the mark price sees it (EMA)
    pending_jump: np.ndarray  # (A,) jumps waiting for a closed venue to open
    initial_margin_pct: np.ndarray  # (A,) exchange initial margin in force (NaN: none)
    maintenance_margin_pct: np.ndarray  # (A,)
    makers: MarketMakers

    @property
    def mark_price(self) -> np.ndarray:
        return self.mark_price_at(None)

    def mark_price_at(self, centre: np.ndarray | None) -> np.ndarray:
        """The mark price; `centre` is e^log_reference when the caller has it (the same
        numbers, one exponential fewer)."""
        if centre is None:
            centre = np.exp(self.log_reference)
        return centre * np.exp(self.displacement + self.mark_wick)

    def update_mark(self, weight: float, lanes: np.ndarray | None = None) -> None:
        """Move the mark's wick toward the visible displacement; only in `lanes` (a bool
        mask over the leading axis) when given."""
        wick = self.mark_wick + weight * (self.visible_displacement - self.mark_wick)
        self.mark_wick = wick if lanes is None else np.where(lanes[:, None], wick, self.mark_wick)

    @property
    def price(self) -> np.ndarray:
        return self.price_at(None)

    def price_at(self, centre: np.ndarray | None) -> np.ndarray:
        """The price; `centre` as in `mark_price_at`."""
        if centre is None:
            centre = np.exp(self.log_reference)
        return centre * np.exp(self.displacement + self.visible_displacement)

    @classmethod
    def initial(cls, scenario: Scenario, params: MarketParams, makers: MarketMakers) -> MarketState:
        def pct(values) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=float)

        log_price0 = np.log(params.price0)
        return cls(
            log_reference=log_price0.copy(),
            log_anchor=log_price0.copy(),
            displacement=np.zeros(len(params.price0)),
            visible_displacement=np.zeros(len(params.price0)),
            mark_wick=np.zeros(len(params.price0)),
            pending_jump=np.zeros(len(params.price0)),
            initial_margin_pct=pct(a.initial_margin_pct for a in scenario.assets),
            maintenance_margin_pct=pct(a.maintenance_margin_pct for a in scenario.assets),
            makers=makers,
        )

"""Price limits and circuit breakers (SPEC §3; issue 13 item 6).

Price limits (`market.price_limits`): an asset cannot trade more than `down_pct` below or
`up_pct` above its reference price, the price at the last reset (a session open, a daily
settlement or 00:00 UTC). CME equity index futures have a hard ±7% limit outside US
hours around the previous day's reference price (cmegroup.com, US-based equity index price
limits FAQ). Here:
  * the exogenous price (noise, news) stops at the limit and the part of a move beyond it
    waits, like news on a closed venue: it opens as a gap once a reset moves the band;
  * a cascade round whose orders would trade through the limit does not trade: the asset
    is locked for the rest of the step, its orders (liquidations included) wait.

Circuit breakers (`market.circuit_breakers`): when the index falls `decline_pct` below its
reference, trading in the named assets halts for `halt` (or until the next reset, the
rest of the day), each level once per day. The US market-wide rule is 7% and 13% (15
minutes, not at or after 15:25 New York) and 20% (the rest of the day) below the S&P 500's
previous close (nasdaqtrader.com, Market Wide Circuit Breaker). A halted asset is a closed
venue for the engine: nothing trades, orders and liquidations wait, news waits.

Halts are whole steps: a halt triggered in step k closes the asset for the rest of step k
and for ceil(halt / step) steps after it.

Lanes (issue 9): `PriceLimits.stack` joins the objects built for L paths into one whose
arrays have a leading lane axis; the methods are written on (..., A) arrays, so lane ℓ of
the stacked object does exactly what lane ℓ's own object does alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from deleverage.market.calendar import session_mask
from deleverage.market.lanes import same_in_every_lane, stacked_lanes
from deleverage.results.events import EventLog
from deleverage.scenario.schema import Scenario


def reset_mask(scenario: Scenario, asset_id: str, reset: str, starts: pd.DatetimeIndex,
               settles: np.ndarray) -> np.ndarray:  # fmt: skip
    """True at the steps whose start resets the asset's reference (to the price then):
    the first step of a session, the step after a daily settlement, or the first step of
    each UTC day."""
    n = len(starts)
    mask = np.zeros(n, dtype=bool)
    if reset == "utc_day":
        day = starts.normalize()
        mask[1:] = np.asarray(day[1:] != day[:-1])
    elif reset == "settlement":
        mask[1:] = settles[:-1]
    else:
        asset = next(a for a in scenario.assets if a.id == asset_id)
        venue = next(v for v in scenario.venues if v.id == asset.venue)
        session = session_mask(venue.session, starts)
        mask[1:] = session[1:] & ~session[:-1]
    return mask


def _next_reset(mask: np.ndarray) -> np.ndarray:
    """For each step k, the first step after k that resets (len(mask) if none)."""
    n = len(mask)
    after = np.full(n + 1, n)
    for k in range(n - 1, -1, -1):
        after[k] = k + 1 if k + 1 < n and mask[k + 1] else after[k + 1]
    return after[:n]


def _steps(halt, step: pd.Timedelta) -> int:
    """Whole steps a halt lasts after the step that triggers it; -1: until the reset."""
    return -1 if halt is None else int(np.ceil(pd.Timedelta(halt) / step))


@dataclass
class _Breaker:
    """One breaker rule; `...` is the lane axis of a stacked object (nothing in one path)."""

    index: int
    halted: np.ndarray  # asset columns halted
    levels: np.ndarray  # (..., levels) declines as fractions, increasing
    halt_steps: np.ndarray  # (..., levels) steps after the trigger step; -1: to the reset
    not_after: np.ndarray  # (..., levels) local minute from which a level no longer halts
    minute: np.ndarray  # (..., T) local minute of each step start, in the index venue's zone
    reset: np.ndarray  # (..., T) bool
    next_reset: np.ndarray  # (..., T)
    reference: np.ndarray  # (...) index price at the last reset
    triggered: np.ndarray  # (..., levels) bool, cleared at each reset

    @classmethod
    def stack(cls, breakers: list[_Breaker], name: str) -> _Breaker:
        """The lanes' breakers as one: the index and the halted assets are the rule's
        structure and must agree; levels, halt times and resets may differ by lane."""
        values = {}
        for f in fields(cls):
            combine = same_in_every_lane if f.name in ("index", "halted") else stacked_lanes
            values[f.name] = combine([getattr(b, f.name) for b in breakers], f"{name}.{f.name}")
        return cls(**values)


@dataclass
class PriceLimits:
    """The limit bands and breaker levels of a run, with what one step changes in them.
    Arrays are (A, ...) for one path, (L, A, ...) for L lanes stacked (`stack`)."""

    asset_ids: list[str]
    down: np.ndarray  # (A,) log-distance of the lower limit below the reference (inf: none)
    up: np.ndarray  # (A,) log-distance of the upper limit (inf: none)
    reset: np.ndarray  # (A, T) bool: the limit reference resets at the step's start
    reference: np.ndarray  # (A,) log reference price of the limits
    breakers: list[_Breaker]
    halt_until: np.ndarray  # (A,) first step at which a halted asset trades again

    @classmethod
    def build(cls, scenario: Scenario, starts: pd.DatetimeIndex, settles: np.ndarray,
              price0: np.ndarray) -> PriceLimits | None:  # fmt: skip
        """None when the scenario has neither limits nor breakers (the engine skips it)."""
        market = scenario.market
        if not market.price_limits and not market.circuit_breakers:
            return None
        index = scenario.asset_index()
        n_assets, n_steps = len(scenario.assets), len(starts)
        down, up = np.full(n_assets, np.inf), np.full(n_assets, np.inf)
        reset = np.zeros((n_assets, n_steps), dtype=bool)
        for limit in market.price_limits:
            a = index[limit.asset]
            if limit.down_pct is not None:
                down[a] = -np.log1p(-limit.down_pct / 100.0)
            if limit.up_pct is not None:
                up[a] = np.log1p(limit.up_pct / 100.0)
            reset[a] = reset_mask(scenario, limit.asset, limit.reset, starts, settles[a])
        step = pd.Timedelta(scenario.clock.step)
        breakers = []
        for spec in market.circuit_breakers:
            i = index[spec.index]
            zone = scenario.venues[scenario.venue_index()[scenario.assets[i].venue]].session
            local = starts.tz_convert(zone.timezone)
            mask = reset_mask(scenario, spec.index, spec.reset, starts, settles[i])
            breakers.append(
                _Breaker(
                    index=i,
                    halted=np.array([index[a] for a in (spec.assets or [spec.index])]),
                    levels=np.array([lv.decline_pct / 100.0 for lv in spec.levels]),
                    halt_steps=np.array([_steps(lv.halt, step) for lv in spec.levels]),
                    not_after=np.array(
                        [np.inf if lv.not_after is None else lv.not_after for lv in spec.levels]
                    ),
                    minute=np.asarray(local.hour * 60 + local.minute, dtype=float),
                    reset=mask,
                    next_reset=_next_reset(mask),
                    reference=np.asarray(price0[i], dtype=float),
                    triggered=np.zeros(len(spec.levels), dtype=bool),
                )
            )
        return cls(
            asset_ids=[a.id for a in scenario.assets],
            down=down,
            up=up,
            reset=reset,
            reference=np.log(price0),
            breakers=breakers,
            halt_until=np.zeros(n_assets, dtype=np.int64),
        )

    @classmethod
    def stack(cls, limits: list[PriceLimits]) -> PriceLimits:
        """One object for L lanes (each built by `build` from its lane's scenario draw):
        per-lane arrays on a leading lane axis. The assets and the breakers' structure
        must agree (ValueError naming the field); bands and levels may differ."""
        asset_ids = list(same_in_every_lane([x.asset_ids for x in limits], "asset_ids"))
        n_breakers = same_in_every_lane([len(x.breakers) for x in limits], "len(breakers)")
        return cls(
            asset_ids=asset_ids,
            **{
                name: stacked_lanes([getattr(x, name) for x in limits], name)
                for name in ("down", "up", "reset", "reference", "halt_until")
            },
            breakers=[
                _Breaker.stack([x.breakers[i] for x in limits], f"breakers[{i}]")
                for i in range(n_breakers)
            ],
        )

    # ------------------------------------------------------------------ one step
    # Arrays (A,) for one path or (L, A) for L lanes: the same code serves both.

    def begin_step(self, k: int, price: np.ndarray, is_open: np.ndarray) -> np.ndarray:
        """Resets due at step k (references := the price now) and the trading mask of the
        step: `is_open` less the halted assets (a new array)."""
        due = self.reset[..., k]
        self.reference = np.where(due, np.log(price), self.reference)
        for breaker in self.breakers:
            due = breaker.reset[..., k]
            breaker.reference = np.where(due, price[..., breaker.index], breaker.reference)
            breaker.triggered = breaker.triggered & ~due[..., None]
        return is_open & (self.halt_until <= k)

    def clamp(self, state, free: np.ndarray, lanes: np.ndarray | None = None) -> None:
        """Hold the price of `free` assets inside the band: the part of the exogenous move
        beyond a limit waits (added back to the pending jumps, it applies when the band
        allows). An asset following an observed driver replays what happened (inside the
        exchange's limits of the day): its band follows it, so released it starts from its
        last observed price. `lanes` ((..., 1) bool): only these lanes are clamped, the
        others are left exactly as they were."""
        log_price = state.log_reference + state.displacement + state.visible_displacement
        reference = np.where(free, self.reference, log_price)
        excess = np.maximum(log_price - (reference + self.up), 0.0) + np.minimum(
            log_price - (reference - self.down), 0.0
        )
        log_reference = state.log_reference - excess
        pending_jump = state.pending_jump + excess
        if lanes is not None:
            reference = np.where(lanes, reference, self.reference)
            log_reference = np.where(lanes, log_reference, state.log_reference)
            pending_jump = np.where(lanes, pending_jump, state.pending_jump)
        self.reference = reference
        state.log_reference, state.pending_jump = log_reference, pending_jump

    def through(
        self, state, before: tuple[np.ndarray, np.ndarray], is_open, lanes=None
    ) -> np.ndarray:
        """Assets whose round traded through a limit: their books go back to `before`
        (displacements), and they are closed for the rest of the step (orders wait).
        `lanes` ((..., 1) bool): only the lanes that traded in the round are checked."""
        log_price = state.log_reference + state.displacement + state.visible_displacement
        tolerance = 1e-12
        blocked = (log_price < self.reference - self.down - tolerance) | (
            log_price > self.reference + self.up + tolerance
        )
        if lanes is not None:
            blocked &= lanes
        if blocked.any():
            state.displacement = np.where(blocked, before[0], state.displacement)
            state.visible_displacement = np.where(blocked, before[1], state.visible_displacement)
            is_open &= ~blocked
        return blocked

    def observe(
        self,
        k: int,
        price: np.ndarray,
        is_open: np.ndarray,
        log: EventLog | Sequence[EventLog],
        lanes: np.ndarray | None = None,
    ) -> None:
        """Trigger the breakers whose index has fallen past a level: halt their assets
        (closed at once in `is_open`, and until `halt_until`). `log`: the path's log, or one
        log per lane for stacked lanes (lane ℓ's events go to log[ℓ]). `lanes` ((..., 1)
        bool): only these lanes are observed (those that traded in the round)."""
        for b in self.breakers:
            decline = 1.0 - price[..., b.index] / b.reference
            new = (decline[..., None] >= b.levels) & ~b.triggered
            if lanes is not None:
                new &= lanes
            if not new.any():
                continue
            b.triggered |= new
            index_id = self.asset_ids[b.index]
            for lane in map(tuple, np.argwhere(new.any(axis=-1))):  # (): one path
                lane_log = log[lane[0]] if lane else log
                level = int(np.flatnonzero(new[lane])[-1])
                at = float(price[(*lane, b.index)])
                if b.minute[(*lane, k)] >= b.not_after[(*lane, level)]:
                    lane_log.add("circuit_breaker_skipped", asset=index_id, price=at,
                                 detail=f"level {level + 1} ({b.levels[(*lane, level)]:.0%}) "
                                 "after its last halt time: trading continues")  # fmt: skip
                    continue
                steps = b.halt_steps[(*lane, level)]
                until = b.next_reset[(*lane, k)] if steps < 0 else k + 1 + steps
                halted = (*lane, b.halted)
                self.halt_until[halted] = np.maximum(self.halt_until[halted], until)
                is_open[halted] = False
                names = ", ".join(self.asset_ids[a] for a in b.halted)
                lane_log.add("circuit_breaker", asset=index_id, count=len(b.halted), price=at,
                             detail=f"level {level + 1}: {decline[lane]:.1%} below the "
                             f"reference; {names} halted for {until - k - 1} steps after "
                             "this one")  # fmt: skip

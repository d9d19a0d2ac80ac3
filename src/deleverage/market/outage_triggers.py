"""Outages that a price move starts (issue 13, item 6; `venues[].triggered_outages`).

Checked at the start of each step on the step-start prices recorded so far: a rule fires at
the first step k whose starting price of its asset is at least `move_pct` % below the highest
(`down`), above the lowest (`up`), or either (`both`), of the starting prices of the steps
that began within `within` before it (steps k − w … k, w = within ÷ step). The venue is then
out for ceil(duration ÷ step) steps from k: its assets do not trade (as in a scheduled
outage) and perp books on it stop (`populations.perp_venue`). A rule fires once, or with
`repeat` again on a move made after its outage ended (the window starts at the return).

Lanes (issue 9): `OutageTriggers.stack` joins the triggers of L paths; each lane has its own
calendar and open mask, and a rule's threshold, window, length and return per lane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deleverage.market.calendar import Calendar
from deleverage.market.lanes import same_in_every_lane
from deleverage.scenario.schema import Scenario

_PER_LANE = ("move", "window", "length", "free_from")


@dataclass
class _Rule:
    """One rule; the per-lane fields are (L,) arrays (L = 1 for one path)."""

    venue: int
    asset: int
    direction: str
    repeat: bool
    move: np.ndarray  # fraction
    window: np.ndarray  # steps looked back
    length: np.ndarray  # steps out
    free_from: np.ndarray  # first step whose price counts, and may fire (−1: never again)


def fires(
    prices: np.ndarray, move: float | np.ndarray, direction: str, counted: np.ndarray | bool = True
) -> np.ndarray | np.bool_:
    """Whether the last of `prices` (oldest first, along the first axis; lanes after it)
    has moved by `move` (a fraction) from the highest (down) or lowest (up) of the rows
    `counted` (default all)."""
    now = prices[-1]
    down = now <= (1.0 - move) * np.where(counted, prices, -np.inf).max(axis=0)
    up = now >= (1.0 + move) * np.where(counted, prices, np.inf).min(axis=0)
    return down if direction == "down" else up if direction == "up" else down | up


class OutageTriggers:
    """The price-started outages of L lanes: one path's (`build`, L = 1) or several
    stacked (`stack`)."""

    def __init__(
        self,
        venue_ids: list[str],
        assets_on: list[np.ndarray],
        rules: list[_Rule],
        calendars: list[Calendar],
        asset_open: np.ndarray,
    ):
        self.venue_ids, self.assets_on, self.rules = venue_ids, assets_on, rules
        self.calendars = calendars  # one a lane
        self.asset_open = asset_open  # (L, A, T): the lanes' open masks, closed in place

    @classmethod
    def build(
        cls, scenario: Scenario, calendar: Calendar, asset_open: np.ndarray
    ) -> OutageTriggers | None:
        """None when no venue has a triggered outage (nothing to check). One lane: the
        triggers close venues in `calendar` and assets in `asset_open` ((A, T)), in place."""
        if not any(v.triggered_outages for v in scenario.venues):
            return None
        step = scenario.clock.step
        assets = scenario.asset_index()
        rules = [
            _Rule(
                venue=v,
                asset=assets[r.asset],
                direction=r.direction,
                repeat=r.repeat,
                move=np.array([r.move_pct / 100.0]),
                window=np.array([int(r.within / step)]),
                length=np.array([max(1, math.ceil(r.duration / step))]),
                free_from=np.zeros(1, dtype=np.int64),
            )
            for v, venue in enumerate(scenario.venues)
            for r in venue.triggered_outages
        ]
        assets_on = [
            np.array([a for a, asset in enumerate(scenario.assets) if asset.venue == v.id], int)
            for v in scenario.venues
        ]
        venue_ids = [v.id for v in scenario.venues]
        return cls(venue_ids, assets_on, rules, [calendar], asset_open[None])

    @classmethod
    def stack(cls, triggers: list[OutageTriggers], asset_open: np.ndarray) -> OutageTriggers:
        """One object for L lanes (each built by `build` from its lane's scenario draw):
        lane ℓ closes venues in its own calendar (that of triggers[ℓ]) and assets in
        `asset_open[ℓ]` ((L, A, T), the engine's stacked mask). Venues, assets and each
        rule's venue, asset, direction and repeat must agree (ValueError naming the field)."""
        n_rules = same_in_every_lane([len(t.rules) for t in triggers], "len(rules)")
        rules = []
        for i in range(n_rules):
            lanes = [t.rules[i] for t in triggers]
            fixed = {
                name: same_in_every_lane([getattr(r, name) for r in lanes], f"rules[{i}].{name}")
                for name in ("venue", "asset", "direction", "repeat")
            }
            per_lane = {
                name: np.concatenate([getattr(r, name) for r in lanes]) for name in _PER_LANE
            }
            rules.append(_Rule(**fixed, **per_lane))
        venue_ids = same_in_every_lane([t.venue_ids for t in triggers], "venue_ids")
        for v in range(len(venue_ids)):
            same_in_every_lane([t.assets_on[v] for t in triggers], f"assets_on[{v}]")
        shape = same_in_every_lane([t.asset_open.shape[1:] for t in triggers], "asset_open.shape")
        if asset_open.shape != (len(triggers), *shape):
            raise ValueError(f"cannot stack lanes: asset_open has shape {asset_open.shape}, "
                             f"expected {(len(triggers), *shape)}")  # fmt: skip
        calendars = [t.calendars[0] for t in triggers]
        return cls(list(venue_ids), triggers[0].assets_on, rules, calendars, asset_open)

    def check(self, k: int, prices: np.ndarray) -> list[tuple[str, ...]]:
        """Venues whose triggered outage starts at step k in each lane, given the prices at
        the start of steps 0..k ((k + 1, L, A)); closes them in the lane's calendar and
        open mask. A tuple of venue ids a lane."""
        started: list[list[str]] = [[] for _ in range(prices.shape[1])]
        for rule in self.rules:
            live = (rule.free_from >= 0) & (k >= rule.free_from)
            if not live.any():
                continue
            # after an outage, only the prices since the venue came back count
            first = np.maximum(rule.free_from, k - rule.window)  # first row counted, a lane
            low = max(0, k - int(rule.window.max()))
            counted = np.arange(low, k + 1)[:, None] >= first
            fired = live & fires(
                prices[low : k + 1, :, rule.asset], rule.move, rule.direction, counted
            )
            for lane in np.flatnonzero(fired):
                end = k + rule.length[lane]
                calendar = self.calendars[lane]
                calendar.open[rule.venue, k:end] = False
                calendar.outage[rule.venue, k:end] = True
                self.asset_open[lane, self.assets_on[rule.venue], k:end] = False
                rule.free_from[lane] = end if rule.repeat else -1
                started[lane].append(self.venue_ids[rule.venue])
        return [tuple(venues) for venues in started]

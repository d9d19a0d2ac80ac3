"""Outages that a price move starts (issue 13, item 6; `venues[].triggered_outages`).

Checked at the start of each step on the step-start prices recorded so far: a rule fires at
the first step k whose starting price of its asset is at least `move_pct` % below the highest
(`down`), above the lowest (`up`), or either (`both`), of the starting prices of the steps
that began within `within` before it (steps k − w … k, w = within ÷ step). The venue is then
out for ceil(duration ÷ step) steps from k: its assets do not trade (as in a scheduled
outage) and perp books on it stop (`populations.perp_venue`). A rule fires once, or with
`repeat` again on a move made after its outage ended (the window starts at the return).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deleverage.market.calendar import Calendar
from deleverage.scenario.schema import Scenario


@dataclass
class _Rule:
    venue: int
    asset: int
    move: float  # fraction
    window: int  # steps looked back
    length: int  # steps out
    direction: str
    repeat: bool
    free_from: int = 0  # first step whose price counts, and may fire (−1: never again)


def fires(prices: np.ndarray, move: float, direction: str) -> bool:
    """Whether the last of `prices` (oldest first) has moved by `move` (a fraction) from the
    highest (down) or lowest (up) of them."""
    now = prices[-1]
    down = now <= (1.0 - move) * np.max(prices)
    up = now >= (1.0 + move) * np.min(prices)
    return bool(down if direction == "down" else up if direction == "up" else down or up)


class OutageTriggers:
    def __init__(self, scenario: Scenario, calendar: Calendar, asset_open: np.ndarray):
        step = scenario.clock.step
        assets = scenario.asset_index()
        self.calendar, self.asset_open = calendar, asset_open
        self.venue_ids = [v.id for v in scenario.venues]
        self.assets_on = [
            np.array([a for a, asset in enumerate(scenario.assets) if asset.venue == v.id], int)
            for v in scenario.venues
        ]
        self.rules = [
            _Rule(
                venue=v,
                asset=assets[r.asset],
                move=r.move_pct / 100.0,
                window=int(r.within / step),
                length=max(1, math.ceil(r.duration / step)),
                direction=r.direction,
                repeat=r.repeat,
            )
            for v, venue in enumerate(scenario.venues)
            for r in venue.triggered_outages
        ]

    @classmethod
    def build(
        cls, scenario: Scenario, calendar: Calendar, asset_open: np.ndarray
    ) -> OutageTriggers | None:
        """None when no venue has a triggered outage (nothing to check)."""
        if not any(v.triggered_outages for v in scenario.venues):
            return None
        return cls(scenario, calendar, asset_open)

    def check(self, k: int, step_start_prices: np.ndarray) -> tuple[str, ...]:
        """Venues whose triggered outage starts at step k, given the prices at the start of
        steps 0..k (rows); closes them in the calendar and the assets' open mask."""
        started = []
        for rule in self.rules:
            if rule.free_from < 0 or k < rule.free_from:
                continue
            # after an outage, only the prices since the venue came back count
            window = step_start_prices[max(rule.free_from, k - rule.window) : k + 1, rule.asset]
            if not fires(window, rule.move, rule.direction):
                continue
            end = k + rule.length
            self.calendar.open[rule.venue, k:end] = False
            self.calendar.outage[rule.venue, k:end] = True
            self.asset_open[self.assets_on[rule.venue], k:end] = False
            rule.free_from = end if rule.repeat else -1
            started.append(self.venue_ids[rule.venue])
        return tuple(started)

"""An asset's `history`: the observed path before the clock start (SPEC §4)."""

import numpy as np
import pytest
from tests.conftest import base_raw, build

from deleverage.engine.simulate import initial_prices
from deleverage.populations import BuildContext
from deleverage.scenario.loader import ScenarioError


def _with_history(points, price=None):
    raw = base_raw()
    raw["assets"][0].pop("price")
    if price is not None:
        raw["assets"][0]["price"] = price
    raw["assets"][0]["history"] = {"points": points, "source": "test"}
    return raw


POINTS = [
    ["2026-01-03T00:00:00Z", 90_000.0],
    ["2026-01-04T00:00:00Z", 95_000.0],
    ["2026-01-05T00:00:00Z", 97_000.0],  # the clock start
    ["2026-01-06T00:00:00Z", 50_000.0],  # after the start: never read
]


def test_the_last_history_point_at_or_before_the_start_sets_the_initial_price():
    scenario = build(_with_history(POINTS))
    assert initial_prices(scenario)[0] == 97_000.0


def test_an_explicit_price_wins_over_the_history():
    scenario = build(_with_history(POINTS, price=98_000.0))
    assert initial_prices(scenario)[0] == 98_000.0


def test_nothing_after_the_clock_start_is_visible_to_populations():
    scenario = build(_with_history(POINTS))
    ctx = BuildContext(
        scenario, {"BTC": 0}, np.array([97_000.0]), np.random.default_rng(0), True, 1
    )
    seen = ctx.history("BTC")
    assert list(seen) == [90_000.0, 95_000.0, 97_000.0]
    assert seen.index.max() <= scenario.clock.start


def test_a_history_that_starts_after_the_clock_is_an_error():
    with pytest.raises(ScenarioError, match=r"assets\.BTC\.history: expected data on or before"):
        build(_with_history([["2026-01-06T00:00:00Z", 1.0]]))


def test_history_needs_exactly_one_source():
    raw = _with_history(POINTS)
    raw["assets"][0]["history"]["file"] = "btc.csv"
    with pytest.raises(ScenarioError, match="exactly one of 'file' or 'points'"):
        build(raw)

"""Shocks live inside the clock window; a driver may end (`until`) and free its asset."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build

from deleverage.engine.timeline import compile_timeline
from deleverage.errors import ScenarioError
from deleverage.market.calendar import build_calendar

POINTS = [["2026-01-05T00:00:00Z", 100_000.0], ["2026-01-06T00:00:00Z", 80_000.0]]


def _driver_column(**driver):
    scenario = build(base_raw(shocks=[{"type": "driver", "asset": "BTC", **driver}]))
    starts = build_calendar(scenario).step_starts
    return starts, compile_timeline(scenario, starts, np.array([100_000.0])).driver[:, 0]


def test_a_driver_with_until_stops_driving_at_the_step_containing_it():
    starts, driver = _driver_column(points=POINTS, until="2026-01-05T12:03:00Z")
    k = starts.get_loc(pd.Timestamp("2026-01-05T12:00:00Z"))  # the step 12:00-12:05 contains it
    assert np.all(np.isfinite(driver[:k])) and np.all(np.isnan(driver[k:]))
    assert np.isclose(np.exp(driver[k - 1]), 100_000.0 - 20_000.0 * (12 - 5 / 60) / 24)


def test_a_driver_until_on_a_step_start_frees_that_step():
    starts, driver = _driver_column(points=POINTS, until="2026-01-06T06:00:00Z")
    k = starts.get_loc(pd.Timestamp("2026-01-06T06:00:00Z"))
    assert np.isfinite(driver[k - 1]) and np.isnan(driver[k:]).all()


def test_a_driver_without_until_drives_to_the_end():
    _, driver = _driver_column(points=POINTS)
    assert np.all(np.isfinite(driver))


SHOCKS_BEFORE_THE_START = {
    "news": ({"type": "news", "time": "2026-01-04T12:00:00Z", "returns": {"BTC": -0.1}}, "time"),
    "flow": (
        {
            "type": "flow",
            "asset": "BTC",
            "start": "2026-01-04T23:00:00Z",
            "duration": "2h",
            "notional_usd": -1e9,
        },
        "start",
    ),
    "margin_change_announced": (
        {
            "type": "margin_change",
            "announced": "2026-01-04T22:00:00Z",
            "effective": "2026-01-05T22:00:00Z",
            "venue": "spot",
            "asset": "BTC",
            "initial_pct": 10,
            "maintenance_pct": 8,
        },
        "announced",
    ),
    "driver_until": (
        {"type": "driver", "asset": "BTC", "points": POINTS, "until": "2026-01-01"},
        "until",
    ),
}


@pytest.mark.parametrize("name", SHOCKS_BEFORE_THE_START)
def test_a_shock_dated_before_the_clock_start_is_a_scenario_error(name):
    shock, key = SHOCKS_BEFORE_THE_START[name]
    with pytest.raises(ScenarioError) as caught:
        build(base_raw(shocks=[shock]))
    assert (
        f"test.yaml: shocks.0.{key}: expected a time inside the clock window, found 2026-01-0"
        in str(caught.value)
    )


def test_a_margin_change_effective_after_the_end_is_a_scenario_error():
    shock = dict(SHOCKS_BEFORE_THE_START["margin_change_announced"][0])
    shock.update(announced="2026-01-05T22:00:00Z", effective="2026-01-08T22:00:00Z")
    with pytest.raises(ScenarioError, match=r"shocks\.0\.effective: expected a time inside"):
        build(base_raw(shocks=[shock]))


def test_a_driver_whose_observations_end_before_until_reaches_the_clock_is_an_error():
    late = [["2026-01-06T12:00:00Z", 90_000.0]]
    with pytest.raises(ScenarioError, match=r"shocks\.0: expected a driven window that overlaps"):
        build(
            base_raw(
                shocks=[
                    {
                        "type": "driver",
                        "asset": "BTC",
                        "points": late,
                        "until": "2026-01-06T06:00:00Z",
                    }
                ]
            )
        )
    build(
        base_raw(shocks=[{"type": "driver", "asset": "BTC", "points": late}])
    )  # drives from 12:00


def test_after_until_the_asset_is_free_and_keeps_the_last_driven_price():
    from deleverage import simulate

    raw = base_raw(
        market={"noise_scale": 0.0},
        shocks=[
            {"type": "driver", "asset": "BTC", "points": POINTS, "until": "2026-01-05T12:00:00Z"},
            {"type": "news", "time": "2026-01-05T18:00:00Z", "returns": {"BTC": -0.1}},
        ],
    )
    prices = simulate(build(raw), seed=0).prices()["BTC"]
    last_driven = 100_000.0 - 20_000.0 * (12 - 5 / 60) / 24  # the 11:55 step
    assert np.isclose(prices[pd.Timestamp("2026-01-05 17:00", tz="UTC")], last_driven)
    assert np.isclose(
        prices[pd.Timestamp("2026-01-05 18:05", tz="UTC")], last_driven * np.exp(-0.1)
    )
    assert np.isclose(prices.iloc[-1], last_driven * np.exp(-0.1))  # not pulled back to 80k

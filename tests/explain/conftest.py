"""A small crash to explain: BTC perps and stop losses, a news drop inside a market-maker
retreat; one day of 10-minute steps (a few hundredths of a second a run)."""

from __future__ import annotations

import pytest
from tests.conftest import RETAIL_PERPS, base_raw, build

PERPS = RETAIL_PERPS
STOPS = {
    "type": "stop_loss",
    "name": "stops",
    "asset": "BTC",
    "accounts": 20_000,
    "notional_usd": 1.5e9,
    "stop_distance": {"dist": "uniform", "low": 0.01, "high": 0.2},
}
DROP = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.06}, "label": "drop"}
RETREAT = {
    "type": "mm_retreat",
    "assets": ["BTC"],
    "start": "2026-01-05T11:00:00Z",
    "duration": "4h",
    "depth_multiplier": 0.3,
    "label": "desks pull back",
}
TARGET = {
    "metric": "worst_24h",
    "asset": "BTC",
    "value": -10.0,
    "unit": "%",
    "window": ["2026-01-05T06:00:00Z", "2026-01-06T06:00:00Z"],
}


def crash_raw(**changes) -> dict:
    clock = {"start": "2026-01-05T06:00:00Z", "end": "2026-01-06T06:00:00Z", "step": "10min"}
    raw = base_raw(
        clock=clock, populations=[PERPS, STOPS], shocks=[DROP, RETREAT], targets=[TARGET]
    )
    raw.update(changes)
    return raw


@pytest.fixture(scope="session")
def crash():
    return build(crash_raw())


@pytest.fixture(scope="session")
def quiet_crash():
    """The same crash without price noise: everything that moves comes from the shocks."""
    return build(crash_raw(market={"noise_scale": 0.0}))


@pytest.fixture(scope="session")
def explained(crash):
    """A stored-run-like explanation: seed 1, both games, exact."""
    from deleverage import simulate
    from deleverage.explain import explain

    run = simulate(crash, seed=1)
    return run, explain(run)


@pytest.fixture(scope="session")
def quiet_explained(quiet_crash):
    from deleverage.explain import explain

    return explain(quiet_crash, games=["shocks"])

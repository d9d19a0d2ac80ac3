"""Property (issue 8, must show 2): any value — finite, huge, tiny, zero, negative, NaN or
infinite — in any numeric field of a scenario either raises a `ScenarioError` that names the
field, or runs to finite outputs. Never a NaN result, never another exception."""

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError
from deleverage.scenario.loader import set_path, validate


def _rich_raw() -> dict:
    """Two hours of BTC with a perp book, resting stops, a news jump, a flow, a driver-free
    bond-free market and a target: small enough to run in well under a second."""
    raw = base_raw(
        clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-05T02:00:00Z", "step": "5min"},
        populations=[
            {
                "type": "perp_book",
                "name": "perps",
                "asset": "BTC",
                "accounts": 300,
                "open_interest_usd": 2e8,
                "long_share": 0.6,
                "leverage": {"dist": "lognormal", "median": 10, "sigma": 0.5},
                "wallet_buffer": {"dist": "uniform", "low": 0.0, "high": 1.0},
                "insurance_fund_usd": 1e6,
                "oi_rebuild_half_life": "6h",
            },
            {
                "type": "stop_loss",
                "name": "stops",
                "asset": "BTC",
                "accounts": 100,
                "notional_usd": 1e7,
                "stop_distance": {"dist": "uniform", "low": 0.01, "high": 0.05},
            },
        ],
        shocks=[
            {"type": "news", "time": "2026-01-05T00:30:00Z", "returns": {"BTC": -0.05}},
            {
                "type": "flow",
                "asset": "BTC",
                "start": "2026-01-05T01:00:00Z",
                "duration": "30min",
                "notional_usd": -5e7,
            },
        ],
        targets=[
            {
                "metric": "return",
                "asset": "BTC",
                "value": -5.0,
                "unit": "%",
                "window": ["2026-01-05T00:00:00Z", "2026-01-05T02:00:00Z"],
            }
        ],
    )
    raw["venues"][0]["margin_rules"] = "binance-like"
    raw["assets"][0]["liquidity"] = {"visible_depth": {"usd": 5e7}}
    # every field, defaults included, as the file would spell it
    return build(raw).model_dump(mode="json", by_alias=True)


BASE = _rich_raw()


def _numeric_paths(node, prefix="") -> list[str]:
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        is_number = isinstance(node, int | float) and not isinstance(node, bool)
        return [prefix] if is_number else []
    paths = []
    for key, value in items:
        paths += _numeric_paths(value, f"{prefix}.{key}" if prefix else str(key))
    return paths


PATHS = _numeric_paths(BASE)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0, 0.0, -0.0, -1, 1e-300, 1e308, float("nan"), float("inf"), -float("inf")]),
)


def test_the_rich_scenario_has_many_numeric_fields():
    assert len(PATHS) > 30  # the property below reaches every one of them


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=2))
def test_any_number_in_any_field_is_a_clear_error_or_a_finite_run(changes):
    import copy

    raw = copy.deepcopy(BASE)
    for path, value in changes:
        set_path(raw, path, value)
    try:
        scenario = validate(raw, "prop.yaml", Path("."))
    except ScenarioError as exc:
        assert exc.problems and all(str(p).startswith("prop.yaml") for p in exc.problems)
        assert "Traceback" not in str(exc)
        return
    result = simulate(scenario, seed=0)
    for name, values in result.market.items():
        assert np.all(np.isfinite(values[1:])), name
    assert np.all(result.market["price"] > 0)
    events = result.events
    assert np.all(np.isfinite(events[["quantity", "notional_usd"]].to_numpy()))
    assert np.isfinite(result.targets_table()["modelled"].to_numpy(float)).all()

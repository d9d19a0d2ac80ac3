"""The two legs of a carry fund's rate differential (constant or dated paths): mistakes are
one line each (file, key path, expected, found) and exit code 2 from the CLI."""

import pytest
from tests.conftest import base_raw
from typer.testing import CliRunner

from deleverage.cli.main import app

runner = CliRunner()

ASSETS = [
    {"id": "BTC", "class": "crypto", "tier": "peripheral", "venue": "spot", "price": 1e5,
     "daily_vol": 0.03, "adv_usd": 2e10},
    {"id": "USDJPY", "class": "fx", "tier": "core", "venue": "spot", "price": 155.0,
     "currency": "JPY", "daily_vol": 0.006, "adv_usd": 1e12},
    {"id": "JGB40Y", "class": "bond", "tier": "core", "venue": "spot", "price": 100.0,
     "daily_vol": 0.01, "adv_usd": 1e9, "duration_years": 22.0, "yield_pct": 3.5},
]  # fmt: skip
FUND = {
    "type": "carry_funds",
    "name": "carry",
    "funds": 10,
    "equity_usd": 1e9,
    "weights": {"BTC": 1.0},
    "leverage": {"dist": "fixed", "value": 3.0},
    "target_leverage": 3.0,
    "buffer_leverage": 4.0,
    "default_leverage": 10.0,
    "investment_rate": 3.625,
    "funding_rate": {"points": [["2026-01-01T00:00:00Z", 0.75], ["2026-01-05T03:00:00Z", 1.0]]},
    "carry_to_vol_threshold": {"dist": "fixed", "value": 0.1},
}


def _points(*values):
    times = ["2026-01-01T00:00:00Z", "2026-01-05T03:00:00Z", "2026-01-06T03:00:00Z"]
    return {"points": [[t, v] for t, v in zip(times, values, strict=False)]}


CASES = {
    "nan_in_a_path": (
        {"funding_rate": _points(0.75, float("nan"))},
        "populations.carry.funding_rate.points.1.1",
        "finite number, found nan",
    ),
    "infinite_in_a_path": (
        {"investment_rate": _points(3.6, 3.6, float("inf"))},
        "populations.carry.investment_rate.points.2.1",
        "finite number, found inf",
    ),
    "dates_out_of_order": (
        {
            "funding_rate": {
                "points": [["2026-01-05T00:00:00Z", 0.75], ["2026-01-04T00:00:00Z", 1.0]]
            }
        },
        "populations.carry.funding_rate",
        "increasing time order, found 2026-01-04 00:00 after 2026-01-05 00:00",
    ),
    "two_rates_at_one_time": (
        {
            "funding_rate": {
                "points": [["2026-01-01T00:00:00Z", 0.75], ["2026-01-01T00:00:00Z", 1.0]]
            }
        },
        "populations.carry.funding_rate",
        "one rate per time, found two at 2026-01-01 00:00",
    ),
    "below_minus_5_pct": (
        {"funding_rate": _points(0.75, -5.5)},
        "populations.carry.funding_rate.points.1.1",
        "greater than or equal to -5, found -5.5",
    ),
    "above_50_pct": (
        {"investment_rate": 51.0},
        "populations.carry.investment_rate",
        "less than or equal to 50, found 51.0",
    ),
    "a_word_for_a_rate": (
        {"funding_rate": "low"},
        "populations.carry.funding_rate",
        "valid number",
    ),
    "first_point_after_the_start": (
        {"funding_rate": {"points": [["2026-01-05T03:00:00Z", 1.0]]}},
        "populations.carry.funding_rate.points.0",
        "at or before clock.start",
    ),
    "empty_path": (
        {"funding_rate": {"points": []}},
        "populations.carry.funding_rate.points",
        "at least 1 item(s)",
    ),
    "beta_without_a_bond": (
        {"funding_beta": 0.5},
        "populations.carry",
        "funding_beta needs a rate_asset",
    ),
    "older_and_newer_key": (
        {"funding_pct": 0.95},
        "populations.carry",
        "give funding_rate or the older funding_pct, not both",
    ),
    "link_to_a_non_bond": (
        {"rate_asset": "BTC"},
        "populations.carry.rate_asset",
        "expected a bond",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_rate_leg_is_one_clear_line_and_exit_2(case, write_scenario):
    change, key_path, found = CASES[case]
    raw = base_raw(assets=ASSETS, populations=[FUND | change])
    path = write_scenario(raw, f"{case}.yaml")
    result = runner.invoke(app, ["run", str(path), "--no-store"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(f"{case}.yaml: {key_path}: " in line and found in line for line in lines), lines
    assert "Traceback" not in result.output


def test_the_same_fund_with_good_legs_runs(write_scenario):
    raw = base_raw(assets=ASSETS, populations=[FUND])
    result = runner.invoke(app, ["run", str(write_scenario(raw)), "--no-store"])
    assert result.exit_code == 0, result.output

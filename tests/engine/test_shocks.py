import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build

from deleverage import load_scenario, simulate
from deleverage.errors import ScenarioError
from deleverage.scenario.loader import scenario_hash

QUIET = {"noise_scale": 0.0}


def _price_at(result, when: str, asset: str = "BTC") -> float:
    return float(result.prices()[asset][pd.Timestamp(when, tz="UTC")])


def test_a_shock_between_steps_takes_effect_at_the_next_step_start():
    raw = base_raw(
        market=QUIET,
        shocks=[{"type": "news", "time": "2026-01-05T12:03:00Z", "returns": {"BTC": -0.1}}],
    )
    result = simulate(build(raw), seed=0)
    assert np.isclose(_price_at(result, "2026-01-05 12:05"), 100_000.0)  # 12:00 step knew nothing
    assert np.isclose(_price_at(result, "2026-01-05 12:10"), 100_000.0 * np.exp(-0.1))


def test_a_driver_file_is_followed_with_linear_interpolation(tmp_path):
    series = tmp_path / "btc.csv"
    series.write_text("date,close\n2026-01-05,100000\n2026-01-06,80000\n")
    raw = base_raw(
        market=QUIET,
        shocks=[{"type": "driver", "asset": "BTC", "file": str(series), "column": "close"}],
    )
    result = simulate(build(raw), seed=0)
    # the step starting at 12:00 sets the price recorded at 12:05
    assert np.isclose(_price_at(result, "2026-01-05 12:05"), 90_000.0)
    assert np.isclose(_price_at(result, "2026-01-06 18:05"), 80_000.0)  # held after the last point


def _bond_market(**changes) -> dict:
    raw = base_raw(market=QUIET, **changes)
    raw["assets"] = [
        {
            "id": "JGB40Y",
            "class": "bond",
            "tier": "core",
            "venue": "spot",
            "price": 100.0,
            "daily_vol": 0.007,
            "adv_usd": 2e9,
            "duration_years": 22.0,
            "yield_pct": 3.5,
        }
    ]
    return raw


def test_a_rate_shock_moves_a_bond_by_its_duration():
    raw = _bond_market(
        shocks=[
            {"type": "rate", "time": "2026-01-05T06:00:00Z", "asset": "JGB40Y", "change_bp": 18}
        ]
    )
    result = simulate(build(raw), seed=0)
    assert np.isclose(_price_at(result, "2026-01-05 06:05", "JGB40Y"), 100.0 * np.exp(-22 * 0.0018))


def test_a_yield_driver_replays_yields_through_duration():
    raw = _bond_market(
        shocks=[
            {
                "type": "driver",
                "asset": "JGB40Y",
                "kind": "yield",
                "interpolation": "step",
                "points": [["2026-01-05T00:00:00Z", 3.5], ["2026-01-05T12:00:00Z", 3.9]],
            }
        ]
    )
    result = simulate(build(raw), seed=0)
    assert np.isclose(_price_at(result, "2026-01-05 11:55", "JGB40Y"), 100.0)
    assert np.isclose(_price_at(result, "2026-01-05 12:05", "JGB40Y"), 100.0 * np.exp(-22 * 0.004))


def test_earnings_surprise_is_measured_against_the_whisper_and_amplified_by_crowding():
    raw = base_raw(
        market=QUIET,
        shocks=[
            {
                "type": "earnings",
                "time": "2026-01-05T12:00:00Z",
                "asset": "BTC",
                "actual": 9.8,
                "consensus": 9.37,
                "whisper": 10.0,
                "sensitivity": 2.0,
                "crowding": 0.5,
                "crowding_amplifier": 1.0,
            }
        ],
    )
    result = simulate(build(raw), seed=0)
    expected = 2.0 * (9.8 - 10.0) / 10.0 * (1 + 0.5)
    assert np.isclose(np.log(_price_at(result, "2026-01-05 12:05") / 100_000.0), expected)


def test_toml_and_yaml_describe_the_same_scenario(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "test"\n[clock]\nstart = "2026-01-05T00:00:00Z"\nend = "2026-01-07T00:00:00Z"\n'
        'step = "5min"\n[[venues]]\nid = "spot"\nkind = "crypto"\n[[assets]]\nid = "BTC"\n'
        'class = "crypto"\ntier = "peripheral"\nvenue = "spot"\nprice = 100000.0\n'
        "daily_vol = 0.03\nadv_usd = 2e10\n"
    )
    assert scenario_hash(load_scenario(toml)) == scenario_hash(build(base_raw()))


def test_uncertain_priors_are_drawn_per_seed():
    raw = base_raw(
        uncertain=[
            {
                "path": "assets.BTC.daily_vol",
                "prior": {"dist": "uniform", "low": 0.02, "high": 0.08},
            }
        ]
    )
    scenario = build(raw)
    vol = {seed: simulate(scenario, seed=seed).scenario.assets[0].daily_vol for seed in (1, 1, 2)}
    assert 0.02 <= vol[1] <= 0.08 and vol[1] != vol[2]
    assert simulate(scenario, seed=1).scenario.assets[0].daily_vol == vol[1]


def test_an_uncertain_prior_on_a_missing_key_is_an_error():
    raw = base_raw(
        uncertain=[{"path": "assets.BTC.daily_volume", "prior": {"dist": "fixed", "value": 1.0}}]
    )
    with pytest.raises(ScenarioError, match=r"uncertain\.0\.path"):
        build(raw)

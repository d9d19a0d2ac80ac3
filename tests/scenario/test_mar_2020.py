"""The `mar-2020` preset (issue 13): it loads, is listed, states its targets, its history
points are the shared data's closes, and it runs (a 30-hour slice in the default suite, the
whole path in the slow one)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import SHARED_DATA

from deleverage import list_presets, load_scenario, simulate
from deleverage.scenario.loader import resolve_path, validate

PRESET = "mar-2020"


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(PRESET)


def test_the_preset_is_listed_and_loads(scenario):
    assert PRESET in [preset.name for preset in list_presets()]
    assert scenario.name == PRESET
    assert {asset.id for asset in scenario.assets} == {"SPX", "UST10Y", "TY", "GOLD", "BTC"}


def test_outcomes_are_targets_only_and_every_input_states_a_source(scenario):
    # nothing observed after the start is replayed: no driver, every price is free
    assert not [shock for shock in scenario.shocks if shock.type == "driver"]
    assert all(shock.source for shock in scenario.shocks)
    assert all(prior.source for prior in scenario.uncertain)
    assert all(population.source for population in scenario.populations)
    targets = {(t.metric, t.asset, t.side) for t in scenario.targets}
    assert {
        ("return", "SPX", None),
        ("return", "BTC", None),
        ("low", "BTC", None),
        ("return", "UST10Y", None),
        ("return", "GOLD", None),
        ("liquidations", "BTC", "long"),
    } <= targets
    assert all(t.source for t in scenario.targets)


def _closes(file: str, column: str, hour: str, next_day: bool = False) -> pd.Series:
    frame = pd.read_csv(SHARED_DATA / file, parse_dates=["date"]).dropna(subset=[column])
    times = frame["date"] + pd.Timedelta(days=1 if next_day else 0) + pd.Timedelta(hour)
    return pd.Series(frame[column].to_numpy(), index=times.dt.tz_localize("UTC"))


@pytest.mark.parametrize(
    ("asset", "file", "column", "hour", "next_day"),
    [
        ("SPX", "sp500_ohlc_daily.csv", "close", "21:00:00", False),
        ("GOLD", "gold_futures_comex_yahoo_daily.csv", "close", "18:30:00", False),
        ("BTC", "btc_usd_daily_yahoo.csv", "close", "00:00:00", True),
    ],
)
def test_history_points_are_the_shared_data_closes(scenario, asset, file, column, hour, next_day):
    points = next(a for a in scenario.assets if a.id == asset).history.points
    closes = _closes(file, column, hour, next_day)
    times = pd.DatetimeIndex([time for time, _ in points])
    expected = closes.reindex(times).to_numpy()
    assert np.isfinite(expected).all()
    assert np.allclose([price for _, price in points], expected, rtol=1e-5)
    assert times[-1] <= pd.Timestamp(scenario.clock.start)


def test_treasury_history_is_the_h15_yield_through_the_duration(scenario):
    yields = _closes("us_treasury_yields_fred_daily.csv", "dgs10", "20:30:00")
    for asset_id in ("UST10Y", "TY"):
        asset = next(a for a in scenario.assets if a.id == asset_id)
        times = pd.DatetimeIndex([time for time, _ in asset.history.points])
        change = yields.reindex(times) - asset.yield_pct
        proxy = 100 * np.exp(-asset.duration_years * change / 100)
        assert np.allclose([price for _, price in asset.history.points], proxy, rtol=1e-5)
        assert asset.history.points[-1][1] == pytest.approx(100.0)


def _slice(start: datetime, end: datetime):
    """The preset on a shorter clock, with the targets that fit inside it."""
    path = resolve_path(PRESET)
    raw = yaml.safe_load(path.read_text())
    raw["clock"] = {"start": start, "end": end, "step": "5min"}

    def inside(*times) -> bool:
        return all(start <= time.replace(tzinfo=UTC) <= end for time in times)

    raw["targets"] = [t for t in raw["targets"] if inside(*t["window"])]
    raw["shocks"] = [
        s for s in raw["shocks"] if inside(s.get("time") or s.get("start") or s["announced"])
    ]
    # priors on shocks name them by index: the slice keeps the others
    raw["uncertain"] = [
        u
        for u in raw["uncertain"]
        if not any(p.startswith("shocks.") for p in u.get("paths", [u.get("path", "")]))
    ]
    return validate(raw, path.name, path.parent)


def test_a_slice_through_the_bitmex_outage_runs_and_freezes_btc():
    start = datetime(2020, 3, 12, tzinfo=UTC)
    scenario = _slice(start, datetime(2020, 3, 13, 6, tzinfo=UTC))
    result = simulate(scenario, seed=0)
    times = result.times
    btc = result.asset_ids.index("BTC")
    price = result.market["price"][:, btc]
    assert np.isfinite(result.market["price"]).all()
    # BitMEX down 02:16-02:40: from the step after 02:16 to 02:40 the price is frozen
    down = (times >= pd.Timestamp("2020-03-13T02:20Z")) & (
        times <= pd.Timestamp("2020-03-13T02:40Z")
    )
    assert down.sum() == 5
    assert np.ptp(price[down]) == 0.0
    first, last = np.flatnonzero(down)[[0, -1]]
    # noise moves the price before and after
    assert price[first - 1] != price[first] and price[last + 1] != price[last]
    events = result.events
    assert (events.kind == "outage").sum() == 1
    liquidated = events.kind.str.startswith("perp_") & events.kind.str.contains("liquidation")
    steps = np.flatnonzero(down)
    assert not events[liquidated & events.step.isin(steps)].shape[0]
    table = result.targets_table()
    assert len(table) == 2 and np.isfinite(table.modelled.to_numpy()).all()


@pytest.mark.slow
def test_one_full_path_computes_every_target(scenario):
    result = simulate(scenario, seed=0)
    table = result.targets_table()
    assert len(table) == len(scenario.targets)
    assert np.isfinite(table.modelled.to_numpy()).all()
    kinds = set(result.events.kind)
    assert {"outage", "variation_margin", "margin_effective"} <= kinds

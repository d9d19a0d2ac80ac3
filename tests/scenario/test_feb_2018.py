"""The feb-2018 preset (the 5 Feb 2018 short-volatility squeeze, issue 13): it is listed,
loads, runs one path cheaply with the invariants held, and its short-vol products reset
their leverage at every VIX-futures settlement, which moves the index they track."""

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from deleverage import load_scenario, simulate
from deleverage.cli.main import app
from deleverage.explain.games import channels_in_play
from deleverage.scenario import list_presets
from deleverage.scenario.schema import Channels


def test_feb_2018_is_listed_and_its_inputs_are_sourced():
    assert "feb-2018" in {p.name for p in list_presets()}
    assert "feb-2018" in CliRunner().invoke(app, ["scenarios"]).stdout
    scenario = load_scenario("feb-2018")
    (etps,) = [p for p in scenario.populations if p.type == "vol_etps"]
    assert {(p.name, p.leverage) for p in etps.products} == {
        ("XIV", -1), ("SVXY", -1), ("UVXY", 2), ("TVIX", 2)}  # fmt: skip
    assert [p.terminate_drop_pct for p in etps.products if p.name == "XIV"] == [80]
    assert all(p.source for p in etps.products) and all(s.source for s in scenario.shocks)
    assert all(t.source for t in scenario.targets)
    assert "vol_etp_rebalancing" in channels_in_play(scenario)


def test_one_path_runs_and_the_products_reset_at_each_settlement():
    scenario = load_scenario("feb-2018")
    result = simulate(scenario, seed=0, check_invariants=True)
    assert result.diagnostics["max_unit_drift"] < 1e-9
    assert result.diagnostics["max_cash_drift_ratio"] < 1e-9
    events = result.events
    closes = events[events.kind == "vol_etp_close"]
    close_times = pd.DatetimeIndex(result.times[closes.step.unique()]).tz_convert(
        "America/New_York"
    )
    # 1, 2, 5, 6, 7, 8, 9 Feb: the Friday close of a Sunday-opening week counts
    assert sorted({t.day for t in close_times}) == [1, 2, 5, 6, 7, 8, 9]
    assert {(t.hour, t.minute) for t in close_times} == {(16, 15)}  # struck after 16:10-16:15
    trades = events[events.kind == "vol_etp_rebalance"]
    assert set(trades.detail) == {"XIV", "SVXY", "UVXY", "TVIX"}
    # without the rebalancing the same draws give another VIX-futures path from the first close
    off = simulate(
        scenario.model_copy(update={"channels": Channels(vol_etp_rebalancing=False)}), seed=0
    )
    first = int(trades.step.min())
    on_prices, off_prices = result.prices().VIXF.to_numpy(), off.prices().VIXF.to_numpy()
    np.testing.assert_array_equal(on_prices[: first + 1], off_prices[: first + 1])
    assert not np.allclose(on_prices[first + 1 :], off_prices[first + 1 :])

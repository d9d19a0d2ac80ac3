"""A stored run comes back as the result object it was written from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate, simulate_paths
from deleverage.errors import UserError
from deleverage.results.store import Store, open_run

STOPS = {
    "type": "stop_loss",
    "name": "stops",
    "asset": "BTC",
    "accounts": 2_000,
    "notional_usd": 1.5e9,
    "stop_distance": {"dist": "uniform", "low": 0.01, "high": 0.2},
}
DROP = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.05}}
TARGET = {
    "metric": "worst_24h",
    "asset": "BTC",
    "value": -5.0,
    "unit": "%",
    "window": ["2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z"],
}
CLOCK = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T12:00:00Z", "step": "10min"}


def scenario():
    return build(base_raw(clock=CLOCK, populations=[STOPS], shocks=[DROP], targets=[TARGET]))


def test_a_one_path_run_comes_back_with_the_same_tables_arrays_and_events(tmp_path):
    run = simulate(scenario(), seed=3)
    with Store(tmp_path / "r.duckdb") as store:
        store.write(run)
    back = open_run(tmp_path / "r.duckdb", run.run_id)
    assert (back.run_id, back.seed, back.path, back.scenario_hash) == (
        run.run_id, run.seed, run.path, run.scenario_hash
    )  # fmt: skip
    assert back.scenario == run.scenario and back.times.equals(run.times)
    for name, values in run.market.items():
        assert np.array_equal(back.market[name], values, equal_nan=True), name
    assert np.array_equal(back.rounds, run.rounds) and run.rounds.max() > 1
    pd.testing.assert_frame_equal(back.events, run.events)
    pd.testing.assert_frame_equal(back.to_frame(), run.to_frame())
    assert back.summary() == run.summary()


def test_a_monte_carlo_run_comes_back_with_its_bands_and_amplification(tmp_path):
    mc = simulate_paths(scenario(), seed=1, paths=3)
    with Store(tmp_path / "r.duckdb") as store:
        store.write_paths(mc)
    back = open_run(tmp_path / "r.duckdb", mc.run_id)
    assert back.paths == 3 and len(back.path_amplification) == 3
    pd.testing.assert_frame_equal(back.to_frame(), mc.to_frame())
    pd.testing.assert_frame_equal(back.bands_table(), mc.bands_table())


def test_an_unknown_run_is_one_clear_error(tmp_path):
    run = simulate(scenario(), seed=0)
    with Store(tmp_path / "r.duckdb") as store:
        store.write(run)
    with pytest.raises(UserError, match=r"expected a stored run .* found 'nope'"):
        open_run(tmp_path / "r.duckdb", "nope")
    with pytest.raises(UserError, match="expected a results database"):
        open_run(tmp_path / "missing.duckdb", run.run_id)


def test_results_print_as_one_short_line():
    run = simulate(scenario(), seed=0)
    mc = simulate_paths(scenario(), seed=0, paths=2, amplification=False)
    for result in (run, mc):
        text = repr(result)
        assert "\n" not in text and len(text) < 160 and result.run_id in text
    assert "<table>" in run._repr_html_() and "<table>" in mc._repr_html_()


def test_target_windows_and_basis_are_stored_as_columns_and_load_back(tmp_path):
    run = simulate(scenario(), seed=0)
    mc = simulate_paths(scenario(), seed=0, paths=2, amplification=False)
    db = tmp_path / "r.duckdb"
    with Store(db) as store:
        store.write(run)
        store.write_paths(mc)
        stored = store.connection.execute(
            "SELECT run_id, metric, basis, window_start, window_end FROM metrics "
            "WHERE entity = 'targets' ORDER BY run_id, metric, basis"
        ).df()
        bands = store.connection.execute("SELECT target, window_start FROM bands").df()
    start, end = (pd.Timestamp(t).tz_localize(None) for t in TARGET["window"])
    assert (stored.window_start == start).all() and (stored.window_end == end).all()
    one = stored[stored.run_id == run.run_id]
    assert one[["metric", "basis"]].values.tolist() == [
        ["worst_24h BTC", "modelled"], ["worst_24h BTC", "observed"]
    ]  # fmt: skip
    assert bands.values.tolist() == [["worst_24h BTC", start]]
    for back in (open_run(db, run.run_id), open_run(db, mc.run_id)):
        table = back.targets_table() if back is not None and hasattr(back, "path") else None
        table = back.bands_table() if table is None else table
        assert table.window_start.tolist() == [pd.Timestamp(TARGET["window"][0])]
        assert table.window_end.tolist() == [pd.Timestamp(TARGET["window"][1])]


def test_a_file_from_before_windows_and_fund_leverage_still_opens(tmp_path):
    run = simulate(scenario(), seed=0)
    mc = simulate_paths(scenario(), seed=0, paths=2, amplification=False)
    db = tmp_path / "old.duckdb"
    with Store(db) as store:
        store.write(run)
        store.write_paths(mc)
        store.connection.execute("DROP TABLE fund_leverage")
        for column in ("window_start", "window_end"):
            store.connection.execute(f"ALTER TABLE path_targets DROP COLUMN {column}")
    back = open_run(db, run.run_id)
    assert back.fund_leverage == {} and back.summary() == run.summary()  # no fund population
    bands = open_run(db, mc.run_id).bands_table()
    assert bands.target.tolist() == ["worst_24h BTC"] and bands.window_start.isna().all()

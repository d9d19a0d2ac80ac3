import duckdb
import pandas as pd
import pytest
from tests.engine.test_montecarlo import scenario

from deleverage import simulate, simulate_paths
from deleverage.results.store import Store


def test_a_monte_carlo_run_is_stored_under_one_run_id_with_its_full_paths_on_request(tmp_path):
    mc = simulate_paths(scenario(), seed=4, paths=2, keep_paths=True)
    with Store(tmp_path / "r.duckdb") as store:
        run_id = store.write_paths(mc)
        listed = store.runs()
        con = store.connection
        row = con.execute("SELECT seed, path, paths, scenario_hash FROM runs").fetchone()
        bands = con.execute("SELECT * EXCLUDE (run_id) FROM bands").df()
        market = con.execute("SELECT path, price FROM path_market ORDER BY path, step").df()
        tidy = con.execute("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id]).fetchone()
    assert listed.run_id.tolist() == [run_id] and listed.paths.tolist() == [2]
    assert row == (4, None, 2, mc.scenario_hash)
    expected = mc.bands_table()
    for column in ("window_start", "window_end"):  # stored as naive UTC
        expected[column] = expected[column].dt.tz_localize(None)
    pd.testing.assert_frame_equal(
        bands.drop(columns="hit"), expected.drop(columns="hit"), check_dtype=False
    )
    assert bands.hit.isna().tolist() == expected.hit.isna().tolist()
    for path in (0, 1):
        prices = market[market.path == path].price.to_numpy()
        assert prices.tolist() == mc.path_results[path].market["price"][:, 0].tolist()
    assert tidy == (len(mc.to_frame()),)


def test_paths_streamed_into_an_interrupted_transaction_leave_nothing(tmp_path):
    db = tmp_path / "r.duckdb"
    with Store(db) as store:
        written = []

        def write_then_interrupt(path):
            if written:
                raise KeyboardInterrupt
            store.write_path("run", path)
            written.append(path.path)

        with pytest.raises(KeyboardInterrupt), store.transaction():
            simulate_paths(scenario(), paths=3, on_path=write_then_interrupt)
    assert written == [0]
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("runs", "path_market", "path_events", "bands"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_a_results_file_from_before_monte_carlo_still_lists_and_takes_runs(tmp_path):
    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, "
            "scenario_name VARCHAR, scenario_hash VARCHAR, seed BIGINT, path INTEGER, "
            "package_version VARCHAR, git_hash VARCHAR, n_steps INTEGER, step_seconds DOUBLE, "
            "wall_seconds DOUBLE, parameters JSON)"
        )
        con.execute("INSERT INTO runs (run_id, seed) VALUES ('old', 1)")
    with Store(db, read_only=True) as store:
        assert store.runs().paths.tolist() == [1]
    with Store(db) as store:
        store.write(simulate(scenario(), seed=0))
        assert store.runs().paths.tolist() == [1, 1]

import numpy as np
import pandas as pd
from tests.conftest import base_raw, build

from deleverage import load_scenario, simulate
from deleverage.results.store import Store


def _tables(result, tmp_path, name):
    with Store(tmp_path / f"{name}.duckdb") as store:
        store.write(result)
        con = store.connection
        return {
            table: con.execute(f"SELECT * EXCLUDE (run_id) FROM {table} ORDER BY ALL").df()
            for table in ("market", "events", "metrics")
        }


def test_same_scenario_and_seed_give_identical_tables(tmp_path, feb_2026_seed_0):
    first = _tables(feb_2026_seed_0, tmp_path, "a")
    second = _tables(simulate(load_scenario("feb-2026"), seed=0), tmp_path, "b")
    for table in first:
        pd.testing.assert_frame_equal(first[table], second[table])


def test_another_seed_gives_another_path(feb_2026_seed_0):
    a = feb_2026_seed_0.market["price"]
    b = simulate(load_scenario("feb-2026"), seed=1).market["price"]
    assert not np.allclose(a[1:], b[1:])


def test_adding_a_population_does_not_shift_the_other_draws():
    raw = base_raw()
    quiet_book = {
        "type": "stop_loss",
        "name": "far-stops",
        "asset": "BTC",
        "accounts": 100,
        "notional_usd": 1e6,
        "stop_distance": {"dist": "fixed", "value": 0.99},
    }
    alone = simulate(build(raw), seed=5).market["price"]
    with_book = simulate(build({**raw, "populations": [quiet_book]}), seed=5).market["price"]
    np.testing.assert_array_equal(alone, with_book)

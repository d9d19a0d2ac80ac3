"""Monte Carlo at scale (SPEC §9, §11): the same paths on one process, local workers and a
Dask cluster give bit-identical results, a path of a batch is the path run alone, and the
memory of a run does not grow with its number of paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate, simulate_paths
from deleverage.engine.montecarlo import (
    ALL_CHANNELS_OFF,
    LANE_CAP,
    MAX_LANES,
    amplification_measures,
    batches,
    lane_bytes,
    lanes_for,
    run_batch,
)
from deleverage.scenario import load_scenario

START = pd.Timestamp("2026-01-05T00:00:00Z")


def small(hours: int = 24, step: str = "5min", perp_accounts: int = 0):
    """`hours` of one asset with a crash halfway and a book of stop-losses (and perp
    accounts, when asked); three targets."""
    end, crash = START + pd.Timedelta(hours=hours), START + pd.Timedelta(hours=hours / 2)
    window = [(START + pd.Timedelta(hours=hours / 4)).isoformat(), end.isoformat()]
    raw = base_raw(
        clock={"start": START.isoformat(), "end": end.isoformat(), "step": step},
        shocks=[{"type": "news", "time": crash.isoformat(), "returns": {"BTC": -0.06}}],
        populations=[
            {
                "type": "stop_loss",
                "name": "stops",
                "asset": "BTC",
                "accounts": 100,
                "notional_usd": 4e9,
                "stop_distance": {"dist": "uniform", "low": 0.01, "high": 0.05},
            }
        ],
        uncertain=[
            {
                "path": "assets.BTC.daily_vol",
                "prior": {"dist": "uniform", "low": 0.02, "high": 0.05},
            }
        ],
        targets=[
            {"metric": "worst_24h", "asset": "BTC", "value": -9.0, "unit": "%", "window": window},
            {"metric": "low", "asset": "BTC", "value": 90_000.0, "unit": "USD"},
            {"metric": "mystery", "value": 1.0, "unit": "count"},
        ],
    )
    if perp_accounts:
        raw["populations"].append(
            {
                "type": "perp_book",
                "name": "perps",
                "asset": "BTC",
                "margin_rules": "binance-like",
                "accounts": perp_accounts,
                "open_interest_usd": 5e9,
                "long_share": 0.6,
                "leverage": {"dist": "lognormal", "median": 10.0, "sigma": 0.8},
            }
        )
    return build(raw)


def assert_same(a, b) -> None:
    pd.testing.assert_frame_equal(a.path_targets, b.path_targets)
    pd.testing.assert_frame_equal(a.path_amplification, b.path_amplification)
    pd.testing.assert_frame_equal(a.bands_table(), b.bands_table())
    assert a.diagnostics == b.diagnostics


def test_batches_cover_every_path_once_in_order():
    for paths in (1, 7, 64, 1000):
        for workers in (1, 2, 8):
            for lanes_per_path in (1, 2):
                parts = batches(paths, workers, lanes_per_path)
                assert [p for part in parts for p in part] == list(range(paths))
                assert max(len(part) for part in parts) * lanes_per_path <= MAX_LANES


def test_batches_are_sized_by_memory_within_the_cap():
    # more perp accounts a lane: fewer lanes a batch; more memory or fewer workers: more,
    # up to LANE_CAP; never none
    gib = 1 << 30
    books = [f"populations.{name}.accounts={n}" for name in ("btc-perps", "eth-perps")
             for n in (62_500,)]  # fmt: skip
    hundred_k = load_scenario("feb-2026", sets=books)
    ten_m = load_scenario("feb-2026", sets=[b.replace("62500", "5000000") for b in books])
    assert lane_bytes(ten_m) - lane_bytes(hundred_k) >= 9_800_000 * 140  # measured ≈ 140 B
    assert lanes_for(hundred_k, 2, memory=24 * gib) == LANE_CAP
    assert lanes_for(hundred_k, 2, memory=2 * gib) < lanes_for(hundred_k, 1, memory=2 * gib)
    assert lanes_for(ten_m, 2, memory=24 * gib) < LANE_CAP
    assert lanes_for(ten_m, 8, memory=gib) == 1
    for workers in (1, 2, 4):
        for memory in (gib, 4 * gib, 16 * gib, 64 * gib):
            for scenario in (hundred_k, ten_m):
                lanes = lanes_for(scenario, workers, memory)
                assert 1 <= lanes <= LANE_CAP
                # the batches at once fit in half the memory, unless one lane alone does not
                assert lanes == 1 or workers * lanes * lane_bytes(scenario) <= memory / 2
                parts = batches(1000, workers, 2, lanes)  # a path and its twin: 2 lanes
                assert max(len(part) for part in parts) * 2 <= max(lanes, 2)


def test_a_path_of_a_batch_is_the_path_run_alone():
    # a batch is one simulation of lanes: three paths and their channels-off twins
    scenario = small()
    measures = amplification_measures(scenario)
    batch = run_batch(scenario, 5, range(2, 5), measures=measures, keep=True)
    twin = scenario.model_copy(update={"channels": ALL_CHANNELS_OFF})
    for outcome in batch:
        alone = simulate(scenario, seed=5, path=outcome.path)
        for name, values in alone.market.items():
            np.testing.assert_array_equal(outcome.result.market[name], values)
        pd.testing.assert_frame_equal(outcome.result.events, alone.events)
        off = simulate(twin, seed=5, path=outcome.path)
        np.testing.assert_array_equal(outcome.moves_off_pct, [m.on(off) for m in measures])
        assert not np.array_equal(outcome.moves_pct, outcome.moves_off_pct)
    assert not np.array_equal(batch[0].result.market["price"], batch[1].result.market["price"])


def test_one_worker_two_workers_and_a_dask_cluster_give_identical_results():
    distributed = pytest.importorskip("distributed")
    scenario = small()
    one = simulate_paths(scenario, seed=3, paths=6, workers=1)
    two = simulate_paths(scenario, seed=3, paths=6, workers=2)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        dask = simulate_paths(
            scenario, seed=3, paths=6, scheduler=cluster.scheduler_address, keep_paths=True
        )
    assert_same(one, two)
    assert_same(one, dask)
    assert one.path_targets.modelled.nunique() > 3  # the paths really differ
    alone = simulate(scenario, seed=3, path=4)  # a path that ran in a later batch
    np.testing.assert_array_equal(dask.path_results[4].market["price"], alone.market["price"])


def test_an_unreachable_scheduler_is_one_clear_problem():
    pytest.importorskip("distributed")
    from deleverage.engine.montecarlo import scheduler_problem

    why = scheduler_problem("tcp://127.0.0.1:9", timeout=2.0)
    assert why is not None and why.startswith("expected a reachable Dask scheduler")


PEAK_RSS = """
import resource, sys
from tests.engine.test_scale import small
from deleverage import simulate_paths
scenario = small(hours=2, step="15min", perp_accounts=20_000)
simulate_paths(scenario, seed=0, paths=int(sys.argv[1]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(paths: int) -> int:
    """Peak resident memory of a fresh process that runs `paths` paths (KiB)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(paths)],
        env=env, cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(out.stdout.split()[-1])


def test_memory_of_a_run_is_flat_in_the_number_of_paths():
    # per-path summaries are a few numbers: 200 paths need no more than 20 (each path's
    # accounts, recorded arrays and events are freed once its summary is taken)
    twenty, two_hundred = peak_rss_kib(20), peak_rss_kib(200)
    assert two_hundred <= 1.2 * twenty, (twenty, two_hundred)


def test_run_scheduler_mistakes_are_one_clear_line_and_exit_2(tmp_path):
    pytest.importorskip("distributed")
    from typer.testing import CliRunner

    from deleverage.cli.main import app

    runner = CliRunner()
    db = str(tmp_path / "runs.duckdb")
    for args, expected in (
        (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler: expected together with --paths N"),
        (
            ["--paths", "2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"],
            "--workers: expected --workers or --scheduler, not both",
        ),
    ):
        result = runner.invoke(app, ["run", "feb-2026", "--db", db, *args])
        assert result.exit_code == 2, result.output
        assert expected in result.output and "Traceback" not in result.output
    assert not Path(db).exists()  # nothing written

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml
from tests.conftest import base_raw, default_sigint
from tests.engine.test_montecarlo import CRASH, STOPS, VOL_PRIOR, targets
from typer.testing import CliRunner

from deleverage.cli.main import app

runner = CliRunner()


@pytest.fixture
def small(write_scenario):
    raw = base_raw(shocks=CRASH, populations=[STOPS], uncertain=[VOL_PRIOR], targets=targets())
    return str(write_scenario(raw))


def test_paths_prints_the_band_table_and_stores_one_run(small, tmp_path):
    db = tmp_path / "r.duckdb"
    result = runner.invoke(app, ["run", small, "--paths", "3", "--workers", "2", "--db", str(db)])
    assert result.exit_code == 0, result.output
    for text in ("observed", "p10", "median", "p90", "|observed|", "low BTC", "amplification"):
        assert text in result.stdout
    assert "observed targets inside their 10–90% band" in result.stdout
    with duckdb.connect(str(db), read_only=True) as con:
        run_id, seed, paths, path = con.execute(
            "SELECT run_id, seed, paths, path FROM runs"
        ).fetchone()
        assert (seed, paths, path) == (0, 3, None) and run_id in result.stdout
        per_path = con.execute("SELECT count(*), count(DISTINCT path) FROM path_targets").fetchone()
        assert per_path == (9, 3)  # 3 targets × 3 paths
        assert con.execute("SELECT count(*) FROM bands").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM path_amplification").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM amplification").fetchone() == (1,)
        for full in ("market", "path_market", "path_events"):  # full paths only on request
            assert con.execute(f"SELECT count(*) FROM {full}").fetchone() == (0,)
    listed = runner.invoke(app, ["runs", "--db", str(db)])
    assert listed.exit_code == 0 and run_id in listed.stdout and "paths" in listed.stdout


def test_keep_paths_stores_every_full_path_under_the_run_id(small, tmp_path):
    db = tmp_path / "r.duckdb"
    args = ["run", small, "--paths", "2", "--keep-paths", "--no-amplification", "--db", str(db)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(db), read_only=True) as con:
        (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
        rows = con.execute(
            "SELECT path, count(*), min(run_id) FROM path_market GROUP BY path ORDER BY path"
        ).fetchall()
        assert [(p, r) for p, _, r in rows] == [(0, run_id), (1, run_id)]
        assert rows[0][1] == (576 + 1) * 1  # every step of the one asset
        assert con.execute("SELECT count(*) FROM path_amplification").fetchone() == (0,)
    assert "amplification" not in result.stdout


def test_json_bands_have_exactly_the_documented_keys(small):
    result = runner.invoke(app, ["run", small, "--paths", "2", "--no-store", "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["paths"] == 2 and payload["stored_in"] is None
    keys = {"target", "unit", "observed", "p10", "median", "p90", "hit", "band_width"}
    keys |= {"window_start", "window_end"}
    assert [set(band) for band in payload["bands"]] == [keys] * 3
    first = payload["bands"][0]
    assert (first["target"], first["window_start"], first["window_end"]) == (
        "worst_24h BTC", "2026-01-05T06:00:00.000Z", "2026-01-06T06:00:00.000Z"
    )  # fmt: skip
    assert payload["bands"][1]["window_start"] is None  # a target over the whole run
    hits = [band["hit"] for band in payload["bands"]]
    assert all(isinstance(h, bool) for h in hits[:2]) and hits[2] is None  # mystery: no band
    assert {"asset", "measure", "move_pct", "move_channels_off_pct", "amplification"} == set(
        payload["amplification"][0]
    )
    band_cells = [m for m in payload["metrics"] if m["entity"] == "targets"]
    assert {m["basis"] for m in band_cells} == {"observed", "modelled"}
    observed = [m for m in band_cells if m["basis"] == "observed"]
    assert [m["metric"] for m in observed] == ["worst_24h BTC", "low BTC", "mystery"]
    assert observed[0]["window_end"] == "2026-01-06T06:00:00.000Z"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--paths", "0"], "error: --paths: expected a whole number ≥ 1, found 0"),
        (
            ["--paths", "2", "--workers", "0"],
            "error: --workers: expected a whole number ≥ 1, found 0",
        ),
        (["--workers", "2"], "error: --workers: expected together with --paths N"),
        (["--no-amplification"], "error: --amplification: expected together with --paths N"),
        (
            ["--paths", "2", "--keep-paths"],
            "error: --keep-paths: expected a results store, found --no-store",
        ),
    ],
)
def test_bad_path_options_exit_2_with_one_clear_line(small, args, message):
    result = runner.invoke(app, ["run", small, "--no-store", *args])
    assert result.exit_code == 2
    assert result.stderr.strip() == message and result.stdout == ""


def test_interrupting_a_monte_carlo_run_stores_nothing(tmp_path):
    raw = base_raw(
        clock={"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "step": "1min"}
    )
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(raw))
    db = tmp_path / "r.duckdb"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deleverage",
            "run",
            str(path),
            "--paths",
            "4",
            "--workers",
            "2",
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    # interrupt once the run is under way (its worker pool exists), however loaded the
    # machine: an interrupt while Python still imports is not the command's to handle
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and len(children.read_text().split()) < 2:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    time.sleep(1.0)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the workers too
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert b"nothing was stored" in stderr and b"Traceback" not in stderr
    assert not db.exists()  # the store is opened only to commit a finished run

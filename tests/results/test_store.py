import os
import pty
import select
import signal
import subprocess
import sys
import time

import duckdb
import numpy as np
import pytest
import yaml
from tests.conftest import base_raw, build, default_sigint

from deleverage import simulate
from deleverage.results.store import Store


def test_a_stored_run_can_be_queried_and_exported(tmp_path):
    result = simulate(build(base_raw()), seed=3)
    with Store(tmp_path / "r.duckdb") as store:
        run_id = store.write(result)
        runs = store.runs()
        out = store.export("market", tmp_path / "market.parquet", run_id)
    assert runs.run_id.tolist() == [run_id]
    exported = duckdb.sql(f"SELECT * FROM '{out}' ORDER BY step, asset").df()
    assert len(exported) == (result.scenario.clock.n_steps + 1) * len(result.asset_ids)
    assert exported.price.to_numpy() == pytest.approx(result.market["price"].reshape(-1))
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        seed, hash_ = con.execute("SELECT seed, scenario_hash FROM runs").fetchone()
        metrics = con.execute("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id]).fetchone()[
            0
        ]
    assert (seed, hash_) == (3, result.scenario_hash)
    assert metrics == len(result.to_frame())


def test_a_failure_while_writing_leaves_no_partial_run(tmp_path):
    result = simulate(build(base_raw()), seed=3)
    store = Store(tmp_path / "r.duckdb")

    class FailsOnThirdTable:
        """The real connection, except that staging the third table is interrupted."""

        def __init__(self, connection):
            self.connection, self.staged = connection, 0

        def register(self, name, frame):
            self.staged += 1
            if self.staged == 3:  # runs and market are already inserted
                raise KeyboardInterrupt
            return self.connection.register(name, frame)

        def __getattr__(self, name):
            return getattr(self.connection, name)

    store.connection = FailsOnThirdTable(store.connection)
    with pytest.raises(KeyboardInterrupt):
        store.write(result)
    store.close()
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        for table in ("runs", "market", "events", "metrics"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_interrupting_a_run_leaves_no_partial_run(tmp_path, how):
    raw = base_raw(
        clock={"start": "2026-01-01T00:00:00Z", "end": "2026-06-01T00:00:00Z", "step": "1min"}
    )
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(raw))
    db = tmp_path / "r.duckdb"
    with Store(db) as store:  # one complete run already stored
        store.write(simulate(build(base_raw()), seed=0))
    # stderr on a terminal, so the progress bar shows once the run is under way: interrupt
    # then, however loaded the machine (an interrupt while Python still imports is not the
    # command's to handle)
    terminal, stderr_end = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "deleverage", "run", str(path), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=stderr_end,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"},
        preexec_fn=default_sigint,
    )
    os.close(stderr_end)
    seen = b""
    deadline = time.monotonic() + 120.0
    while b"steps" not in seen and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if select.select([terminal], [], [], 0.5)[0]:
            seen += os.read(terminal, 4096)
    assert b"steps" in seen, seen
    process.send_signal(how)
    process.communicate(timeout=60)
    while select.select([terminal], [], [], 0.1)[0]:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the command has exited and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(terminal)
    stderr = seen
    assert process.returncode != 0
    if how == signal.SIGINT:
        assert b"nothing was stored" in stderr
        assert b"Traceback" not in stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        assert con.execute("SELECT count(DISTINCT run_id) FROM market").fetchone()[0] == 1


def test_the_run_records_where_it_came_from(feb_2026_seed_0):
    result = feb_2026_seed_0
    assert len(result.scenario_hash) == 64
    assert result.package_version != ""


def test_targets_are_reported_next_to_their_modelled_values():
    raw = base_raw(
        market={"noise_scale": 0.0},
        shocks=[{"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.1}}],
        targets=[
            {"metric": "worst_24h", "asset": "BTC", "value": -9.0, "unit": "%"},
            {"metric": "mystery", "value": 1.0, "unit": "count"},
        ],
    )
    result = simulate(build(raw), seed=0)
    table = result.targets_table().set_index("target")
    assert table.loc["worst_24h BTC", "observed"] == -9.0
    assert np.isclose(table.loc["worst_24h BTC", "modelled"], (np.exp(-0.1) - 1) * 100)
    assert np.isnan(table.loc["mystery", "modelled"])  # not computed, and said so
    tidy = result.to_frame()
    assert set(tidy[tidy.entity == "targets"].basis) == {"observed", "modelled"}

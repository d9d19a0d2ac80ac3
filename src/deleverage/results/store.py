"""The results store: one embedded DuckDB file users can query with SQL.

A run is written in one transaction, so it becomes visible only when complete: an error,
Ctrl-C or a killed process leaves no partial run (DuckDB discards uncommitted work).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from deleverage.errors import Problem, UserError
from deleverage.results.result import SimulationResult

DEFAULT_DB = Path("deleverage.duckdb")
TABLES = ("runs", "market", "events", "metrics")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, scenario_name VARCHAR,
    scenario_hash VARCHAR, seed BIGINT, path INTEGER, package_version VARCHAR,
    git_hash VARCHAR, n_steps INTEGER, step_seconds DOUBLE, wall_seconds DOUBLE,
    parameters JSON);
CREATE TABLE IF NOT EXISTS market (
    run_id VARCHAR, step INTEGER, time TIMESTAMP, asset VARCHAR, price DOUBLE,
    reference DOUBLE, impact_log DOUBLE, depth_bid DOUBLE, depth_ask DOUBLE,
    realized_vol DOUBLE, volume_usd DOUBLE, net_flow_units DOUBLE, mm_inventory_units DOUBLE);
CREATE TABLE IF NOT EXISTS events (
    run_id VARCHAR, seq BIGINT, step INTEGER, time TIMESTAMP, round INTEGER, kind VARCHAR,
    population VARCHAR, venue VARCHAR, asset VARCHAR, side VARCHAR, count BIGINT, quantity DOUBLE,
    notional_usd DOUBLE, price DOUBLE, detail VARCHAR);
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, seed BIGINT, scenario VARCHAR, time TIMESTAMP, entity VARCHAR,
    metric VARCHAR, value DOUBLE, unit VARCHAR, basis VARCHAR);
"""


class Store:
    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False):
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise UserError(
                [Problem(str(self.path), "", "expected a results database, found no file")]
            )
        try:
            self.connection = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise UserError(
                [Problem(str(self.path), "", f"expected a DuckDB database: {exc}")]
            ) from exc
        if not read_only:
            self.connection.execute(SCHEMA)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, result: SimulationResult) -> str:
        """Store a complete run atomically; returns its run id."""
        scenario = result.scenario
        runs = pd.DataFrame(
            [
                {
                    "run_id": result.run_id,
                    "created_at": datetime.now(UTC).replace(tzinfo=None),
                    "scenario_name": scenario.name,
                    "scenario_hash": result.scenario_hash,
                    "seed": result.seed,
                    "path": result.path,
                    "package_version": result.package_version,
                    "git_hash": result.git_hash,
                    "n_steps": scenario.clock.n_steps,
                    "step_seconds": scenario.clock.step.total_seconds(),
                    "wall_seconds": result.wall_seconds,
                    "parameters": json.dumps(scenario.model_dump(mode="json", by_alias=True)),
                }
            ]
        )
        events = result.events.copy()
        events.insert(0, "run_id", result.run_id)
        step_times = result.times.tz_localize(None)
        events.insert(3, "time", step_times[events["step"].to_numpy() + 1] if len(events) else [])
        metrics = result.to_frame()
        metrics["time"] = pd.to_datetime(metrics["time"], utc=True).dt.tz_localize(None)
        frames = {
            "runs": runs,
            "market": result.market_frame(),
            "events": events,
            "metrics": metrics,
        }
        con = self.connection
        con.begin()
        try:
            for table, frame in frames.items():
                con.register("incoming", frame)
                columns = ", ".join(f'"{c}"' for c in frame.columns)
                con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
                con.unregister("incoming")
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return result.run_id

    def runs(self) -> pd.DataFrame:
        return self.connection.execute(
            "SELECT run_id, created_at, scenario_name, seed, substr(scenario_hash, 1, 12) AS hash,"
            " n_steps, round(wall_seconds, 2) AS wall_s FROM runs ORDER BY created_at"
        ).df()

    def has_run(self, run_id: str) -> bool:
        return bool(
            self.connection.execute(
                "SELECT count(*) FROM runs WHERE run_id = ?", [run_id]
            ).fetchone()[0]
        )

    def export(self, table: str, out: str | Path, run_id: str | None = None) -> Path:
        """Write a table (optionally one run) to Parquet."""
        if table not in TABLES:
            raise UserError(
                [
                    Problem(
                        "export", "table", f"expected one of {', '.join(TABLES)}, found {table!r}"
                    )
                ]
            )
        if run_id is not None and not self.has_run(run_id):
            raise UserError(
                [Problem(str(self.path), "run_id", f"expected a stored run, found {run_id!r}")]
            )
        out = Path(out)
        where = "WHERE run_id = $run" if run_id else ""
        target = out.as_posix().replace("'", "''")
        query = f"COPY (SELECT * FROM {table} {where}) TO '{target}' (FORMAT PARQUET)"
        self.connection.execute(query, {"run": run_id} if run_id else {})
        return out

"""The results store: one embedded DuckDB file users can query with SQL.

A run is written in one transaction, so it becomes visible only when complete: an error,
Ctrl-C or a killed process leaves no partial run (DuckDB discards uncommitted work).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from deleverage.errors import Problem, UserError
from deleverage.results.events import COLUMNS as EVENT_COLUMNS
from deleverage.results.montecarlo import MonteCarloResult
from deleverage.results.result import SimulationResult
from deleverage.scenario.schema import Scenario

DEFAULT_DB = Path("deleverage.duckdb")
TABLES = (
    "runs",
    "market",
    "events",
    "metrics",
    "path_targets",
    "path_amplification",
    "bands",
    "amplification",
    "path_market",
    "path_events",
    "explanations",
    "fund_leverage",
)

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
    metric VARCHAR, value DOUBLE, unit VARCHAR, basis VARCHAR, window_start TIMESTAMP,
    window_end TIMESTAMP);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS paths INTEGER DEFAULT 1;
ALTER TABLE events ADD COLUMN IF NOT EXISTS fee_usd DOUBLE DEFAULT 0;
CREATE TABLE IF NOT EXISTS path_targets (
    run_id VARCHAR, path INTEGER, target VARCHAR, window_start TIMESTAMP,
    window_end TIMESTAMP, observed DOUBLE, modelled DOUBLE, unit VARCHAR, time TIMESTAMP);
CREATE TABLE IF NOT EXISTS path_amplification (
    run_id VARCHAR, path INTEGER, asset VARCHAR, measure VARCHAR, move_pct DOUBLE,
    move_channels_off_pct DOUBLE, amplification DOUBLE);
CREATE TABLE IF NOT EXISTS bands (
    run_id VARCHAR, target VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP,
    unit VARCHAR, observed DOUBLE, p10 DOUBLE, median DOUBLE, p90 DOUBLE, hit BOOLEAN,
    band_width DOUBLE);
CREATE TABLE IF NOT EXISTS amplification (
    run_id VARCHAR, asset VARCHAR, measure VARCHAR, move_pct DOUBLE,
    move_channels_off_pct DOUBLE, amplification DOUBLE);
ALTER TABLE market ADD COLUMN IF NOT EXISTS rounds INTEGER;
-- a target's UTC window as columns (NULL: the whole run or no window) in files from before
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS window_start TIMESTAMP;
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS window_end TIMESTAMP;
ALTER TABLE path_targets ADD COLUMN IF NOT EXISTS window_start TIMESTAMP;
ALTER TABLE path_targets ADD COLUMN IF NOT EXISTS window_end TIMESTAMP;
ALTER TABLE bands ADD COLUMN IF NOT EXISTS window_start TIMESTAMP;
ALTER TABLE bands ADD COLUMN IF NOT EXISTS window_end TIMESTAMP;
-- Full Monte Carlo paths, only on request: the market and events columns plus the path.
CREATE TABLE IF NOT EXISTS path_market AS
    SELECT run_id, 0::INTEGER AS path, * EXCLUDE (run_id) FROM market LIMIT 0;
ALTER TABLE path_market ADD COLUMN IF NOT EXISTS rounds INTEGER;
CREATE TABLE IF NOT EXISTS path_events AS
    SELECT run_id, 0::INTEGER AS path, * EXCLUDE (run_id) FROM events LIMIT 0;
ALTER TABLE path_events ADD COLUMN IF NOT EXISTS fee_usd DOUBLE DEFAULT 0;
-- per step and fund population: gross exposure ÷ equity, pooled over the funds running
CREATE TABLE IF NOT EXISTS fund_leverage (
    run_id VARCHAR, step INTEGER, time TIMESTAMP, population VARCHAR, leverage DOUBLE);
-- `deleverage explain` of a stored run: its tidy table, under the explained run's id.
CREATE TABLE IF NOT EXISTS explanations (
    run_id VARCHAR, explain_id VARCHAR, created_at TIMESTAMP, seed BIGINT, scenario VARCHAR,
    time TIMESTAMP, entity VARCHAR, metric VARCHAR, value DOUBLE, unit VARCHAR,
    basis VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, game VARCHAR,
    player VARCHAR, venue VARCHAR, std_error DOUBLE);
"""


def _empty_file(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == 0


class Store:
    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False):
        self.path = Path(path)
        self._in_transaction = False
        if read_only and not self.path.exists():
            raise UserError(
                [Problem(str(self.path), "", "expected a results database, found no file")]
            )
        # an empty file holds no run: it is what a create that failed (a full disk) leaves
        # behind, and it must not break every later run
        fresh = not read_only and (not self.path.exists() or _empty_file(self.path))
        if fresh and self.path.exists():
            self.path.unlink()
        try:
            self.connection = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            if fresh and _empty_file(self.path):
                self.path.unlink()
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
        runs = _run_row(result, scenario, path=result.path, paths=1)
        frames = {
            "runs": runs,
            "market": result.market_frame(),
            "events": _events_frame(result),
            "metrics": _metrics_frame(result.to_frame()),
            "fund_leverage": result.leverage_frame(),
        }
        self._insert(frames)
        return result.run_id

    def write_paths(self, result: MonteCarloResult) -> str:
        """Store a Monte Carlo run atomically under one run id: the run (seed, hash of the
        scenario as given, paths), per-path targets and amplification, bands, medians, and
        the full paths (`path_market`, `path_events`) only if the result kept them."""
        run_id = result.run_id
        frames = {
            "runs": _run_row(result, result.scenario, path=None, paths=result.paths),
            "metrics": _metrics_frame(result.to_frame()),
            "path_targets": _with_run(result.path_targets, run_id),
            "path_amplification": _with_run(
                result.path_amplification.drop(columns=["time", "window_start"]), run_id
            ),
            "bands": _with_run(result.bands_table(), run_id),
            "amplification": _with_run(result.amplification_table(), run_id),
        }
        for table, columns in (
            ("path_targets", ["time", "window_start", "window_end"]),
            ("bands", ["window_start", "window_end"]),
        ):
            for column in columns:
                frames[table][column] = _naive_utc(frames[table][column])
        with self.transaction():
            for path in result.path_results or []:
                self.write_path(run_id, path)
            self._insert(frames)
        return run_id

    def write_path(self, run_id: str, path: SimulationResult) -> None:
        """Store one full Monte Carlo path (`path_market`, `path_events`) under `run_id`.
        Inside `transaction()` paths stream to the file as they finish and the run still
        appears all at once."""
        self._insert(
            {
                "path_market": _with_path(path.market_frame().assign(run_id=run_id), path.path),
                "path_events": _with_path(_events_frame(path).assign(run_id=run_id), path.path),
            }
        )

    @contextmanager
    def transaction(self):
        """Everything written inside commits together, or not at all (error, Ctrl-C)."""
        if self._in_transaction:
            yield
            return
        self.connection.begin()
        self._in_transaction = True
        try:
            yield
            self.connection.commit()
        except BaseException:
            self.connection.rollback()
            raise
        finally:
            self._in_transaction = False

    def _insert(self, frames: dict[str, pd.DataFrame]) -> None:
        """Insert every frame in one transaction: all or nothing."""
        con = self.connection
        with self.transaction():
            for table, frame in frames.items():
                con.register("incoming", frame)
                columns = ", ".join(f'"{c}"' for c in frame.columns)
                con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
                con.unregister("incoming")

    def write_explanation(self, result) -> str:
        """Store an `ExplainResult` of a stored run (its tidy table) under that run's id."""
        if result.explained_run is None or not self.has_run(result.explained_run):
            raise UserError(
                [Problem(str(self.path), "run_id", "expected the explanation of a stored run")]
            )
        frame = result.to_frame().rename(columns={"run_id": "explain_id"})
        frame.insert(0, "run_id", result.explained_run)
        frame.insert(2, "created_at", datetime.now(UTC).replace(tzinfo=None))
        for column in ("time", "window_start", "window_end"):
            frame[column] = _naive_utc(frame[column])
        self._insert({"explanations": frame})
        return result.explained_run

    def explanation(self, run_id: str) -> pd.DataFrame:
        """The latest stored explanation of `run_id` (tidy; empty if none)."""
        return self.connection.execute(
            "SELECT * EXCLUDE (run_id, created_at) RENAME (explain_id AS run_id) "
            "FROM explanations WHERE explain_id = (SELECT explain_id FROM explanations "
            "WHERE run_id = ? ORDER BY created_at DESC LIMIT 1)",
            [run_id],
        ).df()

    def open_run(self, run_id: str) -> SimulationResult | MonteCarloResult:
        """A stored run back as the result object it was written from: the same tables,
        summary, plot and report (Monte Carlo runs without their full paths)."""
        row = self.connection.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).df()
        if row.empty:
            raise UserError(
                [
                    Problem(
                        str(self.path),
                        "run_id",
                        f"expected a stored run (see `deleverage runs`), found {run_id!r}",
                    )
                ]
            )
        run = row.iloc[0]
        scenario = Scenario.model_validate(json.loads(run["parameters"]))
        metrics = self.connection.execute(
            "SELECT metric, value FROM metrics WHERE run_id = ? AND entity = 'diagnostics'",
            [run_id],
        ).fetchall()
        common = {
            "scenario": scenario,
            "seed": int(run["seed"]),
            "scenario_hash": run["scenario_hash"],
            "diagnostics": dict(metrics),
            "wall_seconds": float(run["wall_seconds"]),
            "run_id": run_id,
            "package_version": run["package_version"],
            "git_hash": run["git_hash"],
        }
        if pd.isna(run["path"]):
            return self._open_paths(run, common)
        market = self.connection.execute(
            "SELECT * FROM market WHERE run_id = ? ORDER BY step", [run_id]
        ).df()
        assets = scenario.asset_index()
        steps = market.step.to_numpy()
        columns = market.asset.map(assets).to_numpy()
        n_rows = int(steps.max()) + 1
        recorded = {}
        for name in [
            c for c in market.columns if c not in ("run_id", "step", "time", "asset", "rounds")
        ]:
            values = np.full((n_rows, len(assets)), np.nan)
            values[steps, columns] = market[name].to_numpy(float)
            recorded[name] = values
        times = pd.DatetimeIndex(market.time.drop_duplicates(), tz="UTC")
        rounds = market.drop_duplicates("step").rounds.fillna(0).to_numpy(np.int32)[1:]
        events = self.connection.execute(
            "SELECT * EXCLUDE (run_id, time) FROM events WHERE run_id = ? ORDER BY seq", [run_id]
        ).df()
        # columns in the event log's order, whatever order ALTERs gave the stored table
        events = events[["seq", *EVENT_COLUMNS]].astype(
            {"seq": "int64", "step": "int64", "round": "int64", "count": "int64"}
        )
        leverage = pd.DataFrame(columns=["step", "population", "leverage"])
        if self._columns("fund_leverage"):  # none in a file from before it was recorded
            leverage = self.connection.execute(
                "SELECT step, population, leverage FROM fund_leverage WHERE run_id = ?", [run_id]
            ).df()
        fund_leverage = {}
        stored = set(leverage.population)
        order = [p.name for p in scenario.populations if p.name in stored]  # as recorded
        for name in [*order, *sorted(stored - set(order))]:
            mine = leverage[leverage.population == name]
            fund_leverage[name] = np.full(n_rows, np.nan)
            fund_leverage[name][mine.step.to_numpy()] = mine.leverage.to_numpy(float)
        return SimulationResult(
            path=int(run["path"]),
            times=times,
            market=recorded,
            rounds=rounds,
            events=events,
            fund_leverage=fund_leverage,
            **common,
        )

    def _open_paths(self, run, common) -> MonteCarloResult:
        from deleverage.engine.montecarlo import amplification_measures

        run_id, scenario = common["run_id"], common["scenario"]
        windows = (
            "window_start, window_end"
            if "window_start" in self._columns("path_targets")
            else "NULL::TIMESTAMP AS window_start, NULL::TIMESTAMP AS window_end"  # an older file
        )
        path_targets = self.connection.execute(
            f"SELECT path, target, {windows}, observed, modelled, unit, time "
            "FROM path_targets WHERE run_id = ? ORDER BY path",
            [run_id],
        ).df()
        for column in ("window_start", "window_end", "time"):
            path_targets[column] = pd.to_datetime(path_targets[column]).dt.tz_localize("UTC")
        amplification = self.connection.execute(
            "SELECT path, asset, measure, move_pct, move_channels_off_pct, amplification "
            "FROM path_amplification WHERE run_id = ? ORDER BY path",
            [run_id],
        ).df()
        windows = {m.asset: m.window or (None, None) for m in amplification_measures(scenario)}
        amplification["time"] = amplification.asset.map(lambda a: windows[a][1])
        amplification["window_start"] = amplification.asset.map(lambda a: windows[a][0])
        return MonteCarloResult(
            paths=int(run["paths"]),
            path_targets=path_targets,
            path_amplification=amplification,
            **common,
        )

    def _columns(self, table: str) -> set[str]:
        """The columns of `table` in this file (empty: no such table)."""
        rows = self.connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
        return {row[0] for row in rows}

    def runs(self) -> pd.DataFrame:
        columns = {row[0] for row in self.connection.execute("DESCRIBE runs").fetchall()}
        paths = "paths" if "paths" in columns else "1 AS paths"  # a file from before Monte Carlo
        return self.connection.execute(
            "SELECT run_id, created_at, scenario_name, seed, substr(scenario_hash, 1, 12) AS hash,"
            f" {paths}, n_steps, round(wall_seconds, 2) AS wall_s FROM runs ORDER BY created_at"
        ).df()

    def has_run(self, run_id: str) -> bool:
        return bool(
            self.connection.execute(
                "SELECT count(*) FROM runs WHERE run_id = ?", [run_id]
            ).fetchall()[0][0]
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


def _run_row(result, scenario, path: int | None, paths: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run_id": result.run_id,
                "created_at": datetime.now(UTC).replace(tzinfo=None),
                "scenario_name": scenario.name,
                "scenario_hash": result.scenario_hash,
                "seed": result.seed,
                "path": path,
                "paths": paths,
                "package_version": result.package_version,
                "git_hash": result.git_hash,
                "n_steps": scenario.clock.n_steps,
                "step_seconds": scenario.clock.step.total_seconds(),
                "wall_seconds": result.wall_seconds,
                "parameters": json.dumps(scenario.model_dump(mode="json", by_alias=True)),
            }
        ]
    ).astype({"path": "Int64"})


def _naive_utc(times: pd.Series) -> pd.Series:
    return pd.to_datetime(times, utc=True).dt.tz_localize(None)


def _events_frame(result: SimulationResult) -> pd.DataFrame:
    events = result.events.copy()
    events.insert(0, "run_id", result.run_id)
    step_times = result.times.tz_localize(None)
    events.insert(3, "time", step_times[events["step"].to_numpy() + 1] if len(events) else [])
    return events


def _metrics_frame(tidy: pd.DataFrame) -> pd.DataFrame:
    for column in ("time", "window_start", "window_end"):
        tidy[column] = _naive_utc(tidy[column])
    return tidy


def _with_run(frame: pd.DataFrame, run_id: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "run_id", run_id)
    return frame


def _with_path(frame: pd.DataFrame, path: int) -> pd.DataFrame:
    frame.insert(1, "path", path)
    return frame


def open_run(db: str | Path, run_id: str) -> SimulationResult | MonteCarloResult:
    """Load run `run_id` from the results file `db` as a result object."""
    with Store(db, read_only=True) as store:
        return store.open_run(run_id)

"""Glue to analyse simulated runs with the same yardstick as market data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd

from deleverage.detect.assets import default_spec, spec_for_class
from deleverage.detect.errors import DataError
from deleverage.detect.loaders import Panel, load_panel
from deleverage.detect.result import Provenance

DEMO_SCENARIO, DEMO_SEED = "feb-2026", 0


def from_simulation(res, freq: str | None = None) -> tuple[Panel, Provenance]:
    """Panel and provenance from a simulation result (`res.prices()`, `res.scenario`)."""
    specs = {a.id: spec_for_class(a.id, a.asset_class) for a in res.scenario.assets}
    panel = load_panel([res.prices()], assets=specs, freq=freq)
    return panel, Provenance("modelled", res.run_id, res.seed, res.scenario.name)


def load_run(run_id: str, db: Path, freq: str | None = None) -> tuple[Panel, Provenance]:
    """Panel of one stored run: `market(run_id, time, asset, price)` in a DuckDB file."""
    if not db.is_file():
        raise DataError.one(str(db), "--db", "an existing results store", "no such file")
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        if "market" not in tables:
            raise DataError.one(
                str(db),
                "market",
                "a table 'market' of simulated prices",
                f"tables [{', '.join(sorted(tables))}]",
            )
        rows = con.execute(
            "SELECT time, asset, price FROM market WHERE run_id = ? ORDER BY time", [run_id]
        ).df()
        if rows.empty:
            known = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT run_id FROM market ORDER BY run_id LIMIT 5"
                ).fetchall()
            ]
            raise DataError.one(
                str(db),
                f"--run {run_id}",
                "a stored run id",
                f"none; runs include {', '.join(known) or 'nothing'}",
            )
        meta = (
            con.execute(
                "SELECT scenario_name, seed FROM runs WHERE run_id = ?", [run_id]
            ).fetchone()
            if "runs" in tables
            else None
        )
    try:
        wide = rows.pivot(index="time", columns="asset", values="price")
    except ValueError:
        raise DataError.one(
            str(db),
            f"--run {run_id}",
            "one price per asset and time",
            "duplicate (time, asset) rows",
        ) from None
    wide.index = pd.DatetimeIndex(wide.index).tz_localize("UTC")  # stored as naive UTC
    wide.columns = [str(c) for c in wide.columns]
    specs = {c: replace(default_spec(c), id=c, kind="price") for c in wide.columns}
    panel = load_panel([wide], assets=specs, freq=freq)
    scenario, seed = (meta[0], int(meta[1])) if meta else (None, None)
    return panel, Provenance("modelled", run_id, seed, scenario)


def demo_result():
    """One simulated path of the feb-2026 preset (no files, no network)."""
    from deleverage import load_scenario, simulate

    return simulate(load_scenario(DEMO_SCENARIO), seed=DEMO_SEED)

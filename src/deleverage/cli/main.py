"""The `deleverage` command line (SPEC §1)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from deleverage.cli import detect
from deleverage.cli.console import err, out
from deleverage.errors import Problem, UserError

app = typer.Typer(
    help="Simulate, detect and explain cross-asset liquidity crashes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


DbOption = Annotated[Path, typer.Option("--db", help="DuckDB results file.")]


def fail(exc: UserError) -> typer.Exit:
    for problem in exc.problems:
        err.print(f"[red]error:[/red] {escape(str(problem))}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


class DelayedProgress:
    """A progress bar that appears only once a run has lasted more than `delay` seconds."""

    def __init__(self, description: str, delay: float = 1.5):
        self.description, self.delay = description, delay
        self.started = time.perf_counter()
        self.bar: Progress | None = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.perf_counter() - self.started < self.delay or not err.is_terminal:
                return
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} steps"),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=total)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def run(
    scenario: Annotated[
        str, typer.Argument(help="Preset name (see `deleverage scenarios`) or a YAML/TOML file.")
    ],
    seed: Annotated[
        int, typer.Option(help="Random seed; same scenario + seed = same results.")
    ] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a key, e.g. --set assets.BTC.daily_vol=0.03 (repeatable)."
        ),
    ] = None,
    channels: Annotated[
        list[str] | None,
        typer.Option(
            "--channels",
            help="Switch feedback channels, e.g. --channels stop_loss=off,mm_retreat=off.",
        ),
    ] = None,
    db: DbOption = Path("deleverage.duckdb"),
    store: Annotated[bool, typer.Option(help="Write the run to the results store.")] = True,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    check_invariants: Annotated[
        bool, typer.Option(help="Check conservation of units and cash at every step.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Also write an offline HTML report here.")
    ] = None,
) -> None:
    """Simulate SCENARIO, print a per-asset summary and store the run."""
    from deleverage.engine.simulate import simulate
    from deleverage.results.store import Store
    from deleverage.scenario.loader import load_scenario

    if output_format not in ("table", "json"):
        raise fail(
            UserError([Problem("--format", "", f"expected table or json, found {output_format!r}")])
        )
    try:
        loaded = load_scenario(scenario, sets=set_ or [], channels=channels or [])
        # Open the store before simulating so a bad --db fails fast, not after the run.
        results_store = Store(db) if store else None
    except UserError as exc:
        raise fail(exc) from None
    progress = DelayedProgress(f"{loaded.name} seed {seed}")
    try:
        result = simulate(loaded, seed=seed, check_invariants=check_invariants, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        err.print("interrupted: nothing was stored")
        raise typer.Exit(130) from None
    finally:
        progress.close()
    if results_store is not None:
        with results_store:
            results_store.write(result)
    if report is not None:
        result.report(report)
    if output_format == "json":
        payload = {
            "run_id": result.run_id,
            "scenario": loaded.name,
            "seed": seed,
            "scenario_hash": result.scenario_hash,
            "stored_in": str(db) if store else None,
            "metrics": json.loads(result.to_frame().to_json(orient="records", date_format="iso")),
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    _print_summary(result, db if store else None)


def _print_summary(result, db: Path | None) -> None:
    table = Table(
        title=f"{result.scenario.name} — seed {result.seed} (modelled)", title_justify="left"
    )
    for name in (
        "asset",
        "start",
        "end",
        "low",
        "max DD %",
        "worst 1h %",
        "worst 24h %",
        "trough (UTC)",
    ):
        table.add_column(name, justify="left" if name in ("asset", "trough (UTC)") else "right")
    for asset_id, row in result.asset_table().iterrows():
        table.add_row(
            asset_id,
            f"{row['start']:.6g}",
            f"{row['end']:.6g}",
            f"{row['low']:.6g}",
            f"{row['max_drawdown']:.2f}",
            f"{row['worst_1h']:.2f}",
            f"{row['worst_24h']:.2f}",
            f"{row['trough_time']:%m-%d %H:%M}",
        )
    out.print(table)
    activity = result.activity_table().head(12)
    if len(activity):
        forced = Table(title="largest population flows (modelled)", title_justify="left")
        for name in ("population", "event", "accounts/funds", "notional USD"):
            forced.add_column(name, justify="left" if name in ("population", "event") else "right")
        for row in activity.itertuples(index=False):
            forced.add_row(
                row.population, row.event, f"{row.count:,.0f}", f"{row.notional_usd:,.0f}"
            )
        out.print(forced)
    targets = result.targets_table()
    if len(targets):
        versus = Table(title="targets: observed vs modelled", title_justify="left")
        for name in ("target", "observed", "modelled", "unit"):
            versus.add_column(name, justify="left" if name in ("target", "unit") else "right")
        for row in targets.itertuples(index=False):
            versus.add_row(row.target, f"{row.observed:,.4g}", f"{row.modelled:,.4g}", row.unit)
        out.print(versus)
    diagnostics = ", ".join(f"{k}={v:g}" for k, v in result.diagnostics.items())
    out.print(f"diagnostics: {diagnostics}", highlight=False)
    where = f" stored in {db}" if db else " (not stored)"
    out.print(
        f"run [bold]{result.run_id}[/bold]{where}; hash {result.scenario_hash[:12]}; "
        f"{result.scenario.clock.n_steps} steps in {result.wall_seconds:.2f} s",
        highlight=False,
    )


@app.command()
def scenarios() -> None:
    """List the scenario presets shipped with deleverage."""
    from deleverage.scenario.loader import list_presets

    table = Table("preset", "description")
    for preset in list_presets():
        table.add_row(preset.name, preset.description)
    out.print(table)


@app.command()
def runs(db: DbOption = Path("deleverage.duckdb")) -> None:
    """List the runs in the results store."""
    from deleverage.results.store import Store

    try:
        with Store(db, read_only=True) as store:
            frame = store.runs()
    except UserError as exc:
        raise fail(exc) from None
    table = Table(*frame.columns)
    for row in frame.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    out.print(table)


@app.command()
def export(
    table: Annotated[str, typer.Argument(help="runs, market, events or metrics.")],
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="Parquet file to write.")],
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    db: DbOption = Path("deleverage.duckdb"),
) -> None:
    """Export a results table (or one run of it) to Parquet."""
    from deleverage.results.store import Store

    try:
        with Store(db, read_only=True) as store:
            path = store.export(table, out_path, run_id)
    except UserError as exc:
        raise fail(exc) from None
    out.print(f"wrote {path}")


detect.register(app)

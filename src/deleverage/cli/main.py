"""The `deleverage` command line (SPEC §1)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from deleverage.cli import detect, explain, report, schema, stress
from deleverage.cli.console import err, out
from deleverage.errors import Problem, UserError
from deleverage.results.store import TABLES

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


@contextlib.contextmanager
def _interruptible(progress):
    """Ctrl-C ends the command with one line and exit 130; the progress bar always closes."""
    try:
        yield
    except KeyboardInterrupt:
        progress.close()
        err.print("interrupted: nothing was stored")
        raise typer.Exit(130) from None
    finally:
        progress.close()


class DelayedProgress:
    """A progress bar that appears only once a run has lasted more than `delay` seconds."""

    def __init__(self, description: str, delay: float = 1.5, unit: str = "steps"):
        self.description, self.delay, self.unit = description, delay, unit
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
                TextColumn(f"{{task.completed}}/{{task.total}} {self.unit}"),
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
    paths: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Monte Carlo: run paths 0…N−1 of the seed and report the 10/50/90% band of "
            "every target and the amplification per asset.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="W",
            help="Local processes for --paths (1: in this process); default: one per CPU, "
            "at most N. Results do not depend on it.",
            show_default=False,
        ),
    ] = None,
    amplification: Annotated[
        bool | None,
        typer.Option(
            "--amplification/--no-amplification",
            help="With --paths: also run every path with all channels off and report the "
            "amplification per asset (on by default; off skips those runs).",
            show_default=False,
        ),
    ] = None,
    keep_paths: Annotated[
        bool,
        typer.Option(
            "--keep-paths",
            help="With --paths: also store every full path (path_market, path_events).",
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="With --paths: run the paths on the Dask distributed cluster at ADDRESS "
            "(e.g. tcp://10.0.0.5:8786; needs the `distributed` extra) instead of local "
            "processes. Results do not depend on it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Simulate SCENARIO, print a per-asset summary and store the run.

    With --paths N: a Monte Carlo run of N paths, printed as bands over paths."""
    from deleverage.engine.simulate import simulate
    from deleverage.scenario.loader import load_scenario

    problems: list[Problem] = []
    if output_format not in ("table", "json"):
        problems.append(Problem("--format", "", f"expected table or json, found {output_format!r}"))
    for name, value in (("--paths", paths), ("--workers", workers)):
        if value is not None and value < 1:
            problems.append(Problem(name, "", f"expected a whole number ≥ 1, found {value}"))
    if keep_paths and not store:
        problems.append(Problem("--keep-paths", "", "expected a results store, found --no-store"))
    if paths is None:
        given = [
            name
            for name, value in (
                ("--workers", workers),
                ("--amplification", amplification),
                ("--keep-paths", keep_paths or None),
                ("--scheduler", scheduler),
            )
            if value is not None
        ]
        problems += [Problem(name, "", "expected together with --paths N") for name in given]
    if not 0 <= seed < 2**63:
        problems.append(
            Problem("--seed", "", f"expected a whole number in [0, 2^63), found {seed}")
        )
    # Every input is checked before the work: a bad --db, --report or scenario fails fast.
    if store:
        problems += results_db_problems(db)
    if report is not None:
        problems += output_path_problems(report, "--report", (".html", ".htm"))
    try:
        loaded = load_scenario(scenario, sets=set_ or [], channels=channels or [])
    except UserError as exc:
        problems += exc.problems
    if scheduler is not None and workers is not None:
        problems.append(Problem("--workers", "", "expected --workers or --scheduler, not both"))
    if scheduler is not None and paths is not None and not problems:
        from deleverage.engine.montecarlo import scheduler_problem

        if (why := scheduler_problem(scheduler)) is not None:
            problems.append(Problem("--scheduler", scheduler, why))
    if problems:
        raise fail(UserError(problems))
    if paths is not None:
        _run_paths(
            loaded,
            seed,
            paths=paths,
            workers=workers or min(paths, os.cpu_count() or 1),
            amplification=amplification is not False,
            keep_paths=keep_paths,
            check_invariants=check_invariants,
            db=db if store else None,
            output_format=output_format,
            report=report,
            scheduler=scheduler,
        )
        return
    progress = DelayedProgress(f"{loaded.name} seed {seed}")
    try:
        with _interruptible(progress):
            result = simulate(
                loaded, seed=seed, check_invariants=check_invariants, progress=progress
            )
    except UserError as exc:  # an `uncertain` draw beyond the checked support
        raise fail(exc) from None
    _require_invariants(result.diagnostics, check_invariants)
    if store:  # the store is open for writing only to commit the finished run
        _commit(db, lambda results_store: results_store.write(result), result.run_id)
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


def _run_paths(
    scenario,
    seed,
    *,
    paths,
    workers,
    amplification,
    keep_paths,
    check_invariants,
    db,
    output_format,
    report,
    scheduler=None,
) -> None:
    """`run --paths`: simulate the paths, store them in one transaction, print the bands.
    The store is open during the simulation only with --keep-paths (full paths stream into
    the open transaction instead of piling up in memory)."""
    from deleverage.engine.montecarlo import simulate_paths
    from deleverage.results.store import Store

    where = scheduler or f"{workers} worker{'s' * (workers > 1)}"
    progress = DelayedProgress(f"{scenario.name} seed {seed}, {where}", 0.0, "paths")
    progress(0, paths)
    run_id = uuid.uuid4().hex[:12]
    streaming = Store(db) if keep_paths else None
    nothing = contextlib.nullcontext()
    with _interruptible(progress):
        # One transaction for the whole run: an error or Ctrl-C leaves nothing in the store.
        with streaming or nothing, streaming.transaction() if streaming else nothing:
            result = simulate_paths(
                scenario,
                seed,
                paths=paths,
                workers=workers,
                amplification=amplification,
                check_invariants=check_invariants,
                progress=progress,
                on_path=partial(streaming.write_path, run_id) if streaming else None,
                run_id=run_id,
                scheduler=scheduler,
            )
            progress.close()
            _require_invariants(result.diagnostics, check_invariants)
            if streaming is not None:
                streaming.write_paths(result)
    if db is not None and streaming is None:
        _commit(db, lambda results_store: results_store.write_paths(result), run_id)
    if report is not None:
        result.report(report)
    if output_format == "json":
        bands = result.bands_table()
        payload = {
            "run_id": result.run_id,
            "scenario": scenario.name,
            "seed": seed,
            "paths": paths,
            "scenario_hash": result.scenario_hash,
            "stored_in": str(db) if db is not None else None,
            "targets_inside_band": int(result.value("run", "targets_inside_band"))
            if len(bands)
            else 0,
            "bands": _records(bands),
            "amplification": _records(result.amplification_table()),
            "metrics": _records(result.to_frame()),
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    _print_bands(result, db)


def _commit(db: Path, write, run_id: str) -> None:
    """Open the store, write in one transaction, close. Ctrl-C before the commit stores
    nothing; after it, the run is stored and its id is said so."""
    from deleverage.results.store import Store

    stored = False
    try:
        with Store(db) as results_store:
            write(results_store)
            stored = True
    except UserError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        where = f"run {run_id} is stored in {db}" if stored else "nothing was stored"
        err.print(f"interrupted: {where}")
        raise typer.Exit(130) from None


def results_db_problems(db: Path) -> list[Problem]:
    """A --db that can take a run: an existing deleverage results file (DuckDB, with our
    tables), or a new file in an existing folder. Checked without writing anything."""
    import duckdb

    if not db.exists():
        if not db.parent.is_dir():
            return [Problem("--db", str(db), "expected a file in an existing folder")]
        return []
    if not db.is_file():
        return [Problem("--db", str(db), "expected a DuckDB results file, found a folder")]
    try:
        with db.open("rb") as handle:
            header = handle.read(12)
    except OSError as exc:
        return [Problem("--db", str(db), f"expected a readable file: {exc.strerror}")]
    if not header:
        return []  # an empty file (a create that failed) becomes a new store
    if header[8:12] != b"DUCK":
        found = "another kind of file"
        return [Problem("--db", str(db), f"expected a DuckDB results database, found {found}")]
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        return [Problem("--db", str(db), f"expected a results database not in use: {first}")]
    if tables and "runs" not in tables:
        return [
            Problem(
                "--db",
                str(db),
                f"expected a deleverage results database, found other tables "
                f"({', '.join(sorted(tables)[:5])})",
            )
        ]
    return []


def output_path_problems(path: Path, option: str, suffixes: tuple[str, ...]) -> list[Problem]:
    """An output file the command can write once its work is done."""
    problems = []
    if path.suffix.lower() not in suffixes:
        expected = " or ".join(suffixes)
        problems.append(Problem(option, str(path), f"expected a {expected} file name"))
    if path.is_dir():
        problems.append(Problem(option, str(path), "expected a file name, found a folder"))
    elif not path.parent.is_dir():
        problems.append(Problem(option, str(path), "expected a file in an existing folder"))
    return problems


def _require_invariants(diagnostics: dict, checked: bool) -> None:
    """With --check-invariants, a broken conservation law ends the command with exit 1 and
    nothing stored: the numbers would not mean what they say."""
    from deleverage.engine.simulate import Invariants

    broken = Invariants.broken(diagnostics) if checked else None
    if broken is not None:
        err.print(f"[red]error:[/red] invariant broken, nothing stored: {broken}", highlight=False)
        raise typer.Exit(1)


def _records(frame) -> list[dict]:
    """Rows as JSON-ready dicts: NaN and <NA> become null, times ISO strings."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _print_bands(result, db: Path | None) -> None:
    from deleverage.results.montecarlo import format_value, hit_text
    from deleverage.results.result import window_text

    bands = result.bands_table()
    if len(bands):
        table = Table(
            title=f"{result.scenario.name} — seed {result.seed}, {result.paths} paths: "
            "observed vs modelled band",
            title_justify="left",
        )
        for name in ("target", "observed", "p10", "median", "p90", "hit", "width", "|observed|"):
            table.add_column(name, justify="left" if name == "target" else "right")
            if name == "target":
                table.add_column("window (UTC)")
        table.add_column("unit")
        for row in bands.itertuples(index=False):
            table.add_row(
                row.target,
                window_text(row.window_start, row.window_end),
                *(format_value(v) for v in (row.observed, row.p10, row.median, row.p90)),
                hit_text(row.hit),
                format_value(row.band_width),
                format_value(abs(row.observed)),
                row.unit,
            )
        out.print(table)
        out.print(result.hits_line(), highlight=False)
    amplification = result.amplification_table()
    if len(amplification):
        table = Table(
            title="amplification: all channels ÷ all channels off (medians over paths)",
            title_justify="left",
        )
        for name in ("asset", "amplification", "move %", "channels off %", "measured on"):
            table.add_column(name, justify="left" if name in ("asset", "measured on") else "right")
        for row in amplification.itertuples(index=False):
            table.add_row(
                row.asset,
                f"{row.amplification:.3g}",
                f"{row.move_pct:.2f}",
                f"{row.move_channels_off_pct:.2f}",
                row.measure,
            )
        out.print(table)
    diagnostics = ", ".join(f"{k}={v:g}" for k, v in result.diagnostics.items())
    out.print(f"diagnostics (all paths): {diagnostics}", highlight=False)
    where = f" stored in {db}" if db else " (not stored)"
    out.print(
        f"run [bold]{result.run_id}[/bold]{where}; hash {result.scenario_hash[:12]}; "
        f"{result.paths} paths on {result.workers} worker{'s' * (result.workers > 1)} "
        f"in {result.wall_seconds:.1f} s",
        highlight=False,
    )


def _print_summary(result, db: Path | None) -> None:
    from deleverage.results.result import window_text

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
        for name in ("target", "window (UTC)", "observed", "modelled", "unit"):
            versus.add_column(name, justify="right" if name in ("observed", "modelled") else "left")
        for row in targets.itertuples(index=False):
            window = window_text(row.window_start, row.window_end)
            modelled = "not modelled" if math.isnan(row.modelled) else f"{row.modelled:,.4g}"
            versus.add_row(row.target, window, f"{row.observed:,.4g}", modelled, row.unit)
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
    table: Annotated[str, typer.Argument(help=f"One of: {', '.join(TABLES)}.")],
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="Parquet file to write.")],
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    db: DbOption = Path("deleverage.duckdb"),
) -> None:
    """Export a results table (or one run of it) to Parquet."""
    from deleverage.results.store import Store

    problems = output_path_problems(out_path, "OUT", (".parquet", ".pq"))
    try:
        if problems:
            raise UserError(problems)
        with Store(db, read_only=True) as store:
            path = store.export(table, out_path, run_id)
    except UserError as exc:
        raise fail(exc) from None
    out.print(f"wrote {path}")


detect.register(app)
stress.register(app)
explain.register(app)
report.register(app)
schema.register(app)

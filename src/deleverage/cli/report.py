"""`deleverage report RUN`: one self-contained HTML file of a stored run (SPEC §1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deleverage.cli.console import out
from deleverage.errors import Problem, UserError

HELP = """Write a self-contained HTML report of stored run RUN (works offline: inline SVG
charts, no script, no network source).

One-path runs: prices with observed series overlaid (--observed), shock markers,
liquidations by venue and side, margin calls, market depth, fund leverage (gross exposure ÷
equity per fund population), the attribution waterfall when `deleverage explain RUN` was
stored, and the targets, assets, flows, fund leverage, shocks and diagnostics tables.
Monte Carlo runs: the bands chart and tables. --png DIR also writes each chart as a PNG
file (DIR/NAME.png, NAME as in the page: prices, liquidations, depth, leverage, …)."""

TIME_COLUMNS = ("time", "date", "datetime", "datetime_utc", "timestamp")


def read_observed(spec: str):
    """ASSET=FILE[#COLUMN] → (asset, price series): a CSV or Parquet file with a time
    column (time, date, datetime, datetime_utc or timestamp; UTC) and the price in COLUMN
    (default close)."""
    import pandas as pd

    asset, sep, rest = spec.partition("=")
    if not sep or not asset or not rest:
        raise UserError(
            [Problem("--observed", "", f"expected ASSET=FILE[#COLUMN], found {spec!r}")]
        )
    file, _, column = rest.partition("#")
    path, column = Path(file), column or "close"
    if not path.is_file():
        raise UserError([Problem(str(path), "", "expected a CSV or Parquet file, found none")])
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise UserError([Problem(str(path), "", f"expected a CSV or Parquet file: {exc}")]) from exc
    times = [c for c in frame.columns if str(c).lower() in TIME_COLUMNS]
    problems = []
    if not times:
        problems.append(
            Problem(str(path), "columns", f"expected one of {', '.join(TIME_COLUMNS)}, found "
                    f"{', '.join(map(str, frame.columns))}")
        )  # fmt: skip
    if column not in frame.columns:
        problems.append(
            Problem(str(path), "columns", f"expected {column!r} (choose with #COLUMN), found "
                    f"{', '.join(map(str, frame.columns))}")
        )  # fmt: skip
    if problems:
        raise UserError(problems)
    index = pd.to_datetime(frame[times[0]], utc=True, errors="coerce")
    values = pd.to_numeric(frame[column], errors="coerce")
    series = pd.Series(values.to_numpy(), index=index).dropna()
    series = series[series.index.notna()].sort_index()
    if series.empty:
        raise UserError([Problem(str(path), column, "expected numbers with times, found none")])
    return asset, series


def report_command(
    run: Annotated[str, typer.Argument(help="A stored run id (see `deleverage runs`).")],
    db: Annotated[Path, typer.Option("--db", help="DuckDB results file.")] = Path(
        "deleverage.duckdb"
    ),
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default report-RUN.html)."),
    ] = None,
    observed: Annotated[
        list[str] | None,
        typer.Option(
            "--observed",
            metavar="ASSET=FILE[#COLUMN]",
            help="Observed prices to overlay, e.g. SILVER=silver.csv#close (repeatable).",
        ),
    ] = None,
    png: Annotated[
        Path | None, typer.Option("--png", metavar="DIR", help="Also write each chart as PNG.")
    ] = None,
) -> None:
    from deleverage.cli.main import fail
    from deleverage.results.montecarlo import MonteCarloResult
    from deleverage.results.store import Store

    try:
        series = dict(read_observed(spec) for spec in observed or [])
        with Store(db, read_only=True) as store:
            result = store.open_run(run)
            explanation = store.explanation(run)
        if isinstance(result, MonteCarloResult):
            if series:
                raise UserError(
                    [Problem("--observed", "", "expected a one-path run, found a Monte Carlo run")]
                )
        else:
            unknown = sorted(set(series) - set(result.asset_ids))
            if unknown:
                raise UserError(
                    [
                        Problem("--observed", "", f"expected an asset of the run "
                                f"({', '.join(result.asset_ids)}), found {name!r}")
                        for name in unknown
                    ]
                )  # fmt: skip
        if png is not None and (png.exists() and not png.is_dir()):
            raise UserError([Problem("--png", str(png), "expected a folder, found a file")])
        if png is not None and not png.exists() and not png.parent.is_dir():
            raise UserError([Problem("--png", str(png), "expected a folder in an existing folder")])
    except UserError as exc:
        raise fail(exc) from None
    target = out_path or Path(f"report-{run}.html")
    if isinstance(result, MonteCarloResult):
        result.report(target, png_dir=png)
    else:
        result.report(target, observed=series, explanation=explanation, png_dir=png)
    out.print(f"wrote {target}", highlight=False)
    if png is not None:
        charts = target.read_text(encoding="utf-8").count("<figure ")
        out.print(f"wrote {charts} PNG files (one per chart) to {png}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report", help=HELP)(report_command)

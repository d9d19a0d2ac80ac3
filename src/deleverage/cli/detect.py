"""`deleverage detect`: forensics on market data files or on a simulated run (SPEC §7)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from deleverage.cli.console import out as console

FORMATS = ("table", "json", "html")
DEFAULT_HTML = Path("detect-report.html")
HELP = (
    "How stressed were markets, when did liquidity vanish, who led, and which story fits. "
    "Computes a CISS-style stress index, turbulence, a yes/no stress alarm, absorption "
    "ratio, co-crash flags (every group with a member in its own tail within one bar), "
    "Diebold–Yilmaz spillovers, lead–lag, a carry-unwind indicator and stylized facts, then "
    "scores rival explanations over the window, or says there is no crash in it. Several "
    "sources of one asset are merged (most observations first). Nothing looks ahead. Bad "
    "input: one line per problem on stderr and exit code 2."
)


def _fail(lines: list[str]) -> typer.Exit:
    """Print one line per problem to stderr and return the exit (code 2) to raise."""
    for line in lines:
        sys.stderr.write(f"error: {line}\n")
    return typer.Exit(2)


def detect_command(
    files: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FILE...",
            help="Price files: CSV, Parquet or DB.duckdb:TABLE, wide (one column per asset) "
            "or long (time, asset, value). Append #KEY,KEY to keep only those columns or "
            "asset keys, e.g. jgb_yields_mof_daily.csv#jgb_10y.",
            show_default=False,
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            help="Analysis window in UTC: START:END with dates, e.g. 2026-01-15:2026-02-10 "
            "(END covers its whole day), or START/END with times, e.g. "
            "2026-02-05T00:00/2026-02-06T12:00. Default: 25 bars before to 5 after the peak "
            "of the stress index (5 days before, 1 after on intraday data)."
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (terminal summary), json (summary, evidence and "
            "every per-bar value in the window) or html (offline page).",
        ),
    ] = "table",
    out: Annotated[
        Path | None,
        typer.Option(
            help=f"Write the output here instead of the terminal (html defaults to "
            f"{DEFAULT_HTML}); a missing folder is created."
        ),
    ] = None,
    asset: Annotated[
        list[str] | None,
        typer.Option(
            help="Say what a column, asset key or file name is: "
            "KEY=ID[:GROUP[:MARKET[:KIND[:CLOSE_UTC]]]]. GROUP: safe_haven, tech, speculative "
            "or none; MARKET: equity, metals, crypto, fx_carry, rates or none; KIND: price or "
            "yield (% p.a.); CLOSE_UTC: hour of the daily close. Repeatable. Recognised names "
            "(btc, gold, silver, nasdaq100, sox, usdjpy, dxy, jgb_10y, dgs10, ...) need none."
        ),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            help="Time zone of timestamps that carry none, e.g. America/New_York (default UTC)."
        ),
    ] = None,
    freq: Annotated[
        str | None,
        typer.Option(
            help="Bar length for intraday data, e.g. 1h or 15min (default: the "
            "coarsest input spacing, at least 1h)."
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(help="Analyse a simulated run from the results store instead of files."),
    ] = None,
    db: Annotated[
        Path, typer.Option(help="DuckDB results store read by --run (opened read-only).")
    ] = Path("deleverage.duckdb"),
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Analyse one simulated path of the feb-2026 preset: no files, no network.",
        ),
    ] = False,
) -> None:
    """Run `deleverage detect` (see HELP)."""
    from deleverage.detect import DataError, detect
    from deleverage.detect.simulated import demo_result, load_run

    modes = [
        name
        for name, on in (("FILE...", bool(files)), ("--run", run is not None), ("--demo", demo))
        if on
    ]
    problems = []
    if len(modes) != 1:
        found = "none" if not modes else " and ".join(modes)
        problems.append(
            f"input: expected exactly one of FILE..., --run RUN_ID or --demo; found {found}"
        )
    if output_format not in FORMATS:
        problems.append(f"--format: expected one of {', '.join(FORMATS)}; found {output_format!r}")
    mapping = {}
    for item in asset or []:
        key, sep, spec = item.partition("=")
        if not sep or not key.strip() or not spec.strip():
            problems.append(
                f"--asset: {item}: expected KEY=ID[:GROUP[:MARKET[:KIND]]]; "
                f"found no '=' or an empty side"
            )
        else:
            mapping[key.strip()] = spec.strip()
    target = out or (DEFAULT_HTML if output_format == "html" else None)
    if target is not None:
        blocker = next((p for p in Path(target).parents if p.exists() and not p.is_dir()), None)
        if blocker is not None or Path(target).is_dir():
            found = f"{blocker} is a file" if blocker else f"{target} is a folder"
            problems.append(f"--out: {target}: expected a file path in a folder; found {found}")
    if problems:
        raise _fail(problems)
    try:
        if demo:
            result = detect(demo_result(), window, freq=freq)
        elif run is not None:
            panel, provenance = load_run(run, db, freq)
            result = detect(panel, window, provenance=provenance)
        else:
            result = detect(files, window, assets=mapping, tz=tz, freq=freq)
    except DataError as exc:
        raise _fail([str(p) for p in exc.problems]) from None
    if target is not None:
        Path(target).parent.mkdir(parents=True, exist_ok=True)  # a new folder is made
    if output_format == "html":
        path = result.report(target)
        console.print(f"wrote {path} ({result.label} data)", highlight=False)
    elif output_format == "json":
        text = result.to_json()
        if out:
            out.write_text(text + "\n", encoding="utf-8")
        else:
            sys.stdout.write(text + "\n")
    elif out:
        out.write_text(result.summary(), encoding="utf-8")
    else:
        result.render(console)


def fetch_command(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE:SYMBOL...",
            help="fred:SERIES (e.g. fred:DEXJPUS), yahoo:SYMBOL (e.g. yahoo:SI=F) or "
            "ccxt:EXCHANGE:MARKET (e.g. ccxt:binance:BTC/USDT). Yahoo and ccxt need "
            'pip install "deleverage\\[adapters]".',
        ),
    ],
    out: Annotated[Path, typer.Option(help="CSV or Parquet file to write (wide, by date).")],
) -> None:
    """Download public daily series (needs network) into one file `detect` reads."""
    from deleverage.detect import DataError
    from deleverage.detect.adapters import fetch_panel

    try:
        frame = fetch_panel(sources)
    except DataError as exc:
        raise _fail([str(p) for p in exc.problems]) from None
    except OSError as exc:  # no network, DNS, HTTP errors
        raise _fail([f"fetch: expected to reach the data source, found {exc}"]) from None
    partial = out.with_name(out.name + ".partial")  # nothing half-written under `out`
    if out.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(partial)
    else:
        frame.to_csv(partial)
    partial.replace(out)
    console.print(f"wrote {out}: {frame.shape[1]} series, {len(frame)} dates (observed)")


def register(app: typer.Typer) -> None:
    """Add the `detect` and `fetch` commands to the main `deleverage` app."""
    app.command("detect", help=HELP)(detect_command)
    app.command("fetch")(fetch_command)

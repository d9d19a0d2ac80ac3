"""`deleverage stress PORTFOLIO --scenario S`: would my book have survived? (SPEC §8)"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from deleverage.cli.console import out

HELP = (
    "Stress a portfolio file (positions, cash, loans, margin terms, stops, response to a "
    "call) inside a scenario's market: the book is one more account with the same margin "
    "and liquidation rules as everyone else, so its own forced selling moves prices. Prints, "
    "over paths, the P&L distribution, the probability and time of the first margin call and "
    "of liquidation, the worst drawdown, the extra cash that survives 95% of paths and the "
    "order in which to cut positions, with the static answer (same path, no own impact) "
    "beside the endogenous one. Bad input: one line per problem and exit code 2."
)


def stress_command(
    portfolio: Annotated[
        Path, typer.Argument(help="Portfolio file (YAML or TOML), see docs/stress.md.")
    ],
    scenario: Annotated[
        str, typer.Option(help="Preset name (see `deleverage scenarios`) or a scenario file.")
    ] = "feb-2026",
    paths: Annotated[int, typer.Option(metavar="N", help="Monte Carlo paths 0…N−1.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed; same inputs + seed = same results.")] = 0,
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="W",
            help="Local processes (default: one per CPU, at most N).",
            show_default=False,
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a scenario key, e.g. --set assets.BTC.daily_vol=0.03."
        ),
    ] = None,
    channels: Annotated[
        list[str] | None,
        typer.Option(help="Switch feedback channels, e.g. --channels stop_loss=off."),
    ] = None,
    find_breaking_shock: Annotated[
        str | None,
        typer.Option(
            "--find-breaking-shock",
            metavar="SHOCK",
            help="Reverse stress: the smallest scale of the shock with this label or type "
            "(or 'all' shocks) that liquidates the book in ≥ 50% of paths, with its interval.",
            show_default=False,
        ),
    ] = None,
    scale: Annotated[
        float,
        typer.Option(help="Stress the book this many times larger (positions, cash, loans)."),
    ] = 1.0,
    max_scale: Annotated[float, typer.Option(help="Reverse stress: largest scale tried.")] = 4.0,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    report: Annotated[Path | None, typer.Option(help="Also write an offline HTML report.")] = None,
) -> None:
    from deleverage.cli.main import DelayedProgress, _interruptible, fail
    from deleverage.errors import Problem, UserError
    from deleverage.scenario.loader import load_scenario
    from deleverage.stress import find_breaking_shock as search
    from deleverage.stress import load_portfolio, scale_shocks, stress, validate_portfolio

    problems = []
    if output_format not in ("table", "json"):
        problems.append(Problem("--format", "", f"expected table or json, found {output_format!r}"))
    for name, value in (("--paths", paths), ("--workers", workers)):
        if value is not None and value < 1:
            problems.append(Problem(name, "", f"expected a whole number ≥ 1, found {value}"))
    if not scale > 0:
        problems.append(Problem("--scale", "", f"expected a number > 0, found {scale}"))
    if not max_scale > 0:
        problems.append(Problem("--max-scale", "", f"expected a number > 0, found {max_scale}"))
    if problems:
        raise fail(UserError(problems))
    shock = None if find_breaking_shock in (None, "all") else find_breaking_shock
    try:
        loaded = load_scenario(scenario, sets=set_ or [], channels=channels or [])
        book = load_portfolio(portfolio, loaded)
        if scale != 1.0:  # checked again at its size: leverage limits depend on notional
            book = validate_portfolio(book.scaled(scale).model_dump(), portfolio.name, loaded)
        if find_breaking_shock is not None:
            scale_shocks(loaded, 1.0, shock)
    except UserError as exc:
        raise fail(exc) from None
    workers = workers or min(paths, os.cpu_count() or 1)
    progress = DelayedProgress(f"{book.name} in {loaded.name}", unit="paths")
    with _interruptible(progress):
        result = stress(book, loaded, paths=paths, seed=seed, workers=workers, progress=progress)
    if find_breaking_shock is not None:
        progress = DelayedProgress(f"breaking {find_breaking_shock}", unit="paths")
        with _interruptible(progress):
            result.breaking = search(
                book, loaded, shock=shock, paths=paths, seed=seed, max_scale=max_scale,
                workers=workers, progress=progress,
            )  # fmt: skip
    if report is not None:
        result.report(report)
    if output_format == "json":
        payload = {
            "run_id": result.run_id,
            "portfolio": book.name,
            "scenario": loaded.name,
            "seed": seed,
            "paths": paths,
            "scenario_hash": result.scenario_hash,
            "equity_usd": result.equity0,
            "metrics": json.loads(result.to_frame().to_json(orient="records", date_format="iso")),
        }
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    out.print(result.summary(), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `stress` command to the main `deleverage` app."""
    app.command("stress", help=HELP)(stress_command)

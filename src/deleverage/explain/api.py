"""`explain`: what caused a run's moves and liquidations, in numbers (SPEC §6)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from deleverage.engine.simulate import simulate
from deleverage.explain.epicenter import epicenter, timeline
from deleverage.explain.games import (
    Game,
    channel_game,
    evaluator,
    outcome_names,
    outcomes,
    shock_game,
)
from deleverage.explain.result import ExplainResult
from deleverage.explain.shapley import EXACT_LIMIT, Shapley, shapley
from deleverage.results.result import SimulationResult
from deleverage.scenario.schema import Channels, Scenario

GAMES = ("channels", "shocks")
ALL_OFF = {name: False for name in Channels.model_fields}


def _attribution(game: Game, values: Shapley) -> tuple[list[tuple], list[tuple]]:
    names = outcome_names(game.measures)
    windows = [m.window for m in game.measures] + [None]
    rows, totals = [], []
    for o, (entity, measure, unit) in enumerate(names):
        for p, player in enumerate(game.players):
            rows.append(
                (game.kind, player, entity, measure, unit, windows[o],
                 float(values.values[p, o]), float(values.std_errors[p, o]))
            )  # fmt: skip
        totals.append(
            (game.kind, entity, measure, unit, windows[o], float(values.empty[o]),
             float(values.full[o]), float(values.values[:, o].sum()), values.exact,
             values.permutations, values.evaluations, len(game.players))
        )  # fmt: skip
    return rows, totals


def explain(
    source: Scenario | SimulationResult,
    seed: int = 0,
    *,
    path: int = 0,
    games: Sequence[str] = GAMES,
    channels: Sequence[str] | None = None,
    shocks_by: str = "shock",
    exact_limit: int = EXACT_LIMIT,
    permutations: int = 16,
    workers: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
) -> ExplainResult:
    """Explain one path: a `SimulationResult` (its scenario, seed and path) or a scenario
    run with `seed` and `path`.

    Amplification per asset: the move with the scenario's channels ÷ with all channels off
    (shocks only). Shapley attribution of each asset's move and of total liquidations over
    the channels in play (`channels` to choose) and over the shocks (each one, or
    `shocks_by="type"`): exact for ≤ `exact_limit` players, else over `permutations`
    sampled orders with standard errors. Every coalition is the same path (common random
    numbers). Epicenter and timeline of the first margin call, liquidation and default.

    workers: processes for the coalitions (results do not depend on it).
    progress: called with (game, coalitions done, coalitions)."""
    started = time.perf_counter()
    unknown = sorted(set(games) - set(GAMES))
    if unknown or not games:
        raise ValueError(f"games: expected some of {', '.join(GAMES)}, found {list(games)}")
    if shocks_by not in ("shock", "type"):
        raise ValueError(f"shocks_by: expected shock or type, found {shocks_by!r}")
    if isinstance(source, SimulationResult):
        scenario, seed, path, run_id = source.scenario, source.seed, source.path, source.run_id
    else:
        scenario, run_id = source, None
    rows, totals = [], []
    full_run = source if isinstance(source, SimulationResult) else None
    amplification = None
    for kind in games:
        game = (
            channel_game(scenario, seed, path, channels)
            if kind == "channels"
            else shock_game(scenario, seed, path, shocks_by)
        )
        if full_run is None:
            full_run = game.run(2 ** len(game.players) - 1)
        if not game.players:
            continue
        report = (lambda done, total, k=kind: progress(k, done, total)) if progress else None
        values = shapley(
            len(game.players),
            evaluator(game, workers, report),
            exact_limit=exact_limit,
            permutations=permutations,
            rng=np.random.default_rng([seed, path, len(game.players)]),
        )
        game_rows, game_totals = _attribution(game, values)
        rows += game_rows
        totals += game_totals
        if kind == "channels" and channels is None:
            # every channel in play off is all channels off (the rest change nothing)
            amplification = _amplification(game, values.full, values.empty)
    if amplification is None:  # shocks only: one more run with every channel off
        game = channel_game(scenario, seed, path, ())
        all_off = game.base.model_copy(update={"channels": Channels(**ALL_OFF)})
        moves_off = outcomes(simulate(all_off, seed, path=path), game.measures)
        amplification = _amplification(game, outcomes(full_run, game.measures), moves_off)
    attribution = pd.DataFrame(
        rows,
        columns=["game", "player", "entity", "measure", "unit", "window", "value", "std_error"],
    )
    totals_frame = pd.DataFrame(
        totals,
        columns=["game", "entity", "measure", "unit", "window", "none", "all", "sum_of_values",
                 "exact", "permutations", "evaluations", "players"],
    )  # fmt: skip
    return ExplainResult(
        scenario=scenario,
        seed=seed,
        path=path,
        explained_run=run_id,
        amplification=amplification,
        attribution=attribution,
        totals=totals_frame,
        epicenter=epicenter(full_run),
        timeline=timeline(full_run),
        wall_seconds=time.perf_counter() - started,
    )


def _amplification(game: Game, full: np.ndarray, off: np.ndarray) -> pd.DataFrame:
    rows = []
    for m, move, move_off in zip(game.measures, full, off, strict=False):
        ratio = move / move_off if move_off != 0.0 else float("nan")
        rows.append((m.asset, m.label, m.window, move, move_off, ratio))
    return pd.DataFrame(
        rows,
        columns=[
            "asset",
            "measure",
            "window",
            "move_pct",
            "move_channels_off_pct",
            "amplification",
        ],
    )

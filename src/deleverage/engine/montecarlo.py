"""Monte Carlo over paths (SPEC §9, §10): `paths` independent paths of one scenario and
seed, on local processes, reduced to per-path summaries and bands.

Path i is `simulate(scenario, seed, path=i)`: its noise, population draws and `uncertain`
priors come from streams spawned for (seed, i), so the results do not depend on the
number of workers or on the order in which paths finish (they are collected by index).

Amplification (SPEC §6): each path is run a second time with the same seed and path and
all channels off (shocks only). The move compared is the asset's worst 24 h return inside
the window of its first `worst_24h` or `return` target (its crash window), else its maximum
drawdown over the run.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from deleverage.engine.simulate import simulate
from deleverage.results.montecarlo import MonteCarloResult
from deleverage.results.result import SimulationResult, target_label
from deleverage.scenario.loader import scenario_hash
from deleverage.scenario.schema import Channels, Scenario

ALL_CHANNELS_OFF = Channels(**{name: False for name in Channels.model_fields})


@dataclass(frozen=True)
class Measure:
    """The move amplification is measured on, for one asset."""

    asset: str
    metric: str  # "worst_24h" or "max_drawdown"
    window: tuple[pd.Timestamp, pd.Timestamp] | None

    @property
    def label(self) -> str:
        return target_label(self.metric, None, self.window)

    def on(self, result: SimulationResult) -> float:
        return result.modelled(self.metric, self.asset, self.window, "%")[0]


def amplification_measures(scenario: Scenario) -> list[Measure]:
    """Per asset: the worst 24 h inside the window of its first price-move target (`worst_24h`
    or `return`: its crash window), else max drawdown over the run."""
    measures = []
    for asset in scenario.assets:
        windows = [
            t.window
            for t in scenario.targets
            if t.asset == asset.id and t.metric in ("worst_24h", "return") and t.window
        ]
        if windows:
            measures.append(Measure(asset.id, "worst_24h", windows[0]))
        else:
            measures.append(Measure(asset.id, "max_drawdown", None))
    return measures


@dataclass(frozen=True)
class PathOutcome:
    """What one path sends back: small unless the full path is kept."""

    path: int
    targets: pd.DataFrame  # SimulationResult.targets_table()
    moves_pct: np.ndarray | None  # per measure, with the scenario's channels
    moves_off_pct: np.ndarray | None  # per measure, with all channels off
    diagnostics: dict[str, float]
    result: SimulationResult | None


def run_path(
    scenario: Scenario,
    seed: int,
    path: int,
    measures: list[Measure] | None,
    check_invariants: bool = False,
    keep: bool = False,
) -> PathOutcome:
    """One path and, when `measures` are given, its all-channels-off twin."""
    result = simulate(scenario, seed, path=path, check_invariants=check_invariants)
    diagnostics = dict(result.diagnostics)
    moves = moves_off = None
    if measures is not None:
        moves = np.array([m.on(result) for m in measures])
        if scenario.channels == ALL_CHANNELS_OFF:  # the twin would be the same run
            moves_off = moves
        else:
            twin = scenario.model_copy(update={"channels": ALL_CHANNELS_OFF})
            off = simulate(twin, seed, path=path, check_invariants=check_invariants)
            moves_off = np.array([m.on(off) for m in measures])
            diagnostics |= {f"channels_off_{k}": v for k, v in off.diagnostics.items()}
    return PathOutcome(
        path, result.targets_table(), moves, moves_off, diagnostics, result if keep else None
    )


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it and stops the
    # workers, so no worker prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _finished_paths(
    task: Callable[[int], PathOutcome], paths: int, workers: int
) -> Iterator[PathOutcome]:
    """`task(path)` for every path, yielded as paths finish (in-process when workers == 1).
    Closing the iterator early (an error, Ctrl-C) stops the workers."""
    if workers == 1:
        for path in range(paths):
            yield task(path)
        return
    # Spawned, not forked: workers start clean (no copy of the parent's threads or locks,
    # e.g. a live progress bar) and behave the same on Linux, macOS and Windows. A plain
    # process pool: `terminate` stops it at once and leaves no management thread that could
    # complain about cancelled work after Ctrl-C.
    # Workers ignore Ctrl-C from birth: an ignored signal stays ignored across the exec of
    # a spawned interpreter, so an interrupt while a worker still imports prints nothing.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_interrupts)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        yield from pool.imap_unordered(task, range(paths))
        pool.close()
    finally:
        pool.terminate()  # no-op after a clean close; stops running paths otherwise
        pool.join()


def _aggregate(diagnostics: list[dict[str, float]]) -> dict[str, float]:
    """Counts summed over paths; drifts (`max_*`) as their maximum. The channels-off
    twins' diagnostics are kept apart (`channels_off_*`)."""
    total: dict[str, float] = {}
    for one in diagnostics:
        for name, value in one.items():
            if name.removeprefix("channels_off_").startswith("max_"):
                total[name] = max(total.get(name, 0.0), float(value))
            else:
                total[name] = total.get(name, 0.0) + float(value)
    return total


def simulate_paths(
    scenario: Scenario,
    seed: int = 0,
    *,
    paths: int = 100,
    workers: int = 1,
    amplification: bool = True,
    keep_paths: bool = False,
    check_invariants: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_path: Callable[[SimulationResult], None] | None = None,
    run_id: str | None = None,
) -> MonteCarloResult:
    """Run paths 0 … `paths`−1 of `scenario` with one `seed` on `workers` local processes
    (1: in this process) and return the bands of every target over paths.

    amplification: also run each path with all channels off (twice the work) and report
        the median ratio of the moves per asset.
    keep_paths: keep every path's full `SimulationResult` in `.path_results` (memory
        grows with paths × steps × assets; off by default).
    progress: called with (paths done, paths) as paths finish.
    on_path: called with every full path as it finishes (in completion order), e.g. to
        stream it to the store without keeping it in memory.
    run_id: the id of the run (default: a fresh one).

    Same scenario and seed give identical results whatever `workers`."""
    if paths < 1:
        raise ValueError(f"paths: expected a whole number ≥ 1, found {paths}")
    if workers < 1:
        raise ValueError(f"workers: expected a whole number ≥ 1, found {workers}")
    started = time.perf_counter()
    measures = amplification_measures(scenario) if amplification else None
    task = partial(
        run_path,
        scenario,
        seed,
        measures=measures,
        check_invariants=check_invariants,
        keep=keep_paths or on_path is not None,
    )
    outcomes: list[PathOutcome] = [None] * paths  # by path index, never by completion order
    with closing(_finished_paths(task, paths, min(workers, paths))) as finished:
        for done, outcome in enumerate(finished, start=1):
            if on_path is not None:
                on_path(outcome.result)
            outcomes[outcome.path] = outcome if keep_paths else replace(outcome, result=None)
            if progress is not None:
                progress(done, paths)

    observed_at = [t.window[1] if t.window else None for t in scenario.targets]
    path_targets = pd.concat(
        [o.targets.assign(path=o.path, time=observed_at) for o in outcomes], ignore_index=True
    )[["path", "target", "window_start", "window_end", "observed", "modelled", "unit", "time"]]
    rows = []
    if measures is not None:
        for o in outcomes:
            for m, move, off in zip(measures, o.moves_pct, o.moves_off_pct, strict=True):
                ratio = move / off if off != 0.0 else float("nan")
                start, end = m.window or (None, None)
                rows.append((o.path, m.asset, m.label, move, off, ratio, end, start))
    path_amplification = pd.DataFrame(
        rows,
        columns=[
            "path",
            "asset",
            "measure",
            "move_pct",
            "move_channels_off_pct",
            "amplification",
            "time",
            "window_start",
        ],
    )
    return MonteCarloResult(
        scenario=scenario,
        seed=seed,
        paths=paths,
        scenario_hash=scenario_hash(scenario),
        path_targets=path_targets,
        path_amplification=path_amplification,
        diagnostics=_aggregate([o.diagnostics for o in outcomes]),
        wall_seconds=time.perf_counter() - started,
        workers=min(workers, paths),
        path_results=[o.result for o in outcomes] if keep_paths else None,
        **({"run_id": run_id} if run_id else {}),
    )

"""Monte Carlo over paths (SPEC §9, §10): `paths` independent paths of one scenario and
seed, on local processes, reduced to per-path summaries and bands.

Path i is `simulate(scenario, seed, path=i)`: its noise, population draws and `uncertain`
priors come from streams spawned for (seed, i), so the results do not depend on the
number of workers or on the order in which paths finish (they are collected by index).
Paths go to the workers in batches, and a batch runs as lanes of one simulation
(`simulate_lanes`): the engine's work per step is shared, each path's result is the same
to the last bit as the path run alone.

Amplification (SPEC §6): each path is run a second time with the same seed and path and
all channels off (shocks only). The move compared is the asset's worst 24 h return inside
the window of its first `worst_24h` or `return` target (its crash window), else its maximum
drawdown over the run.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
import pandas as pd

from deleverage.engine.simulate import simulate_lanes
from deleverage.results.montecarlo import MonteCarloResult
from deleverage.results.result import SimulationResult, target_label
from deleverage.scenario.loader import scenario_hash
from deleverage.scenario.schema import Channels, Scenario

T = TypeVar("T")
PATH_TARGET_COLUMNS = (
    "path", "target", "window_start", "window_end", "observed", "modelled", "unit", "time",
)  # fmt: skip
AMPLIFICATION_COLUMNS = (
    "path", "asset", "measure", "move_pct", "move_channels_off_pct", "amplification", "time",
    "window_start",
)  # fmt: skip
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


def run_batch(
    scenario: Scenario,
    seed: int,
    paths: range,
    measures: list[Measure] | None,
    check_invariants: bool = False,
    keep: bool = False,
) -> list[PathOutcome]:
    """A batch of paths run together as lanes of one simulation (`simulate_lanes`) with,
    when `measures` are given, their all-channels-off twins as more lanes of it."""
    n = len(paths)
    twins = measures is not None and scenario.channels != ALL_CHANNELS_OFF
    lanes = [scenario] * n
    if twins:
        lanes += [scenario.model_copy(update={"channels": ALL_CHANNELS_OFF})] * n
    results = simulate_lanes(
        lanes, seed, list(paths) * (2 if twins else 1), check_invariants=check_invariants
    )
    offs = results[n:] if twins else [None] * n
    return [
        _outcome(result, off, measures, keep) for result, off in zip(results[:n], offs, strict=True)
    ]


def _outcome(
    result: SimulationResult,
    off: SimulationResult | None,
    measures: list[Measure] | None,
    keep: bool,
) -> PathOutcome:
    """What a path sends back; `off` is its channels-off twin (None: the twin would be the
    same run, or no amplification)."""
    diagnostics = dict(result.diagnostics)
    moves = moves_off = None
    if measures is not None:
        moves = np.array([m.on(result) for m in measures])
        moves_off = moves if off is None else np.array([m.on(off) for m in measures])
        if off is not None:
            diagnostics |= {f"channels_off_{k}": v for k, v in off.diagnostics.items()}
    return PathOutcome(
        result.path, result.targets_table(), moves, moves_off, diagnostics,
        result if keep else None,
    )  # fmt: skip


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it and stops the
    # workers, so no worker prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# Lanes a batch: the engine's share of a path's cost is divided by the lanes, and so is
# the population slots' overhead (docs/performance.md, "Lanes", "population slots").
# Measured on a 100k-account feb-2026, CPU a path (session 10, one process): 7.19 s with
# 8 lanes, 6.47 s with 16, 6.72 s with 32 (caches): so at most 16, fewer where memory is
# short (`lanes_for`). `MAX_LANES`: where no scenario sizes the batch.
LANE_CAP = 16
MAX_LANES = 8
MEMORY_SHARE = 0.5  # of physical memory, for all the workers' batches together
LANE_BASE_BYTES = 80 << 20
ACCOUNT_BYTES = {"perp_book": 200}  # per account, peak (the book's tail and its re-sorts)
OTHER_ACCOUNT_BYTES = 64  # stop-loss, futures and margin-loan books: a few columns each


def batches(
    paths: int, workers: int, lanes_per_path: int = 1, max_lanes: int = MAX_LANES
) -> list[range]:
    """Paths 0 … paths−1 cut into consecutive batches, the unit of work sent to a worker
    (local process or Dask) and run there as lanes of one simulation: about four per
    worker to balance the load (as many lanes as allowed on one worker), at most
    `max_lanes` lanes each (`lanes_per_path` lanes a path: 2 with its channels-off twin)
    so progress and memory move in steps of a few paths."""
    most = max(1, max_lanes // lanes_per_path)
    size = most if workers == 1 else max(1, min(most, paths // (4 * workers)))
    return [range(lo, min(lo + size, paths)) for lo in range(0, paths, size)]


def lane_bytes(scenario: Scenario) -> int:
    """What one lane of `scenario` may hold at its peak, bytes: a base (the market, its
    records and event log, the fund populations) and a figure per account of each account
    book. Measured on feb-2026 (10,944 steps, 9 assets; peak RSS of 8 and 16 lanes):
    ≈ 65 MiB a lane with 2-account perp books (its 700k stop-loss and 40k futures accounts
    included) and ≈ 185 B more per perp account (83 MiB at 100k); the figures below are
    rounded up (docs/performance.md, "Session 10: lanes by memory")."""
    accounts = 0
    for spec in scenario.populations:
        n = getattr(spec, "accounts", None) or 0
        accounts += n * ACCOUNT_BYTES.get(spec.type, OTHER_ACCOUNT_BYTES)
    return LANE_BASE_BYTES + accounts


def lanes_for(scenario: Scenario, workers: int, memory: int | None = None) -> int:
    """Lanes a batch of `scenario` may hold so that `workers` batches at once stay within
    half of `memory` (bytes; default: this machine's physical memory), at most
    `LANE_CAP` and at least 1."""
    memory = physical_memory() if memory is None else memory
    fit = int(memory * MEMORY_SHARE / max(workers, 1) // lane_bytes(scenario))
    return max(1, min(LANE_CAP, fit))


def physical_memory() -> int:
    """This machine's physical memory, bytes (8 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8 << 30


def _finished_paths(
    task: Callable[[range], list[T]],
    paths: int,
    workers: int,
    scheduler: str | None = None,
    lanes_per_path: int = 1,
    sized_by: Scenario | None = None,
) -> Iterator[T]:
    """`task(batch)` for every batch of paths, its items yielded as batches finish: in
    this process (workers == 1), on `workers` local processes, or on the Dask distributed
    cluster at `scheduler` (an address such as tcp://host:8786; `workers` is then not
    used). Batches hold at most `MAX_LANES` lanes, or as many as `sized_by`'s lanes fit in
    memory (`lanes_for`). Closing the iterator early (an error, Ctrl-C) stops the work."""
    if scheduler is not None:
        yield from _finished_on_dask(task, paths, scheduler, lanes_per_path, sized_by)
        return
    most = MAX_LANES if sized_by is None else lanes_for(sized_by, workers)
    if workers == 1:
        for batch in batches(paths, 1, lanes_per_path, most):
            yield from task(batch)
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
        for done in pool.imap_unordered(task, batches(paths, workers, lanes_per_path, most)):
            yield from done
        pool.close()
    finally:
        pool.terminate()  # no-op after a clean close; stops running paths otherwise
        pool.join()


def _finished_on_dask(
    task: Callable[[range], list[T]],
    paths: int,
    scheduler: str,
    lanes_per_path: int = 1,
    sized_by: Scenario | None = None,
) -> Iterator[T]:
    """The same batches on a Dask distributed cluster (the `distributed` extra), sized
    for the cluster's worker threads and, with `sized_by`, for the smallest memory a
    thread has (a worker's `memory_limit` ÷ its threads; no limit: `MAX_LANES`)."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ImportError(
            "--scheduler needs Dask distributed: pip install 'deleverage[distributed]'"
        ) from exc
    with Client(scheduler) as client:
        threads = max(1, sum(client.nthreads().values()))
        most = MAX_LANES
        workers = client.scheduler_info()["workers"].values()
        limits = [(w.get("memory_limit") or 0, w.get("nthreads") or 1) for w in workers]
        if sized_by is not None and limits and all(limit > 0 for limit, _ in limits):
            most = min(lanes_for(sized_by, n, memory=limit) for limit, n in limits)
        work = batches(paths, threads, lanes_per_path, most)
        completed = as_completed(client.map(task, work, pure=False))
        try:
            for future in completed:
                done = future.result()
                del future  # no reference left: the cluster forgets the batch
                yield from done
        finally:
            completed.clear()  # drops the futures not yet done: the cluster cancels them


def scheduler_problem(address: str, timeout: float = 10.0) -> str | None:
    """Why the Dask distributed cluster at `address` cannot take paths, or None (checked
    before any work, so a wrong address fails fast)."""
    try:
        from distributed import Client
    except ImportError:
        return "expected Dask distributed installed: pip install 'deleverage[distributed]'"
    try:
        with Client(address, timeout=timeout, set_as_default=False) as client:
            if not client.nthreads():
                return "expected a Dask cluster with workers, found none"
    except Exception as exc:  # unreachable, refused, bad address: all mean "no cluster there"
        return f"expected a reachable Dask scheduler, could not connect: {exc}"
    return None


class _Diagnostics:
    """Per-path diagnostics as one row of numbers each (names are columns, in order of
    first appearance by path index), aggregated in path order."""

    def __init__(self, paths: int):
        self.columns: dict[str, int] = {}
        self.values = np.zeros((paths, 0))
        self.present = np.zeros((paths, 0), dtype=bool)

    def add(self, path: int, diagnostics: dict[str, float]) -> None:
        for name, value in diagnostics.items():
            if name not in self.columns:
                self.columns[name] = len(self.columns)
                self.values = np.hstack([self.values, np.zeros((len(self.values), 1))])
                self.present = np.hstack([self.present, np.zeros((len(self.values), 1), bool)])
            self.values[path, self.columns[name]] = value
            self.present[path, self.columns[name]] = True

    def aggregate(self) -> dict[str, float]:
        """Counts summed over paths; drifts (`max_*`) as their maximum. The channels-off
        twins' diagnostics are kept apart (`channels_off_*`)."""
        first = {name: int(np.argmax(self.present[:, j])) for name, j in self.columns.items()}
        total: dict[str, float] = {}
        for name in sorted(self.columns, key=lambda n: (first[n], self.columns[n])):
            j = self.columns[name]
            drift = name.removeprefix("channels_off_").startswith("max_")
            value = 0.0
            for one in self.values[self.present[:, j], j].tolist():  # in path order
                value = max(value, one) if drift else value + one
            total[name] = value
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
    scheduler: str | None = None,
) -> MonteCarloResult:
    """Run paths 0 … `paths`−1 of `scenario` with one `seed` on `workers` local processes
    (1: in this process), or on the Dask distributed cluster at `scheduler`, and return the
    bands of every target over paths.

    amplification: also run each path with all channels off (twice the work) and report
        the median ratio of the moves per asset.
    keep_paths: keep every path's full `SimulationResult` in `.path_results` (memory
        grows with paths × steps × assets; off by default).
    progress: called with (paths done, paths) as paths finish.
    on_path: called with every full path as it finishes (in completion order), e.g. to
        stream it to the store without keeping it in memory.
    run_id: the id of the run (default: a fresh one).

    Same scenario and seed give identical results whatever `workers` or `scheduler`."""
    if paths < 1:
        raise ValueError(f"paths: expected a whole number ≥ 1, found {paths}")
    if workers < 1:
        raise ValueError(f"workers: expected a whole number ≥ 1, found {workers}")
    started = time.perf_counter()
    measures = amplification_measures(scenario) if amplification else None
    task = partial(
        run_batch,
        scenario,
        seed,
        measures=measures,
        check_invariants=check_invariants,
        keep=keep_paths or on_path is not None,
    )
    # Per-path summaries are packed into arrays as paths arrive (by path index, never by
    # completion order): a few numbers a path, so memory stays flat in the number of paths.
    template = None  # target, observed, unit: the same on every path
    modelled = np.full((paths, len(scenario.targets)), np.nan)
    moves = np.full((paths, 2, len(measures or ())), np.nan)
    diagnostics = _Diagnostics(paths)
    results: list[SimulationResult] | None = [None] * paths if keep_paths else None
    twins = measures is not None and scenario.channels != ALL_CHANNELS_OFF
    lanes = 2 if twins else 1  # a path and its channels-off twin, lanes of one batch
    finished = _finished_paths(task, paths, min(workers, paths), scheduler, lanes, scenario)
    with closing(finished):
        for done, outcome in enumerate(finished, start=1):
            if on_path is not None:
                on_path(outcome.result)
            i, table = outcome.path, outcome.targets
            if template is None:
                template = table
            elif table.target.tolist() != template.target.tolist():
                raise RuntimeError(f"path {i}: targets differ from the other paths'")
            modelled[i, : len(table)] = table.modelled.to_numpy(float)
            if measures is not None:
                moves[i] = outcome.moves_pct, outcome.moves_off_pct
            diagnostics.add(i, outcome.diagnostics)
            if results is not None:
                results[i] = outcome.result
            if progress is not None:
                progress(done, paths)

    return MonteCarloResult(
        scenario=scenario,
        seed=seed,
        paths=paths,
        scenario_hash=scenario_hash(scenario),
        path_targets=_path_targets(template, modelled, scenario),
        path_amplification=_path_amplification(measures or [], moves),
        diagnostics=diagnostics.aggregate(),
        wall_seconds=time.perf_counter() - started,
        workers=min(workers, paths),
        path_results=results,
        **({"run_id": run_id} if run_id else {}),
    )


def _path_targets(template: pd.DataFrame, modelled: np.ndarray, scenario: Scenario):
    """One row per (path, target), path by path, built column by column."""
    paths, n = len(modelled), len(template)
    observed_at = [t.window[1] if t.window else None for t in scenario.targets][:n]
    if not n:  # no target: the empty table with the single-path table's columns
        return template.assign(path=0, time=observed_at)[list(PATH_TARGET_COLUMNS)]
    return pd.DataFrame(
        {
            "path": np.repeat(np.arange(paths), n),
            **{
                column: pd.array(np.tile(template[column].to_numpy(), paths), dtype)
                for column, dtype in template.dtypes.items()
                if column != "modelled"
            },
            "modelled": modelled[:, :n].reshape(-1),
            "time": observed_at * paths,
        }
    )[list(PATH_TARGET_COLUMNS)]


def _path_amplification(measures: list[Measure], moves: np.ndarray) -> pd.DataFrame:
    """One row per (path, measure): the move with the scenario's channels, with all
    channels off, and their ratio (NaN when the move with channels off is 0)."""
    paths, n = len(moves), len(measures)
    if not n:  # a run without amplification
        return pd.DataFrame([], columns=list(AMPLIFICATION_COLUMNS))
    move, off = moves[:, 0].reshape(-1), moves[:, 1].reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(off != 0.0, move / off, np.nan)
    return pd.DataFrame(
        {
            "path": np.repeat(np.arange(paths), n),
            "asset": [m.asset for m in measures] * paths,
            "measure": [m.label for m in measures] * paths,
            "move_pct": move,
            "move_channels_off_pct": off,
            "amplification": ratio,
            "time": [m.window and m.window[1] for m in measures] * paths,
            "window_start": [m.window and m.window[0] for m in measures] * paths,
        }
    )

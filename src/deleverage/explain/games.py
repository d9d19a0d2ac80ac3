"""The two games `explain` plays on one path (SPEC §6): channels and shocks as players.

Every coalition is the same path (same seed, same path index, same draws of the scenario's
`uncertain` priors) with only its players switched on: common random numbers, so the
difference between two coalitions is the players' effect and not noise. The outcomes of a
coalition are each asset's move (the amplification measure: worst 24 h in the asset's crash
window, else maximum drawdown, %) and the run's total forced liquidations (USD).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from deleverage.engine.montecarlo import Measure, amplification_measures, batches, lanes_for
from deleverage.engine.simulate import rng_stream, simulate, simulate_lanes
from deleverage.populations import REGISTRY
from deleverage.results.result import SimulationResult
from deleverage.results.shocks import shock_name
from deleverage.scenario.loader import sample_uncertain
from deleverage.scenario.schema import Channels, Scenario

LIQUIDATION_KINDS = ("perp_liquidation", "liquidation")  # perps and futures, forced closes

# Channels read outside the population that REGISTRY names for them: market makers exist in
# every scenario; carry and prime-broker funds sell in pecking order; carry funds alone repay
# in the funding currency; perp books alone have an insurance fund and ADL.
_EXTRA_CHANNELS = {
    "carry_funds": ("pecking_order", "fx_feedback"),
    "pb_funds": ("pecking_order",),
    "perp_book": ("insurance_adl",),
}


def channels_in_play(scenario: Scenario) -> list[str]:
    """Channels that are on and that some part of the scenario reads, in `Channels` order.
    A channel nothing reads changes nothing: a null player, whose Shapley value is 0 by the
    null-player axiom, so it is left out of the game rather than simulated."""
    read = {"mm_retreat"}
    for population in scenario.populations:
        read.add(REGISTRY[population.type][1])
        read.update(_EXTRA_CHANNELS.get(population.type, ()))
    on = scenario.channels.model_dump()
    return [name for name in Channels.model_fields if on[name] and name in read]


def fixed_draws(scenario: Scenario, seed: int, path: int) -> Scenario:
    """The scenario with its `uncertain` priors drawn as `simulate(seed, path)` draws them,
    and then removed: every coalition sees the same draws (and shock indices may change)."""
    sampled = sample_uncertain(scenario, rng_stream(seed, path, "uncertain"))
    return sampled.model_copy(update={"uncertain": []})


def liquidations_usd(result: SimulationResult) -> float:
    events = result.events
    return float(events.notional_usd[events.kind.isin(LIQUIDATION_KINDS)].sum())


def outcome_names(measures: Sequence[Measure]) -> list[tuple[str, str, str]]:
    """(entity, measure label, unit) of each outcome."""
    return [(m.asset, m.label, "%") for m in measures] + [
        ("liquidations", "forced liquidations, perps and futures, whole run", "USD")
    ]


def outcomes(result: SimulationResult, measures: Sequence[Measure]) -> np.ndarray:
    return np.array([*(m.on(result) for m in measures), liquidations_usd(result)])


@dataclass(frozen=True)
class Game:
    """Players of one kind and how a coalition of them becomes a scenario."""

    kind: str  # "channels" or "shocks"
    players: tuple[str, ...]
    base: Scenario  # with fixed draws
    seed: int
    path: int
    measures: tuple[Measure, ...]
    shock_groups: tuple[tuple[int, ...], ...] = ()  # shocks: base.shocks indices per player

    def scenario(self, mask: int) -> Scenario:
        on = [(mask >> i) & 1 == 1 for i in range(len(self.players))]
        if self.kind == "channels":
            switches = dict(zip(self.players, on, strict=True))
            channels = self.base.channels.model_copy(update=switches)
            return self.base.model_copy(update={"channels": channels})
        keep = sorted(
            j for group, kept in zip(self.shock_groups, on, strict=True) if kept for j in group
        )
        return self.base.model_copy(update={"shocks": [self.base.shocks[j] for j in keep]})

    def run(self, mask: int) -> SimulationResult:
        return simulate(self.scenario(mask), self.seed, path=self.path)

    def values(self, masks: Sequence[int]) -> np.ndarray:
        """Outcomes of the coalitions `masks`, run together as lanes of one simulation
        (the same path with other players: each lane is that coalition run alone)."""
        runs = simulate_lanes(
            [self.scenario(mask) for mask in masks], self.seed, [self.path] * len(masks)
        )
        return np.array([outcomes(run, self.measures) for run in runs])


def channel_game(scenario: Scenario, seed: int, path: int, players=None) -> Game:
    base = fixed_draws(scenario, seed, path)
    return Game(
        "channels",
        tuple(players or channels_in_play(base)),
        base,
        seed,
        path,
        tuple(amplification_measures(base)),
    )


def shock_game(scenario: Scenario, seed: int, path: int, group_by: str = "shock") -> Game:
    """Players: each shock (`group_by="shock"`) or each shock type (`"type"`, e.g. all
    margin changes together)."""
    base = fixed_draws(scenario, seed, path)
    if group_by == "type":
        kinds = list(dict.fromkeys(s.type for s in base.shocks))
        groups = [tuple(j for j, s in enumerate(base.shocks) if s.type == k) for k in kinds]
        names = kinds
    else:
        groups = [(j,) for j in range(len(base.shocks))]
        names = [shock_name(base, j) for j in range(len(base.shocks))]
    return Game(
        "shocks",
        tuple(names),
        base,
        seed,
        path,
        tuple(amplification_measures(base)),
        tuple(groups),
    )


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent alone handles Ctrl-C


def evaluator(
    game: Game, workers: int = 1, progress: Callable[[int, int], None] | None = None
) -> Callable[[Sequence[int]], np.ndarray]:
    """`evaluate(masks)` for the Shapley functions: each coalition simulated once, in
    batches of coalitions run as lanes (`montecarlo.batches`), on `workers` spawned
    processes (1: here); results by mask, never by completion order."""

    def evaluate(masks: Sequence[int]) -> np.ndarray:
        masks = list(masks)
        values: list[np.ndarray | None] = [None] * len(masks)
        parts = batches(len(masks), workers, 1, lanes_for(game.scenario(0), workers))
        task = partial(_batch_values, game, masks)
        if workers == 1:
            finished = map(task, parts)
            pool = None
        else:
            context = multiprocessing.get_context("spawn")
            pool = context.Pool(min(workers, len(parts)), initializer=_ignore_interrupts)
            finished = pool.imap_unordered(task, parts)
        try:
            done = 0
            for part, part_values in finished:
                for i, value in zip(part, part_values, strict=True):
                    values[i] = value
                done += len(part)
                if progress is not None:
                    progress(done, len(masks))
            if pool is not None:
                pool.close()
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        return np.array(values)

    return evaluate


def _batch_values(game: Game, masks: list[int], part: range) -> tuple[range, np.ndarray]:
    return part, game.values([masks[i] for i in part])

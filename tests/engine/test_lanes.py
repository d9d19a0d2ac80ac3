"""Paths as lanes (issue 9): a batch of paths advanced by one `step` on (L, A) arrays gives
every path the result it gets alone, to the last bit, and shares the engine's work."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import build

from deleverage import simulate
from deleverage.engine.montecarlo import ALL_CHANNELS_OFF
from deleverage.engine.simulate import simulate_lanes


def feb_2026_crash_day(perp_accounts: int = 3000):
    """feb-2026 around the silver crash of 30 Jan (36 hours, every population type, its
    perp books small), with the targets inside that window."""
    text = resources.files("deleverage.scenario.presets").joinpath("feb-2026.yaml").read_text()
    raw = yaml.safe_load(text)
    start, end = pd.Timestamp("2026-01-29T12:00:00Z"), pd.Timestamp("2026-01-31T00:00:00Z")
    raw["clock"].update(start=start.isoformat(), end=end.isoformat())

    def inside(item: dict) -> bool:
        times = [item[k] for k in ("time", "start", "announced", "effective") if k in item]
        times += item.get("window", [])
        return all(start <= pd.Timestamp(t) < end for t in times)

    kept = {j: len(kept) for j, shock in enumerate(raw["shocks"]) if inside(shock)
            for kept in [[s for s in raw["shocks"][:j] if inside(s)]]}  # fmt: skip
    raw["shocks"] = [shock for shock in raw["shocks"] if inside(shock)]
    uncertain = []
    for item in raw["uncertain"]:  # priors on a dropped shock go; the others follow theirs
        part = item["path"].split(".")
        if part[0] == "shocks":
            if int(part[1]) not in kept:
                continue
            item["path"] = ".".join(["shocks", str(kept[int(part[1])]), *part[2:]])
        uncertain.append(item)
    raw["uncertain"] = uncertain
    raw["targets"] = [t for t in raw["targets"] if inside(t)]
    for population in raw["populations"]:
        if population["type"] == "perp_book":
            population["accounts"] = perp_accounts
    return build(raw)


def assert_identical(batch, alone) -> None:
    for name, values in alone.market.items():
        np.testing.assert_array_equal(batch.market[name], values, err_msg=name)
    np.testing.assert_array_equal(batch.rounds, alone.rounds)
    pd.testing.assert_frame_equal(batch.events, alone.events)
    assert batch.diagnostics == alone.diagnostics
    assert batch.fund_leverage.keys() == alone.fund_leverage.keys()
    for name, values in alone.fund_leverage.items():
        np.testing.assert_array_equal(batch.fund_leverage[name], values, err_msg=name)


PATHS = (3, 0, 7)


@pytest.fixture(scope="module")
def crash_day():
    return feb_2026_crash_day()


@pytest.fixture(scope="module")
def batch(crash_day):
    return simulate_lanes(crash_day, seed=11, paths=PATHS, check_invariants=True)


def test_each_lane_of_a_batch_is_its_path_run_alone(crash_day, batch):
    # every population type of feb-2026, uncertain draws that differ per path (depths,
    # vols, open interest): lanes hold different parameters and cascade for different
    # numbers of rounds in a step, yet each is its path alone, events and all
    assert [r.path for r in batch] == list(PATHS)
    for result in batch:
        alone = simulate(crash_day, seed=11, path=result.path, check_invariants=True)
        assert_identical(result, alone)
        assert result.diagnostics["max_unit_drift"] < 1e-9
    rounds = np.array([r.rounds for r in batch])
    assert (rounds[0] != rounds[1]).any()  # lanes stop their cascades at different rounds
    assert (rounds > 1).any() and len({len(r.events) for r in batch}) == 3


def test_a_lane_does_not_depend_on_its_neighbours_or_its_place(crash_day, batch):
    # path 7 last among three, then first beside another path: the same path
    moved = simulate_lanes(crash_day, seed=11, paths=(7, 1), check_invariants=True)[0]
    assert_identical(moved, batch[2])


def test_an_empty_batch_runs_nothing(crash_day):
    assert simulate_lanes(crash_day, seed=0, paths=()) == []


def test_lanes_of_a_batch_may_differ_in_their_channels(crash_day, batch):
    # Monte Carlo twins and explain's coalitions: the same path with other channels, as
    # lanes of one batch (desks' feedback on in one lane and off in the next)
    off = crash_day.model_copy(update={"channels": ALL_CHANNELS_OFF})
    desks_still = crash_day.model_copy(
        update={"channels": crash_day.channels.model_copy(update={"mm_retreat": False})}
    )
    lanes = [crash_day, off, desks_still]
    mixed = simulate_lanes(lanes, seed=11, paths=[3, 3, 3], check_invariants=True)
    assert_identical(mixed[0], batch[0])  # path 3, channels on
    for lane, scenario in zip(mixed[1:], (off, desks_still), strict=True):
        assert_identical(lane, simulate(scenario, seed=11, path=3, check_invariants=True))
    low = [r.market["price"][:, 0].min() for r in mixed]
    assert low[0] != low[1] and low[0] != low[2]  # the channels changed the path


def test_lanes_must_share_the_clock_and_the_assets(crash_day):
    later = crash_day.model_copy(
        update={"clock": crash_day.clock.model_copy(update={"start": crash_day.clock.start
                                                            + pd.Timedelta(hours=1)})}
    )  # fmt: skip
    with pytest.raises(ValueError, match="same clock"):
        simulate_lanes([crash_day, later], seed=0, paths=[0, 0])
    with pytest.raises(ValueError, match="one scenario per path"):
        simulate_lanes([crash_day], seed=0, paths=[0, 1])

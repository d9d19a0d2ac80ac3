"""Paths as lanes (issue 9): a batch of paths advanced by one `step` on (L, A) arrays gives
every path the result it gets alone, to the last bit, and shares the engine's work."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import NASDAQ, base_raw, build

from deleverage import simulate
from deleverage.engine.montecarlo import ALL_CHANNELS_OFF
from deleverage.engine.simulate import simulate_lanes
from deleverage.market.lanes import stack_lanes


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


def limited_market(visible_btc: bool = False):
    """Two days of BTC and ETH on a crypto venue whose outage a fall of BTC starts, linked
    by cross-impact, and an index with a daily band and circuit breakers on Nasdaq; a crash
    on each, perps and stop-losses that cascade, and uncertain priors so the lanes differ.
    `visible_btc`: BTC alone has a visible book near mid (the others only the latent one)."""
    spot = {"id": "spot", "kind": "crypto", "margin_rules": "binance-like", "triggered_outages": [
        {"asset": "BTC", "move_pct": 7, "within": "1h", "duration": "30min", "repeat": True,
         "source": "test"}]}  # fmt: skip
    index = {"id": "SPX", "class": "equity_index", "tier": "core", "venue": "nasdaq",
             "price": 6_000.0, "daily_vol": 0.015, "adv_usd": 3e10}  # fmt: skip
    raw = base_raw(
        clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z", "step": "5min"},
        venues=[spot, NASDAQ],
    )
    eth = {**raw["assets"][0], "id": "ETH", "price": 3_000.0, "adv_usd": 1e10}
    raw["assets"] += [eth, index]
    if visible_btc:
        raw["assets"][0]["liquidity"] = {"visible_depth": {"usd": 1e8, "band_pct": 1.0}}
    raw["market"] = {
        "cross_impact": [["BTC", "ETH", 0.6], ["ETH", "BTC", 0.3]],
        "price_limits": [{"asset": "SPX", "down_pct": 7.0, "reset": "session"}],
        "circuit_breakers": [{"index": "SPX", "reset": "session", "levels": [
            {"decline_pct": 3, "halt": "15min"}, {"decline_pct": 8}]}],
    }  # fmt: skip
    raw["shocks"] = [
        {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"BTC": -0.07}},
        {"type": "news", "time": "2026-01-05T15:00:00Z", "returns": {"SPX": -0.035}},
    ]
    raw["populations"] = [
        {"type": "perp_book", "name": "perps", "asset": "BTC", "accounts": 2000,
         "open_interest_usd": 3e9, "long_share": 0.6,
         "leverage": {"dist": "lognormal", "median": 15, "sigma": 0.5}},
        {"type": "stop_loss", "name": "stops", "asset": "SPX", "accounts": 200,
         "notional_usd": 2e9, "stop_distance": {"dist": "uniform", "low": 0.005, "high": 0.04}},
    ]  # fmt: skip
    raw["uncertain"] = [
        {"path": "assets.BTC.daily_vol", "prior": {"dist": "uniform", "low": 0.02, "high": 0.05}},
        {"path": "market.circuit_breakers.0.levels.0.decline_pct",
         "prior": {"dist": "uniform", "low": 2.5, "high": 6.0}},
    ]  # fmt: skip
    return build(raw)


@pytest.mark.parametrize("visible_btc", [False, True])
def test_lanes_keep_limits_breakers_cross_impact_and_triggered_outages_apart(visible_btc):
    """With BTC's visible book, the rounds where some lanes trade walk their rows alone
    through both walks (the visible and the latent-only assets')."""
    scenario = limited_market(visible_btc)
    paths = (0, 1, 2, 3)
    batch = simulate_lanes(scenario, seed=4, paths=paths, check_invariants=True)
    for result in batch:
        assert_identical(result, simulate(scenario, seed=4, path=result.path,
                                          check_invariants=True))  # fmt: skip
    kinds = [set(r.events.kind) for r in batch]
    assert all("outage" in k for k in kinds)
    halted = ["circuit_breaker" in k for k in kinds]
    assert any(halted) and not all(halted)  # a breaker halts in some lanes only


@dataclass
class _Part:
    depth: np.ndarray
    decay: float
    feedback: bool
    rounds: int
    ids: list


def test_stacking_lanes_stacks_arrays_columns_what_differs_and_refuses_other_structure():
    one = _Part(np.ones(3), 0.5, True, 8, ["BTC"])
    two = _Part(np.zeros(3), 0.25, False, 8, ["BTC"])
    both = stack_lanes([one, two])
    np.testing.assert_array_equal(both.depth, [[1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(both.decay, [[0.5], [0.25]])  # broadcasts per row
    np.testing.assert_array_equal(both.feedback, [[True], [False]])
    assert both.rounds == 8 and both.ids == ["BTC"]
    assert stack_lanes([one, one]).decay == 0.5  # the same everywhere: kept a number
    rounds = stack_lanes([one, _Part(np.ones(3), 0.5, True, 9, ["BTC"])]).rounds
    np.testing.assert_array_equal(rounds, [[8], [9]])  # a whole number too
    with pytest.raises(ValueError, match=r"_Part\.ids differs between lanes"):
        stack_lanes([one, _Part(np.ones(3), 0.5, True, 8, ["ETH"])])
    with pytest.raises(ValueError, match=r"_Part\.depth has shapes"):
        stack_lanes([one, _Part(np.ones(4), 0.5, True, 8, ["BTC"])])


def _variant(scenario, **market):
    """The scenario with `market` settings changed (`market_makers` merged)."""
    makers = market.pop("market_makers", {})
    update = dict(market, market_makers=scenario.market.market_makers.model_copy(update=makers))
    return scenario.model_copy(update={"market": scenario.market.model_copy(update=update)})


def test_lanes_may_differ_in_the_numbers_the_engine_reads_as_scalars():
    # the round limit (an int: each lane stops at its own) and the desks' sensitivity to
    # volatility, an exponent: 2.0 is a square for NumPy only as a scalar exponent, so a
    # lane must not get it as a column
    scenario = limited_market()
    variants = [
        scenario,
        _variant(scenario, max_rounds=2),
        _variant(scenario, market_makers={"vol_sensitivity": 2.0}),
    ]
    batch = simulate_lanes(variants, seed=4, paths=[1, 1, 1])
    for result, variant in zip(batch, variants, strict=True):
        assert_identical(result, simulate(variant, seed=4, path=1))
    hits = [r.diagnostics["round_limit_hits"] for r in batch]
    assert hits[1] > 0 and hits[0] == 0  # only the lane with 2 rounds hit its limit


def test_lanes_must_share_what_the_engine_builds_once():
    scenario = limited_market()
    no_breakers = _variant(scenario, circuit_breakers=[])
    with pytest.raises(ValueError, match="same circuit breakers"):
        simulate_lanes([scenario, no_breakers], seed=0, paths=[0, 0])
    with pytest.raises(ValueError, match="same circuit breakers"):
        simulate_lanes([no_breakers, scenario], seed=0, paths=[0, 0])
    with pytest.raises(TypeError, match="simulate_lanes"):
        simulate([scenario], seed=0)

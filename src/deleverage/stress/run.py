"""Stress a portfolio inside a scenario (SPEC §8): each path twice, with the same seed and
path, so both see the same shocks and noise:

- endogenous: the book is one more account in the market; its forced sales walk the same
  books as everyone else's, and everyone's forced sales move the prices it is marked at;
- static: the market runs without the book, which is revalued along that path (its rules
  still apply, its orders fill at the price of the moment without impact).

The extra cash that survives the scenario is the largest shortfall below maintenance of
the book held untouched on the static path. It is the endogenous answer too: with that cash
posted the book never sells, so the market it meets is the market without it.

Reverse stress (`find_breaking_shock`) scales a named shock (or all) and finds, per path,
the smallest scale at which the book is liquidated (bisection, same seed and path at every
scale); the scale that breaks the book in half of the paths is the median of those, given
with a confidence interval from order statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats

from deleverage.engine.montecarlo import _finished_paths
from deleverage.engine.simulate import initial_prices, simulate_lanes
from deleverage.errors import Problem, UserError
from deleverage.market.fx import Translation
from deleverage.results.result import SimulationResult
from deleverage.scenario.loader import scenario_hash
from deleverage.scenario.schema import Scenario
from deleverage.stress.account import NEVER, PERP, UserBook, broker_requirement
from deleverage.stress.loader import exchange_margins
from deleverage.stress.result import BookPaths, BreakingShock, StressResult
from deleverage.stress.schema import Portfolio

SCALABLE = {
    "news": "returns",
    "policy": "returns",
    "earnings": "sensitivity",
    "factor": "betas",
    "rate": "change_bp",
    "fx": "change",
    "flow": "notional_usd",
    "mm_retreat": "depth_multiplier",
}


def run_book(
    scenario: Scenario,
    portfolio: Portfolio,
    seed: int = 0,
    *,
    path: int = 0,
    static: bool = False,
    check_invariants: bool = False,
) -> tuple[SimulationResult, UserBook]:
    """One path with the book in the market (or, `static`, revalued beside it)."""
    return run_books(
        scenario, portfolio, seed, (path,), static=static, check_invariants=check_invariants
    )[0]


def run_books(
    scenario: Scenario | Sequence[Scenario],
    portfolio: Portfolio,
    seed: int,
    paths: Sequence[int],
    *,
    static: bool = False,
    check_invariants: bool = False,
) -> list[tuple[SimulationResult, UserBook]]:
    """`paths` with the book in each, run together as lanes (`simulate_lanes`; `scenario`
    may be one scenario per lane): each lane's result and its book."""
    built: list[UserBook] = []  # the lanes build their books in lane order

    def build(ctx):
        built.append(UserBook(portfolio, ctx, static=static))
        return built[-1]

    results = simulate_lanes(
        scenario, seed, paths, check_invariants=check_invariants, extra=[build]
    )
    return list(zip(results, built, strict=True))


@dataclass(frozen=True)
class Outcome:
    """What one run of the book sends back."""

    equity: np.ndarray  # (T,) USD after each step
    first_call: int  # step, NEVER if none
    liquidation: int  # first forced liquidation (broker or venue), NEVER if none
    held_shortfall: float  # USD: the largest shortfall of the untouched book (static runs)
    equity0: float  # USD at the start prices of the path


def _outcome(book: UserBook) -> Outcome:
    perps = book.perp_liquidation[book.kinds == PERP]
    steps = [s for s in (book.liquidation, *perps) if s != NEVER]
    return Outcome(
        equity=book.record["equity_usd"],
        first_call=book.first_call,
        liquidation=min(steps) if steps else NEVER,
        held_shortfall=float(book.record["held_shortfall_usd"].max()),
        equity0=book.equity0,
    )


def stress_batch(
    scenario: Scenario, portfolio: Portfolio, seed: int, paths: range
) -> list[tuple[int, Outcome, Outcome]]:
    """A batch of paths, the book endogenous and static: two runs of the batch as lanes."""
    endogenous = run_books(scenario, portfolio, seed, paths)
    static = run_books(scenario, portfolio, seed, paths, static=True)
    return [
        (path, _outcome(endo), _outcome(held))
        for path, (_, endo), (_, held) in zip(paths, endogenous, static, strict=True)
    ]


def liquidity_costs(scenario: Scenario, portfolio: Portfolio) -> pd.DataFrame:
    """The order in which to cut positions: cheapest first by the cost of selling the
    whole position into the latent book (square-root law of the engine's book, facts 3.1.5:
    the walk reaches x = Y·σ·√(Q/ADV), the average fill is ⅔ of the way) per dollar of
    margin it releases."""
    index, price0 = scenario.asset_index(), initial_prices(scenario)
    unit_usd0 = Translation.build(scenario).unit_usd(price0)
    rows = []
    for p in portfolio.positions:
        asset = scenario.assets[index[p.asset]]
        unit_usd = unit_usd0[index[p.asset]]
        notional = abs(p.quantity) * unit_usd
        reach = asset.liquidity.impact_y * asset.daily_vol * np.sqrt(notional / asset.adv_usd)
        cost = notional * (1.0 - np.exp(-2.0 / 3.0 * reach))
        margin = p.margin
        if margin.type == "perp":
            released = notional / margin.leverage + margin.wallet_usd
        elif margin.type == "broker":
            released = broker_requirement(notional, margin)
        else:
            released = notional * exchange_margins(scenario, margin, p.asset)[0] / 100.0
        rows.append((p.asset, p.margin.type, notional, cost, released, cost / released))
    frame = pd.DataFrame(
        rows,
        columns=[
            "asset",
            "margin",
            "notional_usd",
            "cost_usd",
            "margin_released_usd",
            "cost_per_margin",
        ],
    )
    return frame.sort_values("cost_per_margin", kind="stable", ignore_index=True)


def stress(
    portfolio: Portfolio,
    scenario: Scenario,
    *,
    paths: int = 1,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> StressResult:
    """Stress `portfolio` in `scenario` over paths 0 … `paths`−1 of `seed`: endogenous and
    static side by side. Results do not depend on `workers`."""
    if paths < 1:
        raise ValueError(f"paths: expected a whole number ≥ 1, found {paths}")
    started = time.perf_counter()
    task = partial(stress_batch, scenario, portfolio, seed)
    outcomes: list = [None] * paths
    finished = _finished_paths(task, paths, min(workers, paths), sized_by=scenario)
    for done, (path, endo, stat) in enumerate(finished, 1):
        outcomes[path] = (endo, stat)
        if progress is not None:
            progress(done, paths)
    return StressResult(
        scenario=scenario,
        portfolio=portfolio,
        seed=seed,
        paths=paths,
        scenario_hash=scenario_hash(scenario),
        times=_step_ends(scenario),
        equity0=outcomes[0][0].equity0,
        endogenous=_stack([o[0] for o in outcomes]),
        static=_stack([o[1] for o in outcomes]),
        held_shortfall=np.array([o[1].held_shortfall for o in outcomes]),
        cut_order=liquidity_costs(scenario, portfolio),
        wall_seconds=time.perf_counter() - started,
    )


def _step_ends(scenario: Scenario) -> pd.DatetimeIndex:
    clock = scenario.clock
    return pd.date_range(clock.start, periods=clock.n_steps, freq=clock.step) + clock.step


def _stack(outcomes: list[Outcome]) -> BookPaths:
    return BookPaths(
        equity=np.vstack([o.equity for o in outcomes]),
        first_call=np.array([o.first_call for o in outcomes]),
        liquidation=np.array([o.liquidation for o in outcomes]),
    )


# --------------------------------------------------------------------------- reverse stress


def scale_shocks(scenario: Scenario, scale: float, name: str | None = None) -> Scenario:
    """The scenario with the size of shock `name` (its label or type; None: every shock
    whose size is a number) multiplied by `scale`. A depth multiplier m becomes m**scale."""
    shocks, matched = [], False
    for shock in scenario.shocks:
        hit = name is None or name in (shock.label, shock.type)
        field = SCALABLE.get(shock.type)
        if not hit or field is None:
            shocks.append(shock)
            continue
        matched = True
        value = getattr(shock, field)
        if isinstance(value, dict):
            value = {k: v * scale for k, v in value.items()}
        elif field == "depth_multiplier":
            value = value**scale
        else:
            value = value * scale
        update = {field: value}
        if shock.type == "mm_retreat":
            update["gap_pct"] = shock.gap_pct * scale
        shocks.append(shock.model_copy(update=update))
    if not matched:
        names = sorted({s.label or s.type for s in scenario.shocks if s.type in SCALABLE})
        known = ", ".join(names) or "none"
        message = f"expected a scalable shock label or type ({known}), found none"
        raise UserError([Problem("--find-breaking-shock", name or "all", message)])
    return scenario.model_copy(update={"shocks": shocks})


def breaking_scales(
    scenario: Scenario,
    portfolio: Portfolio,
    seed: int,
    name: str | None,
    max_scale: float,
    tolerance: float,
    paths: range,
) -> list[tuple[int, float]]:
    """For each of `paths`, the smallest scale in [0, max_scale] at which the path
    liquidates the book (inf if none does), to `tolerance`, by bisection (a path is taken
    to break at every larger scale). The paths bisect in step, as lanes of one run per
    round: each lane is its path at its own scale."""

    def breaks(scales: list[float], which: list[int]) -> list[bool]:
        scenarios = [scale_shocks(scenario, s, name) for s in scales]
        runs = run_books(scenarios, portfolio, seed, which)
        return [_outcome(book).liquidation != NEVER for _, book in runs]

    found = dict.fromkeys(paths, float("inf"))
    hits = breaks([max_scale] * len(paths), list(paths))
    left = [p for p, hit in zip(paths, hits, strict=True) if hit]
    at_zero = breaks([0.0] * len(left), left) if left else []
    found |= {p: 0.0 for p, hit in zip(left, at_zero, strict=True) if hit}
    left = [p for p, hit in zip(left, at_zero, strict=True) if not hit]
    low, high = dict.fromkeys(left, 0.0), dict.fromkeys(left, max_scale)
    while left := [p for p in left if high[p] - low[p] > tolerance]:
        mids = [0.5 * (low[p] + high[p]) for p in left]
        for p, mid, hit in zip(left, mids, breaks(mids, left), strict=True):
            low[p], high[p] = (low[p], mid) if hit else (mid, high[p])
    found |= high
    return [(p, found[p]) for p in paths]


def find_breaking_shock(
    portfolio: Portfolio,
    scenario: Scenario,
    *,
    shock: str | None = None,
    paths: int = 20,
    seed: int = 0,
    max_scale: float = 4.0,
    tolerance: float = 0.05,
    confidence: float = 0.9,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> BreakingShock:
    """The scale of `shock` (None: all shocks) at which the book is liquidated in ≥ 50% of
    paths: the median of the per-path breaking scales, with the order-statistic interval
    that holds the median with probability ≥ `confidence`."""
    scale_shocks(scenario, 1.0, shock)  # a name that matches nothing fails before any run
    task = partial(breaking_scales, scenario, portfolio, seed, shock, max_scale, tolerance)
    scales = np.full(paths, np.nan)
    for done, (path, value) in enumerate(_finished_paths(task, paths, min(workers, paths)), 1):
        scales[path] = value
        if progress is not None:
            progress(done, paths)
    ordered = np.sort(scales)
    # order statistics (j, k) around the median: P(X_(j) ≤ median ≤ X_(k)) ≥ confidence
    # (1-based j, n − j + 1); with too few paths for the confidence: the extremes
    j = max(int(stats.binom.ppf((1.0 - confidence) / 2.0, paths, 0.5)), 1)
    return BreakingShock(
        shock=shock or "all",
        scales=scales,
        median=float(np.median(ordered)),
        low=float(ordered[j - 1]),
        high=float(ordered[paths - j]),
        confidence=confidence,
        max_scale=max_scale,
        tolerance=tolerance,
    )

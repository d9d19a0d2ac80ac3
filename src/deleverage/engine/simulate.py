"""Run one path of a scenario: build the market and populations, advance `step` over the
clock, check the invariants on request, and collect the result (SPEC §3, §10)."""

from __future__ import annotations

import os
import secrets
import time as wallclock
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deleverage.engine.state import MarketParams, MarketState, half_life_share
from deleverage.engine.step import RECORDED, Lane, StepInputs, TradeTape, step
from deleverage.engine.timeline import Timeline, compile_timeline
from deleverage.market.calendar import Calendar, build_calendar
from deleverage.market.cross_impact import CrossImpact
from deleverage.market.lanes import stack_lanes
from deleverage.market.limits import PriceLimits
from deleverage.market.makers import MarketMakers
from deleverage.market.outage_triggers import OutageTriggers
from deleverage.populations import REGISTRY, BuildContext, EndInvestors, Population
from deleverage.populations.lanes import stack_populations
from deleverage.results.events import EventLog
from deleverage.results.result import SimulationResult
from deleverage.results.targets import snapshot_open_interest
from deleverage.scenario.loader import (
    correlation_matrix,
    load_scenario,
    sample_uncertain,
    scenario_hash,
)
from deleverage.scenario.schema import Scenario
from deleverage.scenario.series import history_series

__all__ = ["RECORDED", "initial_prices", "rng_stream", "simulate", "simulate_lanes"]


def rng_stream(seed: int, path: int, key: str) -> np.random.Generator:
    """Independent stream per (seed, path, key): adding a population shifts no other draws."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(path, zlib.crc32(key.encode())))
    )


def initial_prices(scenario: Scenario) -> np.ndarray:
    """`price` where given, else the last point of the asset's history at or before start."""
    start = scenario.clock.start
    return np.array(
        [
            a.price if a.price is not None else float(history_series(a.history, start).iloc[-1])
            for a in scenario.assets
        ]
    )


def _noise(rng: np.random.Generator, chol: np.ndarray, n: int, df: float | None) -> np.ndarray:
    z = rng.standard_normal((n, chol.shape[0])) @ chol.T
    if df is None:
        return z
    scale = np.sqrt(rng.chisquare(df, (n, 1)) / (df - 2.0))  # unit-variance multivariate t
    return z / scale


def _history_vol(scenario: Scenario) -> np.ndarray:
    """Realized daily volatility over the last 20 returns of each asset's history (per
    calendar day of spacing, median; trading-day series count one day between closes), or
    the asset's normal `daily_vol` without a history of at least 3 points."""
    vols = []
    for asset in scenario.assets:
        series = (
            None if asset.history is None else history_series(asset.history, scenario.clock.start)
        )
        if series is None or len(series) < 3:
            vols.append(asset.daily_vol)
            continue
        tail = series.iloc[-21:]
        returns = np.diff(np.log(tail.to_numpy(float)))
        spacing = np.median(np.diff(tail.index.asi8)) / 86_400e9
        vols.append(float(np.sqrt(np.mean(returns**2) / max(spacing, 1.0))))
    return np.array(vols)


def _market_makers(scenario: Scenario, params: MarketParams) -> MarketMakers:
    spec, clock = scenario.market.market_makers, scenario.clock
    adv = np.array([a.adv_usd for a in scenario.assets])
    return MarketMakers.create(
        np.array([a.daily_vol for a in scenario.assets]),
        adv,
        params.steps_per_day,
        vol_decay=0.5 ** (clock.step / spec.vol_half_life),
        vol_sensitivity=spec.vol_sensitivity,
        depth_floor=spec.depth_floor,
        inventory_limit_usd=spec.inventory_limit_adv * adv,
        lay_off_share=half_life_share(clock.step, spec.inventory_half_life),
        fast_decay=0.5 ** (clock.step / spec.fast_vol_half_life),
        imbalance_decay=0.5 ** (clock.step / spec.imbalance_half_life),
        imbalance_tolerance=spec.imbalance_tolerance,
        recovery_share=half_life_share(clock.step, spec.recovery_half_life),
        visible_floor=spec.visible_depth_floor,
        initial_vol=_history_vol(scenario),
        has_visible=params.has_visible,
    )


class Invariants:
    """Conservation of each asset's units and of cash per currency across all agents
    (SPEC §10): totals at every step against the start, relative to the units held and
    traded and to the cash held (summed over agents without sign: a sum of balances of
    $2bn is exact to ≈ 1e-7 dollars) and traded; and
    each population's own balance sheet: a population that keeps trade ledgers apart from
    its account arrays (`recomputed_totals`) must find the same units and cash in both, so
    money moved inside it (fees, funding, takeovers, ADL) cannot vanish unseen.

    A balance sheet costs a pass over every account, so it is recomputed every
    `LEDGER_EVERY` steps and once more when the drifts are read: money that vanished stays
    missing, so a later check still sees it."""

    TOLERANCE = 1e-9  # relative drift beyond which `broken` reports a violation
    LEDGER_EVERY = 64  # steps between balance-sheet recomputations

    def __init__(
        self, params: MarketParams, makers: MarketMakers, lane: int, populations: list[Population]
    ):
        """`params` of the lane's own path; `makers` of the batch, whose row `lane` is it."""
        self.params, self.makers, self.lane, self.populations = params, makers, lane, populations
        self.currencies = sorted({"USD", *params.currency_of})
        self.units_start, self.cash_start = self.totals()
        self._unit_drift = self._cash_drift_usd = self._cash_drift_ratio = 0.0
        self.checks = 0
        self._ledgers = [p for p in populations if hasattr(p, "recomputed_totals")]
        self._ledger_due: tuple[np.ndarray, np.ndarray] | None = None  # unit, cash scales

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        units, cash, _ = self._totals()
        return units, cash

    def _totals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Units per asset, cash per currency, and the cash held per currency summed
        without sign over the desks (per asset) and the populations."""
        n_assets = len(self.params.price0)
        inventory, maker_cash = self.makers.inventory[self.lane], self.makers.cash[self.lane]
        units = inventory + sum(p.holdings(n_assets) for p in self.populations)
        cash, held = np.zeros(len(self.currencies)), np.zeros(len(self.currencies))
        for a, currency in enumerate(self.params.currency_of):
            cash[self.currencies.index(currency)] += maker_cash[a]
            held[self.currencies.index(currency)] += abs(maker_cash[a])
        for population in self.populations:
            for currency, amount in population.cash_by_currency().items():
                cash[self.currencies.index(currency)] += amount
                held[self.currencies.index(currency)] += abs(amount)
        return units, cash, held

    def check(self, tape: TradeTape) -> None:
        units, cash, held = self._totals()
        scale = 1.0 + np.abs(self.units_start) + tape.units[self.lane]
        currency_of, tape_cash = self.params.currency_of, tape.cash[self.lane]
        traded = np.array(
            [tape_cash[[c == name for c in currency_of]].sum() for name in self.currencies]
        )
        cash_scale = traded + held
        self._record(
            np.abs(units - self.units_start) / scale, np.abs(cash - self.cash_start), cash_scale
        )
        self.checks += 1
        self._ledger_due = (scale, cash_scale)
        if self.checks % self.LEDGER_EVERY == 0:
            self._check_ledgers()

    def _record(self, unit_drift: np.ndarray, cash_drift: np.ndarray, cash_scale: np.ndarray):
        """`cash_scale`: cash traded and held per currency (the ratio is to 1 + it)."""
        self._unit_drift = max(self._unit_drift, float(np.max(unit_drift, initial=0.0)))
        usd = float(cash_drift[self.currencies.index("USD")])
        self._cash_drift_usd = max(self._cash_drift_usd, usd)
        self._cash_drift_ratio = max(
            self._cash_drift_ratio, float(np.max(cash_drift / (1.0 + cash_scale)))
        )

    def _check_ledgers(self) -> None:
        """Each ledger population's units and cash against its recomputed balance sheet."""
        if self._ledger_due is None:
            return
        scale, cash_scale = self._ledger_due
        self._ledger_due = None
        n_assets = len(self.params.price0)
        for population in self._ledgers:
            own_units, own_cash = population.recomputed_totals(n_assets)
            cash_drift = np.zeros(len(self.currencies))
            ledger = population.cash_by_currency()
            for currency, amount in own_cash.items():
                cash_drift[self.currencies.index(currency)] = abs(amount - ledger.get(currency, 0))
            unit_drift = np.abs(own_units - population.holdings(n_assets)) / scale
            self._record(unit_drift, cash_drift, cash_scale)

    @property
    def max_unit_drift(self) -> float:
        self._check_ledgers()
        return self._unit_drift

    @property
    def max_cash_drift_usd(self) -> float:
        self._check_ledgers()
        return self._cash_drift_usd

    @property
    def max_cash_drift_ratio(self) -> float:
        self._check_ledgers()
        return self._cash_drift_ratio

    @classmethod
    def broken(cls, diagnostics: dict) -> str | None:
        """A description of the violated invariant in a run's diagnostics, or None."""
        for key, value in diagnostics.items():
            measured = key.endswith(("max_unit_drift", "max_cash_drift_ratio"))
            if measured and not value <= cls.TOLERANCE:
                return f"{key} = {value:.3g} exceeds {cls.TOLERANCE:g}"
        return None


@dataclass
class _Path:
    """One path built for the step loop: its scenario draw, market, agents and streams."""

    scenario: Scenario
    path: int
    calendar: Calendar
    timeline: Timeline
    params: MarketParams
    state: MarketState
    limits: PriceLimits | None
    cross: CrossImpact | None
    triggers: OutageTriggers | None
    lane: Lane
    noise_rng: np.random.Generator
    chol: np.ndarray
    df: float | None


def _build_path(scenario: Scenario, seed: int, path: int, extra) -> _Path:
    scenario = sample_uncertain(scenario, rng_stream(seed, path, "uncertain"))
    channels = scenario.channels
    calendar = build_calendar(scenario)
    price0 = initial_prices(scenario)
    timeline = compile_timeline(scenario, calendar.step_starts, price0)
    if not channels.mm_retreat:  # the channel is market makers' withdrawal, endogenous or shocked
        timeline.retreat[:] = 1.0
        timeline.gap[:] = 0.0
    params = MarketParams.build(scenario, calendar, timeline, price0)
    state = MarketState.initial(scenario, params, _market_makers(scenario, params))
    investors = EndInvestors(timeline.flow_usd, params.asset_ids, params.currency_of)
    index = scenario.asset_index()
    populations: list[Population] = [investors]
    for spec in scenario.populations:
        builder, channel = REGISTRY[spec.type]
        context = BuildContext(
            scenario,
            index,
            price0,
            rng_stream(seed, path, f"population:{spec.name}"),
            getattr(channels, channel),
            params.step_hours,
            calendar,
        )
        populations.append(builder(spec, context))
    for j, build in enumerate(extra):
        rng = rng_stream(seed, path, f"extra:{j}")
        populations.append(
            build(BuildContext(scenario, index, price0, rng, True, params.step_hours))
        )
    return _Path(
        scenario=scenario,
        path=path,
        calendar=calendar,
        timeline=timeline,
        params=params,
        state=state,
        limits=PriceLimits.build(scenario, calendar.step_starts, params.asset_settles, price0),
        cross=CrossImpact.build(scenario, params.resolved, params.permanent),
        triggers=OutageTriggers.build(scenario, calendar, params.asset_open),  # price-started
        lane=Lane(populations, EventLog()),
        noise_rng=rng_stream(seed, path, "noise"),
        chol=np.linalg.cholesky(correlation_matrix(scenario)),
        df=scenario.market.correlation.student_df,
    )


def _scenario(scenario) -> Scenario:
    if isinstance(scenario, str | os.PathLike):
        scenario = load_scenario(scenario)
    if not isinstance(scenario, Scenario):
        raise TypeError(
            f"simulate: expected a Scenario, a preset name or a scenario file path, "
            f"found {type(scenario).__name__}"
        )
    return scenario


def _seed(seed) -> int:
    if seed is None:
        seed = secrets.randbits(63)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise ValueError(f"simulate: expected a seed in [0, 2^63), found {seed!r}")
    return int(seed)


def simulate(
    scenario: Scenario | str | os.PathLike,
    seed: int | None = 0,
    *,
    path: int = 0,
    check_invariants: bool = False,
    progress: Callable[[int, int], None] | None = None,
    extra: Sequence[Callable[[BuildContext], Population]] = (),
) -> SimulationResult:
    """Run one path of `scenario` (a `Scenario`, a preset name or a scenario file). Same
    scenario and seed give bit-identical results; `seed=None` draws a fresh seed, recorded
    in the result (`result.seed`) so the run can be repeated. `extra` builds accounts from
    outside the scenario (e.g. a user's book, `stress`). The path is a batch of one lane:
    `simulate_lanes` with more paths gives each the same result, bit for bit."""
    if isinstance(scenario, list | tuple):
        raise TypeError("simulate: expected one scenario; several run as lanes: simulate_lanes")
    return simulate_lanes(
        scenario, seed, (path,), check_invariants=check_invariants, progress=progress, extra=extra
    )[0]


def simulate_lanes(
    scenario: Scenario | str | os.PathLike | Sequence[Scenario],
    seed: int | None = 0,
    paths: Sequence[int] = (0,),
    *,
    check_invariants: bool = False,
    progress: Callable[[int, int], None] | None = None,
    extra: Sequence[Callable[[BuildContext], Population]] = (),
) -> list[SimulationResult]:
    """Run `paths` of `scenario` together, as lanes: the market's arrays get a leading lane
    axis and one `step` advances every path, so the engine's cost per round is paid once
    for the batch while each path's populations trade on their own row. Lane j is
    bit-identical to `simulate(scenario, seed, path=paths[j])`. `scenario` may also be a
    sequence of scenarios, one per lane (as many as `paths`): variants of one scenario —
    other channels (the coalitions of `explain`), shocks or parameters — that share the
    clock, the assets, the venues and which market rules exist (`_same_structure`;
    ValueError otherwise). Results in lane order; each result's `wall_seconds` is the
    batch's wall time ÷ its lanes."""
    started = wallclock.perf_counter()
    if isinstance(scenario, list | tuple):
        if len(scenario) != len(paths):
            raise ValueError(
                f"simulate_lanes: expected one scenario per path, found {len(scenario)} "
                f"scenarios for {len(paths)} paths"
            )
        scenarios = [_scenario(one) for one in scenario]
    else:
        scenarios = [_scenario(scenario)] * len(paths)
    seed = _seed(seed)
    if not paths:
        return []
    _same_structure(scenarios)
    built = [
        _build_path(one, seed, path, extra) for one, path in zip(scenarios, paths, strict=True)
    ]
    n_lanes = len(built)
    clock = built[0].scenario.clock
    n_assets, n_steps = len(built[0].params.price0), clock.n_steps
    params = stack_lanes([b.params for b in built])
    state = stack_lanes([b.state for b in built])
    makers = state.makers
    lanes = [b.lane for b in built]
    slots = stack_populations([lane.populations for lane in lanes])
    limits = _stacked(PriceLimits, [b.limits for b in built])
    cross = _stacked(CrossImpact, [b.cross for b in built])
    triggers = _stacked(OutageTriggers, [b.triggers for b in built], params.asset_open)
    jumps, driver, retreat, gap = (
        np.stack([getattr(b.timeline, name) for b in built], axis=1)  # (T, L, A): step first
        for name in ("jumps", "driver", "retreat", "gap")
    )
    driven = ~np.isnan(driver).all(axis=(1, 2))  # steps where an asset follows a driver
    steps_with = _per_step_events(built)

    rec = {name: np.full((n_steps + 1, n_lanes, n_assets), np.nan) for name in RECORDED}
    price0 = params.price0
    rec["price"][0], rec["reference"][0], rec["impact_log"][0] = price0, price0, 0.0
    rec["depth_bid"][0] = rec["depth_ask"][0] = 1.0
    rec["realized_vol"][0] = makers.realized_vol
    rec["volume_usd"][0] = rec["net_flow_units"][0] = rec["mm_inventory_units"][0] = 0.0
    rounds_used = np.zeros((n_steps, n_lanes), dtype=np.int32)
    round_limit_hits = np.zeros(n_lanes, dtype=np.int64)
    funds = [[p for p in lane.populations if hasattr(p, "gross_leverage")] for lane in lanes]
    leverage = [np.full((n_steps + 1, len(f)), np.nan) for f in funds]
    record_leverage = _leverage_recorder(lanes, slots, funds, leverage)
    record_leverage(0, price0)

    invariants = (
        [Invariants(b.params, makers, j, b.lane.populations) for j, b in enumerate(built)]
        if check_invariants
        else []
    )
    tape = TradeTape(np.zeros((n_lanes, n_assets)), np.zeros((n_lanes, n_assets)))

    # hourly open-interest snapshots for open_interest_change targets (results.targets)
    step_starts = built[0].calendar.step_starts
    step_ends = step_starts + pd.Timedelta(clock.step)
    on_the_hour = (step_ends.minute == 0) & (step_ends.second == 0)
    snapshot = np.asarray(on_the_hour) | (np.arange(n_steps) == n_steps - 1)
    for lane, lane_price0 in zip(lanes, price0, strict=True):
        lane.log.step = -1
        snapshot_open_interest(lane.populations, lane_price0, lane.log)

    chunk, noise_block = 2048, None
    times = step_starts.to_list()  # Timestamps, not one pandas lookup a step
    nothing = ((),) * n_lanes
    for k in range(n_steps):
        if k % chunk == 0:
            n = min(chunk, n_steps - k)
            noise_block = np.stack([_noise(b.noise_rng, b.chol, n, b.df) for b in built], axis=1)
        labels, margin, outages = steps_with.get(k, (nothing, nothing, nothing))
        if triggers is not None:
            fired = triggers.check(k, rec["price"][: k + 1])
            outages = tuple(o + f for o, f in zip(outages, fired, strict=True))
        inputs = StepInputs(
            k=k,
            time=times[k],
            noise=noise_block[k % chunk],
            jumps=jumps[k],
            driver=driver[k],
            retreat=retreat[k],
            gap=gap[k],
            labels=labels,
            margin_events=margin,
            outages=outages,
            driven=bool(driven[k]),
        )
        record = step(state, params, inputs, lanes, tape, limits, cross, slots)
        if snapshot[k]:
            for lane, lane_price in zip(lanes, record.values["price"], strict=True):
                snapshot_open_interest(lane.populations, lane_price, lane.log)
        rounds_used[k] = record.rounds
        round_limit_hits += record.round_limit_hit
        for name, values in record.values.items():
            rec[name][k + 1] = values
        record_leverage(k + 1, record.values["price"])
        for check in invariants:
            check.check(tape)
        if progress is not None and (k % 256 == 0 or k == n_steps - 1):
            progress(k + 1, n_steps)

    times = pd.DatetimeIndex([clock.start], tz="UTC").append(step_ends)
    wall = (wallclock.perf_counter() - started) / n_lanes
    results = []
    for j, b in enumerate(built):
        check = invariants[j] if invariants else None
        diagnostics = {
            "round_limit_hits": int(round_limit_hits[j]),
            "shocks_after_last_step": b.timeline.dropped,
            "orders_waiting_at_end": int(
                sum(np.count_nonzero(p.orders().quantity) for p in b.lane.populations)
            ),
            "max_unit_drift": check.max_unit_drift if check else 0.0,
            "max_cash_drift_usd": check.max_cash_drift_usd if check else 0.0,
            "max_cash_drift_ratio": check.max_cash_drift_ratio if check else 0.0,
            "invariant_checks": check.checks if check else 0,
        }
        results.append(
            SimulationResult(
                scenario=b.scenario,
                seed=seed,
                path=b.path,
                scenario_hash=scenario_hash(b.scenario),
                times=times,
                market={name: np.ascontiguousarray(values[:, j]) for name, values in rec.items()},
                rounds=np.ascontiguousarray(rounds_used[:, j]),
                events=b.lane.log.frame(),
                diagnostics=diagnostics,
                wall_seconds=wall,
                fund_leverage={p.name: leverage[j][:, f] for f, p in enumerate(funds[j])},
            )
        )
    return results


def _leverage_recorder(lanes: list[Lane], slots: list, funds: list, leverage: list):
    """record(row, price (L, A)): each fund population's gross leverage into its lane's
    `leverage[lane][row]`, a stacked slot's for every lane at once where it can
    (`gross_leverage_lanes`), the others lane by lane."""
    shared = []  # (slot, the population's column in each lane's record)
    for i, slot in enumerate(slots):
        if slot is not None and hasattr(slot, "gross_leverage_lanes"):
            columns = [
                lane_funds.index(lane.populations[i])
                for lane, lane_funds in zip(lanes, funds, strict=True)
            ]
            shared.append((slot, columns))
    taken = [{columns[j] for _, columns in shared} for j in range(len(lanes))]
    single = [  # (lane, column, population) valued lane by lane
        (j, column, p)
        for j, lane_funds in enumerate(funds)
        for column, p in enumerate(lane_funds)
        if column not in taken[j]
    ]

    def record(row: int, price: np.ndarray) -> None:
        for slot, columns in shared:
            for lane_leverage, column, value in zip(
                leverage, columns, slot.gross_leverage_lanes(price), strict=True
            ):
                lane_leverage[row, column] = value
        for j, column, p in single:
            leverage[j][row, column] = p.gross_leverage(price[j])

    return record


def _same_structure(scenarios: list[Scenario]) -> None:
    """Lanes share what lines their arrays up and what the engine builds once for all:
    the clock, the assets (ids and quote currencies), the venues, and whether there are
    price limits, circuit breakers, cross-impact links and triggered outages (their sizes
    may differ: bands, levels, coefficients, thresholds). ValueError naming what differs,
    before anything is built."""

    def shape(s: Scenario) -> dict:
        market = s.market
        return {
            "clock": s.clock,
            "assets": [(a.id, a.currency, a.venue) for a in s.assets],
            "venues": [v.id for v in s.venues],
            "price limits": [limit.asset for limit in market.price_limits],
            "circuit breakers": [
                (b.index, b.assets, len(b.levels)) for b in market.circuit_breakers
            ],
            "cross-impact links": [(i, j) for i, j, _ in market.cross_impact],
            "triggered outages": [
                (v.id, r.asset, r.direction, r.repeat)
                for v in s.venues
                for r in v.triggered_outages
            ],
        }

    first = shape(scenarios[0])
    for one in scenarios[1:]:
        for what, value in shape(one).items():
            if value != first[what]:
                raise ValueError(
                    f"simulate_lanes: expected every lane's scenario with the same {what}"
                )


def _stacked(cls, objects: list, *args):
    """The lanes' objects of `cls` as one laned object (`cls.stack`), or None when the
    scenario has none (lanes share that structure: `_same_structure`)."""
    if objects[0] is None:
        return None
    return cls.stack(objects, *args)


def _per_step_events(built: list[_Path]) -> dict[int, tuple[tuple, tuple, tuple]]:
    """Steps at which some lane announces a shock, a margin change or a scheduled outage:
    step -> (labels, margin events, outages), each one tuple per lane."""
    per_lane = []
    for b in built:
        calendar, timeline = b.calendar, b.timeline
        margin: dict[int, tuple] = {}
        for event in timeline.margin:
            margin[event.step] = (*margin.get(event.step, ()), event)
        outage_start = calendar.outage & ~np.concatenate(
            [np.zeros((len(calendar.outage), 1), bool), calendar.outage[:, :-1]], axis=1
        )
        venue_ids = [v.id for v in b.scenario.venues]
        outages: dict[int, tuple[str, ...]] = {}  # step -> venues whose outage starts then
        for v, k in zip(*np.nonzero(outage_start), strict=True):
            outages[int(k)] = (*outages.get(int(k), ()), venue_ids[v])
        labels = {k: tuple(found) for k, found in timeline.labels.items()}
        per_lane.append((labels, margin, outages))
    steps = sorted({k for lane in per_lane for events in lane for k in events})
    return {
        k: tuple(tuple(lane[j].get(k, ()) for lane in per_lane) for j in range(3)) for k in steps
    }

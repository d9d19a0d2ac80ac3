"""The step loop (SPEC §3): exogenous moves, book refill, market-maker depth, and the
intra-step cascade of batched clearing rounds until no new forced order appears.

Per step, for every asset at once:
  1. the book refills (transient impact resolves, partly into the reference price);
  2. correlated noise and shock jumps move the reference (jumps on a closed venue wait);
     driven assets follow their observed series;
  3. market makers set depth from realized volatility, inventory and any retreat;
  4. rounds: populations mark to market and send orders; orders on open venues are netted
     per asset and walk the latent book once; everyone trades at the average price of
     that walk; repeat while new orders arrive (up to `max_rounds`, reported when hit);
  5. realized volatility is updated and desks lay inventory off to end investors.
"""

from __future__ import annotations

import time as wallclock
import zlib
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd

from deleverage.engine.timeline import compile_timeline
from deleverage.market import book
from deleverage.market.calendar import build_calendar
from deleverage.market.makers import MarketMakers
from deleverage.populations import REGISTRY, BuildContext, EndInvestors, MarketView, Population
from deleverage.results.events import EventLog
from deleverage.results.result import SimulationResult
from deleverage.scenario.loader import correlation_matrix, sample_uncertain, scenario_hash
from deleverage.scenario.schema import Scenario
from deleverage.scenario.series import history_series

RECORDED = (
    "price",
    "reference",
    "impact_log",
    "depth_bid",
    "depth_ask",
    "realized_vol",
    "volume_usd",
    "net_flow_units",
    "mm_inventory_units",
)


def rng_stream(seed: int, path: int, key: str) -> np.random.Generator:
    """Independent stream per (seed, path, key): adding a population shifts no other draws."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(path, zlib.crc32(key.encode())))
    )


def _half_life_share(step: timedelta, half_life: timedelta) -> float:
    """Share of a quantity that decays in one step given its half-life."""
    return 1.0 - 0.5 ** (step / half_life)


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


def simulate(
    scenario: Scenario,
    seed: int = 0,
    *,
    path: int = 0,
    check_invariants: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Run one path of `scenario`. Same scenario and seed give bit-identical results."""
    started = wallclock.perf_counter()
    scenario = sample_uncertain(scenario, rng_stream(seed, path, "uncertain"))
    clock, market, channels = scenario.clock, scenario.market, scenario.channels
    assets, venues = scenario.assets, scenario.venue_index()
    asset_ids = [a.id for a in assets]
    n_assets, n_steps = len(assets), clock.n_steps
    calendar = build_calendar(scenario)
    venue_of = np.array([venues[a.venue] for a in assets])
    asset_open = calendar.open[venue_of]  # (A, T)

    price0 = initial_prices(scenario)
    timeline = compile_timeline(scenario, calendar.step_starts, price0)
    if not channels.mm_retreat:  # the channel is market makers' withdrawal, endogenous or shocked
        timeline.retreat[:] = 1.0
        timeline.gap[:] = 0.0

    vol = np.array([a.daily_vol for a in assets])
    adv = np.array([a.adv_usd for a in assets])
    impact_y = np.array([a.liquidity.impact_y for a in assets])
    permanent = np.array([a.liquidity.permanent_fraction for a in assets])
    resolved = np.array(
        [_half_life_share(clock.step, a.liquidity.resilience_half_life) for a in assets]
    )
    # One unit of a USD-quoted asset is worth its price; one unit of a USD/xxx pair is $1.
    usd_base = np.array([a.currency != "USD" for a in assets])
    unit_usd0 = np.where(usd_base, 1.0, price0)
    hours = np.array([scenario.venues[v].session.hours_per_day for v in venue_of])
    steps_per_day = hours * 3600.0 / clock.step.total_seconds()
    noise_sd = market.noise_scale * vol / np.sqrt(steps_per_day)
    driven = ~np.all(np.isnan(timeline.driver), axis=0)
    noise_sd[driven] = 0.0

    mm_spec = market.market_makers
    makers = MarketMakers.create(
        vol,
        adv,
        steps_per_day,
        vol_decay=0.5 ** (clock.step / mm_spec.vol_half_life),
        vol_sensitivity=mm_spec.vol_sensitivity,
        depth_floor=mm_spec.depth_floor,
        inventory_limit_usd=mm_spec.inventory_limit_adv * adv,
        lay_off_share=_half_life_share(clock.step, mm_spec.inventory_half_life),
    )
    investors = EndInvestors(timeline.flow_usd, asset_ids, [a.currency for a in assets])
    index = scenario.asset_index()
    populations: list[Population] = [investors]
    step_hours = clock.step.total_seconds() / 3600.0
    for spec in scenario.populations:
        builder, channel = REGISTRY[spec.type]
        context = BuildContext(
            scenario,
            index,
            price0,
            rng_stream(seed, path, f"population:{spec.name}"),
            getattr(channels, channel),
            step_hours,
        )
        populations.append(builder(spec, context))

    log = EventLog()
    noise_rng = rng_stream(seed, path, "noise")
    chol = np.linalg.cholesky(correlation_matrix(scenario))
    df = market.correlation.student_df

    initial_margin = np.array(
        [np.nan if a.initial_margin_pct is None else a.initial_margin_pct for a in assets]
    )
    maintenance_margin = np.array(
        [np.nan if a.maintenance_margin_pct is None else a.maintenance_margin_pct for a in assets]
    )
    duration = np.array([a.duration_years or np.nan for a in assets])
    yield0 = np.array([np.nan if a.yield_pct is None else a.yield_pct for a in assets])
    asset_settles = calendar.settlement[venue_of]  # (A, T)

    log_ref = np.log(price0)
    log_anchor = log_ref.copy()
    pull = np.array(
        [
            0.0
            if a.fundamental_half_life is None
            else _half_life_share(clock.step, a.fundamental_half_life)
            for a in assets
        ]
    )
    x = np.zeros(n_assets)  # book displacement (transient impact), log units
    pending_jump = np.zeros(n_assets)

    def unit_usd(price: np.ndarray) -> np.ndarray:
        return np.where(usd_base, 1.0, price)

    lam0 = book.base_depth_units(adv, vol, impact_y, unit_usd0)

    rec = {name: np.full((n_steps + 1, n_assets), np.nan) for name in RECORDED}
    rec["price"][0], rec["reference"][0], rec["impact_log"][0] = price0, price0, 0.0
    rec["depth_bid"][0] = rec["depth_ask"][0] = 1.0
    rec["realized_vol"][0] = vol
    rec["volume_usd"][0] = rec["net_flow_units"][0] = rec["mm_inventory_units"][0] = 0.0
    rounds_used = np.zeros(n_steps, dtype=np.int32)
    diagnostics = {
        "round_limit_hits": 0,
        "shocks_after_last_step": timeline.dropped,
        "orders_waiting_at_end": 0,
        "max_unit_drift": 0.0,
        "max_cash_drift_usd": 0.0,
        "max_cash_drift_ratio": 0.0,
        "invariant_checks": 0,
    }

    currency_of = [a.currency for a in assets]
    currencies = sorted({"USD", *currency_of})

    def totals() -> tuple[np.ndarray, np.ndarray]:
        """Units per asset and cash per currency held by all agents."""
        units = makers.inventory + sum(p.holdings(n_assets) for p in populations)
        cash = np.zeros(len(currencies))
        for a, currency in enumerate(currency_of):
            cash[currencies.index(currency)] += makers.cash[a]
        for population in populations:
            for currency, amount in population.cash_by_currency().items():
                cash[currencies.index(currency)] += amount
        return units, cash

    units_start, cash_start = totals()
    units_traded = np.zeros(n_assets)  # gross, for the scale of rounding in the unit check
    cash_traded = np.zeros(n_assets)  # gross, in each asset's quote currency
    margin_by_step: dict[int, list] = {}
    for event in timeline.margin:
        margin_by_step.setdefault(event.step, []).append(event)
    outage_start = calendar.outage & ~np.concatenate(
        [np.zeros((len(venues), 1), bool), calendar.outage[:, :-1]], axis=1
    )
    venue_ids = list(venues)

    chunk, noise_block = 2048, None
    for k in range(n_steps):
        log.step, log.round = k, 0
        if k % chunk == 0:
            noise_block = _noise(noise_rng, chol, min(chunk, n_steps - k), df)
        is_open = asset_open[:, k]
        step_start = calendar.step_starts[k]
        log_price_start = log_ref + x

        # 1. the book refills between steps
        x, log_ref = book.refill(x, log_ref, np.where(is_open, resolved, 0.0), permanent)
        # 2. exogenous moves: noise while open, jumps wait for the open, drivers replace
        log_ref -= np.where(is_open, pull, 0.0) * (log_ref - log_anchor)
        pending_jump += timeline.jumps[k]
        log_ref += np.where(is_open, noise_block[k % chunk] * noise_sd + pending_jump, 0.0)
        pending_jump[is_open] = 0.0
        target = timeline.driver[k]
        follow = ~np.isnan(target)
        log_ref[follow] = target[follow]
        for kind, label in timeline.labels.get(k, ()):
            log.add("shock", detail=f"{kind}: {label}")
        for event in margin_by_step.get(k, ()):
            if event.kind == "effective":
                initial_margin[index[event.asset]] = event.initial_pct
                maintenance_margin[index[event.asset]] = event.maintenance_pct
            log.add(
                f"margin_{event.kind}",
                venue=event.venue,
                asset=event.asset,
                detail=f"initial {event.initial_pct}% maintenance {event.maintenance_pct}%",
            )
        for v in np.flatnonzero(outage_start[:, k]):
            log.add("outage", venue=venue_ids[v])

        # 3. market-maker depth
        reference = np.exp(log_ref)
        depth_bid, depth_ask = makers.depth(
            unit_usd(reference * np.exp(x)), timeline.retreat[k], channels.mm_retreat
        )
        lam_bid, lam_ask = (
            lam0 * depth_bid * unit_usd0 / unit_usd(reference),
            lam0 * depth_ask * unit_usd0 / unit_usd(reference),
        )
        gap = timeline.gap[k]

        # 4. intra-step cascade
        volume = np.zeros(n_assets)
        net_total = np.zeros(n_assets)
        for r in range(market.max_rounds + 1):
            log.round = r
            price = reference * np.exp(x)
            view = MarketView(
                k,
                step_start,
                step_hours,
                price,
                is_open,
                asset_settles[:, k],
                initial_margin,
                maintenance_margin,
                yield0 - np.log(price / price0) / duration * 100.0,
                unit_usd(price),
            )
            for population in populations:
                population.mark(view, log)
            batches = [(p, p.orders()) for p in populations]
            batches = [(p, o, is_open[o.asset]) for p, o in batches if len(o.asset)]
            if not any(f.any() for _, _, f in batches):
                break
            if r == market.max_rounds:
                diagnostics["round_limit_hits"] += 1
                log.add("round_limit", detail=f"{market.max_rounds} rounds in one step")
                break
            order_asset = np.concatenate([o.asset for _, o, _ in batches])
            q = np.concatenate([np.where(f, o.quantity, 0.0) for _, o, f in batches])
            buys = np.bincount(order_asset, np.maximum(q, 0.0), n_assets)
            sells = np.bincount(order_asset, np.maximum(-q, 0.0), n_assets)
            net = buys - sells
            x, average = book.execute(x, net, reference, lam_bid, lam_ask, gap)
            for population, orders, fillable in batches:
                population.apply_fills(orders, fillable, average[orders.asset], log)
            makers.take(net, average)
            traded = np.flatnonzero(buys + sells)
            units_traded += buys + sells
            cash_traded += (buys + sells) * average
            net_total += net
            traded_usd = np.maximum(buys, sells) * unit_usd(average)
            volume += traded_usd
            for a in traded:
                log.add(
                    "trade",
                    asset=asset_ids[a],
                    quantity=net[a],
                    notional_usd=traded_usd[a],
                    price=average[a],
                )
        rounds_used[k] = log.round

        # 5. volatility and inventory lay-off
        price = reference * np.exp(x)
        makers.observe(np.log(price) - log_price_start, is_open)
        investors.take_lay_off(makers.lay_off(price, is_open), price)

        row = k + 1
        rec["price"][row] = price
        rec["reference"][row] = reference
        rec["impact_log"][row] = x
        rec["depth_bid"][row], rec["depth_ask"][row] = depth_bid, depth_ask
        rec["realized_vol"][row] = makers.realized_vol
        rec["volume_usd"][row] = volume
        rec["net_flow_units"][row] = net_total
        rec["mm_inventory_units"][row] = makers.inventory

        if check_invariants:
            units, cash = totals()
            diagnostics["max_unit_drift"] = max(
                diagnostics["max_unit_drift"],
                float(
                    np.max(np.abs(units - units_start) / (1.0 + np.abs(units_start) + units_traded))
                ),
            )
            drift = np.abs(cash - cash_start)  # per currency
            traded = np.array(
                [cash_traded[[c == name for c in currency_of]].sum() for name in currencies]
            )
            diagnostics["max_cash_drift_usd"] = max(
                diagnostics["max_cash_drift_usd"], float(drift[currencies.index("USD")])
            )
            diagnostics["max_cash_drift_ratio"] = max(
                diagnostics["max_cash_drift_ratio"], float(np.max(drift / (1.0 + traded)))
            )
            diagnostics["invariant_checks"] += 1
        if progress is not None and (k % 256 == 0 or k == n_steps - 1):
            progress(k + 1, n_steps)

    diagnostics["orders_waiting_at_end"] = int(
        sum(np.count_nonzero(p.orders().quantity) for p in populations)
    )
    times = pd.DatetimeIndex([clock.start], tz="UTC").append(
        calendar.step_starts + pd.Timedelta(clock.step)
    )
    return SimulationResult(
        scenario=scenario,
        seed=seed,
        path=path,
        scenario_hash=scenario_hash(scenario),
        times=times,
        market=rec,
        rounds=rounds_used,
        events=log.frame(),
        diagnostics=diagnostics,
        wall_seconds=wallclock.perf_counter() - started,
    )

"""Benchmark: perp accounts through the step loop (SPEC §9, §11).

    python benchmarks/bench_perps.py [--accounts N] [--days D] [--rules binance-like]

One asset on a 24/7 venue, 5-minute steps, a −15% crash shock on day two and a +10% rebound
on day three. Prints the wall time of building the accounts, of the whole path and of the
step loop (timed directly, from the end of step 0 to the end of the last step), account-steps
per second of each, and peak memory. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deleverage import simulate
from deleverage.populations.base import BuildContext
from deleverage.populations.perps import PerpPopulation
from deleverage.scenario.loader import validate


def scenario(accounts: int, days: int, rules: str):
    start = pd.Timestamp("2026-02-02T00:00:00Z")
    raw = {
        "name": "bench-perps",
        "clock": {
            "start": start.isoformat(),
            "end": (start + pd.Timedelta(days=days)).isoformat(),
            "step": "5min",
        },
        "venues": [{"id": "crypto", "kind": "crypto", "margin_rules": rules}],
        "assets": [
            {
                "id": "BTC",
                "class": "crypto",
                "tier": "peripheral",
                "venue": "crypto",
                "price": 78_000.0,
                "daily_vol": 0.03,
                "adv_usd": 3.5e10,
            }
        ],
        "populations": [
            {
                "type": "perp_book",
                "name": "btc-perps",
                "asset": "BTC",
                "margin_mode": "cross",
                "accounts": accounts,
                "open_interest_usd": 1.0e10,
                "long_share": 0.6,
                "leverage": {"dist": "lognormal", "median": 10.0, "sigma": 0.8},
                "wallet_buffer": {"dist": "lognormal", "median": 0.5, "sigma": 1.0},
                "insurance_fund_usd": 1.0e9,
            }
        ],
        "shocks": [
            {
                "type": "news",
                "time": (start + pd.Timedelta(days=1, hours=14)).isoformat(),
                "returns": {"BTC": -0.15},
            },
            {
                "type": "news",
                "time": (start + pd.Timedelta(days=2, hours=14)).isoformat(),
                "returns": {"BTC": 0.10},
            },
        ],
    }
    return validate(raw, "bench-perps", Path("."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rules", default="binance-like")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = scenario(args.accounts, args.days, args.rules)
    steps = spec.clock.n_steps

    builds = []
    for _ in range(2):  # the second build is warm, like the one inside `simulate`
        started = time.perf_counter()
        context = BuildContext(
            spec, {"BTC": 0}, np.array([78_000.0]), np.random.default_rng(args.seed), True, 5 / 60
        )
        PerpPopulation(spec.populations[0], context)
        builds.append(time.perf_counter() - started)
    build_s = builds[-1]

    marks: list[float] = []  # end of step 0, then every 256 steps, and of the last step
    started = time.perf_counter()
    result = simulate(spec, seed=args.seed, progress=lambda *_: marks.append(time.perf_counter()))
    wall = time.perf_counter() - started
    loop = marks[-1] - marks[0]  # steps 1 … n−1, measured, not a difference of two runs
    engine_only = scenario(1, args.days, args.rules)
    started = time.perf_counter()
    simulate(engine_only, seed=args.seed)
    engine_s = time.perf_counter() - started
    events = result.events[result.events.population == "btc-perps"]
    totals = events.groupby("kind")[["count", "notional_usd"]].sum()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    low = float(np.min(result.market["price"][:, 0]))

    print(f"accounts          {args.accounts:,} ({args.rules}, cross margin)")
    print(f"steps             {steps:,} × 5 min ({args.days} days), {result.rounds.sum():,} rounds")
    print(f"build accounts    {build_s:.2f} s")
    print(f"path (incl build) {wall:.2f} s; step loop {loop:.2f} s (steps 1…{steps - 1})")
    print(f"same path, 1 acct {engine_s:.2f} s (market and engine alone)")
    print(f"account-steps/s   {args.accounts * steps / wall:,.0f} (whole path)")
    rate = args.accounts * (steps - 1) / loop
    print(f"                  {rate:,.0f} (step loop, timed directly)")
    print(f"peak RSS          {peak_mib:,.0f} MiB")
    print(f"BTC low           {low:,.0f} (from 78,000)")
    for kind, row in totals.iterrows():
        count, usd = int(row["count"]), row["notional_usd"]
        print(f"  {kind:<24} count {count:>10,}  notional {usd:>16,.0f}")


if __name__ == "__main__":
    main()

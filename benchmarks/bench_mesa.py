"""Benchmark (b) of SPEC §11: the perp liquidation sub-model, the project's arrays against
one agent per account (Mesa), on identical inputs.

    pip install -e '.[bench]'        # Mesa
    python benchmarks/bench_mesa.py [--accounts 10000 50000 100000] [--steps 288]
    python benchmarks/bench_mesa.py --accounts 100000 --project-only --repeat 9

The sub-model: binance-like tiered maintenance margin, cross margin, no funding, an
insurance fund without a capacity limit (channel `insurance_adl` off, so no ADL moves
other accounts). Every step the mark price moves along one fixed path (a day of 5-minute
steps, noise and a −25% crash over two hours, then a partial rebound); an account enters
liquidation the first time its margin balance is at or below its maintenance margin
(facts 1.2.5). Both sides read the same accounts file.

- The project: `PerpPopulation.mark` on each price (accounts sorted by liquidation price,
  one `searchsorted` per segment, a watch list; see `deleverage.populations.perps`).
  Its liquidation orders are never filled here, so each account enters liquidation once.
- Mesa: one `Agent` per account; each step every agent computes its own margin balance and
  tiered maintenance margin in Python and, at the threshold, enters liquidation.

Asserts the same number of accounts entering liquidation at every step and the same
notional (size × mark summed; equal up to the order of summation), and prints the time of
each (build and steps each the best of `--repeat` runs) and their ratio at each size. A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from bisect import bisect_left
from pathlib import Path

import numpy as np
import pandas as pd

from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.perps import PerpPopulation, generate_accounts
from deleverage.results.events import EventLog
from deleverage.scenario.loader import validate
from deleverage.venues import perp_rules

START = pd.Timestamp("2026-02-02T00:00:00Z")
PRICE0 = 78_000.0


def price_path(steps: int, seed: int) -> np.ndarray:
    """Mark prices: 3% daily noise on 5-minute steps, −25% over two hours from step
    steps/3, back up 10% over the next two hours."""
    rng = np.random.default_rng(seed)
    log_return = 0.03 / math.sqrt(288) * rng.standard_normal(steps)
    crash, rebound = steps // 3, steps // 3 + 24
    log_return[crash : crash + 24] += math.log(0.75) / 24
    log_return[rebound : rebound + 24] += math.log(1.10) / 24
    return PRICE0 * np.exp(np.cumsum(log_return))


GENERATED = {
    "accounts": 1,
    "open_interest_usd": 1.0e10,
    "long_share": 0.6,
    "leverage": {"dist": "lognormal", "median": 10.0, "sigma": 0.8},
    "wallet_buffer": {"dist": "lognormal", "median": 0.5, "sigma": 1.0},
}


def scenario(accounts: dict, steps: int):
    """One BTC perp book on a 24/7 venue; `accounts`: a `file` or the generator's inputs."""
    raw = {
        "name": "bench-mesa",
        "clock": {
            "start": START.isoformat(),
            "end": (START + pd.Timedelta(minutes=5 * steps)).isoformat(),
            "step": "5min",
        },
        "channels": {"insurance_adl": False},
        "venues": [{"id": "crypto", "kind": "crypto", "margin_rules": "binance-like"}],
        "assets": [
            {
                "id": "BTC",
                "class": "crypto",
                "tier": "peripheral",
                "venue": "crypto",
                "price": PRICE0,
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
                "funding_interest_pct": 0.0,
                "insurance_fund_usd": 1.0e9,
                **accounts,
            }
        ],
    }
    return validate(raw, "bench-mesa", Path("."))


def write_accounts(n: int, seed: int, folder: Path) -> Path:
    """Accounts drawn by the project's generator (lognormal sizes, leverage median 10,
    wallet buffers), written once to a file both sides read."""
    rules = perp_rules("binance-like")
    spec = scenario({**GENERATED, "accounts": n}, 1).populations[0]
    accounts = generate_accounts(spec, rules.table, PRICE0, np.random.default_rng(seed))
    path = folder / f"accounts-{n}.parquet"
    pd.DataFrame(
        {
            "side": accounts.side,
            "size": accounts.size,
            "entry_price": accounts.entry,
            "wallet_usd": accounts.wallet_usd,
            "leverage": accounts.leverage,
        }
    ).to_parquet(path)
    return path


def run_project(spec, prices: np.ndarray) -> tuple[list[int], float, float, float]:
    """Accounts entering liquidation per step, their notional, and the seconds taken to
    build the accounts and to run the steps."""
    # the market's side of each step, as the engine has it before the step (its step
    # times are read once a path): the views are inputs, like Mesa's prices
    is_open, closed = np.array([True]), np.array([False])
    nan = np.array([np.nan])
    views = []
    for k, price in enumerate(prices):
        mark = np.array([price])
        when = START + pd.Timedelta(minutes=5 * k)
        views.append(MarketView(k, when, 5 / 60, mark, is_open, closed, nan, nan, nan, mark))
    started = time.perf_counter()
    context = BuildContext(spec, {"BTC": 0}, prices[:1], np.random.default_rng(0), True, 5 / 60)
    population = PerpPopulation(spec.populations[0], context)
    built = time.perf_counter()
    log = EventLog()
    for k, view in enumerate(views):
        log.step = k
        population.mark(view, log)
    done = time.perf_counter()
    events = log.frame()
    entering = events[events.kind == "perp_liquidation"]
    counts = entering.groupby("step")["count"].sum().reindex(range(len(prices)), fill_value=0)
    usd = math.fsum(entering.notional_usd)
    return counts.astype(int).tolist(), usd, built - started, done - built


def run_mesa(accounts_file: Path, prices: np.ndarray) -> tuple[list[int], float, float, float]:
    """The same with one Mesa agent per account."""
    import mesa

    table = perp_rules("binance-like").table
    upper = [float(u) for u in table.upper_usd]
    mmr = [float(r) for r in table.mmr]
    amount = [float(a) for a in table.amount_usd]
    last = len(upper) - 1

    class Account(mesa.Agent):
        def __init__(self, model, side, size, entry, wallet):
            super().__init__(model)
            self.side, self.size, self.entry, self.wallet = side, size, entry, wallet
            self.liquidating = False

        def step(self):
            if self.liquidating:
                return
            price = self.model.price
            notional = self.size * price
            tier = min(bisect_left(upper, notional), last)
            maintenance = notional * mmr[tier] - amount[tier]
            balance = self.wallet + self.side * self.size * (price - self.entry)
            if balance <= maintenance:  # binance-like: at margin ratio ≥ 100% (inclusive)
                self.liquidating = True
                self.model.entering += 1
                self.model.notional.append(notional)

    class Venue(mesa.Model):
        def __init__(self, frame):
            super().__init__(seed=0)
            self.price, self.entering, self.notional = PRICE0, 0, []
            for row in frame.itertuples(index=False):
                Account(self, int(row.side), row.size, row.entry_price, row.wallet_usd)

        def step(self):
            self.agents.do("step")

    started = time.perf_counter()
    model = Venue(pd.read_parquet(accounts_file))
    built = time.perf_counter()
    counts = []
    for price in prices:
        model.price, model.entering = float(price), 0
        model.step()
        counts.append(model.entering)
    return counts, math.fsum(model.notional), built - started, time.perf_counter() - built


def best(repeat: int, run, *inputs):
    """Liquidations (every run gives the same), the shortest build and the shortest steps of
    `repeat` runs, each side alike. (The run with the shortest build + steps, taken before,
    gave the project's steps of one run, not the best of three: its build is ten times its
    steps, so the pick was by build; Mesa's steps dominate its own sum.)"""
    runs = [run(*inputs) for _ in range(repeat)]
    assert all(out[:2] == runs[0][:2] for out in runs)
    return *runs[0][:2], min(out[2] for out in runs), min(out[3] for out in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--steps", type=int, default=288)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs, each side")
    parser.add_argument(
        "--project-only",
        action="store_true",
        help="time only the project's steps (best and median of --repeat runs): to compare "
        "two trees back to back without Mesa's minutes",
    )
    args = parser.parse_args()
    prices = price_path(args.steps, args.seed)
    if args.project_only:
        with tempfile.TemporaryDirectory() as folder:
            for n in args.accounts:
                path = write_accounts(n, args.seed, Path(folder))
                spec = scenario({"file": str(path)}, args.steps)
                steps = sorted(run_project(spec, prices)[3] for _ in range(args.repeat))
                print(
                    f"{n:>9,} accounts: project steps best {steps[0] * 1e3:.2f} ms, "
                    f"median {steps[len(steps) // 2] * 1e3:.2f} ms ({args.repeat} runs)"
                )
        return
    print(f"{args.steps} steps, mark {prices[0]:,.0f} → low {prices.min():,.0f}")
    print(
        f"{'accounts':>9} {'entering':>9} {'notional USD':>16}   project s (build+steps)"
        "   Mesa s (build+steps)   ratio: whole, steps"
    )
    with tempfile.TemporaryDirectory() as folder:
        for n in args.accounts:
            path = write_accounts(n, args.seed, Path(folder))
            spec = scenario({"file": str(path)}, args.steps)
            ours, our_usd, our_build, our_steps = best(args.repeat, run_project, spec, prices)
            theirs, their_usd, their_build, their_steps = best(args.repeat, run_mesa, path, prices)
            assert ours == theirs, f"{n} accounts: liquidations per step differ"
            assert math.isclose(our_usd, their_usd, rel_tol=1e-12), (our_usd, their_usd)
            whole = (their_build + their_steps) / (our_build + our_steps)
            print(
                f"{n:>9,} {sum(ours):>9,} {our_usd:>16,.0f}   {our_build:7.3f} + {our_steps:7.3f}"
                f"         {their_build:6.2f} + {their_steps:7.2f}"
                f"     {whole:6,.0f}×, {their_steps / our_steps:6,.0f}×"
            )


if __name__ == "__main__":
    main()

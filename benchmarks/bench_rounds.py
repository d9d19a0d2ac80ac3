"""Where a batch of lanes spends its time, round by round (docs/performance.md, "Session
11: where a 16-lane batch's time goes").

Runs `simulate_lanes` of one scenario with CPU timers around the engine's round functions
(`engine.step`: the marks, the order collection, the flows, the walk and the fills of each
round; the round's other array work is not in them) and prints, for four kinds of round —
a step's round 0 or a later one, in which some lane trades or none (a step's last) — how
many there were, how many lanes they marked on average, their seconds a path, and the fit
a + b × lanes marked of a round's cost (the marks and order collection go with the lanes
marked, the walk and the fills with the lanes that trade: the fit mixes both). Then the
later rounds by the number of lanes marked and trading in them.

    python benchmarks/bench_rounds.py feb-2026 --lanes 16 \\
        --set populations.btc-perps.accounts=2 --set populations.eth-perps.accounts=2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deleverage import load_scenario, simulate_lanes
from deleverage.engine import simulate as engine_simulate
from deleverage.engine import step as engine_step

TIMED = ("_mark", "_orders", "_flows", "_execute", "_fill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario")
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], dest="sets")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario, sets=args.sets)
    simulate_lanes(scenario, args.seed, range(1))  # compile and warm

    rounds: list[list] = []  # [first of its step, lanes marked, lanes trading, seconds]
    clock = time.process_time  # CPU: the figures hold on a shared machine

    def timed(name, function):
        def call(*a, **k):
            if name == "_mark":  # a round begins: its lanes are `active`
                rounds.append([new_step[0], len(a[2]), 0, 0.0])
                new_step[0] = False
            elif name == "_flows":  # some lane trades: `trading`, one entry a lane
                rounds[-1][2] = len(a[0])
            start = clock()
            try:
                return function(*a, **k)
            finally:
                if rounds:
                    rounds[-1][3] += clock() - start

        return call

    new_step = [True]
    step = engine_step.step

    def one_step(*a, **k):
        new_step[0] = True
        return step(*a, **k)

    for name in TIMED:
        setattr(engine_step, name, timed(name, getattr(engine_step, name)))
    engine_simulate.step = one_step
    cpu, wall = time.process_time(), time.perf_counter()
    simulate_lanes(scenario, args.seed, range(args.lanes))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    first, lanes, trading, seconds = (np.array(column) for column in zip(*rounds, strict=True))
    traded = trading > 0
    per_path = args.lanes
    print(
        f"{args.scenario}, {args.lanes} lanes: CPU {cpu / per_path:.2f} s a path, wall "
        f"{wall / per_path:.2f} s; timed round work {seconds.sum() / per_path:.2f} s a path"
    )
    print(
        f"{'rounds':28s} {'count':>7s} {'lanes':>6s} {'s a path':>9s} {'a (µs)':>8s} {'b (µs)':>8s}"
    )
    for label, kind in (
        ("round 0, some lane trades", first & traded),
        ("later, some lane trades", ~first & traded),
        ("round 0, final", first & ~traded),
        ("later, final", ~first & ~traded),
    ):
        if not kind.any():
            continue
        n, t = lanes[kind], seconds[kind]
        if np.ptp(n) > 0:
            a, b = np.linalg.lstsq(np.c_[np.ones(len(n)), n], t, rcond=None)[0]
            fit = f"{1e6 * a:8.0f} {1e6 * b:8.0f}"
        else:
            fit = f"{'—':>8s} {1e6 * t.mean() / n[0]:8.0f}"
        print(f"{label:28s} {kind.sum():7d} {n.mean():6.1f} {t.sum() / per_path:9.3f} {fit}")
    for label, kind, count in (
        ("later trading rounds by lanes marked", ~first & traded, lanes),
        ("later trading rounds by lanes trading", ~first & traded, trading),
        ("later final rounds by lanes marked", ~first & ~traded, lanes),
    ):
        print(
            f"{label} (1, 2, ...):", np.bincount(count[kind], minlength=args.lanes + 1)[1:].tolist()
        )


if __name__ == "__main__":
    main()

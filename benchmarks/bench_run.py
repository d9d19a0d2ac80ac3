"""Benchmark: time one path of a scenario and print steps/s and peak memory.

    python benchmarks/bench_run.py [SCENARIO] [--repeat N]

A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import time

from deleverage import load_scenario, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="feb-2026")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    steps = scenario.clock.n_steps
    timings = []
    for seed in range(args.repeat):
        started = time.perf_counter()
        simulate(scenario, seed=seed)
        timings.append(time.perf_counter() - started)
    best = min(timings)
    accounts = sum(getattr(p, "accounts", 0) for p in scenario.populations)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"scenario        {scenario.name}")
    print(f"steps           {steps} × {len(scenario.assets)} assets, {accounts} accounts")
    print(f"wall per path   best {best:.3f} s, all {', '.join(f'{t:.3f}' for t in timings)}")
    print(f"steps/s         {steps / best:,.0f}")
    print(f"account-steps/s {accounts * steps / best:,.0f}")
    print(f"peak RSS        {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()

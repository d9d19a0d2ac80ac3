"""Benchmark: time one path of a scenario and print steps/s and peak memory.

    python benchmarks/bench_run.py [SCENARIO] [--repeat N] [--set KEY=VALUE ...]

Target (a) of SPEC §11 (one feb-2026 path with 1M perp accounts, ≤ 4 s on 2 cores):

    python benchmarks/bench_run.py feb-2026 --repeat 1 \
        --set populations.btc-perps.accounts=625000 --set populations.eth-perps.accounts=375000

Prints the build time (scenario to the first step) and the step loop apart, both measured
directly. A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import time

from deleverage import load_scenario, simulate


def timed_path(scenario, seed: int) -> tuple[float, float, float]:
    """(whole path, build up to the end of step 0, steps 1…n−1) in seconds."""
    marks: list[float] = []
    started = time.perf_counter()
    simulate(scenario, seed=seed, progress=lambda done, total: marks.append(time.perf_counter()))
    wall = time.perf_counter() - started
    return wall, marks[0] - started, marks[-1] - marks[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="feb-2026")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario, sets=args.sets)
    steps = scenario.clock.n_steps
    timings = [timed_path(scenario, seed) for seed in range(args.repeat)]
    best = min(timings)
    accounts = sum(getattr(p, "accounts", 0) for p in scenario.populations)
    cpu = time.process_time()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"scenario        {scenario.name} {' '.join(args.sets)}")
    print(f"steps           {steps} × {len(scenario.assets)} assets, {accounts:,} accounts")
    print(f"wall per path   best {best[0]:.3f} s, all {', '.join(f'{t[0]:.3f}' for t in timings)}")
    print(f"  build+step 0  {best[1]:.3f} s")
    print(f"  steps 1…n−1   {best[2]:.3f} s ({(steps - 1) / best[2]:,.0f} steps/s)")
    print(f"CPU per path    {cpu / args.repeat:.3f} s (process CPU incl. imports ÷ paths)")
    print(f"steps/s         {steps / best[0]:,.0f}")
    print(f"account-steps/s {accounts * steps / best[0]:,.0f}")
    print(f"peak RSS        {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()

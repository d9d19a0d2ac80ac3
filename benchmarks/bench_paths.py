"""Benchmark (c) and (d) of SPEC §11: many paths of a 100k-account feb-2026, on local
processes and on a Dask LocalCluster, with the same seed; prints the wall time per path,
the time 1,000 paths would take at that rate, and whether the two runs agree.

    python benchmarks/bench_paths.py [--paths 1000] [--workers 2] [--amplification]

Target (c): 1,000 paths in ≤ 10 min on 2 cores; (d): identical results on Dask, overhead
≤ 20%. A run of fewer paths extrapolates linearly (paths are independent; the fixed cost
of starting the workers is printed apart; a worker runs each batch of paths as lanes of
one simulation, up to 16 lanes where memory allows (`montecarlo.lanes_for`): with fewer
than 128 paths on 2 workers the batches are smaller than at 1,000, and printed). A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import resource
import time

import pandas as pd

from deleverage import load_scenario, simulate_paths
from deleverage.engine.montecarlo import batches, lanes_for

ACCOUNTS_100K = [
    "populations.btc-perps.accounts=62500",
    "populations.eth-perps.accounts=37500",
]


def timed(label: str, paths: int, **options):
    started = time.perf_counter()
    result = simulate_paths(**options, paths=paths)
    wall = time.perf_counter() - started
    print(
        f"{label:<22} {paths:>5} paths  {wall:8.1f} s  {wall / paths:6.2f} s a path  "
        f"→ 1,000 paths ≈ {1000 * wall / paths / 60:5.1f} min"
    )
    return result, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="feb-2026")
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amplification", action="store_true", help="also the twin runs")
    parser.add_argument("--set", dest="sets", action="append", default=None, metavar="KEY=VALUE")
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    sets = ACCOUNTS_100K if args.sets is None else args.sets
    scenario = load_scenario(args.scenario, sets=sets)
    common = {"scenario": scenario, "seed": args.seed, "amplification": args.amplification}
    lanes = 2 if args.amplification else 1  # a path and its twin
    most = lanes_for(scenario, args.workers)
    sizes = sorted({len(b) * lanes for b in batches(args.paths, args.workers, lanes, most)})
    print(f"{scenario.name} {' '.join(sets)}, {args.workers} workers, batches of {sizes} lanes")
    local, local_s = timed("local processes", args.paths, workers=args.workers, **common)
    if not args.skip_dask:
        from distributed import LocalCluster

        started = time.perf_counter()
        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            print(f"{'Dask cluster start':<22} {time.perf_counter() - started:8.1f} s")
            on_dask, dask_s = timed(
                "Dask LocalCluster", args.paths, scheduler=cluster.scheduler_address, **common
            )
        pd.testing.assert_frame_equal(local.path_targets, on_dask.path_targets)
        pd.testing.assert_frame_equal(local.path_amplification, on_dask.path_amplification)
        print(f"identical results; Dask overhead {100 * (dask_s / local_s - 1):+.0f}%")
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: this process {parent:,.0f} MiB, largest finished worker {children:,.0f} MiB")


if __name__ == "__main__":
    main()

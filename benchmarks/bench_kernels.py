"""Benchmark: the first-call cost of the perp book's compiled kernels (`perp_kernels`).

    python benchmarks/bench_kernels.py [--runs 2]

Each run is a fresh Python process that imports numba (timed), then the package, and calls
each kernel once on a few accounts (timed): first with an empty cache directory
(`NUMBA_CACHE_DIR`, so every kernel is compiled), then with the cache that run left (the
kernels' machine code is loaded). Prints wall and CPU seconds. A benchmark, not a test: it
asserts nothing. A path pays the cached cost once per process, and the compile once per
machine and source version (`cache=True` keeps the code beside the module).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = """
import time
import numpy as np
w0, c0 = time.perf_counter(), time.process_time()
import numba
w1, c1 = time.perf_counter(), time.process_time()
from deleverage.populations import perp_kernels as k
w1b, c1b = time.perf_counter(), time.process_time()
i, f = np.arange(3, dtype=np.int64), np.ones(3)
side, stage, flag = np.array([1, -1, 1], np.int8), np.zeros(3, np.int8), np.zeros(3, bool)
k.book_keys(i, side, f, f, f, f, f * 0.01, f, f, np.zeros(2), 1.0)
k.pick_closes(i, side, f, stage, flag.copy(), flag.copy())
k.settle_closes(
    i, side, f.copy(), f.copy(), f.copy(), f, f.copy(), stage.copy(), flag.copy(), flag.copy(),
    np.zeros(2), 1.0, True,
)
k.tail_extremes(f, f, side, ~flag, np.zeros(2))
k.tail_hits(f, f, side, ~flag, np.zeros(2), 1.0, True)
k.tail_crossings(f, f, f, side, ~flag, np.zeros(2), 1.0)
k.stable_ties(i.copy(), f)
k.merge_by_group(i, stage.astype(np.int16), f, f, i, stage.astype(np.int16), f, f, True)
w2, c2 = time.perf_counter(), time.process_time()
print(f"{w1 - w0:.2f} {c1 - c0:.2f} {w2 - w1b:.2f} {c2 - c1b:.2f}")
"""


def child(cache_dir: str) -> list[float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    return [float(x) for x in out.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print("run  cache   import numba: wall, CPU s   first calls of all kernels: wall, CPU s")
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as cache_dir:
            for label in ("empty", "warm"):
                iw, ic, fw, fc = child(cache_dir)
                print(f"{run:>3}  {label:<6}  {iw:>13.2f} {ic:>6.2f}  {fw:>29.2f} {fc:>6.2f}")


if __name__ == "__main__":
    main()

"""Rows per second of `detect` on synthetic hourly long-format panels (time linear in rows).

Six assets (silver, gold, Nasdaq-100, SOX, bitcoin, USDJPY), 24/7 hourly bars, written
as a long CSV (time, symbol, close) and read back, so the timing covers parsing,
alignment, every indicator and the narratives. Prints one line per size.

    PYTHONPATH=src python benchmarks/bench_detect.py [ROWS ...]   # default 100k 500k 1.5M
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deleverage.detect import detect

SYMBOLS = {
    "silver": 0.004,
    "gold": 0.002,
    "ndx": 0.003,
    "sox": 0.004,
    "btc": 0.008,
    "usdjpy": 0.001,
}


def long_panel(rows: int, seed: int = 0) -> pd.DataFrame:
    bars = rows // len(SYMBOLS)
    rng = np.random.default_rng(seed)
    times = pd.date_range("2008-01-01", periods=bars, freq="h", tz="UTC")
    common = rng.standard_normal(bars)
    parts = []
    for name, vol in SYMBOLS.items():
        shocks = vol * (0.5 * common + np.sqrt(0.75) * rng.standard_normal(bars))
        parts.append(
            pd.DataFrame({"time": times, "symbol": name, "close": 100 * np.exp(np.cumsum(shocks))})
        )
    return pd.concat(parts, ignore_index=True)


def main(sizes: list[int]) -> None:
    print(f"{'rows':>9} {'bars':>8} {'load+detect s':>14} {'CPU s':>7} {'rows/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            path = Path(tmp) / f"hourly_{rows}.csv"
            long_panel(rows).to_csv(path, index=False)
            t0, c0 = time.perf_counter(), time.process_time()
            result = detect([str(path)])
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
            bars = len(result.panel.prices)
            print(f"{rows:>9} {bars:>8} {took:>14.1f} {cpu:>7.1f} {rows / took:>10,.0f}")


if __name__ == "__main__":
    args = [int(float(a)) for a in sys.argv[1:]] or [100_000, 500_000, 1_500_000]
    main(args)

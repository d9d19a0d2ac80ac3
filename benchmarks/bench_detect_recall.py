"""Co-crash recall and false alarms on the labelled episodes (docs/detect.md).

Panel: COMEX silver and gold, Nasdaq-100, SOX, bitcoin (Yahoo, with Stooq before
Sep 2014) from ../shared/data, daily, 2010-07 onward. Prints recall per split, false
alarms per calm year, the stress alarm's delay after each labelled day, and the
episodes the flag finds outside the labels.

    PYTHONPATH=src python benchmarks/bench_detect_recall.py
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from deleverage.detect.episodes import CALM_YEARS, CRASH_DAYS, MATCH, flag_episodes, score
from deleverage.detect.indicators import DetectParams, compute_all
from deleverage.detect.loaders import load_panel

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FILES = (
    "silver_futures_comex_yahoo_daily.csv",
    "gold_futures_comex_yahoo_daily.csv",
    "nasdaq100_daily_close.csv",
    "sox_philly_semis_daily.csv",
    "btc_usd_daily_yahoo.csv",
    "btc_usd_daily_stooq.csv",
)


def main() -> None:
    t0 = time.perf_counter()
    panel = load_panel([str(DATA / f) for f in FILES])
    ind = compute_all(panel, DetectParams())
    flag = ind.cocrash["flag"]
    s = score(flag)
    print(
        f"panel {panel.prices.index[0].date()} .. {panel.prices.index[-1].date()}, "
        f"{len(panel.prices)} bars, {time.perf_counter() - t0:.1f} s"
    )
    for split in ("dev", "held_out", None):
        f, n = s.recall(split)
        a, y = s.alarms(split)
        print(f"{split or 'all':>8}: recall {f}/{n}, false alarms {a} in {y} calm year(s)")
    for year in sorted(s.false_alarms):
        print(f"  calm {year}: {s.false_alarms[year]} flag episode(s)")
    alarm = ind.stress.get("alarm")
    idx = flag.index
    print("labelled day  split     found  stress alarm (bars after)")
    for day, split, _ in CRASH_DAYS:
        if day not in s.found:
            print(f"{day}  {split:8}  not covered")
            continue
        i = idx.searchsorted(pd.Timestamp(day, tz="UTC"))
        delay = "-"
        if alarm is not None and alarm.iloc[i + MATCH[0] : i + 10].isna().any():
            delay = "not computed (warm-up)"
        elif alarm is not None:
            on = alarm.iloc[i + MATCH[0] : i + 10].to_numpy() == 1
            delay = str(int(on.argmax()) + MATCH[0]) if on.any() else "none in 9"
        print(f"{day}  {split:8}  {'yes' if s.found[day] else 'no':5}  {delay}")
    labelled = [pd.Timestamp(d, tz="UTC") for d, _, _ in CRASH_DAYS]
    outside = [t for t in flag_episodes(flag) if all(abs((t - d).days) > 5 for d in labelled)]
    calm = {y for y, _ in CALM_YEARS}
    print(
        f"flag episodes outside the labels (±5 days): {len(outside)}, "
        f"of which in calm years: {sum(t.year in calm for t in outside)}"
    )
    print("  " + ", ".join(str(t.date()) for t in outside))


if __name__ == "__main__":
    main()

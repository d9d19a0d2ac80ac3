"""Labelled cross-asset crash days and calm years, and how a flag is scored against them.

A crash day here is the first US trading day of a documented "sell everything" move in
which metals, US tech stocks and bitcoin all fell (the SPEC §0 signature). The dates
come from public reporting of each event (listed in docs/detect.md with the event
they name); they were fixed before the co-crash rule was tuned. Calm years are years
with no such documented episode. `split` says which half was used to choose the
co-crash parameters ("dev") and which was only measured ("held_out").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# (date, split, event)
CRASH_DAYS: tuple[tuple[str, str, str], ...] = (
    ("2011-09-22", "dev", "Fed 'Operation Twist' sell-off; silver -18% on 23 Sep"),
    ("2013-04-15", "dev", "gold's largest one-day fall since 1980; bitcoin's Mt. Gox crash week"),
    ("2018-02-05", "dev", "'Volmageddon' (XIV); bitcoin below $7,000; metals off on 2 Feb"),
    ("2020-02-28", "dev", "COVID sell-off week; gold sold to meet margin calls"),
    ("2020-03-09", "dev", "oil price war Monday; US equities limit-down; bitcoin -15%"),
    ("2020-03-12", "dev", "'Black Thursday': dash for cash, bitcoin -40%"),
    ("2020-03-16", "dev", "second COVID Monday, Fed emergency cut; silver -12%"),
    ("2021-02-25", "held_out", "bond rout (10y UST 1.6%); tech, gold and bitcoin fall"),
    ("2022-05-09", "held_out", "Terra/LUNA collapse with a tech sell-off"),
    ("2022-06-13", "held_out", "hot CPI and Celsius freezes withdrawals"),
    ("2022-09-13", "held_out", "hot August CPI: Nasdaq -5%, bitcoin -10%"),
    ("2024-08-05", "held_out", "yen carry unwind (Nikkei -12%)"),
    ("2024-12-18", "held_out", "hawkish Fed cut: stocks, gold and bitcoin fall"),
    ("2025-04-03", "held_out", "'Liberation Day' tariffs; silver -15% in two days"),
    ("2026-01-30", "held_out", "Warsh nomination, CME margin hikes: silver -31%"),
    ("2026-02-05", "held_out", "second leg: bitcoin to $60k, silver and semiconductors fall"),
)
CALM_YEARS: tuple[tuple[int, str], ...] = ((2017, "dev"), (2019, "held_out"), (2023, "held_out"))
# A labelled day d is found when the flag fires on a bar from d-1 to d+2: the flag
# marks the bar on which the last group's tail loss lands, and crypto's weekend moves
# fold into Monday (a Thursday start shows in crypto two bars later).
MATCH = (-1, 2)


@dataclass(frozen=True)
class Score:
    """Recall on labelled days and false alarms (flag episodes) in calm years."""

    found: dict[str, bool]
    false_alarms: dict[int, int]

    def recall(self, split: str | None = None) -> tuple[int, int]:
        days = [d for d, s, _ in CRASH_DAYS if split in (None, s) and d in self.found]
        return sum(self.found[d] for d in days), len(days)

    def alarms(self, split: str | None = None) -> tuple[int, int]:
        years = [y for y, s in CALM_YEARS if split in (None, s) and y in self.false_alarms]
        return sum(self.false_alarms[y] for y in years), len(years)


def flag_episodes(flag: pd.Series, gap: int = 2) -> list[pd.Timestamp]:
    """First bar of each run of flags (flags ≤ gap bars apart are one episode)."""
    pos = np.flatnonzero(flag.fillna(0).to_numpy() == 1)
    if not len(pos):
        return []
    starts = pos[np.r_[True, np.diff(pos) > gap + 1]]
    return list(flag.index[starts])


def score(flag: pd.Series) -> Score:
    """Score a 0/1 flag (NaN = not computed) against the labels it covers."""
    index = flag.index
    computed = flag.notna().to_numpy()
    hit = flag.fillna(0).to_numpy() == 1
    found = {}
    for day, _, _ in CRASH_DAYS:
        t = pd.Timestamp(day, tz=index.tz)
        i = index.searchsorted(t)
        lo, hi = max(i + MATCH[0], 0), min(i + MATCH[1] + 1, len(index))
        if lo < hi and computed[lo:hi].all():
            found[day] = bool(hit[lo:hi].any())
    alarms = {}
    for year, _ in CALM_YEARS:
        in_year = index.year == year
        if in_year.any() and computed[in_year].all():
            alarms[year] = sum(t.year == year for t in flag_episodes(flag))
    return Score(found, alarms)

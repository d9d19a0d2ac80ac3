"""On real daily data (../shared/data, 2015+): co-crash dates and the Feb-2026 narratives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "detect.md"
README = DOCS.parents[1] / "README.md"


def _flagged(result, start: str, end: str) -> list[str]:
    days = result.co_crash_days()
    return [str(t.date()) for t in days.loc[start:end].index]


def test_co_crash_fires_in_the_week_of_30_jan_to_6_feb_2026(real_result):
    assert _flagged(real_result, "2026-01-30", "2026-02-06")


def test_co_crash_fires_in_march_2020(real_result):
    assert _flagged(real_result, "2020-03-01", "2020-03-31")


def test_co_crash_stays_within_one_false_alarm_per_calm_year(real_result):
    # The panel starts in 2015, so tails are learnt from two years of history by 2017;
    # from 2010 on (test_detect_episodes) no calm year has a flag at all.
    from deleverage.detect.episodes import flag_episodes

    flag = real_result.series("all", "co_crash_flag")
    for year in ("2017", "2019", "2023"):
        assert len(flag.loc[year]) > 240 and flag.loc[year].notna().all()
        assert len(flag_episodes(flag.loc[year])) <= 1, year
    assert _flagged(real_result, "2019-01-01", "2019-12-31") == []
    assert _flagged(real_result, "2023-01-01", "2023-12-31") == []


def test_the_groups_are_silver_gold_nasdaq_sox_and_btc(real_panel):
    groups = {i: s.group for i, s in real_panel.assets.items() if s.group}
    assert groups == {
        "SILVER": "safe_haven",
        "GOLD": "safe_haven",
        "NDX": "tech",
        "SOX": "tech",
        "BTC": "speculative",
    }
    assert real_panel.prices.index[0] >= pd.Timestamp("2015-01-01", tz="UTC")


def test_the_yen_weakened_during_the_crash_window(real_result, real_panel):
    usdjpy = real_panel.prices["USDJPY"]
    assert usdjpy.loc["2026-01-29"].item() == pytest.approx(152.88)
    assert usdjpy.loc["2026-02-06"].item() == pytest.approx(157.1)
    peak, trough = real_result.narratives.crash
    assert pd.Timestamp("2026-01-28", tz="UTC") <= peak < pd.Timestamp("2026-01-30", tz="UTC")
    assert pd.Timestamp("2026-02-04", tz="UTC") <= trough <= pd.Timestamp("2026-02-06", tz="UTC")
    yen = next(
        e
        for e in real_result.narratives.evidence
        if (e.narrative, e.code) == ("carry_unwind", "yen_up")
    )
    assert yen.observed > 0  # USDJPY rose: the yen weakened
    assert yen.verdict == -1.0


def test_the_rival_explanations_table_in_the_docs_is_what_the_code_prints(real_result):
    assert real_result.narratives_markdown() in DOCS.read_text(encoding="utf-8")
    assert real_result.narratives_markdown() in README.read_text(encoding="utf-8")


def test_every_narrative_is_scored_with_evidence(real_result):
    table = real_result.narratives_table()
    assert len(table) == 5
    assert table["score"].between(-1, 1).all()
    for key in real_result.narratives.scores.index:
        assert sum(e.narrative == key for e in real_result.narratives.evidence) >= 3


def test_the_carry_story_fits_august_2024_but_not_february_2026(real_panel, real_result):
    from deleverage.detect import detect

    aug_2024 = detect(real_panel, "2024-07-15:2024-08-09")
    yen_2024 = next(e for e in aug_2024.narratives.evidence if e.code == "yen_up")
    assert yen_2024.observed < 0  # USDJPY fell: the yen rallied through the crash
    assert aug_2024.narratives.scores["carry_unwind"] > 0
    assert real_result.narratives.scores["carry_unwind"] < 0

"""Labelled cross-asset crash days (2011–2026) on real data: co-crash recall, false
alarms in calm years, the stress alarm's timing, and "no crash" on calm windows."""

from __future__ import annotations

import pandas as pd
import pytest

from deleverage.detect.episodes import CALM_YEARS, CRASH_DAYS, MATCH, flag_episodes, score

EVAL_FILES = (
    "silver_futures_comex_yahoo_daily.csv",
    "gold_futures_comex_yahoo_daily.csv",
    "nasdaq100_daily_close.csv",
    "sox_philly_semis_daily.csv",
    "btc_usd_daily_yahoo.csv",
    "btc_usd_daily_stooq.csv",  # bitcoin before Sep 2014 (Yahoo is primary after)
)


@pytest.fixture(scope="module")
def labelled(data_dir):
    from deleverage.detect.indicators import DetectParams, compute_all
    from deleverage.detect.loaders import load_panel

    panel = load_panel([str(data_dir / f) for f in EVAL_FILES])
    return panel, compute_all(panel, DetectParams())


def test_the_label_set_is_what_the_issue_asks_for():
    days = [pd.Timestamp(d) for d, _, _ in CRASH_DAYS]
    assert len(days) >= 15 and min(days).year >= 2010
    assert len(CALM_YEARS) >= 3
    assert not {d.year for d in days} & {y for y, _ in CALM_YEARS}
    assert {s for _, s, _ in CRASH_DAYS} == {"dev", "held_out"}


def test_bitcoin_history_comes_from_two_sources_by_the_stated_rule(labelled):
    panel, _ = labelled
    assert panel.prices.index[0] == pd.Timestamp("2010-07-19", tz="UTC")
    note = next(r for r in panel.repairs if "BTC: 2 sources" in r)
    assert "btc_usd_daily_yahoo.csv (4280 bars) is primary" in note


def test_co_crash_recall_and_false_alarms_on_the_labelled_days(labelled):
    _, ind = labelled
    s = score(ind.cocrash["flag"])
    assert len(s.found) >= 15  # every label but the first falls after the warm-up
    found, n = s.recall("held_out")
    assert found / n >= 0.9  # the goal, on days not used to set the parameters
    found, n = s.recall()
    assert found / n >= 0.85
    assert all(count <= 1 for count in s.false_alarms.values())
    assert set(s.false_alarms) == {y for y, _ in CALM_YEARS}


def test_co_crash_is_silent_in_every_calm_year(labelled):
    _, ind = labelled
    flag = ind.cocrash["flag"]
    for year, _ in CALM_YEARS:
        in_year = flag[flag.index.year == year]
        assert len(in_year) > 240 and in_year.notna().all()
        assert (in_year == 0).all(), year


def test_stress_alarm_fires_within_two_days_of_each_labelled_crash(labelled):
    _, ind = labelled
    alarm = ind.stress["alarm"]
    index = alarm.index
    checked = 0
    for day, _, _ in CRASH_DAYS:
        i = index.searchsorted(pd.Timestamp(day, tz="UTC"))
        near = alarm.iloc[i + MATCH[0] : i + 3]
        if near.isna().any():
            continue  # inside the warm-up
        assert (near == 1).any(), day
        checked += 1
    assert checked >= 15
    # ... and it is a signal, not a constant: off on most calm days
    calm = alarm[alarm.index.year.isin([y for y, _ in CALM_YEARS])]
    assert calm.mean() < 0.1


def test_flag_episodes_merge_adjacent_flags():
    index = pd.date_range("2020-01-01", periods=10, freq="D", tz="UTC")
    flag = pd.Series([0, 1, 1, 0, 0, 1, 0, 0, 0, 1.0], index=index)
    assert flag_episodes(flag) == [index[1], index[9]]


@pytest.mark.parametrize(
    "window", ["2017-03-01:2017-03-31", "2019-06-03:2019-06-28", "2023-07-03:2023-07-31"]
)
def test_calm_windows_give_no_crash(real_panel, window):
    from deleverage.detect import detect

    res = detect(real_panel, window)
    assert res.narratives.no_crash
    assert res.narratives.favoured is None
    assert res.verdict_sentence().startswith("No crash in this window")
    assert res.to_dict()["no_crash"] is True


def test_the_crash_windows_are_not_called_calm(real_result, real_panel):
    from deleverage.detect import detect

    assert not real_result.narratives.no_crash
    assert real_result.narratives.co_moves >= 1
    assert not detect(real_panel, "2024-07-15:2024-08-09").narratives.no_crash
    assert real_result.narratives.favoured is not None

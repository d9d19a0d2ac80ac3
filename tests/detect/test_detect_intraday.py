"""Intraday panels: several sources per symbol, data gaps that are missing (not shut),
tails scaled to the bar; and the verdict's strength with untestable evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.detect import DataError, detect
from deleverage.detect.indicators import DetectParams, compute_all
from deleverage.detect.indicators.cocrash import in_tail
from deleverage.detect.loaders import load_panel, merge_sources
from deleverage.detect.narratives import Evidence, _strength


def _hourly(days: int, seed: int = 0, vol: float = 0.003) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2025-01-06", periods=24 * days, freq="h", tz="UTC")
    steps = vol * rng.standard_normal((len(index), 3))
    return pd.DataFrame(
        100 * np.exp(np.cumsum(steps, axis=0)), index=index, columns=["a", "b", "c"]
    )


def _long(prices: pd.Series, symbol: str, source: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"time": prices.index, "symbol": symbol, "close": prices.to_numpy(), "source": source}
    )


def test_several_sources_of_a_symbol_are_merged_by_the_stated_rule(tmp_path):
    prices = _hourly(20)["a"]
    big = prices.iloc[:400]  # 400 bars: primary
    small = prices.iloc[300:].mul(1.001)  # overlaps 100 bars (0.1% apart), adds the rest
    path = tmp_path / "h.csv"
    pd.concat([_long(small, "BTC-USD", "feed2"), _long(big, "BTC-USD", "feed1")]).to_csv(
        path, index=False
    )
    panel = load_panel([str(path)])
    btc = panel.prices["BTC"]
    assert btc.loc[prices.index[350]] == pytest.approx(prices.iloc[350])  # primary wins
    assert btc.loc[prices.index[450]] == pytest.approx(prices.iloc[450] * 1.001)  # filled
    note = next(r for r in panel.repairs if "2 sources" in r)
    assert "feed1 (400 bars) is primary" in note and "feed2 fills 80 of its 180 bars" in note


def test_sources_that_disagree_are_refused(tmp_path):
    prices = _hourly(20)["a"]
    path = tmp_path / "h.csv"
    pd.concat(
        [_long(prices, "BTC-USD", "feed1"), _long(prices.iloc[:100] * 1.3, "BTC-USD", "feed2")]
    ).to_csv(path, index=False)
    with pytest.raises(DataError, match="sources within 2% of each other"):
        load_panel([str(path)])


def _equity_hours(prices: pd.Series, hole: tuple[str, str] | None) -> pd.Series:
    t = prices.index
    open_ = (t.day_of_week < 5) & (t.hour >= 14) & (t.hour <= 20)
    keep = prices[open_]
    if hole:
        keep = keep[(keep.index < hole[0]) | (keep.index > hole[1])]
    return keep


def _closed_hours(panel):
    res = detect(panel, "2025-03-10T00:00/2025-03-14T00:00")
    return next(e for e in res.narratives.evidence if e.code == "closed_hours")


def test_a_hole_in_equity_data_is_missing_not_shut():
    raw = _hourly(80, seed=3)
    btc = raw["c"].copy()
    crash = (btc.index >= "2025-03-12 00:00") & (btc.index < "2025-03-13 00:00")
    btc = btc * np.exp(np.cumsum(np.where(crash, -0.01, 0.0)))
    for hole, shut_expected in ((("2025-03-03", "2025-03-21"), False), (None, True)):
        wide = pd.DataFrame(
            {
                "gold": _equity_hours(raw["a"], hole),
                "ndx": _equity_hours(raw["b"], hole),
            }
        ).reindex(raw.index)
        wide["btc"] = btc
        panel = load_panel([wide])
        gaps = panel.gaps()
        in_hole = gaps.loc["2025-03-12", "GOLD"]
        evidence = _closed_hours(panel)
        if shut_expected:
            assert not gaps.to_numpy().any()
            assert evidence.verdict == 1.0  # overnight hours really were shut
        else:
            assert in_hole.all()  # 18 days without equity prints: missing
            assert any("data gaps longer than 4 days" in r for r in panel.repairs)
            assert np.isnan(evidence.verdict)  # the missing bars could decide it
            assert "data were missing" in evidence.detail
            assert not panel.observed().loc["2025-03-12", "GOLD"].any()


def test_hourly_tails_are_as_rare_per_day_as_daily_ones():
    params = DetectParams()
    raw = _hourly(400, seed=5)
    wide = raw.rename(columns={"a": "gold", "b": "ndx", "c": "btc"})
    panel = load_panel([wide])
    ind = compute_all(panel, params)
    for ident in ("GOLD", "BTC"):
        hits = in_tail(ind.cocrash, ident, ind.returns[ident])
        computed = ind.cocrash[f"{ident}_threshold"].notna()
        per_day = hits[computed].sum() / (computed.sum() / 24)
        # 7.5% per trading day, i.e. 0.3125% of hourly bars (Poisson noise on ~25 hits)
        assert 0.5 * params.tail_quantile < per_day < 2.0 * params.tail_quantile


def _ev(narrative: str, verdicts: list[float]) -> list[Evidence]:
    return [Evidence(narrative, f"c{i}", "", 0.0, "", "", v) for i, v in enumerate(verdicts)]


def test_untestable_evidence_counts_as_missing_in_the_strength():
    # leader: 2 supports and 2 untestable (score 1.0); runner-up: 0.0 on four tests
    evidence = _ev("a", [1.0, 1.0, np.nan, np.nan]) + _ev("b", [1.0, -1.0, 1.0, -1.0])
    assert _strength(evidence, "a", "b") == "weak"  # was "strong" counting only testables
    complete = _ev("a", [1.0, 1.0, 1.0, 1.0]) + _ev("b", [1.0, -1.0, 1.0, -1.0])
    assert _strength(complete, "a", "b") == "strong"
    # leader at worst (1+1+1-1)/4 = 0.5, runner-up 0.25: a lead of 0.25
    one_missing = _ev("a", [1.0, 1.0, 1.0, np.nan]) + _ev("b", [1.0, 0.0, 0.0, 0.0])
    assert _strength(one_missing, "a", "b") == "moderate"


def test_hourly_co_crash_and_alarm_do_not_look_ahead():
    raw = _hourly(100, seed=8)
    wide = pd.DataFrame(
        {"gold": _equity_hours(raw["a"], None), "ndx": _equity_hours(raw["b"], None)}
    ).reindex(raw.index)
    wide["btc"] = raw["c"]
    full = load_panel([wide])
    params = DetectParams(min_history=120)
    short, long = compute_all(full.head(1900), params), compute_all(full, params)
    for name in ("cocrash", "stress"):
        a, b = getattr(short, name), getattr(long, name)
        pd.testing.assert_frame_equal(a, b.loc[a.index], check_exact=True)
        assert a["flag" if name == "cocrash" else "alarm"].notna().any()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 59), min_size=1, max_size=60, unique=True),
    st.lists(st.integers(0, 59), min_size=1, max_size=60, unique=True),
    st.floats(-0.01, 0.01),
)
def test_merged_sources_cover_every_timestamp_and_prefer_the_larger_source(a, b, shift):
    index = pd.date_range("2025-01-01", periods=60, freq="h", tz="UTC")
    level = pd.Series(100.0 + np.arange(60.0), index=index)
    first = level.iloc[sorted(a)]
    second = level.iloc[sorted(b)] * np.exp(shift)  # within the 2% agreement band
    merged, notes, problems = merge_sources([("x", first), ("y", second)], "f", "k")
    assert not problems and len(notes) == 1
    primary, other = (first, second) if len(first) >= len(second) else (second, first)
    assert merged.index.equals(first.index.union(second.index))
    assert merged.index.is_monotonic_increasing
    np.testing.assert_array_equal(merged.loc[primary.index], primary)
    rest = other.index.difference(primary.index)
    np.testing.assert_array_equal(merged.loc[rest], other.loc[rest])

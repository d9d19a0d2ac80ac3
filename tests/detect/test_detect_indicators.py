"""Each indicator against a small case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deleverage.detect.indicators.carry import carry_indicator
from deleverage.detect.indicators.cocrash import co_crash, episodes
from deleverage.detect.indicators.leadlag import common_sampling, lead_lag
from deleverage.detect.indicators.stress import ciss, market_subindices
from deleverage.detect.indicators.stylized import stylized_facts
from deleverage.detect.indicators.transforms import (
    drawdown,
    expanding_quantile,
    expanding_rms,
    recursive_ecdf,
)
from deleverage.detect.indicators.turbulence import absorption_ratio, turbulence


def _s(values) -> pd.Series:
    return pd.Series(values, dtype=float, index=pd.RangeIndex(len(values)))


def test_recursive_ecdf_ranks_each_value_among_its_past():
    got = recursive_ecdf(_s([3, 1, 2, 5, 4]), min_periods=1)
    np.testing.assert_allclose(got, [1, 1 / 2, 2 / 3, 4 / 4, 4 / 5])


def test_recursive_ecdf_waits_for_min_periods_and_counts_ties_as_below():
    got = recursive_ecdf(_s([2, np.nan, 2, 1, 2]), min_periods=2)
    np.testing.assert_allclose(got, [np.nan, np.nan, 1.0, 1 / 3, 1.0])


def test_expanding_quantile_uses_only_earlier_bars():
    got = expanding_quantile(_s([4, 1, 3, 2, 5]), 0.25, min_periods=2)
    np.testing.assert_allclose(got, [np.nan, np.nan, 1.75, 2.0, 1.75])


def test_expanding_quantile_matches_numpy_on_every_prefix():
    x = _s(np.random.default_rng(1).standard_normal(50))
    got = expanding_quantile(x, 0.05, min_periods=10)
    want = [np.quantile(x[:t], 0.05) if t >= 10 else np.nan for t in range(50)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_expanding_rms_is_the_root_mean_square_of_earlier_values():
    np.testing.assert_allclose(
        expanding_rms(_s([3, 4, 0, 1]), min_periods=2),
        [np.nan, np.nan, np.sqrt(12.5), np.sqrt(25 / 3)],
    )


def test_drawdown_is_cmax_for_prices_and_a_yield_rise_for_yields():
    prices = drawdown(_s([100, 110, 99, 121, 110]), window=2, kind="price")
    np.testing.assert_allclose(prices, [0, 0, 0.1, 0, 1 - 110 / 121])
    yields = drawdown(_s([1.0, 0.8, 1.1]), window=3, kind="yield")
    np.testing.assert_allclose(yields, [0, 0, 0.3])


def test_market_subindex_averages_ecdf_ranks_of_volatility_and_drawdown():
    levels = pd.DataFrame({"A": [100.0, 110, 99, 99, 120]})
    returns = np.log(levels).diff().iloc[1:]
    sub = market_subindices(
        levels, returns, {"A": "metals"}, {"A": "price"}, vol_window=2, cmax_window=3, min_periods=1
    )
    # vol ranks: -, 1, 1/2, 1; drawdowns 0, .1, .1, 0 -> ranks 1, 1, 1, 1/2
    np.testing.assert_allclose(sub["metals"], [np.nan, 1.0, 0.75, 0.75])


def test_ciss_aggregates_with_ewma_correlations_by_hand():
    s = pd.DataFrame({"a": [0.9, 0.1], "b": [0.7, 0.2]})
    got = ciss(s, lam=0.5)
    cov = np.eye(2) / 12
    want, shares = [], []
    for row in s.to_numpy():
        dev = row - 0.5
        cov = 0.5 * cov + 0.5 * np.outer(dev, dev)
        rho = cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])
        ws = row / 2
        total = ws[0] ** 2 + ws[1] ** 2 + 2 * ws[0] * ws[1] * rho
        want.append(total)
        shares.append(1 - (ws[0] ** 2 + ws[1] ** 2) / total)
    np.testing.assert_allclose(got["ciss"], want, rtol=1e-12)
    np.testing.assert_allclose(got["co_movement_share"], shares, rtol=1e-12)


def test_ciss_equals_squared_stress_when_markets_move_together():
    s = pd.DataFrame({"a": [0.9, 0.1] * 150, "b": [0.9, 0.1] * 150})
    got = ciss(s, lam=0.93)
    assert got["ciss"].iloc[-2] == pytest.approx(0.81, abs=1e-5)
    assert got["rho_a~b"].iloc[-1] == pytest.approx(1.0, abs=1e-5)


def test_turbulence_is_mahalanobis_distance_from_past_with_additive_contributions():
    r = pd.DataFrame([[1.0, 0], [-1, 0], [0, 1], [0, -1], [1, 2]], columns=["x", "y"])
    got = turbulence(r, min_periods=4)
    # past mean 0, variances 2/3, covariance 0
    assert got["turbulence"].iloc[4] == pytest.approx(7.5)
    assert got.loc[4, "x"] == pytest.approx(1.5)
    assert got.loc[4, "y"] == pytest.approx(6.0)
    assert got["turbulence"].iloc[:4].isna().all()


def test_turbulence_matches_a_direct_inverse_on_random_data():
    r = pd.DataFrame(np.random.default_rng(2).standard_normal((40, 3)))
    got = turbulence(r, min_periods=10)
    t = 30
    past = r.iloc[:t].to_numpy()
    x = r.iloc[t].to_numpy() - past.mean(axis=0)
    want = x @ np.linalg.inv(np.cov(past, rowvar=False)) @ x
    assert got["turbulence"].iloc[t] == pytest.approx(want, rel=1e-10)


def test_absorption_ratio_of_two_assets_is_half_of_one_plus_abs_correlation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(30)
    r = pd.DataFrame({"a": x, "b": -0.6 * x + rng.standard_normal(30)})
    got = absorption_ratio(r, window=30)
    rho = np.corrcoef(r["a"], r["b"])[0, 1]
    assert got.iloc[-1] == pytest.approx((1 + abs(rho)) / 2, rel=1e-12)
    assert got.iloc[:-1].isna().all()


def test_absorption_ratio_counts_a_flat_asset_as_uncorrelated():
    r = pd.DataFrame({"a": [1.0, -1, 2], "b": [1.0, -1, 2], "c": [0.0, 0, 0]})
    # corr(a, b) = 1, c flat: eigenvalues 2, 1, 0 of a trace-3 matrix; top 1 of 3
    assert absorption_ratio(r, window=3).iloc[-1] == pytest.approx(2 / 3)


def _calm_returns(n: int = 700, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        0.01 * rng.standard_normal((n, 4)),
        columns=["A", "B", "D", "C"],
        index=pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC"),
    )


GROUPS = {"safe_haven": ["A"], "tech": ["B", "D"], "speculative": ["C"]}


def _co_crash(r: pd.DataFrame, tolerance: int = 1, halflife: float = 50.0) -> pd.DataFrame:
    observed = pd.DataFrame(True, index=r.index, columns=r.columns)
    return co_crash(
        r,
        observed,
        GROUPS,
        quantile=0.01,
        halflife_days=halflife,
        tolerance=tolerance,
        min_periods=100,
        daily=True,
    )


def test_one_member_crashing_puts_its_group_in_the_tail():
    r = _calm_returns()
    # tech: D crashes while B rises, so the group average (-3%) would dilute it
    r.iloc[600] = {"A": -0.08, "B": 0.02, "D": -0.08, "C": -0.1}
    got = _co_crash(r)
    assert got["flag"].iloc[600] == 1.0
    assert got["tech_tail"].iloc[600] == pytest.approx(-0.08 / got["D_threshold"].iloc[600])
    assert got["severity"].iloc[600] >= 1.0
    assert got["flag"].iloc[:100].isna().all()  # no threshold before the history


def test_groups_may_be_one_bar_apart_but_not_two():
    r = _calm_returns()
    r.loc[r.index[600], "A"] = -0.08
    r.loc[r.index[601], ["D", "C"]] = [-0.08, -0.1]
    r.loc[r.index[650], "A"] = -0.08
    r.loc[r.index[652], ["D", "C"]] = [-0.08, -0.1]
    one = _co_crash(r, tolerance=1)
    assert one["flag"].iloc[601] == 1.0
    assert one["flag"].iloc[650:653].eq(0.0).all()
    assert _co_crash(r, tolerance=2)["flag"].iloc[652] == 1.0


def test_thresholds_forget_old_volatility():
    r = _calm_returns(900)
    r.iloc[100:400] *= 5.0  # a turbulent year, then calm again
    shock = {"A": -0.05, "B": -0.05, "D": 0.0, "C": -0.05}
    r.iloc[850] = shock
    # with a short memory the calm spell sets the scale: a 5σ loss is a tail loss
    assert _co_crash(r, halflife=50.0)["flag"].iloc[850] == 1.0
    # remembering the turbulent year (half-life ~ forever) the same loss is ordinary
    assert _co_crash(r, halflife=1e6)["flag"].iloc[850] == 0.0


def test_severity_ranks_the_larger_crash_first():
    r = _calm_returns()
    r.iloc[600] = {"A": -0.06, "B": -0.06, "D": -0.06, "C": -0.06}
    r.iloc[650] = {"A": -0.12, "B": -0.1, "D": -0.1, "C": -0.15}
    got = _co_crash(r)
    table = episodes(got)
    assert list(table["peak"][:2]) == [r.index[650], r.index[600]]
    assert table["severity"].iloc[0] > table["severity"].iloc[1] >= 1.0


def test_lead_lag_finds_the_series_that_moves_first():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(301)
    r = pd.DataFrame({"x": x[1:], "y": x[:-1] + 0.3 * rng.standard_normal(300)})
    score, asym = lead_lag(r, bars=1, window=200)
    assert score["lead_x"].iloc[-1] > 0.8
    assert score["lead_y"].iloc[-1] < -0.8
    np.testing.assert_allclose(asym[-1], -asym[-1].T)


def test_common_sampling_keeps_returns_between_bars_where_all_traded():
    r = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [0.0, 0, 5, 1]})
    fresh = pd.DataFrame({"a": [True] * 4, "b": [True, False, True, True]})
    got = common_sampling(r, fresh)
    np.testing.assert_allclose(got.to_numpy(), [[5, 5], [4, 1]])


def test_carry_indicator_by_hand():
    yen = _s([1, -1, 1, -1, 3])
    risk = _s([1, 1, -1, -1, -2])
    got = carry_indicator(yen, risk, None, bars=1, corr_window=5, min_periods=4)
    # past RMS of both is 1, so z_yen = 3, z_risk = -2
    assert got["carry_unwind"].iloc[4] == pytest.approx(math.sqrt(6))
    assert got["regime"].iloc[4] == 1.0
    assert got["yen_risk_corr"].iloc[4] == pytest.approx(np.corrcoef(yen, risk)[0, 1])


def test_carry_indicator_calls_jgb_up_with_a_weaker_yen_a_fiscal_shock():
    yen = _s([1, -1, 1, -1, -2])
    risk = _s([1, 1, -1, -1, 0.5])
    jgb = _s([1, -1, 1, -1, 4.5])
    got = carry_indicator(yen, risk, jgb, bars=1, corr_window=5, min_periods=4)
    assert got["fiscal_shock"].iloc[4] == pytest.approx(3.0)  # sqrt(4.5 * 2)
    assert got["carry_unwind"].iloc[4] == 0.0
    assert got["regime"].iloc[4] == -1.0


def test_stylized_facts_by_hand():
    rng = np.random.default_rng(5)
    r = pd.DataFrame({"a": rng.standard_t(3, 500), "b": [1.0, -1.0] * 250})
    got = stylized_facts(r, lags=1)
    x = r["a"].to_numpy() - r["a"].mean()
    assert got.loc["a", "excess_kurtosis"] == pytest.approx((x**4).mean() / (x**2).mean() ** 2 - 3)
    assert got.loc["b", "excess_kurtosis"] == pytest.approx(-2.0)
    assert got.loc["b", "autocorr_r_lag1"] == pytest.approx(-499 / 500)
    down = r.mean(axis=1) <= r.mean(axis=1).quantile(0.2)
    assert got.loc["all", "corr_down"] == pytest.approx(r[down].corr().iloc[0, 1])
    assert got.loc["all", "corr_other"] == pytest.approx(r[~down].corr().iloc[0, 1])

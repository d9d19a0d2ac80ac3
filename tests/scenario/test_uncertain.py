"""Shared and correlated `uncertain` draws (issue 13, item 3): one draw sets or scales
several inputs, shares always sum to their total, and named priors draw with the stated
correlation; each changes the answer of a run the way the draw says."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError
from deleverage.scenario.loader import sample_uncertain

ETH = {**base_raw()["assets"][0], "id": "ETH", "price": 3_000.0}
NEWS = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.1, "ETH": -0.1}}
UNIFORM = {"dist": "uniform", "low": 0.5, "high": 1.5}


def _scenario(uncertain, **changes):
    settings = {"assets": [base_raw()["assets"][0], ETH], "shocks": [NEWS],
                "market": {"noise_scale": 0.0}, **changes}  # fmt: skip
    return build(base_raw(uncertain=uncertain, **settings))


def _draws(scenario, n, read):
    return np.array([read(sample_uncertain(scenario, np.random.default_rng(i))) for i in range(n)])


def test_one_draw_sets_or_scales_several_inputs():
    shared = _scenario([{"paths": ["assets.BTC.daily_vol", "assets.ETH.daily_vol"],
                         "prior": {"dist": "uniform", "low": 0.01, "high": 0.05}}])  # fmt: skip
    vols = _draws(shared, 20, lambda s: [a.daily_vol for a in s.assets])
    assert (vols[:, 0] == vols[:, 1]).all() and len(set(vols[:, 0])) == 20
    scaled = _scenario(
        [{"paths": ["shocks.0.returns.BTC", "shocks.0.returns.ETH"], "prior": UNIFORM,
          "mode": "scale"}],
        shocks=[{**NEWS, "returns": {"BTC": -0.1, "ETH": -0.2}}],
    )  # fmt: skip
    jumps = _draws(scaled, 20, lambda s: list(s.shocks[0].returns.values()))
    np.testing.assert_allclose(jumps[:, 1], 2 * jumps[:, 0], rtol=1e-12)  # one factor, both
    assert ((jumps[:, 0] <= -0.05) & (jumps[:, 0] >= -0.15)).all()


def test_a_shared_draw_moves_both_assets_together_across_paths():
    """Runs: the crash size drawn once for both assets makes their returns move together
    path by path; two independent draws do not."""
    paths = ["shocks.0.returns.BTC", "shocks.0.returns.ETH"]
    shared = _scenario([{"paths": paths, "prior": UNIFORM, "mode": "scale"}])
    apart = _scenario([{"path": p, "prior": UNIFORM, "mode": "scale"} for p in paths])

    def returns(scenario):
        out = []
        for path in range(8):
            prices = simulate(scenario, seed=0, path=path).prices()
            out.append((prices.iloc[-1] / prices.iloc[0]).to_numpy())
        return np.array(out)

    together, independent = returns(shared), returns(apart)
    np.testing.assert_allclose(together[:, 0], together[:, 1], rtol=1e-12)
    assert np.ptp(together[:, 0]) > 0.02  # the draw changes the crash from path to path
    assert not np.allclose(independent[:, 0], independent[:, 1], rtol=1e-3)


def test_shares_always_sum_to_their_total_and_centre_on_the_weights():
    book = {"type": "stop_loss", "asset": "BTC", "accounts": 100, "notional_usd": 1e8,
            "stop_distance": {"dist": "fixed", "value": 0.05}}  # fmt: skip
    books = [{**book, "name": f"stops-{i}"} for i in range(3)]
    shares = {"paths": [f"populations.stops-{i}.notional_usd" for i in range(3)],
              "shares": {"total": 3e9, "weights": [1, 2, 3], "concentration": 20}}  # fmt: skip
    scenario = _scenario([shares], populations=books)
    amounts = _draws(scenario, 300, lambda s: [p.notional_usd for p in s.populations])
    np.testing.assert_allclose(amounts.sum(axis=1), 3e9, rtol=1e-12)
    np.testing.assert_allclose(amounts.mean(axis=0) / 3e9, [1 / 6, 2 / 6, 3 / 6], atol=0.02)
    assert amounts[:, 2].std() > 0.05 * 3e9  # the split is uncertain, the total is not


def _pair(rho):
    return [
        {"name": "btc-vol", "path": "assets.BTC.daily_vol",
         "prior": {"dist": "lognormal", "median": 0.03, "sigma": 0.3}},
        {"name": "eth-vol", "path": "assets.ETH.daily_vol", "correlation": {"btc-vol": rho},
         "prior": {"dist": "triangular", "low": 0.02, "mode": 0.04, "high": 0.08}},
    ]  # fmt: skip


@settings(max_examples=6, deadline=None)
@given(rho=st.floats(-0.9, 0.9).filter(lambda r: abs(r) > 0.3))
def test_named_priors_draw_with_the_stated_rank_correlation(rho):
    vols = _draws(_scenario(_pair(rho)), 300, lambda s: [a.daily_vol for a in s.assets])
    assert vols[:, 0].min() > 0 and 0.02 <= vols[:, 1].min() and vols[:, 1].max() <= 0.08
    measured = stats.spearmanr(vols[:, 0], vols[:, 1]).statistic
    # Gaussian copula: Spearman = (6/π)·asin(ρ/2); 300 draws: standard error ≈ 0.06
    assert measured == pytest.approx(6 / np.pi * np.arcsin(rho / 2), abs=0.2)


def test_without_correlations_draws_are_as_before():
    """Items without correlations draw in order from the same stream as before (seeds
    reproduce earlier runs)."""
    plain = [{"path": "assets.BTC.daily_vol", "prior": {"dist": "uniform", "low": 0.01,
                                                         "high": 0.05}}]  # fmt: skip
    drawn = sample_uncertain(_scenario(plain), np.random.default_rng(7)).assets[0].daily_vol
    assert drawn == np.random.default_rng(7).uniform(0.01, 0.05)


@pytest.mark.parametrize(
    ("uncertain", "where", "says"),
    [
        ([{"path": "assets.BTC.daily_vol", "paths": ["assets.ETH.daily_vol"], "prior": UNIFORM}],
         "uncertain.0", "exactly one of 'path' or 'paths'"),
        ([{"paths": ["assets.BTC.daily_vol"], "shares": {"total": 1, "weights": [1, 1]}}],
         "uncertain.0", "one path per share weight"),
        ([{"path": "clock.step", "prior": UNIFORM, "mode": "scale"}], "uncertain.0.path",
         "expected a number to scale at clock.step"),
        ([{"path": "assets.BTC.daily_vol", "prior": UNIFORM, "correlation": {"x": 0.5}}],
         "uncertain.0.correlation", "expected the name of another prior"),
        ([_pair(0.5)[0], {**_pair(0.5)[1], "name": "btc-vol"}], "uncertain.1.name",
         "unique name"),
        ([{**_pair(0.5)[0], "correlation": {"eth-vol": 0.2}}, _pair(0.5)[1]],
         "uncertain.1.correlation", "expected one correlation for btc-vol and eth-vol"),
        ([{"name": "a", "path": "assets.BTC.daily_vol", "prior": UNIFORM},
          {"name": "b", "path": "assets.ETH.daily_vol", "prior": UNIFORM,
           "correlation": {"a": 0.9}},
          {"name": "c", "path": "assets.BTC.adv_usd", "prior": {"dist": "fixed", "value": 1e9},
           "correlation": {"a": 0.9, "b": -0.9}}], "uncertain", "positive-definite"),
        ([{"paths": ["assets.BTC.adv_usd", "assets.ETH.adv_usd"],
           "shares": {"total": 1e6, "weights": [1, 1]}}], "uncertain.0.shares",
         "assets.BTC.adv_usd"),
    ],
)  # fmt: skip
def test_a_shared_or_correlated_prior_that_cannot_apply_is_one_clear_error(uncertain, where, says):
    with pytest.raises(ScenarioError) as caught:
        _scenario(uncertain)
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert any(path == where and says in message for path, message in problems), problems

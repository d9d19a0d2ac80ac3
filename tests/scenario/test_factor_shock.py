"""A `factor` shock (issue 13, item 3): one surprise drives many assets through their
sensitivities, jump_i = beta_i · size with size = (actual − expected) / scale."""

import numpy as np
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError


def _asset(asset_id, cls, price):
    return {"id": asset_id, "class": cls, "tier": "core", "venue": "spot", "price": price,
            "daily_vol": 0.02, "adv_usd": 1e11}  # fmt: skip


ASSETS = [_asset("BTC", "crypto", 90_000.0), _asset("GOLD", "metal", 4_000.0),
          _asset("NDX", "equity_index", 25_000.0)]  # fmt: skip
TIME = "2026-01-05T13:30:00Z"
# a payrolls print 27k below consensus, one standard deviation of past surprises
PAYROLLS = {"type": "factor", "time": TIME, "label": "payrolls", "actual": 143.0,
            "expected": 170.0, "scale": 27.0,
            "betas": {"BTC": 0.03, "GOLD": -0.012, "NDX": 0.008}}  # fmt: skip


def _prices(shocks):
    raw = base_raw(assets=ASSETS, shocks=shocks, market={"noise_scale": 0.0})
    return simulate(build(raw), seed=0).prices()


def test_one_surprise_moves_every_asset_by_its_beta():
    prices = _prices([PAYROLLS])
    moves = np.log(prices.iloc[-1] / prices.iloc[0])
    np.testing.assert_allclose(moves[["BTC", "GOLD", "NDX"]], [-0.03, 0.012, -0.008], rtol=1e-12)
    # the same jumps as a news shock with one return per asset, step for step
    news = {"type": "news", "time": TIME, "returns": {"BTC": -0.03, "GOLD": 0.012, "NDX": -0.008}}
    np.testing.assert_allclose(prices, _prices([news]), rtol=1e-12)
    # a surprise twice as large moves every asset twice as far
    double = _prices([{**PAYROLLS, "actual": 116.0}])
    np.testing.assert_allclose(np.log(double.iloc[-1] / double.iloc[0]), 2 * moves, rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"betas": {"SPX": 0.01}}, "shocks.0.betas", "expected a defined asset"),
        ({"size": 1.0}, "shocks.0", "give size, or actual and expected"),
        ({"actual": None, "expected": None}, "shocks.0", "give size, or actual and expected"),
        ({"scale": 0.001}, "shocks.0", "expected jumps |beta · size| ≤ 5"),
        ({"time": "2026-02-01T00:00:00Z"}, "shocks.0.time", "inside the clock window"),
    ],
)
def test_a_factor_shock_that_cannot_apply_is_one_clear_error(change, where, says):
    shock = {k: v for k, v in {**PAYROLLS, **change}.items() if v is not None}
    with pytest.raises(ScenarioError) as caught:
        build(base_raw(assets=ASSETS, shocks=[shock]))
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert any(path == where and says in message for path, message in problems), problems

import numpy as np
from tests.conftest import base_raw, build

from deleverage import simulate

SELLOFF = [
    {"type": "news", "time": f"2026-01-05T{h:02d}:00:00Z", "returns": {"BTC": r}}
    for h, r in ((8, -0.06), (9, 0.05), (10, -0.07), (11, -0.04), (12, 0.03), (13, -0.05))
]


def _run(population, channels=None):
    raw = base_raw(
        populations=[population],
        shocks=SELLOFF,
        market={"noise_scale": 0.0},
        channels=channels or {},
    )
    return simulate(build(raw), seed=0, check_invariants=True)


def test_vol_targeting_funds_cut_exposure_as_volatility_rises():
    fund = {
        "type": "vol_target",
        "name": "vt",
        "weights": {"BTC": 1.0},
        "capital_usd": 1e9,
        "target_vol": 0.03,
        "max_leverage": 1.0,
        "vol_half_life": "6h",
    }
    result = _run(fund)
    trades = result.events[result.events.kind == "rebalance"]
    position = trades.quantity.cumsum()
    assert trades.step.iloc[0] == 0 and position.iloc[0] > 0  # builds the position at the start
    assert position.min() < 0.5 * position.iloc[0]  # cuts it as realized volatility jumps
    assert result.diagnostics["max_unit_drift"] < 1e-9
    off = _run(fund, channels={"vol_targeting": False})
    assert (off.events.kind == "rebalance").sum() == 0


def test_trend_followers_sell_a_falling_market():
    cta = {
        "type": "trend_followers",
        "name": "cta",
        "weights": {"BTC": 1.0},
        "capital_usd": 1e9,
        "lookback": "2d",
        "target_vol": 0.01,
        "rebalance_every": "1h",
    }
    result = _run(cta)
    position = result.events[result.events.kind == "rebalance"].quantity.cumsum()
    assert position.iloc[0] < 0 and position.min() * 87_000 < -1e8  # short in the sell-off
    assert position.iloc[-1] > position.min()  # and covers as the trend fades
    assert result.diagnostics["max_cash_drift_usd"] < 1e-6 * (
        1 + np.nansum(result.market["volume_usd"])
    )


def test_etf_outflows_follow_drawdowns():
    etf = {
        "type": "etf_flows",
        "name": "etf",
        "asset": "BTC",
        "aum_usd": 1e10,
        "sensitivity": 0.5,
        "lookback": "1d",
    }
    result = _run(etf)
    flows = result.events[result.events.kind == "etf_flow"]
    assert flows[flows.step < 96].empty  # nothing moves before the sell-off at 08:00
    assert flows.quantity.sum() < 0
    off = _run(etf, channels={"etf_flows": False})
    assert (off.events.kind == "etf_flow").sum() == 0

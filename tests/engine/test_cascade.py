import numpy as np
from tests.conftest import base_raw, build

from deleverage import simulate

STOPS = {
    "type": "stop_loss",
    "name": "stops",
    "asset": "BTC",
    "accounts": 20_000,
    "notional_usd": 1.5e10,
    "stop_distance": {"dist": "uniform", "low": 0.01, "high": 0.2},
}
DROP = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.03}}


def _run(**market):
    raw = base_raw(populations=[STOPS], shocks=[DROP], market={"noise_scale": 0.0, **market})
    return simulate(build(raw), seed=0)


def test_stops_cascade_in_several_rounds_within_the_step():
    result = _run()
    triggered = result.events[result.events.kind == "stop_triggered"]
    first_step = triggered.step.min()
    rounds = triggered[triggered.step == first_step]["round"]
    assert rounds.nunique() >= 3  # each fill's price hits the next stops inside the step
    assert result.diagnostics["round_limit_hits"] == 0


def test_the_round_limit_is_reported_and_waiting_orders_are_not_dropped():
    limited = _run(max_rounds=1)
    assert limited.diagnostics["round_limit_hits"] > 0
    assert (limited.events.kind == "round_limit").sum() == limited.diagnostics["round_limit_hits"]
    assert limited.diagnostics["orders_waiting_at_end"] == 0
    sold = limited.events[limited.events.kind == "stop_triggered"].quantity.sum()
    flows = limited.market["net_flow_units"][1:, 0].sum()
    assert np.isclose(sold, flows)  # every triggered stop was executed, later if not at once


def test_switching_the_stop_loss_channel_off_removes_the_cascade():
    on = _run()
    raw = base_raw(
        populations=[STOPS],
        shocks=[DROP],
        market={"noise_scale": 0.0},
        channels={"stop_loss": False},
    )
    off = simulate(build(raw), seed=0)
    assert (off.events.kind == "stop_triggered").sum() == 0
    drop_on = 1 - on.market["price"][:, 0].min() / 100_000
    drop_off = 1 - off.market["price"][:, 0].min() / 100_000
    assert np.isclose(drop_off, 1 - np.exp(-0.03))  # the shock alone
    assert drop_on > 1.15 * drop_off  # amplification by the stop-loss cascade


def test_market_makers_thin_the_book_as_realized_volatility_rises():
    result = _run()
    depth = result.market["depth_bid"][:, 0]
    vol = result.market["realized_vol"][:, 0]
    stressed = np.argmax(vol)
    # depth is set at the start of a step from the volatility seen so far
    assert vol[stressed] > 0.06 and depth[stressed + 1] < 0.5


def test_mm_retreat_shock_cuts_depth_for_its_window_only():
    retreat = {
        "type": "mm_retreat",
        "assets": ["BTC"],
        "start": "2026-01-05T06:00:00Z",
        "duration": "2h",
        "depth_multiplier": 0.25,
    }
    raw = base_raw(shocks=[retreat], market={"noise_scale": 0.0})
    result = simulate(build(raw), seed=0)
    depth = result.prices().assign(depth=result.market["depth_bid"][:, 0])["depth"]
    assert np.isclose(depth["2026-01-05 06:05":"2026-01-05 08:00"], 0.25).all()
    assert np.isclose(depth["2026-01-05 08:05":], 1.0).all()

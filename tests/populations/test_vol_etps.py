"""Leveraged and inverse VIX ETPs (issue 13, item 11): each product resets its daily
leverage L at the close with a futures trade of (L² − L)·NAV·r, a purchase after a rise
for inverse and leveraged products alike (BIS Quarterly Review, March 2018), and an
inverse product whose indicative value falls 80% in a day is accelerated (XIV)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build
from typer.testing import CliRunner

from deleverage import simulate
from deleverage.cli.main import app
from deleverage.populations import BuildContext, MarketView
from deleverage.populations.vol_etps import VolEtpPopulation
from deleverage.results.events import EventLog
from deleverage.scenario.schema import Channels

runner = CliRunner()

CFE = {
    "id": "cfe",
    "kind": "futures",
    "session": {"timezone": "America/New_York", "days": ["sun", "mon", "tue", "wed", "thu"],
                "open": "16:30", "close": "16:15"},
    "settlement": ["16:10"],
}  # fmt: skip
VIXF = {"id": "VIXF", "class": "equity_index", "tier": "peripheral", "venue": "cfe",
        "price": 100.0, "daily_vol": 0.05, "adv_usd": 4e9}  # fmt: skip
XIV = {"name": "XIV", "leverage": -1, "nav_usd": 2e9, "terminate_drop_pct": 80}
TVIX = {"name": "TVIX", "leverage": 2, "nav_usd": 5e8}
SHOCK_TIME = "2026-01-05T15:00:00Z"  # Monday 10:00 New York: the futures trade
SETTLEMENT_STEP = 254  # Monday 16:10-16:15 New York = 21:10Z, 5-minute steps from 00:00Z


def _raw(products=(XIV, TVIX), jump=None, **etps):
    shocks = [] if jump is None else [
        {"type": "news", "time": SHOCK_TIME, "returns": {"VIXF": float(jump)}}
    ]  # fmt: skip
    population = {"type": "vol_etps", "name": "etps", "asset": "VIXF", "products": list(products)}
    return base_raw(
        venues=[CFE],
        assets=[VIXF],
        populations=[population | etps],
        shocks=shocks,
        market={"noise_scale": 0.0},
        clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z", "step": "5min"},
    )


def _population(leverage, nav):
    scenario = build(_raw([{"name": "P", "leverage": leverage, "nav_usd": nav}]))
    ctx = BuildContext(scenario, {"VIXF": 0}, np.array([100.0]), np.random.default_rng(0),
                       True, 5 / 60)  # fmt: skip
    return VolEtpPopulation(scenario.populations[0], ctx)


def _view(step, price):
    one = np.ones(1, dtype=bool)
    nan = np.full(1, np.nan)
    time = pd.Timestamp("2026-01-05T00:00:00Z") + pd.Timedelta(minutes=5 * step)
    return MarketView(step, time, 5 / 60, np.array([price]), one, one, nan, nan, nan,
                      np.array([price]))  # fmt: skip


leverages = st.one_of(st.floats(-3.0, -0.25), st.floats(0.25, 3.0))


@settings(max_examples=60, deadline=None)
@given(leverage=leverages, nav=st.floats(1e6, 1e10), r=st.floats(-0.3, 0.3))
def test_the_close_trade_is_l2_minus_l_times_nav_times_r(leverage, nav, r):
    pop = _population(leverage, nav)
    assert pop.settles[SETTLEMENT_STEP] and pop.settles.sum() == 2  # Monday and Tuesday
    price = 100.0 * (1.0 + r)
    pop.mark(_view(SETTLEMENT_STEP, price), EventLog())
    orders = pop.orders()
    expected_usd = (leverage**2 - leverage) * nav * r
    if abs(expected_usd) <= 1e-3 * abs(leverage) * nav * abs(1 + leverage * r):
        assert len(orders.quantity) == 0  # inside the rebalance band: no trade
        return
    np.testing.assert_allclose(orders.quantity[0] * price, expected_usd, rtol=1e-9)
    # inverse (L < 0) and leveraged (L > 1) products both buy a rise and sell a fall
    if leverage < 0 or leverage > 1:
        assert np.sign(orders.quantity[0]) == np.sign(r)
    # after the trade the hedge is L × the new NAV
    new_nav = nav * (1 + leverage * r)
    np.testing.assert_allclose(
        (pop.units[0] + orders.quantity[0]) * price, leverage * new_nav, rtol=1e-9
    )


def test_no_trade_outside_the_close_and_none_with_the_channel_off():
    pop = _population(-1.0, 1e9)
    pop.mark(_view(SETTLEMENT_STEP - 10, 150.0), EventLog())  # +50% at 15:20 New York
    assert len(pop.orders().quantity) == 0
    pop.enabled = False
    pop.mark(_view(SETTLEMENT_STEP, 150.0), EventLog())
    assert len(pop.orders().quantity) == 0


def _run(raw, rebalancing=True):
    scenario = build(raw)
    if not rebalancing:
        scenario = scenario.model_copy(update={"channels": Channels(vol_etp_rebalancing=False)})
    return simulate(scenario, seed=0, check_invariants=True)


def _closes(result):
    rows = result.events[result.events.kind == "vol_etp_close"]
    return rows.assign(product=rows.detail.str.split(":").str[0])


def test_the_rebalancing_amplifies_a_vix_futures_jump():
    jump = np.log(1.30)  # +30% at 10:00 New York
    on, off = _run(_raw(jump=jump)), _run(_raw(jump=jump), rebalancing=False)
    for result in (on, off):
        assert result.diagnostics["max_unit_drift"] < 1e-9
        assert result.diagnostics["max_cash_drift_ratio"] < 1e-9
    close_on = _closes(on).price.iloc[0]
    close_off = _closes(off).price.iloc[0]
    assert close_off == pytest.approx(130.0, rel=1e-9)  # the jump alone: nothing trades
    assert close_on > 1.03 * close_off  # both products bought into the rise
    trades = on.events[on.events.kind == "vol_etp_rebalance"]
    assert trades.step.min() == SETTLEMENT_STEP  # at the close, not at the jump
    first_close = trades[trades.step == SETTLEMENT_STEP]
    assert set(first_close.detail) == {"XIV", "TVIX"} and (first_close.quantity > 0).all()
    # the settlement the NAV is struck on is the rebalanced one: XIV loses more than 30%
    xiv = _closes(on).query("product == 'XIV'").notional_usd.iloc[0]
    assert xiv < 2e9 * (1 - 0.30) * (1 - 0.03)


@pytest.mark.parametrize("rise, terminated", [(0.79, False), (0.81, True)])
def test_an_inverse_product_is_terminated_at_an_80_pct_fall(rise, terminated):
    result = _run(_raw(products=[XIV], jump=np.log(1.0 + rise)))
    shock_step = int(
        (pd.Timestamp(SHOCK_TIME) - pd.Timestamp("2026-01-05T00:00:00Z")) / pd.Timedelta("5min")
    )
    events = result.events
    at_shock = events[(events.step == shock_step) & (events.kind == "vol_etp_terminated")]
    assert (len(at_shock) == 1) is terminated
    if terminated:
        # the issuer buys back its whole hedge at once: -(-2e9 / 100) units
        buyback = events[(events.kind == "vol_etp_rebalance") & (events.step == shock_step)]
        assert buyback.quantity.sum() == pytest.approx(2e9 / 100.0, rel=1e-9)
        rebalances = events[events.kind == "vol_etp_rebalance"]
        assert (rebalances.step == shock_step).all()  # flat, and it trades no more
        assert "-81.0% from the prior close" in at_shock.detail.iloc[0]
        assert not (events.kind == "vol_etp_close").any()  # no close for a dead product


def test_a_leveraged_long_product_is_never_terminated_by_a_rise():
    result = _run(_raw(products=[TVIX | {"terminate_drop_pct": 80}], jump=np.log(2.0)))
    assert not (result.events.kind == "vol_etp_terminated").any()


BAD = {
    "no_settlement": ({"venues": [CFE | {"settlement": []}]}, "populations.etps.asset",
                      "venue 'cfe' without `settlement`"),
    "zero_leverage": ({"products": [XIV | {"leverage": 0}]}, "populations.etps.products.XIV",
                      "nonzero leverage, found 0"),
    "twice_the_same_name": ({"products": [XIV, XIV]}, "populations.etps",
                            "unique product names, found 'XIV' twice"),
    "drop_of_100_pct": ({"products": [XIV | {"terminate_drop_pct": 100}]},
                        "populations.etps.products.XIV.terminate_drop_pct", "less than 100"),
    "undefined_asset": ({"asset": "VIX"}, "populations.etps.asset", "expected a defined asset"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_vol_etp_input_is_one_clear_line_and_exit_2(case, write_scenario):
    change, key_path, found = BAD[case]
    raw = _raw()
    if "venues" in change:
        raw["venues"] = change["venues"]
    else:
        raw["populations"][0] |= change
    result = runner.invoke(app, ["run", str(write_scenario(raw, f"{case}.yaml")), "--no-store"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(f"{case}.yaml: {key_path}" in line and found in line for line in lines), lines
    assert "Traceback" not in result.output


def test_the_closing_rebalance_itself_can_take_an_inverse_product_past_its_threshold():
    # +70% at 10:00 leaves XIV at -70%, above the -80% acceleration level; buying back
    # its short into the 16:15 settlement lifts the index further, past it (as on 5 Feb
    # 2018, when the indicative value collapsed in the closing minutes)
    raw = _raw(products=[XIV], jump=np.log(1.70))
    on, off = _run(raw), _run(raw, rebalancing=False)
    terminated = on.events[on.events.kind == "vol_etp_terminated"]
    assert terminated.step.tolist() == [SETTLEMENT_STEP]
    assert not (off.events.kind == "vol_etp_terminated").any()
    assert "XIV: NAV -70.0%" in _closes(off).detail.iloc[0]

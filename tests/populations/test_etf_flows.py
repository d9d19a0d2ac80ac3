"""ETF creations and redemptions follow the business days of their creation venue."""

import pandas as pd
import pytest
from tests.conftest import NASDAQ, base_raw, build

from deleverage import load_scenario, simulate
from deleverage.errors import ScenarioError
from deleverage.market.calendar import build_calendar

ETF = {
    "type": "etf_flows",
    "name": "etf",
    "asset": "BTC",
    "aum_usd": 1e10,
    "sensitivity": 0.5,
    "lookback": "5d",
}


def _flows(**etf_changes):
    raw = base_raw(
        clock={"start": "2026-01-08T00:00:00Z", "end": "2026-01-14T00:00:00Z", "step": "15min"},
        venues=[{"id": "spot", "kind": "crypto"}, NASDAQ],
        populations=[{**ETF, **etf_changes}],
        shocks=[{"type": "news", "time": "2026-01-08T01:00:00Z", "returns": {"BTC": -0.2}}],
        market={"noise_scale": 0.0},
    )
    scenario = build(raw)
    result = simulate(scenario, seed=0, check_invariants=True)
    flows = result.events[result.events.kind == "etf_flow"]
    return flows, build_calendar(scenario).step_starts[flows.step.to_numpy()]


def test_a_btc_etf_creating_on_nasdaq_days_trades_on_no_weekend():
    flows, when = _flows(creation_venue="nasdaq")
    assert len(flows) > 0 and flows.quantity.sum() < 0  # redemptions after the drawdown
    assert not when.day_of_week.isin([5, 6]).any()  # 10-11 Jan 2026 are a Saturday and Sunday
    local = when.tz_convert("America/New_York")
    assert ((local.hour * 60 + local.minute >= 9 * 60 + 30) & (local.hour < 16)).all()
    assert set(when.normalize().day) == {8, 9, 12, 13}


def test_a_business_days_flow_is_the_same_whatever_the_session_length():
    """Per business day the fund redeems sensitivity x trailing return x AUM, whether it
    trades over a 24-hour or a 6.5-hour session (the first day, before the trailing return
    moves much, must match between the two)."""
    nasdaq, when_n = _flows(creation_venue="nasdaq")
    spot, when_s = _flows()
    first_n = nasdaq[when_n.normalize() == pd.Timestamp("2026-01-08", tz="UTC")]
    first_s = spot[when_s.normalize() == pd.Timestamp("2026-01-08", tz="UTC")]
    assert first_n.notional_usd.sum() == pytest.approx(first_s.notional_usd.sum(), rel=0.1)
    assert when_s.day_of_week.isin([5, 6]).any()  # without it, a 24/7 asset's fund trades daily


def test_an_undefined_creation_venue_is_a_scenario_error():
    raw = base_raw(populations=[{**ETF, "creation_venue": "nyse"}])
    with pytest.raises(
        ScenarioError, match=r"populations\.etf\.creation_venue: expected a defined venue"
    ):
        build(raw)


def test_the_feb_2026_spot_btc_etfs_create_on_nasdaq_days():
    scenario = load_scenario("feb-2026")
    etf = next(p for p in scenario.populations if p.name == "spot-btc-etfs")
    assert etf.creation_venue == "nasdaq"

import numpy as np
import pandas as pd
import pytest
from tests.conftest import NASDAQ, base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError
from deleverage.market.calendar import build_calendar
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.systematic import VolTargetPopulation

SELLOFF = [
    {"type": "news", "time": f"2026-01-05T{h:02d}:00:00Z", "returns": {"BTC": r}}
    for h, r in ((8, -0.06), (9, 0.05), (10, -0.07), (11, -0.04), (12, 0.03), (13, -0.05))
]


def _run(population, channels=None, participation_rate=1.0):
    """The rules alone: by default funds trade their whole rebalance at once."""
    raw = base_raw(
        populations=[population],
        shocks=SELLOFF,
        market={"noise_scale": 0.0, "participation_rate": participation_rate},
        channels=channels or {},
    )
    return simulate(build(raw), seed=0, check_invariants=True)


def test_voluntary_rebalances_are_worked_at_the_participation_rate():
    """A $1bn vol-target book built from cash at 10% of normal volume a step ($2e10 ADV on
    a 24 h venue: $6.9M a step) takes about 1e9 / 6.9e6 ≈ 145 steps, never more a step."""
    fund = {
        "type": "vol_target",
        "name": "vt",
        "weights": {"BTC": 1.0},
        "capital_usd": 1e9,
        "target_vol": 0.03,
        "max_leverage": 1.0,
    }
    result = _run(fund, participation_rate=0.1)
    trades = result.events[result.events.kind == "rebalance"]
    per_step = trades.groupby("step").notional_usd.sum()
    cap = 0.1 * 2e10 / 288
    # the cap is set at the price before the trade; fills pay the impact on top (< 0.1%)
    assert per_step.max() <= cap * 1.001
    first_day = per_step[per_step.index < 288]
    assert first_day.iloc[:100].min() == pytest.approx(cap, rel=1e-3)  # working the order
    assert 0.5e9 < first_day.sum() < 1.1e9
    assert result.diagnostics["max_unit_drift"] < 1e-9


def test_vol_targeting_funds_cut_exposure_as_volatility_rises():
    fund = {  # small enough ($50M) to build its book in one step at the participation cap
        "type": "vol_target",
        "name": "vt",
        "weights": {"BTC": 1.0},
        "capital_usd": 5e7,
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


def test_funds_estimate_volatility_per_trading_day_of_each_venue():
    """A weekday 6.5-hour market and a 24/7 one: each asset's estimate matches its input."""
    raw = base_raw(
        clock={"start": "2026-01-05T00:00:00Z", "end": "2026-02-16T00:00:00Z", "step": "5min"},
        venues=[
            {"id": "spot", "kind": "crypto"},
            NASDAQ,
        ],
        populations=[
            {
                "type": "vol_target",
                "name": "vt",
                "weights": {"BTC": 0.5, "NDX": 0.5},
                "capital_usd": 1e6,
                "target_vol": 0.01,
                "vol_half_life": "10d",
            }
        ],
    )
    raw["assets"].append(
        {
            "id": "NDX",
            "class": "equity_index",
            "tier": "semi_core",
            "venue": "nasdaq",
            "price": 25_000.0,
            "daily_vol": 0.01,
            "adv_usd": 2e11,
        }
    )
    scenario = build(raw)
    prices = simulate(scenario, seed=2).market["price"]
    is_open = build_calendar(scenario).open  # venues are in asset order here
    ctx = BuildContext(
        scenario, scenario.asset_index(), prices[0], np.random.default_rng(0), True, 5 / 60
    )
    fund = VolTargetPopulation(scenario.populations[0], ctx)
    assert fund.rebalance_steps == 288 and ctx.steps_per_day.tolist() == [288, 78]
    nan = np.full(2, np.nan)
    for k in range(scenario.clock.n_steps):
        fund.observe(
            MarketView(
                k,
                pd.Timestamp(scenario.clock.start),
                5 / 60,
                prices[k + 1],
                is_open[:, k],
                np.zeros(2, bool),
                nan,
                nan,
                nan,
                prices[k + 1],
            )
        )
    assert np.allclose(fund.realized_vol, [0.03, 0.01], rtol=0.35)


def test_trend_funds_hold_fx_pairs_while_etf_holders_keep_usd_only():
    """Trend and vol-target funds keep cash per currency (tests/populations/
    test_fx_systematic.py); ETF holders still hold USD-quoted assets only."""
    cta = {"type": "trend_followers", "name": "cta", "weights": {"USDJPY": 1.0}, "capital_usd": 1e9}
    etf = {"type": "etf_flows", "name": "etf", "asset": "USDJPY", "aum_usd": 1e9, "sensitivity": 1}
    raw = base_raw(populations=[cta])
    raw["assets"].append(
        {
            "id": "USDJPY",
            "class": "fx",
            "tier": "core",
            "venue": "spot",
            "currency": "JPY",
            "price": 156.0,
            "daily_vol": 0.006,
            "adv_usd": 1e12,
        }
    )
    assert build(raw).populations[0].weights == {"USDJPY": 1.0}
    raw["populations"] = [etf]
    with pytest.raises(ScenarioError, match=r"populations\.etf\.asset: expected USD assets"):
        build(raw)

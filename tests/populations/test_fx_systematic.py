"""Trend and vol-target funds holding fx pairs and assets quoted in yen (issue 13, item 10):
a CTA short yen (long USDJPY) in a yen rally sells the pair back as its trend turns and
its volatility estimate rises, and that selling pushes USDJPY further down."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.populations.systematic import TrendPopulation, VolTargetPopulation
from deleverage.scenario.schema import TrendFollowers, VolTargetFunds

START = pd.Timestamp("2026-01-05T00:00:00Z")
RALLY = [  # the yen rallies: USDJPY −1.5% an hour for four hours on day one
    {"type": "fx", "time": f"2026-01-05T{h:02d}:00:00Z", "pair": "USDJPY", "change": -0.015}
    for h in (6, 7, 8, 9)
]


def _usdjpy(closes):
    days = pd.date_range(end=START, periods=len(closes), freq="D")
    points = [[f"{d:%Y-%m-%d}T00:00:00Z", float(c)] for d, c in zip(days, closes, strict=True)]
    history = {"points": points}
    return {"id": "USDJPY", "class": "fx", "tier": "core", "venue": "spot", "currency": "JPY",
            "daily_vol": 0.006, "adv_usd": 3e10, "history": history}  # fmt: skip


# a month of yen weakness: USDJPY from 147 to 158, with ±0.4% daily wiggles
WEAK_YEN = 147.0 * np.exp(np.linspace(0, np.log(158 / 147), 30) + 0.004 * (-1) ** np.arange(30))
CTA = {"type": "trend_followers", "name": "cta", "weights": {"USDJPY": 1.0}, "capital_usd": 5e9,
       "lookback": "10d", "target_vol": 0.01, "vol_half_life": "1d",
       "rebalance_every": "1h"}  # fmt: skip


def _run(spec, model, closes, shocks, on=True):
    raw = base_raw(assets=[_usdjpy(closes)], shocks=shocks,
                   market={"noise_scale": 0.0, "participation_rate": 1.0},
                   channels={"stop_loss": on, "vol_targeting": on})  # fmt: skip
    funds = []

    def extra(ctx):  # the population itself, to read its balance sheet after the run
        funds.append(model(model_spec(spec), ctx))
        return funds[-1]

    def model_spec(spec):
        return (TrendFollowers if spec["type"] == "trend_followers" else VolTargetFunds)(**spec)

    result = simulate(build(raw), seed=0, check_invariants=True, extra=[extra] if on else [])
    assert result.diagnostics["max_unit_drift"] < 1e-9
    assert result.diagnostics["max_cash_drift_ratio"] < 1e-9  # USD and JPY each conserved
    return funds[0] if funds else None, result


def test_a_cta_short_yen_buys_it_back_in_a_yen_rally_and_pushes_usdjpy_down():
    cta, result = _run(CTA, TrendPopulation, WEAK_YEN, RALLY)
    _, without = _run(CTA, TrendPopulation, WEAK_YEN, RALLY, on=False)
    trades = result.events[result.events.kind == "rebalance"]
    shock_step = int((pd.Timestamp("2026-01-05T06:00:00Z") - START) / pd.Timedelta("5min"))
    start_units = cta.units[0, 0] - trades.quantity.sum()
    # it starts long dollars against the yen: about 2× equity (target 1% ÷ 0.5% vol)
    assert start_units > 5e9
    sold_after = -trades[trades.step >= shock_step].quantity.sum()
    sold_before = -trades[trades.step < shock_step].quantity.sum()
    assert sold_after > 0.5 * start_units  # forced to buy most of its yen back
    assert sold_after > 5 * max(sold_before, 0.0)  # because of the rally, not before it
    # dollars sold are worth about one USD each (the pair's unit): notional ≈ |quantity|
    after = trades[trades.step >= shock_step]
    np.testing.assert_allclose(after.notional_usd, after.quantity.abs(), rtol=0.02)
    # its sales move the pair the way the mechanism says: USDJPY ends lower with the CTA
    with_cta, no_cta = result.market["price"][-1, 0], without.market["price"][-1, 0]
    assert with_cta < no_cta * (1 - 5e-4)
    # the fund lost in USD on its short yen; equity = USD cash + dollars held + yen / USDJPY
    price = result.market["price"][-1]
    equity = cta.cash_usd + cta.units[:, 0] + cta.cash_local[:, 0] / price[0]
    np.testing.assert_allclose(cta.equity(price), equity, rtol=1e-12)
    assert equity.sum() < 5e9 * (1 - 0.02)


def test_a_vol_target_fund_long_usdjpy_cuts_it_as_the_pair_turns_volatile():
    """Quiet history (0.2% a day), then ±1.5% swings every hour: σ̂ rises and the fund,
    long dollars against yen, sells the pair back (a yen purchase)."""
    quiet = 156.0 * np.exp(0.001 * (-1) ** np.arange(30))  # daily returns ±0.2%
    swings = [{"type": "fx", "time": f"2026-01-05T{h:02d}:00:00Z", "pair": "USDJPY",
               "change": 0.015 * (-1) ** h} for h in range(6, 14)]  # fmt: skip
    spec = {"type": "vol_target", "name": "vt", "weights": {"USDJPY": 1.0}, "capital_usd": 1e9,
            "target_vol": 0.004, "max_leverage": 3.0, "vol_half_life": "12h",
            "rebalance_every": "1h"}  # fmt: skip
    fund, result = _run(spec, VolTargetPopulation, quiet, swings)
    trades = result.events[result.events.kind == "rebalance"]
    start_units = fund.units[0, 0] - trades.quantity.sum()
    assert start_units == pytest.approx(2e9, rel=0.05)  # 0.4% target ÷ 0.2% σ̂: 2× equity
    assert fund.units[0, 0] < 0.5 * start_units
    assert trades.quantity.sum() < 0
    # it started with the dollars funded in yen; the yen received for the dollars it sold
    # stay in yen (the pair's quote currency), repaying that funding
    yen_start = -start_units * quiet[-1]
    received = -(trades.quantity * trades.price).sum()
    assert fund.cash_local[0, 0] == pytest.approx(yen_start + received, rel=1e-3)
    assert received > 0.5 * -yen_start

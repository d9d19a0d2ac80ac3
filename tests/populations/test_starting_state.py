"""Funds start where their own rules put them on the asset's history, not in cash (SPEC §4)."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import NASDAQ, TOKYO, base_raw, build, run_and_check_conservation

from deleverage.populations.base import BuildContext
from deleverage.populations.etf_flows import EtfFlowPopulation
from deleverage.populations.portfolio import history_on_clock
from deleverage.populations.systematic import TrendPopulation, VolTargetPopulation
from deleverage.populations.value_funds import ValueFundPopulation

START = pd.Timestamp("2026-01-05", tz="UTC")
HISTORY_VOL = 0.05  # daily, vs the asset's input daily_vol of 0.03


def _daily_history(days=120, vol=HISTORY_VOL, drift=0.0, seed=7):
    """Daily closes up to and including the clock start (BTC trades every day)."""
    rng = np.random.default_rng(seed)
    log_price = np.log(100_000.0) + np.cumsum(drift + vol * rng.standard_normal(days))
    times = pd.date_range(end=START, periods=days, freq="1D")
    return pd.Series(np.exp(log_price), index=times)


def _raw(history: pd.Series | None, populations, **changes):
    raw = base_raw(populations=populations, **changes)
    if history is not None:
        raw["assets"][0].pop("price")
        raw["assets"][0]["history"] = {
            "points": [[t.isoformat(), float(p)] for t, p in history.items()],
            "source": "test: simulated",
        }
    return raw


def _context(scenario) -> BuildContext:
    from deleverage.engine.simulate import initial_prices

    return BuildContext(
        scenario,
        scenario.asset_index(),
        initial_prices(scenario),
        np.random.default_rng(0),
        True,
        5 / 60,
    )


VOL_TARGET = {
    "type": "vol_target",
    "name": "vt",
    "weights": {"BTC": 1.0},
    "funds": 4,
    "capital_usd": 1e9,
    "target_vol": 0.06,
    "max_leverage": 2.0,
    "vol_half_life": "10d",
}


def _ewma_variance(history: pd.Series, prior: float, half_life_days: float) -> float:
    """The fund's estimator written out for daily closes of a 24/7 asset: one EWMA update
    per day with weight 1 − 0.5**(1/half_life), starting from the input daily_vol**2."""
    r2 = np.log(history).diff().dropna() ** 2
    alpha = 1 - 0.5 ** (1 / half_life_days)
    return float(pd.concat([pd.Series([prior]), r2]).ewm(alpha=alpha, adjust=False).mean().iloc[-1])


@pytest.mark.parametrize("target_vol, capped", [(0.06, False), (0.5, True)])
def test_a_vol_target_fund_starts_at_the_leverage_its_target_gives_on_the_history(
    target_vol, capped
):
    history = _daily_history()
    scenario = build(_raw(history, [{**VOL_TARGET, "target_vol": target_vol}]))
    fund = VolTargetPopulation(scenario.populations[0], _context(scenario))
    history_vol = np.sqrt(_ewma_variance(history, 0.03**2, 10.0))
    assert fund.realized_vol[0] == pytest.approx(history_vol, rel=1e-9)
    assert history_vol == pytest.approx(HISTORY_VOL, rel=0.25)  # the history's, not the input's
    leverage = fund.units[:, 0] * history.iloc[-1] / (1e9 / 4)
    expected = 2.0 if capped else target_vol / history_vol
    assert np.allclose(leverage, expected, rtol=1e-9)
    assert np.allclose(fund.equity(np.array([history.iloc[-1]])), 1e9 / 4)  # paid from cash


def test_with_a_history_a_vol_target_fund_does_not_buy_its_book_on_day_one():
    history = _daily_history()
    book_usd = 1e9 * 0.06 / np.sqrt(_ewma_variance(history, 0.03**2, 10.0))
    scenario = build(_raw(history, [VOL_TARGET]))
    result = run_and_check_conservation(scenario, seed=3)
    trades = result.events[(result.events.kind == "rebalance") & (result.events.step < 288)]
    assert trades.notional_usd.sum() < 0.1 * book_usd
    # Without a history the same fund starts in cash and buys its whole book at the start.
    cash_start = run_and_check_conservation(build(_raw(None, [VOL_TARGET])), seed=3)
    first = cash_start.events[
        (cash_start.events.kind == "rebalance") & (cash_start.events.step < 288)
    ]
    assert first.quantity.sum() * 100_000 > 0.9 * 1e9 * 0.06 / 0.03


def test_history_returns_are_counted_in_open_steps_of_the_venue():
    """Daily closes of a weekday market: Friday to Monday is one trading day, not three."""
    raw = _raw(None, [], venues=[{"id": "spot", "kind": "crypto"}, NASDAQ])
    raw["assets"][0].update(venue="nasdaq", price=None)
    raw["assets"][0].pop("price")
    closes = pd.date_range("2025-12-29", "2026-01-05", freq="B", tz="UTC")  # 00:00 UTC, Mon-Fri
    raw["assets"][0]["history"] = {
        "points": [[t.isoformat(), 100.0 + i] for i, t in enumerate(closes)]
    }
    scenario = build(raw)
    log_price, open_steps = history_on_clock(_context(scenario), 0)
    assert len(log_price) == len(closes) and set(open_steps) == {78}  # 6.5 h of 5-min steps


def test_history_returns_skip_the_lunch_break_of_the_venue():
    """Tokyo: 09:00-11:30 and 12:30-15:30 JST, so a day is 5.5 h of trading, not 6.5 h."""
    raw = _raw(None, [], venues=[{"id": "spot", "kind": "crypto"}, TOKYO])
    raw["assets"][0].update(venue="tse")
    raw["assets"][0].pop("price")
    closes = pd.date_range("2025-12-29 07:00", "2026-01-02 07:00", freq="B", tz="UTC")
    raw["assets"][0]["history"] = {
        "points": [[t.isoformat(), 100.0 + i] for i, t in enumerate(closes)]
    }
    log_price, open_steps = history_on_clock(_context(build(raw)), 0)
    assert len(log_price) == len(closes) and set(open_steps) == {66}  # 5.5 h of 5-min steps


def test_trend_followers_start_long_after_a_rally_at_their_rule_position():
    history = _daily_history(days=60, vol=0.02, drift=0.01)
    cta = {
        "type": "trend_followers",
        "name": "cta",
        "weights": {"BTC": 1.0},
        "capital_usd": 1e9,
        "target_vol": 0.01,
        "lookback": "10d",
        "vol_half_life": "5d",
    }
    scenario = build(_raw(history, [cta]))
    fund = TrendPopulation(scenario.populations[0], _context(scenario))
    log_history = np.log(history)
    trend = float(log_history.ewm(alpha=1 - 0.5 ** (1 / 10), adjust=False).mean().iloc[-1])
    vol = np.sqrt(_ewma_variance(history, 0.03**2, 5.0))
    exposure = min(np.tanh((log_history.iloc[-1] - trend) / vol) * 0.01 / vol, 3.0)
    assert exposure > 0.2
    assert fund.units[0, 0] * history.iloc[-1] / 1e9 == pytest.approx(exposure, rel=1e-9)
    flat = TrendPopulation(
        build(_raw(None, [cta])).populations[0], _context(build(_raw(None, [cta])))
    )
    assert flat.units[0, 0] == 0.0  # no history: no trend, in cash


def test_etf_trailing_return_at_the_start_is_read_from_the_history():
    history = pd.Series(
        [100_000.0, 100_000.0, 80_000.0],
        index=pd.DatetimeIndex(["2025-12-20", "2025-12-30", "2026-01-05"], tz="UTC"),
    )
    etf = {
        "type": "etf_flows",
        "name": "etf",
        "asset": "BTC",
        "aum_usd": 1e10,
        "sensitivity": 0.5,
        "lookback": "5d",
    }
    scenario = build(_raw(history, [etf], market={"noise_scale": 0.0}))
    population = EtfFlowPopulation(scenario.populations[0], _context(scenario))
    assert np.allclose(np.exp(population.lagged_log_price), 100_000.0)  # 5 days ago: 31 Dec
    result = run_and_check_conservation(scenario, seed=0)
    flows = result.events[(result.events.kind == "etf_flow") & (result.events.step < 288)]
    # A day of creations compounds to AUM·(exp(sensitivity·trailing) − 1); impact adds a little.
    expected = (np.exp(0.5 * np.log(0.8)) - 1.0) * 1e10
    assert flows.quantity.sum() * 80_000 == pytest.approx(expected, rel=0.05)


VALUE = {
    "type": "value_funds",
    "name": "dip",
    "asset": "BTC",
    "funds": 5,
    "capital_usd": 1e9,
    "aggressiveness": {"dist": "fixed", "value": 4.0},
}


def test_value_funds_anchor_on_the_history_mean_and_start_holding_what_they_demand():
    history = pd.Series(
        [120_000.0, 110_000.0, 100_000.0, 90_000.0],
        index=pd.date_range(end=START, periods=4, freq="1D"),
    )
    scenario = build(_raw(history, [VALUE]))
    fund = ValueFundPopulation(scenario.populations[0], _context(scenario))
    assert fund.anchor == 105_000.0
    mispricing = (105_000.0 - 90_000.0) / 105_000.0
    assert np.allclose(fund.units[:, 0], 4.0 * mispricing * 2e8 / 90_000.0)
    assert np.allclose(fund.equity(np.array([90_000.0])), 2e8)
    explicit = build(_raw(None, [{**VALUE, "anchor": 95_000.0}]))
    cash_start = ValueFundPopulation(explicit.populations[0], _context(explicit))
    assert cash_start.anchor == 95_000.0 and not cash_start.units.any()  # no history: cash

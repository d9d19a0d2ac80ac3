"""Intraday breaks (issue 13, item 11): a lunch break closes the venue like a night — no
trading, no noise, no impact; orders and news wait and reach the price when the afternoon
session opens. The break is inside the day's session: breaks are validated like the rest."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import TOKYO, base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError
from deleverage.market.calendar import break_mask, build_calendar, session_mask
from deleverage.scenario.schema import Session

BREAK = (pd.Timestamp("2026-01-05T02:30Z"), pd.Timestamp("2026-01-05T03:30Z"))  # Monday, UTC


def tokyo_market(breaks=True, **changes) -> dict:
    venue = dict(TOKYO, session=dict(TOKYO["session"]))
    if not breaks:
        del venue["session"]["breaks"]
    raw = base_raw(venues=[venue], market={"noise_scale": 0.0}, **changes)
    raw["assets"] = [
        {
            "id": "NKY",
            "class": "equity_index",
            "tier": "semi_core",
            "venue": "tse",
            "price": 50_000.0,
            "daily_vol": 0.012,
            "adv_usd": 2e10,
        }
    ]
    return raw


def step_starts(result) -> pd.DatetimeIndex:
    return result.times[:-1]


def test_news_during_the_lunch_break_reaches_the_price_when_the_afternoon_opens():
    news = [{"type": "news", "time": "2026-01-05T03:00:00Z", "returns": {"NKY": -0.05}}]
    result = simulate(build(tokyo_market(shocks=news)), seed=0)
    prices = result.prices().NKY
    morning = prices.loc[:"2026-01-05T03:30Z"]  # to the break's end: calm, noise off
    assert np.allclose(morning, 50_000.0, rtol=1e-12, atol=0)
    # the step starting at 12:30 JST (03:30 UTC) opens with the whole move
    assert prices.loc["2026-01-05T03:35Z"] == pytest.approx(50_000 * np.exp(-0.05), rel=1e-12)
    # without the break the news moves the price at 12:00 JST
    free = simulate(build(tokyo_market(breaks=False, shocks=news)), seed=0).prices().NKY
    assert free.loc["2026-01-05T03:05Z"] == pytest.approx(50_000 * np.exp(-0.05), rel=1e-12)


def test_an_order_sent_during_the_break_waits_and_trades_at_the_reopening():
    flow = [{"type": "flow", "asset": "NKY", "start": "2026-01-05T02:45:00Z",
             "duration": "5min", "notional_usd": -5e8}]  # fmt: skip
    result = simulate(build(tokyo_market(shocks=flow)), seed=0)
    volume = result.market["volume_usd"][1:, 0]  # row k + 1: step k
    starts = step_starts(result)
    in_break = (starts >= BREAK[0]) & (starts < BREAK[1])
    assert in_break.sum() == 12 and not volume[in_break].any()  # no trade, no impact
    traded = np.flatnonzero(volume)
    assert starts[traded[0]] == BREAK[1]  # the first trade is the afternoon's first step
    assert result.prices().NKY.loc[BREAK[1]] == pytest.approx(50_000.0, rel=1e-12)  # unmoved
    assert result.prices().NKY.loc[BREAK[1] + pd.Timedelta("5min")] < 50_000.0


def test_a_break_shortens_the_trading_day_and_keeps_daily_volatility():
    session = Session.model_validate(TOKYO["session"])
    assert session.hours_per_day == 5.5
    with_break, without = (tokyo_market(breaks=b) for b in (True, False))
    for raw in (with_break, without):
        raw["market"] = {}  # noise on
    assert build_calendar(build(with_break)).open[0].sum() == 2 * 5.5 * 12  # Mon and Tue
    returns = [
        np.diff(np.log(simulate(build(raw), seed=0).market["price"][:, 0]))
        for raw in (with_break, without)
    ]
    assert np.count_nonzero(returns[0]) == 2 * 5.5 * 12  # noise only while trading
    # the same draws, over 5.5 rather than 6.5 hours a day: each step's noise is larger by
    # sqrt(6.5 / 5.5), so a day's variance is the asset's daily_vol² in both
    assert returns[0][0] / returns[1][0] == pytest.approx(np.sqrt(6.5 / 5.5), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    open_=st.integers(0, 600),
    length=st.integers(120, 800),
    start=st.integers(1, 400),
    width=st.integers(5, 300),
)
def test_a_step_is_in_a_break_exactly_when_it_starts_inside_one(open_, length, start, width):
    close = open_ + length
    start = open_ + start
    end = start + width
    if close > 1440 or end >= close:
        return
    session = Session(open=open_, close=close, breaks=[(start, end)])
    starts = pd.date_range("2026-01-05", periods=288, freq="5min", tz="UTC")
    minute = starts.hour * 60 + starts.minute
    expected = (minute >= start) & (minute < end)
    assert (break_mask(session, starts) == expected).all()
    trading = session_mask(session, starts) & ~break_mask(session, starts)
    assert trading.sum() * 5 == pytest.approx(
        session.hours_per_day * 60, abs=10
    )  # to the 5-minute grid


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        ([["12:30", "11:30"]], "expected a break that ends after it starts, found 12:30-11:30"),
        ([["08:30", "09:30"]], "expected a break inside the session 09:00-15:30, found 08:30"),
        ([["15:00", "15:30"]], "inside the session"),
        ([["11:00", "12:00"], ["11:30", "12:30"]], "expected breaks that do not overlap"),
        ([["11:30", "25:00"]], "expected a local time"),
    ],
)
def test_bad_breaks_are_refused_with_one_clear_message(breaks, message):
    raw = tokyo_market()
    raw["venues"][0]["session"]["breaks"] = breaks
    with pytest.raises(ScenarioError) as error:
        build(raw)
    text = str(error.value)
    assert "venues.0.session" in text or "venues.tse.session" in text
    assert message in text

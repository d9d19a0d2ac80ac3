from datetime import date, timedelta

import numpy as np
import pandas as pd
from tests.conftest import NASDAQ, base_raw, build

from deleverage import simulate
from deleverage.market.calendar import session_mask, settlement_mask
from deleverage.scenario.schema import Session

# CME Globex: opens Sun-Thu 18:00 New York time, trades to 17:00 the next day
# Nasdaq's hours with Martin Luther King Day (Monday 19 Jan 2026) a holiday
NASDAQ_MLK_DAY = Session(**NASDAQ["session"], holidays=[date(2026, 1, 19)])
GLOBEX = Session(
    timezone="America/New_York",
    days=["sun", "mon", "tue", "wed", "thu"],
    open="18:00",
    close="17:00",
)


def equity_market(**changes) -> dict:
    raw = base_raw(
        clock={"start": "2026-01-03T00:00:00Z", "end": "2026-01-06T00:00:00Z", "step": "5min"},
        venues=[NASDAQ],
        **changes,
    )
    raw["assets"] = [
        {
            "id": "NDX",
            "class": "equity_index",
            "tier": "semi_core",
            "venue": "nasdaq",
            "price": 25000.0,
            "daily_vol": 0.01,
            "adv_usd": 2e11,
        }
    ]
    return raw


def fill_times(result) -> list[pd.Timestamp]:
    flows = result.events[result.events.kind == "flow"]
    return [
        result.times[step + 1] - pd.Timedelta(result.scenario.clock.step) for step in flows.step
    ]


def test_an_order_sent_on_a_saturday_executes_at_mondays_open():
    raw = equity_market(
        shocks=[
            {
                "type": "flow",
                "asset": "NDX",
                "start": "2026-01-03T15:00:00Z",
                "duration": "5min",
                "notional_usd": -1e9,
            }
        ]
    )
    result = simulate(build(raw), seed=1)
    assert fill_times(result) == [pd.Timestamp("2026-01-05 14:30", tz="UTC")]  # 09:30 New York
    prices = result.prices()["NDX"]
    assert prices.loc[:"2026-01-05 14:25"].nunique() == 1  # closed: no trade, no noise


def test_an_outage_delays_the_open_and_the_queued_order():
    raw = equity_market(
        shocks=[
            {
                "type": "flow",
                "asset": "NDX",
                "start": "2026-01-03T15:00:00Z",
                "duration": "5min",
                "notional_usd": -1e9,
            },
            {
                "type": "outage",
                "venue": "nasdaq",
                "start": "2026-01-05T14:30:00Z",
                "duration": "1h",
            },
        ]
    )
    result = simulate(build(raw), seed=1)
    assert fill_times(result) == [pd.Timestamp("2026-01-05 15:30", tz="UTC")]
    assert (result.events.kind == "outage").sum() == 1


def test_a_news_jump_on_a_closed_venue_opens_as_a_gap():
    raw = equity_market(
        market={"noise_scale": 0.0},
        shocks=[{"type": "news", "time": "2026-01-04T12:00:00Z", "returns": {"NDX": -0.05}}],
    )
    prices = simulate(build(raw), seed=0).prices()["NDX"]
    # The price recorded at 14:30 closes the last closed step; the open step ends at 14:35.
    assert prices[pd.Timestamp("2026-01-05 14:30", tz="UTC")] == 25000.0
    assert np.isclose(prices[pd.Timestamp("2026-01-05 14:35", tz="UTC")], 25000.0 * np.exp(-0.05))


def test_overnight_session_spans_midnight_and_skips_its_closed_hour():
    times = pd.DatetimeIndex(
        [
            "2026-01-04 22:30",
            "2026-01-05 12:00",
            "2026-01-05 22:30",
            "2026-01-09 21:30",
            "2026-01-09 23:30",
            "2026-01-10 12:00",
        ],
        tz="UTC",
    )
    # Sun 17:30 ET closed; Mon 07:00 open; Mon 17:30 ET closed (daily break);
    # Fri 16:30 open; Fri 18:30 closed (no Friday session); Saturday closed.
    assert session_mask(GLOBEX, times).tolist() == [False, True, False, True, False, False]


def test_holidays_close_the_venue_all_day():
    session = NASDAQ_MLK_DAY
    times = pd.DatetimeIndex(["2026-01-19 15:00", "2026-01-20 15:00"], tz="UTC")
    assert session_mask(session, times).tolist() == [False, True]


def test_a_venue_whose_clocks_skip_midnight_keeps_its_dates():
    # Beirut moves from 00:00 to 01:00 on the last Sunday of March (29 Mar 2026): there is
    # no local midnight that day. An overnight session with a holiday on the Monday.
    session = Session(
        timezone="Asia/Beirut",
        days=["sun", "mon", "tue", "wed", "thu"],
        open="20:00",
        close="06:00",
        holidays=["2026-03-30"],
    )
    times = pd.date_range("2026-03-28 12:00", "2026-03-31 12:00", freq="30min", tz="UTC")
    mask = session_mask(session, times)
    local = times.tz_convert("Asia/Beirut")
    # Sunday 29 Mar 22:00 local is a session; Monday 30 Mar is a holiday: its 20:00 start
    # does not open, nor does the early hours it would carry into Tuesday
    assert mask[local == pd.Timestamp("2026-03-29 22:00", tz="Asia/Beirut")].all()
    assert not mask[(local.day == 30) & (local.hour >= 20)].any()
    assert not mask[(local.day == 31) & (local.hour < 6)].any()
    assert mask[(local.day == 30) & (local.hour < 6)].all()  # Sunday's session runs on


def _settlements(session: Session, at: str, start: str, days: int) -> list[str]:
    starts = pd.date_range(start, periods=288 * days, freq="5min", tz="UTC")
    hh, mm = (int(x) for x in at.split(":"))
    mask = settlement_mask(session, [hh * 60 + mm], starts, timedelta(minutes=5))
    return [t.strftime("%a %d %H:%M") for t in starts[mask]]


def test_an_overnight_session_settles_on_friday_and_not_on_sunday():
    """COMEX: Globex opens Sun-Thu 18:00 ET and trades to 17:00 the next day, so the
    13:30 ET settlement falls Mon-Fri. It used to be checked against the opening days
    (Sun-Thu): Friday's settlement was missed and a closed Sunday had one."""
    assert _settlements(GLOBEX, "13:30", "2026-01-29", 5) == [
        "Thu 29 18:30",
        "Fri 30 18:30",
        "Mon 02 18:30",
    ]


def test_a_settlement_at_the_close_counts_and_a_holiday_has_none():
    nasdaq = NASDAQ_MLK_DAY
    assert _settlements(nasdaq, "16:00", "2026-01-16", 5) == ["Fri 16 21:00", "Tue 20 21:00"]

"""Venue sessions in local time (with intraday breaks), outages and settlement times on the
simulation clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from deleverage.scenario.schema import WEEKDAYS, Outage, Scenario, Session


@dataclass(frozen=True)
class Calendar:
    """Boolean masks over (venue, step): open for trading at the step's start, and
    whether a daily settlement time falls inside the step."""

    step_starts: pd.DatetimeIndex  # UTC, one per step
    open: np.ndarray  # (n_venues, n_steps) bool
    settlement: np.ndarray  # (n_venues, n_steps) bool
    outage: np.ndarray  # (n_venues, n_steps) bool, True while an outage closes the venue


def session_mask(session: Session, step_starts: pd.DatetimeIndex) -> np.ndarray:
    """True where the venue's regular session is open at each UTC step start."""
    # wall-clock times: dates and "the day before" are calendar days, also in a zone whose
    # clocks skip midnight on their change date
    local = step_starts.tz_convert(session.timezone).tz_localize(None)
    minute = (local.hour * 60 + local.minute).to_numpy()
    weekday = local.day_of_week.to_numpy()
    day = local.normalize()
    holidays = pd.DatetimeIndex(pd.to_datetime(session.holidays)) if session.holidays else None
    trading_day = np.isin(weekday, [WEEKDAYS.index(d) for d in session.days])
    if holidays is not None:
        trading_day &= ~day.isin(holidays)
    if session.close > session.open:
        return trading_day & (minute >= session.open) & (minute < session.close)
    # Overnight session: opens on a trading day at `open`, runs past midnight to `close`.
    previous = day - pd.Timedelta(days=1)
    previous_trading = np.isin(
        previous.day_of_week.to_numpy(), [WEEKDAYS.index(d) for d in session.days]
    )
    if holidays is not None:
        previous_trading &= ~previous.isin(holidays)
    return (trading_day & (minute >= session.open)) | (previous_trading & (minute < session.close))


def break_mask(session: Session, step_starts: pd.DatetimeIndex) -> np.ndarray:
    """True where a step starts inside one of the session's intraday breaks (a lunch
    break): the venue is closed then, as between sessions. The day's session is still one
    session: a limit with `reset: session` keeps the day's reference across the break."""
    mask = np.zeros(len(step_starts), dtype=bool)
    if not session.breaks:
        return mask
    local = step_starts.tz_convert(session.timezone).tz_localize(None)
    minute = (local.hour * 60 + local.minute).to_numpy()
    for start, end in session.breaks:
        mask |= (minute >= start) & (minute < end)
    return mask


def trading_mask(session: Session, step_starts: pd.DatetimeIndex) -> np.ndarray:
    """True where the venue trades at each UTC step start: in its session, not in a break."""
    return session_mask(session, step_starts) & ~break_mask(session, step_starts)


def outage_mask(outages: list[Outage], step_starts: pd.DatetimeIndex) -> np.ndarray:
    mask = np.zeros(len(step_starts), dtype=bool)
    for outage in outages:
        begin = pd.Timestamp(outage.start)
        mask |= (step_starts >= begin) & (step_starts < begin + pd.Timedelta(outage.duration))
    return mask


def settlement_mask(
    session: Session, times_local: list[int], step_starts: pd.DatetimeIndex, step: timedelta
) -> np.ndarray:
    """True for the step whose interval [start, start + step) contains a settlement time
    of a day the venue trades: its session is open in the minute before that time. So a
    settlement at the close counts, an overnight session's Friday settlement counts (its
    session opened on Thursday) and its Sunday one does not, and a holiday has none."""
    mask = np.zeros(len(step_starts), dtype=bool)
    if not times_local:
        return mask
    local = step_starts.tz_convert(session.timezone)
    minute = (local.hour * 60 + local.minute + local.second / 60).to_numpy()
    width = step.total_seconds() / 60
    for at in times_local:
        inside = (minute <= at) & (at < minute + width)
        before = step_starts + pd.to_timedelta(at - minute - 1.0, unit="min")
        mask |= inside & session_mask(session, before)
    return mask


def build_calendar(scenario: Scenario) -> Calendar:
    clock = scenario.clock
    starts = pd.date_range(clock.start, periods=clock.n_steps, freq=pd.Timedelta(clock.step))
    shocks = [s for s in scenario.shocks if s.type == "outage"]
    n_venues = len(scenario.venues)
    is_open = np.zeros((n_venues, len(starts)), dtype=bool)
    settle = np.zeros_like(is_open)
    down = np.zeros_like(is_open)
    for v, venue in enumerate(scenario.venues):
        outages = list(venue.outages) + [
            Outage(start=s.start, duration=s.duration) for s in shocks if s.venue == venue.id
        ]
        down[v] = outage_mask(outages, starts)
        trading = trading_mask(venue.session, starts)
        is_open[v] = trading & ~down[v]
        settle[v] = settlement_mask(venue.session, venue.settlement, starts, clock.step)
    return Calendar(starts, is_open, settle, down)

"""Retail margin loans (issue 13, item 5): the broker calls an account exactly when its
equity at the daily cycle falls below maintenance of its market value, outside cash pays
what it can, and a call unmet by its due date is sold by the broker at the next trading, to
the level a call restores; units and cash are conserved."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import NASDAQ, base_raw, build, run_and_check_conservation

from deleverage.engine.simulate import initial_prices
from deleverage.errors import ScenarioError
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.margin_loans import MarginLoanPopulation
from deleverage.results.events import EventLog
from deleverage.results.targets import event_target

STOCK = {"id": "STK", "class": "equity", "tier": "semi_core", "venue": "nasdaq",
         "price": 100.0, "daily_vol": 0.02, "adv_usd": 1e10}  # fmt: skip
# Regulation T: at most 50% borrowed at purchase; FINRA 4210: 25% maintenance
LOANS = {
    "type": "margin_loans",
    "name": "retail",
    "asset": "STK",
    "accounts": 3000,
    "market_value_usd": 2e9,
    "loan_to_value": {"dist": "uniform", "low": 0.2, "high": 0.7},
    "cash_buffer": {"dist": "uniform", "low": 0.0, "high": 0.15},
    "maintenance_pct": 25.0,
}
MONDAY_CLOSE = pd.Timestamp("2026-01-05T21:00Z")  # 16:00 New York


def _raw(loans=LOANS, shocks=()):
    return base_raw(
        venues=[NASDAQ],
        assets=[STOCK],
        populations=[loans],
        shocks=list(shocks),
        market={"noise_scale": 0.0},
        clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-08T00:00:00Z", "step": "5min"},
    )


def _population(loans=LOANS, seed=0):
    scenario = build(_raw(loans))
    ctx = BuildContext(scenario, scenario.asset_index(), initial_prices(scenario),
                       np.random.default_rng(seed), True, 5 / 60)  # fmt: skip
    return MarginLoanPopulation(scenario.populations[0], ctx)


def _view(step, price):
    return MarketView(step, pd.Timestamp("2026-01-05", tz="UTC"), 5 / 60, np.array([price]),
                      np.array([False]), np.array([False]), np.array([np.nan]),
                      np.array([np.nan]), np.array([np.nan]), np.array([price]))  # fmt: skip


def _cycles(population) -> np.ndarray:
    return np.flatnonzero(population.cycle)


def _count(log: EventLog, kind: str) -> int:
    frame = log.frame()
    return int(frame[frame.kind == kind]["count"].sum()) if len(frame) else 0


def test_the_cycle_is_the_step_after_the_close():
    population = _population()
    starts = pd.date_range("2026-01-05", periods=3 * 288, freq="5min", tz="UTC")
    closes = [MONDAY_CLOSE + pd.Timedelta(days=d) for d in range(3)]  # Mon, Tue, Wed
    assert list(starts[_cycles(population)]) == closes


@settings(max_examples=40, deadline=None)
@given(drop=st.floats(0.0, 0.6))
def test_calls_fall_exactly_on_the_accounts_below_maintenance(drop):
    population = _population()
    price = 100.0 * (1.0 - drop)
    units, cash = population.units.copy(), population.cash_usd.copy()
    expected = (cash + units * price) < (0.25 - 1e-12) * units * price  # equity < 25% of value
    near = np.isclose(population.call_price(), price, rtol=1e-9)  # at the threshold: rounding
    assert (expected == (population.call_price() > price))[~near].all()
    log = EventLog()
    population.mark(_view(_cycles(population)[0], price), log)
    assert _count(log, "margin_call") == expected.sum()
    # the ones whose outside cash paid are back at the maintenance level exactly
    paid = expected & (population.cash_usd != cash)
    value = population.units[paid] * price
    equity = population.cash_usd[paid] + value
    assert equity / value == pytest.approx(np.full(paid.sum(), 0.25), rel=1e-9)
    assert (population.due_in[expected & ~paid] == 1).all() and not population.due_in[
        ~expected
    ].any()
    total = population.cash_usd.sum() + population.buffer_usd.sum()
    assert total == pytest.approx(cash.sum() + _population().buffer_usd.sum(), rel=1e-12)


def test_an_unmet_call_is_sold_on_its_due_date_back_to_the_call_level():
    loans = {**LOANS, "due_cycles": 2, "call_to_pct": 30.0}
    population = _population(loans)
    price = 70.0
    first = _cycles(population)[0]
    log = EventLog()
    population.mark(_view(first, price), log)
    unmet = np.flatnonzero(population.due_in == 2)
    assert len(unmet) > 0
    population.mark(_view(first + 288, price), log)  # the next day's close: not yet due
    assert not population.pending.any() and (population.due_in[unmet] == 1).all()
    before_units = population.units.copy()
    population.mark(_view(first + 2 * 288, price), log)  # due now
    assert (np.flatnonzero(population.pending) == unmet).all()
    assert _count(log, "liquidation") == len(unmet)
    orders = population.orders()
    population.apply_fills(orders, np.array([True]), np.array([price]), log)
    value = population.units[unmet] * price
    equity = population.cash_usd[unmet] + value
    alive = equity > 0
    assert equity[alive] / value[alive] == pytest.approx(np.full(alive.sum(), 0.30), rel=1e-9)
    sold = before_units - population.units
    assert sold.sum() == pytest.approx(-orders.quantity.sum(), rel=1e-12)
    assert not sold[np.setdiff1d(np.arange(len(sold)), unmet)].any()


def test_a_recovery_before_the_due_date_cancels_the_sale():
    population = _population()
    first = _cycles(population)[0]
    log = EventLog()
    population.mark(_view(first, 70.0), log)
    assert population.due_in.any()
    population.mark(_view(first + 288, 100.0), log)  # back above maintenance for all
    assert not population.pending.any() and not population.due_in.any()


def test_a_drop_calls_at_the_close_and_the_broker_sells_two_days_later_at_the_open():
    news = [{"type": "news", "time": "2026-01-05T15:00:00Z", "returns": {"STK": -0.30}}]
    result = run_and_check_conservation(build(_raw(shocks=news)), seed=0)  # units, cash
    events = result.events
    start = result.times[events.step]

    def when(kind):
        return list(start[(events.kind == kind).to_numpy()])

    day = pd.Timedelta(days=1)
    # T: called on the close; T+1 flat (noise off): no new call; the broker's sale at T+2
    # pushes the price lower, and the close of T+2 calls more accounts (the spiral)
    assert when("margin_call") == [MONDAY_CLOSE, MONDAY_CLOSE + 2 * day]
    assert when("liquidation") == [MONDAY_CLOSE + day]  # unmet at T+1's close
    volume = result.market["volume_usd"][1:, 0]
    traded = result.times[:-1][volume > 0]
    assert list(traded) == [pd.Timestamp("2026-01-07T14:30Z")]  # sold at T+2's open
    assert result.prices().STK.iloc[-1] < 100.0 * np.exp(-0.30)  # the sale moved the price
    # the broker's sales count as margin-book liquidations in targets
    sales = events[events.kind == "liquidation"]
    metrics = (
        ("margin_book_liquidations", "USD", "notional_usd"),
        ("margin_book_liquidated_accounts", "accounts", "count"),
    )
    for metric, unit, column in metrics:
        value, _ = event_target(
            result.scenario, result.times, events, metric, unit=unit, population="retail",
            side="long",
        )  # fmt: skip
        assert value == pytest.approx(sales[column].sum()) and value > 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"maintenance_pct": None}, "give maintenance_pct or maintenance_ratio_pct"),
        ({"maintenance_ratio_pct": 130.0}, "give maintenance_pct or maintenance_ratio_pct"),
        ({"call_to_pct": 20.0}, "restores at least the maintenance level"),
        ({"call_to_ratio_pct": 150.0}, "give call_to_pct with maintenance_pct"),
        ({"maintenance_pct": 100.0}, "less than 100"),
        ({"due_cycles": 16}, "less than or equal to 15"),
        ({"asset": "XYZ"}, "expected a defined asset"),
    ],
)
def test_bad_margin_loans_are_refused_with_one_clear_message(changes, message):
    loans = {key: value for key, value in {**LOANS, **changes}.items() if value is not None}
    with pytest.raises(ScenarioError, match=message):
        build(_raw(loans))


def test_a_chinese_collateral_ratio_is_the_same_rule_stated_as_value_over_loan():
    china = {**LOANS, "maintenance_pct": None, "maintenance_ratio_pct": 130.0,
             "call_to_ratio_pct": 150.0}  # fmt: skip
    population = _population({k: v for k, v in china.items() if v is not None})
    assert population.maintenance == pytest.approx(1 - 1 / 1.3)
    log = EventLog()
    price = 80.0
    loan = -population.cash_usd
    expected = population.units * price / loan < 1.30
    population.mark(_view(_cycles(population)[0], price), log)
    assert _count(log, "margin_call") == expected.sum()

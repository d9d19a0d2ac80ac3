"""Reverse stress (the shock size that liquidates the book in half of the paths), the
response policies, and the pieces they are built from."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from stress_helpers import crash_market, margined_btc

from deleverage.errors import UserError
from deleverage.stress import find_breaking_shock, run_book, scale_shocks, stress
from deleverage.stress.account import broker_requirement, ordered_sales
from deleverage.stress.schema import BrokerMargin


def test_the_breaking_scale_is_where_each_path_starts_to_liquidate():
    scenario = crash_market()
    book = margined_btc(scenario, 100.0, response="cash")  # no sales: a call is a liquidation
    found = find_breaking_shock(book, scenario, shock="crash", paths=3, max_scale=3.0,
                                tolerance=0.05)  # fmt: skip
    assert np.all(np.isfinite(found.scales)) and np.all(found.scales > 0)
    assert found.low <= found.median <= found.high
    for path, scale in enumerate(found.scales):
        _, above = run_book(scale_shocks(scenario, scale, "crash"), book, path=path)
        _, below = run_book(scale_shocks(scenario, scale - 0.05, "crash"), book, path=path)
        assert above.liquidation != -1 and below.liquidation == -1
    # the −8% crash at scale 1 already breaks a 5x book with a 15% haircut
    assert found.median <= 1.0


def test_a_shock_that_does_not_exist_is_a_user_error():
    with pytest.raises(UserError, match="expected a scalable shock label or type"):
        scale_shocks(crash_market(), 2.0, "tsunami")


def test_scaling_a_news_shock_scales_its_jump():
    scenario = crash_market()
    assert scale_shocks(scenario, 0.5, "news").shocks[0].returns == {"BTC": -0.04}


def test_meeting_calls_from_the_reserve_survives_where_the_cash_policy_is_liquidated(tmp_path):
    scenario = crash_market()
    bare = stress(margined_btc(scenario, 100.0, response="cash"), scenario, paths=2)
    covered = stress(margined_btc(scenario, 100.0, response="cash", reserve=1e7), scenario, paths=2)
    assert np.all(bare.endogenous.liquidation != -1)
    assert np.all(covered.endogenous.first_call != -1)
    assert np.all(covered.endogenous.liquidation == -1)
    # the extra cash that survives: as a reserve, 1% more than a path's shortfall of the
    # untouched book meets every call of that path; 10% less does not
    need = bare.held_shortfall
    assert np.all(need > 0)
    for reserve, survives in ((1.01 * need, True), (0.9 * need, False)):
        for path in range(2):
            book = margined_btc(scenario, 100.0, response="cash", reserve=reserve[path])
            _, user = run_book(scenario, book, path=path)
            assert (user.liquidation == -1) == survives
    summary = bare.summary()
    assert "P(liquidation)" in summary and "extra cash" in summary
    frame = bare.to_frame()
    assert {"static", "endogenous"} <= set(frame["mode"])
    page = bare.report(tmp_path / "stress.html").read_text()
    assert "<figure id='chart-equity'" in page and "<svg" in page  # the shared writer
    assert "http" not in page.replace("http-equiv", "") and "<script" not in page


@settings(max_examples=100, deadline=None)
@given(
    capacity=st.lists(st.floats(0.0, 1e6), min_size=1, max_size=6),
    ranks=st.lists(st.integers(0, 3), min_size=6, max_size=6),
    share=st.floats(0.0, 1.0),
)
@example(capacity=[0.5, 1e-88], ranks=[1, 0, 0, 0, 0, 0], share=1e-88)  # tiny before huge
def test_ordered_sales_raise_the_need_lowest_rank_first(capacity, ranks, share):
    capacity = np.array(capacity)
    rank = np.array(ranks[: len(capacity)])
    need = share * capacity.sum()
    sold = ordered_sales(capacity, rank, need)
    assert np.all((sold >= 0) & (sold <= 1 + 1e-12))
    assert sold @ capacity == pytest.approx(need, rel=1e-9, abs=1e-6)
    for r in np.unique(rank):  # a rank is touched only once every lower one is sold out
        if np.any(sold[rank == r] > 0):
            lower = (rank < r) & (capacity > 0)
            assert np.all(sold[lower] == pytest.approx(1.0))


@settings(max_examples=100, deadline=None)
@given(a=st.floats(0.0, 1e9), b=st.floats(0.0, 1e9))
def test_the_haircut_schedule_is_continuous_and_increasing(a, b):
    margin = BrokerMargin(
        type="broker", haircut_pct=15, brackets=[{"above_usd": 1e7, "haircut_pct": 25}]
    )
    low, high = sorted((a, b))
    assert broker_requirement(low, margin) <= broker_requirement(high, margin) + 1e-6
    assert broker_requirement(high, margin) - broker_requirement(low, margin) <= (
        0.25 * (high - low) + 1e-6
    )
    assert broker_requirement(1e7, margin) == pytest.approx(1.5e6)


def test_a_resting_stop_sells_in_the_crash_before_the_broker_calls():
    scenario = crash_market()
    plain = margined_btc(scenario, 100.0, response="cash")
    raw = plain.model_dump()
    raw["stops"] = [{"asset": "BTC", "trigger": 95_000.0, "quantity": -100.0}]
    stopped = type(plain).model_validate(raw)
    result, with_stop = run_book(scenario, stopped, path=0)
    _, without = run_book(scenario, plain, path=0)
    stops = result.events[(result.events.kind == "stop_loss") & (result.events.population == "me")]
    assert len(stops) == 1 and stops.quantity.iloc[0] == -100.0 and stops.price.iloc[0] <= 95_000
    assert with_stop.units[0] == 0.0 and with_stop.first_call == -1
    assert without.first_call != -1

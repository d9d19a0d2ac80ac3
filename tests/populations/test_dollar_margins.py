"""Futures margins in fixed dollars per contract (issue 13, item 5): CME set metals margins
in USD per contract until 13 Jan 2026 (facts 2.3; 2.7: silver $16,000 maintenance in May
2011). A dollar margin equal to a % margin at the start is the same requirement there; as
the price falls it becomes a larger share of notional, so more longs are called."""

import numpy as np
import pytest
from tests.conftest import base_raw, build
from tests.populations.test_futures_margin import BOOK, COMEX, HIKE, HIKE_STEP, SILVER

from deleverage import simulate
from deleverage.errors import ScenarioError

# 5,000 oz at $100: a $500,000 contract; 10% of it is $50,000
DOLLAR_SILVER = {
    **{k: v for k, v in SILVER.items() if not k.endswith("margin_pct")},
    "contract_size": 5_000,
    "initial_margin_usd": 50_000,
    "maintenance_margin_usd": 50_000,
}


def _raw(asset, shocks=(), book=BOOK, end="2026-01-06T00:00:00Z"):
    return base_raw(
        venues=[COMEX],
        assets=[asset],
        populations=[book],
        shocks=list(shocks),
        market={"noise_scale": 0.0},
        clock={"start": "2026-01-05T00:00:00Z", "end": end, "step": "5min"},
    )


def _calls(result):
    events = result.events
    return events[events.kind.isin(["margin_call", "liquidation"])]


def test_dollar_margins_equal_to_percent_margins_at_the_start_change_nothing_at_that_price():
    # the same hike, once as 15% of notional and once as $75,000 per contract, at an
    # unchanged price: the same accounts are called for the same amounts
    in_pct = simulate(build(_raw(SILVER, [HIKE])), seed=0)
    hike_usd = {**{k: v for k, v in HIKE.items() if not k.endswith("_pct")},
                "initial_usd": 75_000, "maintenance_usd": 75_000}  # fmt: skip
    in_usd = simulate(build(_raw(DOLLAR_SILVER, [hike_usd])), seed=0)
    a, b = _calls(in_pct), _calls(in_usd)
    assert len(a) > 0 and a.step.min() == HIKE_STEP == b.step.min()
    # at the hike, before any liquidation moves the price (then they part: see below)
    a, b = (x[(x.step == HIKE_STEP) & (x["round"] == 0)] for x in (a, b))
    assert len(a) == len(b) > 1
    np.testing.assert_array_equal(a["count"].to_numpy(), b["count"].to_numpy())
    np.testing.assert_allclose(a.notional_usd.to_numpy(), b.notional_usd.to_numpy(), rtol=1e-9)
    effective = in_usd.events[in_usd.events.kind == "margin_effective"]
    assert "initial 15 USD/unit maintenance 15 USD/unit" in effective.detail.iloc[-1]


@pytest.mark.parametrize("call_timing", ["continuous", "settlement"])
def test_in_a_fall_a_fixed_dollar_margin_calls_more_longs_than_a_percent_margin(call_timing):
    crash = {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"SILVER": -0.06}}
    book = {**BOOK, "call_timing": call_timing}
    end = "2026-01-07T00:00:00Z"  # two settlements: calls, then the overdue
    in_pct = simulate(build(_raw(SILVER, [crash], book, end)), seed=0, check_invariants=True)
    in_usd = simulate(build(_raw(DOLLAR_SILVER, [crash], book, end)), seed=0,
                      check_invariants=True)  # fmt: skip

    def first_call(result):  # the accounts called at the first call after the fall
        rows = result.events[result.events.kind == "margin_call"]
        return rows["count"].iloc[0]

    def liquidated(result):
        rows = result.events[result.events.kind == "liquidation"]
        assert set(rows.side) == {"long"}  # shorts gained
        return rows["count"].sum()

    # at 94: 10% of notional is $47,000 a contract, the fixed margin still $50,000
    assert first_call(in_usd) > first_call(in_pct) > 0
    assert liquidated(in_usd) > liquidated(in_pct) > 0
    assert in_usd.prices().SILVER.min() < in_pct.prices().SILVER.min()  # more forced selling
    assert in_usd.diagnostics["max_unit_drift"] < 1e-9


def test_a_switch_from_dollars_to_percent_applies_the_engine_schedule_from_its_step():
    # CME, 13 Jan 2026: from USD per contract to % of notional (facts 2.3)
    switch = {**{k: v for k, v in HIKE.items() if not k.endswith("_pct")},
              "initial_pct": 15.0, "maintenance_pct": 15.0}  # fmt: skip
    in_pct = simulate(build(_raw(SILVER, [HIKE])), seed=0)
    switched = simulate(build(_raw(DOLLAR_SILVER, [switch])), seed=0)
    # from the switch on, the book follows the engine's % schedule: the same calls
    a, b = _calls(in_pct), _calls(switched)
    assert len(b) > 0 and b.step.min() == HIKE_STEP
    np.testing.assert_array_equal(a["count"].to_numpy(), b["count"].to_numpy())
    np.testing.assert_allclose(a.notional_usd.to_numpy(), b.notional_usd.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"initial_margin_usd": 50_000}, "assets.SILVER",
         "give both initial_margin_usd and maintenance_margin_usd"),
        ({"contract_size": None}, "assets.SILVER", "need contract_size"),
        ({"initial_margin_pct": 10.0}, "assets.SILVER", "not both"),
        ({"maintenance_margin_usd": 60_000}, "assets.SILVER", "exceeds"),
    ],
)  # fmt: skip
def test_dollar_margins_that_cannot_apply_are_one_clear_error(change, where, says):
    asset = {**DOLLAR_SILVER, **change}
    if "initial_margin_usd" in change and len(change) == 1:
        asset.pop("maintenance_margin_usd")
    with pytest.raises(ScenarioError) as caught:
        build(_raw(asset))
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert any(path == where and says in message for path, message in problems), problems


def test_a_margin_change_in_dollars_needs_a_contract_size():
    hike_usd = {**{k: v for k, v in HIKE.items() if not k.endswith("_pct")},
                "initial_usd": 75_000, "maintenance_usd": 75_000}  # fmt: skip
    with pytest.raises(ScenarioError) as caught:
        build(_raw(SILVER, [hike_usd]))
    assert any(p.path == "shocks.0.initial_usd" and "contract_size" in p.message
               for p in caught.value.problems)  # fmt: skip
    both = {**hike_usd, "initial_pct": 15.0}
    with pytest.raises(ScenarioError, match="give initial_pct and maintenance_pct, or"):
        build(_raw(DOLLAR_SILVER, [both]))

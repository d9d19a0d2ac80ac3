"""Outages a price move starts (issue 13, item 6: `venues[].triggered_outages`)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError
from deleverage.market.outage_triggers import fires


def _first_trigger(prices, move, window, direction):
    """Brute force: the first step whose start price moved `move` from the extreme of the
    step-start prices within the window before it (inclusive), or None."""
    for k in range(len(prices)):
        lo = max(0, k - window)
        past = prices[lo : k + 1]
        down = prices[k] <= (1 - move) * past.max()
        up = prices[k] >= (1 + move) * past.min()
        if {"down": down, "up": up, "both": down or up}[direction]:
            return k
    return None


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.floats(-0.04, 0.04), min_size=5, max_size=60),
    move=st.floats(0.01, 0.1),
    window=st.integers(1, 12),
    direction=st.sampled_from(["down", "up", "both"]),
)
def test_the_rule_fires_at_the_first_step_the_window_shows_the_move(steps, move, window, direction):
    prices = 100.0 * np.exp(np.cumsum([0.0, *steps]))
    expected = _first_trigger(prices, move, window, direction)
    found = next(
        (
            k
            for k in range(len(prices))
            if fires(prices[max(0, k - window) : k + 1], move, direction)
        ),
        None,
    )
    assert found == expected


def _scenario(move_pct, repeat=False, shock=-0.12, perps=False, later=()):
    rule = {"asset": "BTC", "move_pct": move_pct, "within": "1h", "duration": "30min",
            "repeat": repeat, "source": "test"}  # fmt: skip
    raw = base_raw(
        shocks=[
            {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"BTC": shock}},
            *later,
        ],
        market={"noise_scale": 0.0},
    )
    raw["venues"][0]["triggered_outages"] = [rule]
    if perps:
        raw["venues"][0]["margin_rules"] = "binance-like"
        raw["populations"] = [
            {"type": "perp_book", "name": "perps", "asset": "BTC", "accounts": 3000,
             "open_interest_usd": 5e8, "long_share": 0.6,
             "leverage": {"dist": "lognormal", "median": 15, "sigma": 0.5},
             "insurance_fund_usd": 1e8}
        ]  # fmt: skip
    return build(raw)


def test_a_fall_past_the_trigger_closes_the_venue_from_exactly_the_step_the_rule_names():
    result = simulate(_scenario(10.0, perps=True), seed=0, check_invariants=True)
    price = result.market["price"][:, 0]  # row k: the price at the start of step k
    window = 12  # 1h of 5-minute steps
    expected = _first_trigger(price[:-1], 0.10, window, "down")
    assert expected == 73  # the shock moves the price during step 72; step 73 starts below
    outages = result.events.query("kind == 'outage'")
    assert outages.step.tolist() == [expected]
    out = slice(expected, expected + 6)  # 30 minutes
    volume = result.market["volume_usd"][1:, 0]  # row k + 1: volume of step k
    assert np.all(volume[out] == 0.0) and volume[expected - 1] > 0  # the cascade, then shut
    assert np.all(price[expected : expected + 7] == price[expected])  # frozen while out
    liquidations = result.events.query("kind == 'perp_liquidation'")
    assert not liquidations.step.between(expected, expected + 5).any()  # the engine waits too
    assert result.diagnostics["max_unit_drift"] < 1e-9


def test_a_smaller_move_than_the_trigger_or_a_rise_starts_no_outage():
    for scenario in (_scenario(15.0), _scenario(10.0, shock=0.12)):
        result = simulate(scenario, seed=0)
        assert not (result.events.kind == "outage").any()


def test_a_trigger_naming_an_undefined_asset_is_reported():
    raw = base_raw()
    raw["venues"][0]["triggered_outages"] = [
        {"asset": "ETH", "move_pct": 10, "within": "1h", "duration": "1h"}
    ]
    with pytest.raises(ScenarioError) as error:
        build(raw)
    assert "venues.spot.triggered_outages.0.asset" in str(error.value)


@pytest.mark.parametrize("repeat, starts", [(False, [73]), (True, [73, 145])])
def test_a_rule_fires_once_unless_it_repeats_on_a_new_move(repeat, starts):
    """The price stays 12% below its pre-shock high after the first outage: with `repeat`
    only the second fall, made after the return, starts another."""
    second = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.12}}
    scenario = _scenario(10.0, repeat=repeat, later=[second])
    result = simulate(scenario, seed=0)
    assert result.events.query("kind == 'outage'").step.tolist() == starts

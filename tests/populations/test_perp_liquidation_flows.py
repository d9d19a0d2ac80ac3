"""Perp liquidation flows: what the feed reports, and how the fund works off takeovers."""

import numpy as np
from tests.conftest import RETAIL_PERPS, base_raw, build, offloads_without_a_takeover

from deleverage import simulate

PERPS = RETAIL_PERPS
CRASH = [{"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.12}}]
WINDOW = ["2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z"]


def test_liquidated_accounts_in_24h_is_the_count_of_liquidation_events_in_the_window():
    targets = [
        {"metric": "liquidated_accounts_24h", "value": 1.0, "unit": "accounts", "window": WINDOW},
        {"metric": "liquidations_24h", "value": 1.0, "unit": "USD", "window": WINDOW},
    ]
    raw = base_raw(populations=[PERPS], shocks=CRASH, targets=targets, market={"noise_scale": 0})
    result = simulate(build(raw), seed=0)
    table = result.targets_table().set_index("target")
    liquidations = result.events[result.events.kind == "perp_liquidation"]
    assert len(liquidations) > 0
    counted = table.loc[table.index.str.startswith("liquidated_accounts"), "modelled"].iloc[0]
    assert counted == liquidations["count"].sum()  # all inside one 24 h
    amount = table.loc[table.index.str.startswith("liquidations_24h"), "modelled"].iloc[0]
    assert np.isclose(amount, liquidations.notional_usd.sum())


def test_the_insurance_fund_works_off_takeovers_at_the_participation_rate():
    """Positions taken over in a crash go back to the market over several steps, each step
    at most the participation rate of normal volume (sized at the mark; fills away from it
    may differ by their impact), instead of all at once: one order a step, as the allowance
    sized it — what a fill below the mark leaves of the allowance does not size a next,
    smaller order in the next round (it used to: $694k, then $110, then $0.0003 ...)."""
    raw = base_raw(
        populations=[
            {**PERPS, "insurance_fund_usd": 5e7, "leverage": {"dist": "fixed", "value": 50}}
        ],
        shocks=CRASH,
        market={"noise_scale": 0, "participation_rate": 0.01},
    )
    result = simulate(build(raw), seed=0, check_invariants=True)
    offload = result.events[result.events.kind == "insurance_fund_offload"]
    per_step = offload.groupby("step").notional_usd.sum()
    cap = 0.01 * 2e10 / 288
    assert len(per_step) > 3  # worked off over several steps
    assert per_step.max() <= 1.2 * cap
    assert offloads_without_a_takeover(result.events) == []
    assert result.diagnostics["max_unit_drift"] < 1e-9

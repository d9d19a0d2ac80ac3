"""The liquidated-accounts target counts what the liquidation feed would report."""

import numpy as np
from tests.conftest import base_raw, build

from deleverage import simulate

PERPS = {
    "type": "perp_book",
    "name": "perps",
    "asset": "BTC",
    "margin_rules": "binance-like",
    "accounts": 2_000,
    "open_interest_usd": 2e8,
    "long_share": 0.6,
    "leverage": {"dist": "uniform", "low": 10, "high": 40},
}
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

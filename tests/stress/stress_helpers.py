"""Small markets and books for the stress tests (a full feb-2026 path costs ~16 s)."""

from __future__ import annotations

import copy

from tests.conftest import base_raw, build

from deleverage.stress import validate_portfolio

CRASH = {
    "type": "news",
    "label": "crash",
    "time": "2026-01-05T06:00:00Z",
    "returns": {"BTC": -0.08},
}
STOPS = {
    "type": "stop_loss",
    "name": "stops",
    "asset": "BTC",
    "accounts": 1000,
    "notional_usd": 2e8,
    "stop_distance": {"dist": "uniform", "low": 0.02, "high": 0.1},
}


def crash_market(**changes):
    """BTC on one 24/7 venue for half a day (no funding settlement), a stop-loss book and a
    −8% news jump at 06:00."""
    clock = {"start": "2026-01-05T00:30:00Z", "end": "2026-01-05T12:00:00Z", "step": "5min"}
    raw = base_raw(clock=clock, populations=[STOPS], shocks=[CRASH])
    raw.update(copy.deepcopy(changes))
    return build(raw)


def margined_btc(scenario, btc: float, response: str = "pecking_order", reserve: float = 0.0):
    """`btc` coins bought with a USD loan of 80% of their value at a broker (15% haircut)."""
    price = 100_000.0
    raw = {
        "name": "me",
        "borrowing": [{"currency": "USD", "amount": 0.8 * btc * price, "rate_pct": 5}],
        "positions": [
            {
                "asset": "BTC",
                "quantity": btc,
                "venue": "spot",
                "margin": {"type": "broker", "haircut_pct": 15},
            }
        ],
        "response": {"kind": response, "reserve_usd": reserve},
    }
    return validate_portfolio(raw, "book.yaml", scenario)

"""Shared helpers: small scenarios built in code, validated like a file would be."""

from __future__ import annotations

import copy
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

from deleverage.scenario.loader import validate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_sigint() -> None:
    """For `subprocess.Popen(preexec_fn=...)`: the child takes Ctrl-C as a terminal user's
    command would, even when the tests run in the background of a non-interactive shell
    (which starts them with SIGINT ignored, an ignore that children inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# a 2,000-account BTC perp book with $2bn of open interest, 70% long at 10-20x
PERPS = {
    "type": "perp_book",
    "name": "perps",
    "asset": "BTC",
    "margin_rules": "binance-like",
    "accounts": 2_000,
    "open_interest_usd": 2e9,
    "long_share": 0.7,
    "leverage": {"dist": "uniform", "low": 10, "high": 20},
}

# a 2,000-account BTC perp book with $200M of open interest, 60% long at 10-40x (retail)
RETAIL_PERPS = {
    **PERPS,
    "open_interest_usd": 2e8,
    "long_share": 0.6,
    "leverage": {"dist": "uniform", "low": 10, "high": 40},
}

NASDAQ = {
    "id": "nasdaq",
    "kind": "equity",
    "session": {
        "timezone": "America/New_York",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "open": "09:30",
        "close": "16:00",
    },
}


# Tokyo Stock Exchange: 09:00-11:30 and 12:30-15:30 JST (close 15:30 since 5 Nov 2024)
TOKYO = {
    "id": "tse",
    "kind": "equity",
    "session": {
        "timezone": "Asia/Tokyo",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "open": "09:00",
        "close": "15:30",
        "breaks": [["11:30", "12:30"]],
    },
}


def base_raw(**changes) -> dict:
    """A one-asset 24/7 market for two days, no shocks; `changes` replace top-level keys."""
    raw = {
        "name": "test",
        "clock": {"start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z", "step": "5min"},
        "venues": [{"id": "spot", "kind": "crypto"}],
        "assets": [
            {
                "id": "BTC",
                "class": "crypto",
                "tier": "peripheral",
                "venue": "spot",
                "price": 100_000.0,
                "daily_vol": 0.03,
                "adv_usd": 2e10,
            }
        ],
    }
    raw.update(copy.deepcopy(changes))
    return raw


def build(raw: dict):
    return validate(raw, "test.yaml", Path("."))


def offloads_without_a_takeover(events) -> list[tuple]:
    """(population, asset, step) where the insurance fund sent a second offload order in
    a step with no takeover since its first: the step's allowance sized one order, and
    only a new takeover gives the fund more to sell (an order it capped used it all)."""
    found, since = [], {}  # (population, asset, step) -> offloaded since the last takeover
    kinds = events[events.kind.isin(["insurance_fund_offload", "perp_takeover"])]
    for kind, population, asset, step in kinds[["kind", "population", "asset", "step"]].itertuples(
        index=False
    ):
        key = (population, asset, step)
        if kind == "perp_takeover":
            since[key] = False
        elif since.get(key):
            found.append(key)
        else:
            since[key] = True
    return found


def run_and_check_conservation(scenario, seed):
    """Simulate with the invariants checked at every step and assert they held."""
    from deleverage import simulate

    result = simulate(scenario, seed=seed, check_invariants=True)
    diagnostics = result.diagnostics
    assert diagnostics["invariant_checks"] == scenario.clock.n_steps
    assert diagnostics["max_unit_drift"] < 1e-9
    assert diagnostics["max_cash_drift_ratio"] < 1e-9  # every currency on its own
    turnover = float(np.nansum(result.market["volume_usd"])) + 1.0
    assert diagnostics["max_cash_drift_usd"] < 1e-9 * turnover
    assert np.all(np.isfinite(result.market["price"])) and np.all(result.market["price"] > 0)
    return result


@pytest.fixture
def write_scenario(tmp_path):
    def write(raw: dict, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def feb_2026_seed_0():
    """One feb-2026 path (seed 0), run once for every test that only reads it (a path costs
    ≈ 20-35 s): tests must not mutate it."""
    from deleverage import load_scenario, simulate

    return simulate(load_scenario("feb-2026"), seed=0)

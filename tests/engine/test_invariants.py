"""The conservation check's cash drift is relative to the cash held and traded (SPEC §10):
a rounding step on a large balance is not a violation, a lost dollar amount is."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from deleverage.engine.simulate import Invariants
from deleverage.engine.step import TradeTape


class _Fund:
    """A population holding `cash` USD and no units."""

    def __init__(self, cash: float):
        self.cash = cash

    def holdings(self, n_assets: int) -> np.ndarray:
        return np.zeros(n_assets)

    def cash_by_currency(self) -> dict[str, float]:
        return {"USD": self.cash}


def _ratio_after(start: float, end: float) -> float:
    params = SimpleNamespace(price0=np.ones(1), currency_of=["USD"])
    makers = SimpleNamespace(inventory=np.zeros((1, 1)), cash=np.zeros((1, 1)))
    fund = _Fund(start)
    check = Invariants(params, makers, 0, [fund])
    fund.cash = end  # nothing traded
    check.check(TradeTape(np.zeros((1, 1)), np.zeros((1, 1))))
    return check.max_cash_drift_ratio


def test_a_rounding_step_on_two_billion_held_is_no_violation_a_lost_thousand_is():
    held = 2.0e9
    rounding = np.nextafter(held, 0.0)  # one ulp, ≈ 2.4e-7 dollars
    assert Invariants.broken({"max_cash_drift_ratio": _ratio_after(held, rounding)}) is None
    lost = _ratio_after(held, held - 1_000.0)
    assert lost > Invariants.TOLERANCE
    assert "max_cash_drift_ratio" in Invariants.broken({"max_cash_drift_ratio": lost})

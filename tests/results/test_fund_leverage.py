"""Fund leverage is recorded every step: gross exposure ÷ equity per fund population."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.populations.base import pooled_leverage
from deleverage.populations.systematic import VolTargetPopulation
from deleverage.results.store import Store, open_run

VOL = {
    "type": "vol_target",
    "name": "vol",
    "funds": 3,
    "capital_usd": 2e9,
    "target_vol": 0.02,
    "weights": {"BTC": 1.0},
}
CRASH = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.08}}


def test_recorded_leverage_is_the_funds_gross_exposure_over_equity_at_each_step():
    spec = build(base_raw(populations=[VOL])).populations[0]
    funds, seen = [], {}

    def vol_funds(ctx):
        funds.append(VolTargetPopulation(spec, ctx))
        return funds[0]

    def snapshot(done, total):  # called once step `done − 1` is recorded
        seen[done] = funds[0].units.copy(), funds[0].cash_usd.copy()

    run = simulate(build(base_raw(shocks=[CRASH])), seed=0, extra=[vol_funds], progress=snapshot)
    recorded = run.fund_leverage["vol"]
    assert len(recorded) == len(run.times) and len(seen) >= 3
    for step, (units, cash) in seen.items():
        price = run.market["price"][step]
        exposure = np.abs(units) @ price
        equity = cash + units @ price
        assert recorded[step] == pytest.approx(exposure.sum() / equity.sum(), rel=1e-12)
    # funds start in cash (no history) and invest over their first hours (worked at the
    # participation rate); leverage never exceeds the rule's cap
    assert recorded[0] == 0.0 and recorded[12] < recorded[120]
    assert np.nanmax(recorded) <= spec.max_leverage
    table = run.leverage_table().iloc[0]
    assert table.population == "vol" and table["max"] == np.nanmax(recorded)
    assert "Fund leverage" in run.summary()


def test_fund_leverage_is_stored_and_loads_back(tmp_path):
    run = simulate(build(base_raw(populations=[VOL], shocks=[CRASH])), seed=1)
    with Store(tmp_path / "r.duckdb") as store:
        store.write(run)
        rows = store.connection.execute("SELECT count(*) FROM fund_leverage").fetchone()[0]
    assert rows == len(run.times)
    back = open_run(tmp_path / "r.duckdb", run.run_id)
    assert np.array_equal(back.fund_leverage["vol"], run.fund_leverage["vol"], equal_nan=True)
    assert back.summary() == run.summary()


@given(
    st.lists(
        st.tuples(st.floats(0, 1e9), st.floats(-1e9, 1e9), st.booleans()),  # gross, equity, running
        min_size=1,
        max_size=20,
    )
)
def test_pooled_leverage_weighs_funds_by_equity_and_drops_those_out(funds):
    gross, equity, live = (np.array(column) for column in zip(*funds, strict=True))
    counted = live & (equity > 0)
    value = pooled_leverage(gross, equity, live)
    if not counted.any():
        assert np.isnan(value)
    else:
        assert value == pytest.approx(gross[counted].sum() / equity[counted].sum())

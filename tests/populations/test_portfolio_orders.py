"""`portfolio.orders_toward`: the orders of many lanes' target-portfolio funds toward their
pending targets in one pass must be, to the last bit, what each lane's funds send alone —
the rule the funds applied lane by lane before the pass (`_one_lane` below)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.populations.portfolio import _REACHED, orders_toward


def _one_lane(pending, units, is_open, unit_usd, volume_cap_usd):
    """One lane's funds (F, A) as they decided alone: trade what is pending on open venues
    (NaN where already held), capped at the participation rate pro rata over funds."""
    wanted = is_open & ~np.isnan(pending)
    if not wanted.any():
        return None
    trade = np.where(wanted, pending - units, 0.0)
    pending[wanted & (trade == 0.0)] = np.nan
    if not trade.any():
        return _REACHED
    capped = np.zeros(trade.shape, dtype=bool)
    if volume_cap_usd is not None:
        gross = np.abs(trade).sum(axis=0) * unit_usd
        over = gross > volume_cap_usd
        scale = np.divide(volume_cap_usd, gross, out=np.ones_like(gross), where=over)
        capped = (scale < 1.0)[None, :] & (trade != 0.0)
        trade = np.where(capped, trade * scale, trade)
    funds, assets = np.nonzero(trade)
    return assets, trade[funds, assets], funds, capped[funds, assets]


@st.composite
def _lanes(draw):
    """K lanes of F funds in A assets: targets near, at or far from the holdings (some
    NaN: reached), venues open or closed, caps that bind or not."""
    lanes, funds, assets = (
        draw(st.integers(1, 6)),
        draw(st.integers(1, 24)),
        draw(st.integers(1, 9)),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (lanes, funds, assets)
    units = rng.standard_normal(shape) * 10.0 ** rng.integers(-2, 8, shape)
    pending = units + rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 7, shape)
    pending = np.where(rng.random(shape) < 0.2, units, pending)  # already held
    pending[rng.random(shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = np.nan
    is_open = rng.random((lanes, assets)) < draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
    unit_usd = 10.0 ** rng.uniform(-2, 5, (lanes, assets))
    cap = 10.0 ** rng.uniform(0, 12, (lanes, assets)) if draw(st.booleans()) else None
    return pending, units, is_open, unit_usd, cap


@settings(max_examples=300, deadline=None)
@given(_lanes())
def test_orders_of_many_lanes_in_one_pass_are_each_lanes_own(lanes):
    pending, units, is_open, unit_usd, cap = lanes
    alone_pending = pending.copy()
    sent = orders_toward(pending, units, is_open, unit_usd, cap)
    assert len(sent) == len(units)
    for k, lane_sent in enumerate(sent):
        alone = _one_lane(
            alone_pending[k], units[k], is_open[k], unit_usd[k], None if cap is None else cap[k]
        )
        np.testing.assert_array_equal(pending[k], alone_pending[k])  # NaN where reached
        if alone is None or alone is _REACHED:
            assert lane_sent is alone
            continue
        orders, capped = lane_sent
        for mine, theirs in zip(
            (orders.asset, orders.quantity, orders.owner, capped), alone, strict=True
        ):
            np.testing.assert_array_equal(mine, theirs)
            assert mine.dtype == theirs.dtype

"""The perp book's screens (`PerpPopulation._book_band`, the cached empty orders) skip only
work that would have found nothing: a book with them and the same book with the screen
forced off liquidate the same accounts, send the same orders and log the same events, on
random price paths that also land exactly on (and one ulp either side of) the prices where
a segment's next account is liquidated."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build

from deleverage.populations import perp_kernels
from deleverage.populations.base import BuildContext, MarketView
from deleverage.populations.perps import PerpPopulation
from deleverage.results.events import EventLog

PRICE = 100_000.0
START = pd.Timestamp("2026-01-05T00:00:00Z")


def _book(rules: str, seed: int) -> PerpPopulation:
    spec = {
        "type": "perp_book",
        "name": "perps",
        "asset": "BTC",
        "margin_rules": rules,
        "accounts": 200,
        "open_interest_usd": 5e8,  # large accounts reach the higher tiers
        "long_share": 0.55,
        "leverage": {"dist": "lognormal", "median": 20, "sigma": 0.7},
        "size_dispersion": 2.0,
        "insurance_fund_usd": 1e7,
        "funding_interest_pct": 0.5,  # funding moves the segments' bounds every 8 h
        "oi_rebuild_half_life": "6h",  # new accounts join the tail, the book is re-sorted
        "holding_half_life": "12h",
    }
    scenario = build(base_raw(populations=[spec]))
    ctx = BuildContext(
        scenario, {"BTC": 0}, np.array([PRICE]), np.random.default_rng(seed), True, 5 / 60
    )
    return PerpPopulation(scenario.populations[0], ctx)


def _view(price: float, step: int) -> MarketView:
    nan = np.array([np.nan])
    return MarketView(
        step=step,
        time=START + pd.Timedelta(minutes=20 * step),  # a funding time every 24 steps
        step_hours=1 / 3,
        price=np.array([price]),
        is_open=np.array([True]),
        settlement=np.array([False]),
        initial_margin_pct=nan,
        maintenance_margin_pct=nan,
        yield_pct=nan,
        unit_usd=np.array([price]),
    )


def _threshold(pop: PerpPopulation, pick: float) -> float | None:
    """The price at which one segment's next account (picked by `pick` in [0, 1)) is
    liquidated: −sign·price + Φ·coef = its head key, solved for the price."""
    live = np.flatnonzero(np.isfinite(pop.g_head))
    if not len(live):
        return None
    g = live[int(pick * len(live))]
    shifted = pop.funding_index[pop.g_side_index[g]] * pop.g_coef[g]
    return float(pop.g_sign[g] * (shifted - pop.g_head[g]))


def _same_state(a: PerpPopulation, b: PerpPopulation) -> bool:
    columns = ("size", "collateral", "stage", "pending", "pristine", "g_next", "g_head")
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in columns)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    rules=st.sampled_from(["binance-like", "hyperliquid-like"]),
    moves=st.lists(
        st.tuples(
            st.sampled_from(["walk", "at", "below", "above"]),
            st.floats(-0.03, 0.03),
            st.floats(0.0, 0.999),
        ),
        min_size=5,
        max_size=40,
    ),
)
def test_the_screens_change_no_liquidation(seed, rules, moves):
    screened, checked = _book(rules, seed), _book(rules, seed)
    checked.book_screen = False
    searches = {id(screened): 0, id(checked): 0}
    book_hits = perp_kernels.book_hits

    def counted(price, g_sign, *rest):
        hits = book_hits(price, g_sign, *rest)
        searches[next(k for k, p in pops.items() if p.g_sign is g_sign)] += 1
        return hits

    pops = {id(screened): screened, id(checked): checked}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(perp_kernels, "book_hits", counted)
        logs = {id(screened): EventLog(), id(checked): EventLog()}
        price, marks = PRICE, 0
        for step, (kind, move, pick) in enumerate(moves):
            price *= float(np.exp(move))
            at = _threshold(checked, pick)
            if kind != "walk" and at is not None and at > 0:
                price = (
                    at
                    if kind == "at"
                    else float(np.nextafter(at, 0 if kind == "below" else 2 * at))
                )
            for _ in range(3):  # a step's cascade rounds: mark, orders, fills
                out = []
                for pop in (screened, checked):
                    log = logs[id(pop)]
                    log.step = step
                    pop.mark(_view(price, step), log)
                    orders = pop.orders()
                    out.append(orders)
                    if len(orders.quantity):
                        filled = np.ones(len(orders.quantity), dtype=bool)
                        pop.apply_fills(orders, filled, np.full(len(filled), price), log)
                marks += 1
                for field in ("asset", "quantity", "owner"):
                    assert np.array_equal(getattr(out[0], field), getattr(out[1], field))
                assert _same_state(screened, checked)
    first, second = (logs[id(p)].frame() for p in (screened, checked))
    pd.testing.assert_frame_equal(first, second)
    assert searches[id(checked)] == marks  # forced off, the book is searched every time
    assert searches[id(screened)] < marks  # the screen skipped some searches

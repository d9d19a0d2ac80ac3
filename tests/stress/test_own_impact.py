"""Must show 1: a book 1,000× smaller than the market gets the static answer; scaling it up
worsens its P&L through its own impact, monotonically."""

from __future__ import annotations

import numpy as np
from stress_helpers import crash_market, margined_btc

from deleverage.stress import run_book, stress


def test_a_tiny_book_gets_the_static_answer_within_noise():
    scenario = crash_market()
    # 2 BTC (0.2 M USD; 1/100,000 of the daily volume) leveraged 5x, called by the crash
    result = stress(margined_btc(scenario, 2.0), scenario, paths=3)
    static, endogenous = result.pnl("static"), result.pnl("endogenous")
    assert np.mean(result.static.first_call != -1) > 0  # the book is called: it does sell
    noise = np.std(static)
    assert noise > 0
    # what remains is not own impact: in the market the book's sales fill in the same batch
    # as the stop cascade's, at the round's average price (measured: ~1% of the noise)
    assert np.max(np.abs(endogenous - static)) < 0.05 * noise
    np.testing.assert_array_equal(result.static.first_call, result.endogenous.first_call)


def test_scaling_the_book_up_worsens_its_pnl_through_its_own_impact():
    scenario = crash_market()
    rows = []
    for btc in (2.0, 500.0, 2_000.0, 8_000.0, 20_000.0):
        book = margined_btc(scenario, btc)
        _, endogenous = run_book(scenario, book, seed=0)
        _, static = run_book(scenario, book, seed=0, static=True)
        books = (static, endogenous)
        returns = [100.0 * (b.record["equity_usd"][-1] / b.equity0 - 1.0) for b in books]
        rows.append((btc, btc * 1e5, *returns, returns[1] - returns[0]))
    print("\n  BTC   notional USD   static %   endogenous %   own impact (pp)")
    for btc, usd, stat, endo, gap in rows:
        print(f"{btc:6.0f} {usd:14,.0f} {stat:10.3f} {endo:14.3f} {gap:17.3f}")
    static_returns = np.array([r[2] for r in rows])
    gaps = np.array([r[4] for r in rows])
    # the static answer does not depend on size (revaluation is linear) ...
    np.testing.assert_allclose(static_returns, static_returns[0], atol=1e-6)
    # ... the endogenous one gets worse with every step up in size
    assert np.all(np.diff(gaps) < 0), gaps
    assert abs(gaps[0]) < 0.05 * abs(gaps[-1])  # 10,000× smaller: no own impact to speak of


def test_paths_stressed_as_lanes_are_each_path_run_alone():
    # `stress` runs its paths as lanes of one simulation: each path's book, endogenous and
    # static, is the book of that path run alone, to the last bit
    scenario = crash_market()
    book = margined_btc(scenario, 2_000.0)
    result = stress(book, scenario, paths=3, seed=5)
    for path in range(3):
        for static, paths in ((False, result.endogenous), (True, result.static)):
            _, alone = run_book(scenario, book, seed=5, path=path, static=static)
            np.testing.assert_array_equal(paths.equity[path], alone.record["equity_usd"])
            assert paths.first_call[path] == alone.first_call
    assert len({tuple(e) for e in result.endogenous.equity}) == 3  # the paths differ

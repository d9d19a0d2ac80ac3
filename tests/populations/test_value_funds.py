"""Value funds and the leverage cycle (Thurner, Farmer and Geanakoplos 2012; facts 4.3-4.5)."""

import numpy as np
from scipy import stats
from tests.conftest import base_raw, build

from deleverage import simulate


def _market(populations, **changes):
    raw = base_raw(populations=populations, **changes)
    raw["assets"][0].update(price=100.0, daily_vol=0.04, adv_usd=1e9, fundamental_half_life="20d")
    # TFG clear their market each period with no memory of past trades: keep the book's
    # transient impact short (1 h) so that clustering comes from leverage, not from the book
    raw["assets"][0]["liquidity"] = {"resilience_half_life": "1h"}
    return raw


def _funds(max_leverage, capital=3e8, **extra):
    return {
        "type": "value_funds",
        "name": "funds",
        "asset": "BTC",
        "funds": 10,
        "capital_usd": capital,
        "aggressiveness": {"dist": "uniform", "low": 5, "high": 50},
        "max_leverage": max_leverage,
        **extra,
    }


def _return_stats(max_leverage, seeds):
    clock = {"start": "2026-01-01T00:00:00Z", "end": "2026-07-01T00:00:00Z", "step": "1h"}
    scenario = build(_market([_funds(max_leverage)], clock=clock))
    kurtosis, clustering = [], []
    for seed in seeds:
        r = np.diff(np.log(simulate(scenario, seed=seed).market["price"][:, 0]))
        a = np.abs(r - r.mean())
        kurtosis.append(stats.kurtosis(r))
        clustering.append(np.corrcoef(a[:-1], a[1:])[0, 1])
    return np.array(kurtosis), np.array(clustering)


def test_leverage_makes_returns_fat_tailed_and_volatility_clustered():
    seeds = range(10)
    kurt_1, clus_1 = _return_stats(1.0, seeds)
    kurt_8, clus_8 = _return_stats(8.0, seeds)
    # Without leverage the market stays close to Gaussian and unclustered ...
    assert abs(np.median(kurt_1)) < 0.5 and np.median(clus_1) < 0.1
    # ... with a binding cap of 8 both are clearly higher, seed for seed.
    assert stats.mannwhitneyu(kurt_8, kurt_1, alternative="greater").pvalue < 0.01
    assert stats.mannwhitneyu(clus_8, clus_1, alternative="greater").pvalue < 0.01


def test_unleveraged_value_buyers_put_a_floor_under_a_crash_with_finite_capital():
    crash = [
        {
            "type": "flow",
            "asset": "BTC",
            "start": "2026-01-05T12:00:00Z",
            "duration": "1h",
            "notional_usd": -3e8,
        }
    ]
    alone = simulate(build(_market([], shocks=crash, market={"noise_scale": 0.0})), seed=0)
    buyers = simulate(
        build(_market([_funds(1.0, capital=5e7)], shocks=crash, market={"noise_scale": 0.0})),
        seed=0,
        check_invariants=True,
    )
    low_alone = alone.market["price"][:, 0].min()
    low_buyers = buyers.market["price"][:, 0].min()
    assert low_buyers > low_alone  # they buy the dip
    trades = buyers.events[buyers.events.kind == "value_trade"]
    assert trades.quantity.sum() > 0
    spent = np.cumsum(trades.quantity * trades.price)  # cash paid out, trade by trade
    assert spent.max() <= 5e7 * (1 + 1e-9)  # unleveraged: never more than their capital
    assert buyers.diagnostics["max_unit_drift"] < 1e-9


def test_a_leveraged_fund_at_its_cap_is_forced_to_sell_into_a_falling_market():
    shocks = [
        {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"BTC": -0.3}},
        {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.1}},
    ]
    raw = _market([_funds(5.0, capital=5e7)], shocks=shocks, market={"noise_scale": 0.0})
    result = simulate(build(raw), seed=0, check_invariants=True)
    calls = result.events[result.events.kind == "margin_call"]
    assert len(calls) > 0 and calls.quantity.sum() < 0  # forced sales after the second drop
    assert result.diagnostics["max_cash_drift_usd"] < 1e-6


def test_switching_margin_calls_off_keeps_the_buying_and_removes_only_forced_sales():
    shocks = [
        {"type": "news", "time": "2026-01-05T06:00:00Z", "returns": {"BTC": -0.3}},
        {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.1}},
    ]
    raw = _market(
        [_funds(5.0, capital=5e7)],
        shocks=shocks,
        market={"noise_scale": 0.0},
        channels={"margin_calls": False},
    )
    result = simulate(build(raw), seed=0, check_invariants=True)
    kinds = result.events.kind
    assert (kinds == "value_trade").sum() > 0  # the anchor buying is not a margin channel
    assert (kinds == "margin_call").sum() == 0 and (kinds == "fund_default").sum() == 0

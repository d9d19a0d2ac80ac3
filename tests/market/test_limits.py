"""Price limits and circuit breakers (issue 13, item 6): the price never trades beyond its
limit, a move beyond waits for the reference to reset, a cascade stops at the limit with its
liquidations waiting; an index's fall halts the named assets for the rule's minutes, during
which nothing trades, and a level past its last halt time does not halt."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import NASDAQ, PERPS, base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError

DAY2 = pd.Timestamp("2026-01-06T00:00:00Z")


def _limit(**extra):
    return {"asset": "BTC", "down_pct": 7.0, "reset": "utc_day", **extra}


def _news(returns, time="2026-01-05T12:00:00Z"):
    return {"type": "news", "time": time, "returns": returns}


def test_a_move_beyond_the_limit_stops_at_it_and_opens_at_the_reset():
    shocks = [_news({"BTC": -0.10})]
    free = simulate(build(base_raw(shocks=shocks, market={"noise_scale": 0.0})), seed=0)
    limited = simulate(
        build(base_raw(shocks=shocks, market={"noise_scale": 0.0, "price_limits": [_limit()]})),
        seed=0,
    )
    p_free, p_lim = free.prices().BTC, limited.prices().BTC
    day1 = p_lim.index < DAY2
    assert p_free[day1].min() == pytest.approx(100_000 * np.exp(-0.10))
    assert p_lim[day1].min() == pytest.approx(93_000.0, rel=1e-12)  # held at the limit
    # the part beyond waited: at the reset (new band 7% below 93,000) it opens as a gap
    assert p_lim[p_lim.index > DAY2].iloc[0] == pytest.approx(p_free.iloc[-1], rel=1e-12)


def test_noise_never_prints_beyond_the_band():
    market = {"price_limits": [_limit(up_pct=2.0, down_pct=2.0)]}
    result = simulate(build(base_raw(market=market)), seed=3)
    prices = result.prices().BTC
    day1 = prices[prices.index < DAY2]
    assert day1.min() >= 98_000 * (1 - 1e-12) and day1.max() <= 102_000 * (1 + 1e-12)
    at_limit = np.isclose(day1, 102_000, rtol=1e-12) | np.isclose(day1, 98_000, rtol=1e-12)
    assert at_limit.any()  # 3% daily vol reaches 2%
    free = simulate(build(base_raw()), seed=3).prices().BTC
    assert ((free < 98_000) | (free > 102_000)).any()  # the same draws do go beyond


def test_a_cascade_stops_at_the_limit_down_and_its_liquidations_wait():
    thin = [{**base_raw()["assets"][0], "adv_usd": 5e8}]  # liquidations move this book
    raw = dict(assets=thin, populations=[PERPS], shocks=[_news({"BTC": -0.04})])
    free = simulate(build(base_raw(**raw, market={"noise_scale": 0.0})), seed=0)
    limited = simulate(
        build(base_raw(**raw, market={"noise_scale": 0.0, "price_limits": [_limit()]})), seed=0
    )
    day1 = limited.times[1:] < DAY2

    def liquidated(result):
        rows = result.events[result.events.kind == "perp_liquidation"]
        return rows[day1[rows.step]].notional_usd.sum()

    assert free.prices().BTC.min() < 90_000  # forced selling takes a −4% move through −10%
    assert limited.prices().BTC[limited.times < DAY2].min() >= 93_000 * (1 - 1e-12)
    assert 0 < liquidated(limited) < liquidated(free)
    # the orders that would have traded through waited, then traded after the reset
    after = limited.events[(limited.events.kind == "trade") & ~day1[limited.events.step]]
    assert after.notional_usd.sum() > 0


BREAKER = {
    "index": "SPX",
    "assets": ["SPX", "EQ"],
    "levels": [
        {"decline_pct": 7, "halt": "15min", "not_after": "15:25"},
        {"decline_pct": 13, "halt": "15min", "not_after": "15:25"},
        {"decline_pct": 20},
    ],
    "source": "nasdaqtrader.com Market Wide Circuit Breaker (7/13/20% of the prior close)",
}


def _equity_raw(shocks, breakers=(BREAKER,), noise=1.0):
    def equity(asset_id):
        return {"id": asset_id, "class": "equity_index", "tier": "semi_core", "venue": "nasdaq",
                "price": 6_000.0, "daily_vol": 0.015, "adv_usd": 1e11}  # fmt: skip

    # sells on every step of the session (14:30-21:00 UTC)
    flow = {"type": "flow", "asset": "EQ", "start": "2026-01-05T14:30:00Z", "duration": "6.5h",
            "notional_usd": -3e9}  # fmt: skip
    return base_raw(
        venues=[NASDAQ],
        assets=[equity("SPX"), equity("EQ")],
        shocks=[flow, *shocks],
        market={"noise_scale": noise, "circuit_breakers": list(breakers)},
    )


def test_an_index_fall_halts_the_named_assets_for_the_rule_minutes():
    shock = _news({"SPX": -0.08, "EQ": -0.08}, time="2026-01-05T16:00:00Z")  # 11:00 New York
    result = simulate(build(_equity_raw([shock])), seed=1)
    events = result.events
    halts = events[events.kind == "circuit_breaker"]
    assert len(halts) == 1 and "level 1" in halts.detail.iloc[0]
    k = int(halts.step.iloc[0])
    assert result.times[k] == pd.Timestamp("2026-01-05T16:00:00Z")
    volume = result.market["volume_usd"][:, 1]  # EQ: sold by the flow on every open step
    assert (volume[k - 5 : k] > 0).all()
    # 15 minutes on 5-minute steps: the rest of step k and 3 more, nothing trades on EQ
    assert (volume[k + 1 : k + 5] == 0).all() and volume[k + 5] > 0
    prices = result.market["price"][:, 0]
    assert (prices[k + 1 : k + 5] == prices[k + 1]).all()  # no print while halted
    assert prices[k + 5] != prices[k + 1]  # noise and trading resume
    free = simulate(build(_equity_raw([shock], breakers=())), seed=1)
    assert (free.market["volume_usd"][k + 1 : k + 5, 1] > 0).all()


def test_levels_trigger_once_a_day_and_not_after_their_last_halt_time():
    early = _news({"SPX": -0.08}, time="2026-01-05T16:00:00Z")
    late = _news({"SPX": -0.07}, time="2026-01-05T20:30:00Z")  # 15:30 New York: −15% in all
    result = simulate(build(_equity_raw([early, late], noise=0.0)), seed=0)
    kinds = result.events[result.events.kind.str.startswith("circuit_breaker")]
    assert list(kinds.kind) == ["circuit_breaker", "circuit_breaker_skipped"]
    assert "level 2" in kinds.detail.iloc[1]
    k = int(kinds.step.iloc[1])
    assert result.market["volume_usd"][k + 1, 1] > 0  # at 15:30 trading continues
    # level 3 (20%) halts for the rest of the day at any time
    crash = _news({"SPX": -0.25}, time="2026-01-05T20:30:00Z")
    result = simulate(build(_equity_raw([crash], noise=0.0)), seed=0)
    halt = result.events[result.events.kind == "circuit_breaker"]
    assert "level 3" in halt.detail.iloc[0]
    k = int(halt.step.iloc[0])
    assert (result.market["volume_usd"][k + 1 : k + 6, 1] == 0).all()  # to the 16:00 close


@pytest.mark.parametrize(
    ("market", "where", "says"),
    [
        ({"price_limits": [{"asset": "ETH", "down_pct": 5}]}, "market.price_limits.0.asset",
         "expected a defined asset"),
        ({"price_limits": [{"asset": "BTC", "down_pct": 5}]}, "market.price_limits.0.reset",
         "open 24/7 (use utc_day)"),
        ({"price_limits": [{"asset": "BTC", "down_pct": 5, "reset": "settlement"}]},
         "market.price_limits.0.reset", "settlement times"),
        ({"price_limits": [{"asset": "BTC", "reset": "utc_day"}]}, "market.price_limits.0",
         "give down_pct, up_pct or both"),
        ({"price_limits": [{"asset": "BTC", "down_pct": 120, "reset": "utc_day"}]},
         "market.price_limits.0.down_pct", "less than 100"),
        ({"circuit_breakers": [{"index": "BTC", "reset": "utc_day", "levels": [
            {"decline_pct": 13}, {"decline_pct": 7}]}]}, "market.circuit_breakers.0",
         "increasing decline_pct"),
        ({"circuit_breakers": [{"index": "BTC", "reset": "utc_day", "assets": ["SPY"],
          "levels": [{"decline_pct": 7, "halt": "soon"}]}]},
         "market.circuit_breakers.0.levels.0.halt", "duration"),
        ({"circuit_breakers": [{"index": "BTC", "reset": "utc_day", "assets": ["SPY"],
          "levels": [{"decline_pct": 7}]}]}, "market.circuit_breakers.0.assets",
         "expected a defined asset"),
    ],
)  # fmt: skip
def test_a_limit_or_breaker_that_cannot_work_is_one_clear_error(market, where, says):
    with pytest.raises(ScenarioError) as caught:
        build(base_raw(market=market))
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert any(path == where and says in message for path, message in problems), problems


def test_an_observed_driver_is_followed_through_the_limit_and_leaves_nothing_waiting():
    """A driven asset replays what happened (inside the exchange's limits of the day);
    released, it starts from there, without a backlog of clamped moves."""
    points = [["2026-01-05T00:00:00Z", 100_000.0], ["2026-01-05T18:00:00Z", 85_000.0]]
    driver = {"type": "driver", "asset": "BTC", "until": "2026-01-05T18:00:00Z", "points": points}
    market = {"noise_scale": 0.0, "price_limits": [_limit()]}
    prices = simulate(build(base_raw(shocks=[driver], market=market)), seed=0).prices().BTC
    assert prices[:"2026-01-05T17:00:00Z"].min() < 88_000  # followed below the 7% band
    released = prices["2026-01-05T18:00:00Z":]
    assert released.max() == pytest.approx(released.min(), rel=1e-9)  # nothing waited

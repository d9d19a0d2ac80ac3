"""Cross-impact (issue 13, item 4): a net flow in one asset moves a linked asset by
c · σ_to · Δy / σ_from, Δy the square-root-law move of the flow's own book; with no link or a
zero coefficient nothing else moves (bit-identical runs); the move is odd in the flow, linear
in c, symmetric in σ units for a symmetric link, relaxes like the asset's own impact, and a
forced-selling cascade in one market now reaches the other."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import NASDAQ, PERPS, base_raw, build

from deleverage import simulate
from deleverage.errors import ScenarioError

SHOCK = "2026-01-05T01:00:00Z"
VOL = {"BTC": 0.03, "ETH": 0.045}
ADV = {"BTC": 2e10, "ETH": 8e9}


def two_assets(links=None, shocks=(), populations=(), hours=3, **asset_changes) -> dict:
    btc = base_raw()["assets"][0]
    eth = {**btc, "id": "ETH", "price": 3_000.0, "daily_vol": VOL["ETH"], "adv_usd": ADV["ETH"]}
    market = {"noise_scale": 0.0}
    if links is not None:
        market["cross_impact"] = links
    end = f"2026-01-05T{hours:02d}:00:00Z"
    return base_raw(
        clock={"start": "2026-01-05T00:00:00Z", "end": end, "step": "5min"},
        assets=[{**btc, **asset_changes}, eth],
        market=market,
        shocks=list(shocks),
        populations=list(populations),
    )


def sell(asset: str, usd: float, start: str = SHOCK) -> dict:
    return {"type": "flow", "asset": asset, "start": start, "duration": "5min",
            "notional_usd": -usd}  # fmt: skip


def log_moves(result) -> np.ndarray:
    """(T + 1, A) log price relative to the start."""
    price = result.market["price"]
    return np.log(price / price[0])


def after_shock(result) -> int:
    """Row of the state just after the shock's step."""
    return int(result.times.get_loc(pd.Timestamp("2026-01-05T01:05:00Z")))


def test_a_sale_in_one_asset_moves_the_linked_one_by_the_formula():
    usd, c = 2e8, 0.6
    result = simulate(build(two_assets([["BTC", "ETH", c]], [sell("BTC", usd)])), seed=0)
    moves = log_moves(result)
    row = after_shock(result)
    # the seller's own book: the square-root law on a fresh book, Y = 0.7
    own = -0.7 * VOL["BTC"] * np.sqrt(usd / ADV["BTC"])
    assert moves[row, 0] == pytest.approx(own, rel=1e-9)
    assert moves[row, 1] == pytest.approx(c * VOL["ETH"] * own / VOL["BTC"], rel=1e-9)
    assert np.abs(moves[:row, 1]).max() < 1e-12  # nothing before the flow (but rounding)
    # afterwards both relax with the same resilience: the ratio holds step by step, and
    # the permanent share stays in both prices
    later = moves[row:]
    assert later[:, 1] == pytest.approx(c * VOL["ETH"] / VOL["BTC"] * later[:, 0], rel=1e-9)
    assert abs(later[-1, 1]) < abs(later[0, 1])


def test_without_a_link_or_with_a_zero_coefficient_nothing_else_moves():
    shocks = [sell("BTC", 2e8)]
    runs = [
        simulate(build(two_assets(links, shocks)), seed=3)
        for links in (None, [["BTC", "ETH", 0.0]], [["ETH", "BTC", 0.8]])
    ]
    base = runs[0].market
    assert np.abs(log_moves(runs[0])[:, 1]).max() < 1e-12
    for other in runs[1:]:  # a zero link, or one from the asset nobody trades
        for key in base:
            assert np.array_equal(base[key], other.market[key], equal_nan=True), key


@settings(max_examples=25, deadline=None)
@given(
    share=st.floats(1e-4, 0.05),
    c=st.floats(-1.0, 1.0).filter(lambda x: abs(x) > 1e-3),
    side=st.sampled_from([-1.0, 1.0]),
)
def test_the_cross_move_is_odd_in_the_flow_linear_in_c_and_symmetric(share, c, side):
    def one(source, target, coefficient, sign):
        flow = sell(source, sign * share * ADV[source])  # share of the source's ADV
        raw = two_assets([[source, target, coefficient]], [flow], hours=2)
        result = simulate(build(raw), seed=1)
        return log_moves(result)[after_shock(result)]

    btc_to_eth = one("BTC", "ETH", c, side)
    assert np.sign(btc_to_eth[1]) == -side * np.sign(c)  # a sale with c > 0 lowers ETH
    assert one("BTC", "ETH", c, -side)[1] == pytest.approx(-btc_to_eth[1], rel=1e-9)
    assert one("BTC", "ETH", c / 2, side)[1] == pytest.approx(btc_to_eth[1] / 2, rel=1e-9)
    # the same share of ADV the other way moves BTC as many of its σ as ETH moved of its own
    eth_to_btc = one("ETH", "BTC", c, side)
    assert eth_to_btc[0] / VOL["BTC"] == pytest.approx(btc_to_eth[1] / VOL["ETH"], rel=1e-9)


def test_a_liquidation_cascade_in_one_market_now_moves_the_correlated_market():
    news = [{"type": "news", "time": SHOCK, "returns": {"BTC": -0.04}}]
    c = 0.7
    raws = [two_assets(links, news, [PERPS], adv_usd=5e8) for links in (None, [["BTC", "ETH", c]])]
    alone, linked = (simulate(build(raw), seed=0) for raw in raws)
    assert (alone.events.kind == "perp_liquidation").any()
    assert np.abs(log_moves(alone)[:, 1]).max() < 1e-12  # before: only noise was correlated
    row = after_shock(linked)
    # the forced selling's own impact on BTC (its latent book: no visible book here)
    impact = linked.market["impact_log"][row, 0]
    assert impact < -0.01
    assert log_moves(linked)[row, 1] == pytest.approx(c * VOL["ETH"] / 0.03 * impact, rel=1e-9)


def test_a_move_toward_a_closed_market_waits_for_its_open_as_its_permanent_part():
    raw = two_assets([["BTC", "NDX", 0.5]], [sell("BTC", 2e8, "2026-01-03T15:00:00Z")])
    raw["clock"] = {"start": "2026-01-03T00:00:00Z", "end": "2026-01-05T16:00:00Z", "step": "5min"}
    raw["venues"].append(NASDAQ)
    raw["assets"][1] = {"id": "NDX", "class": "equity_index", "tier": "semi_core",
                        "venue": "nasdaq", "price": 25_000.0, "daily_vol": 0.01,
                        "adv_usd": 2e11}  # fmt: skip
    result = simulate(build(raw), seed=0)
    prices = result.prices()
    ndx = prices.NDX
    assert np.allclose(ndx.loc[:"2026-01-05T14:30Z"], 25_000.0, rtol=1e-12, atol=0)
    own = -0.7 * 0.03 * np.sqrt(2e8 / ADV["BTC"])
    permanent = 0.5 * 0.01 / 0.03 * own * result.scenario.assets[1].liquidity.permanent_fraction
    assert np.log(ndx.loc["2026-01-05T14:35Z"] / 25_000.0) == pytest.approx(permanent, rel=1e-9)


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ([["BTC", "XRP", 0.5]], "market.cross_impact.0: expected a defined asset"),
        ([["BTC", "BTC", 0.5]], "expected two different assets, found 'BTC' to itself"),
        ([["BTC", "ETH", 0.5], ["BTC", "ETH", 0.2]], "one coefficient per direction"),
        ([["BTC", "ETH", 1.5]], "less than or equal to 1"),
        ([["BTC", "ETH", ".nan"]], "finite"),
    ],
)
def test_bad_links_are_refused_with_one_clear_message(links, message):
    raw = two_assets(links)
    if links[0][2] == ".nan":
        raw["market"]["cross_impact"] = [["BTC", "ETH", float("nan")]]
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        build(raw)

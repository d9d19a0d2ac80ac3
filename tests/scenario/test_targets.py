"""Event targets (issue 13, item 12): liquidations filtered by asset, venue, population and
side, counts, margin-book liquidations, ADL counts, open-interest change and currency repaid
by carry funds, each read off the run's events the way the mechanism produces them; and the
time-stamp rule of price histories (bars dated at their open)."""

import numpy as np
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate
from deleverage.engine.simulate import initial_prices
from deleverage.errors import ScenarioError

VENUES = [
    {"id": "cex", "kind": "crypto", "margin_rules": "binance-like"},
    {"id": "dex", "kind": "crypto", "margin_rules": "hyperliquid-like"},
    {"id": "comex", "kind": "futures", "settlement": ["13:30"]},
]


def _asset(asset_id, venue, price, cls="crypto", **extra):
    return {"id": asset_id, "class": cls, "tier": "peripheral", "venue": venue, "price": price,
            "daily_vol": 0.03, "adv_usd": 2e10, **extra}  # fmt: skip


ASSETS = [
    _asset("BTC", "cex", 100_000.0),
    _asset("ETH", "dex", 3_000.0),
    _asset("SILVER", "comex", 100.0, cls="metal", initial_margin_pct=10.0,
           maintenance_margin_pct=10.0),
]  # fmt: skip
PERPS = {"type": "perp_book", "accounts": 2_000, "open_interest_usd": 2e8, "long_share": 0.6,
         "leverage": {"dist": "uniform", "low": 10, "high": 25}}  # fmt: skip
POPULATIONS = [
    {**PERPS, "name": "btc-perps", "asset": "BTC"},
    {**PERPS, "name": "eth-perps", "asset": "ETH"},
    {"type": "futures_book", "name": "comex-specs", "asset": "SILVER", "accounts": 2_000,
     "notional_usd": 5e9, "long_share": 0.8,
     "margin_cushion": {"dist": "uniform", "low": 1.0, "high": 2.0},
     "cash_buffer": {"dist": "uniform", "low": 0.0, "high": 0.5}},
]  # fmt: skip
CRASH = {"type": "news", "time": "2026-01-05T12:00:00Z",
         "returns": {"BTC": -0.12, "ETH": -0.15, "SILVER": -0.12}}  # fmt: skip
WINDOW = ["2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z"]


def _target(metric, unit="USD", **filters):
    return {"metric": metric, "value": 1.0, "unit": unit, "window": WINDOW, **filters}


def _run(targets, shocks=(CRASH,), populations=POPULATIONS, seed=0):
    raw = base_raw(venues=VENUES, assets=ASSETS, populations=list(populations),
                   shocks=list(shocks), targets=targets, market={"noise_scale": 0.0})  # fmt: skip
    result = simulate(build(raw), seed=seed)
    return result, result.targets_table().modelled.to_numpy()


def test_liquidation_filters_partition_the_total_and_a_crash_liquidates_longs():
    targets = [
        _target("liquidations"),
        _target("liquidations", side="long"),
        _target("liquidations", side="short"),
        _target("liquidations", asset="BTC"),
        _target("liquidations", asset="ETH"),
        _target("liquidations", venue="cex"),
        _target("liquidations", population="eth-perps"),
        _target("liquidated_accounts", unit="accounts"),
    ]
    result, (total, longs, shorts, btc, eth, cex, eth_book, count) = _run(targets)
    perp = result.events[result.events.kind == "perp_liquidation"]
    assert total > 0 and np.isclose(total, perp.notional_usd.sum())
    assert np.isclose(longs + shorts, total) and np.isclose(btc + eth, total)
    assert shorts == 0.0 < longs  # prices fell: the longs' margin is what ran out
    assert btc > 0 and eth > 0
    assert cex == btc and eth_book == eth  # one asset per venue, one book per asset
    assert count == perp["count"].sum() > 0
    labels = result.targets_table().target
    assert labels.nunique() == len(targets)  # filters are part of each target's name


def test_margin_book_liquidations_count_futures_accounts_not_perps():
    targets = [
        _target("margin_book_liquidations"),
        _target("margin_book_liquidations", side="long"),
        _target("margin_book_liquidated_accounts", unit="accounts"),
        _target("margin_book_liquidations", population="comex-specs", side="short"),
    ]
    result, (usd, longs, accounts, shorts) = _run(targets)
    futures = result.events[result.events.kind == "liquidation"]
    assert usd > 0 and np.isclose(usd, futures.notional_usd.sum())
    assert np.isclose(longs + shorts, usd) and longs > shorts
    assert accounts == futures["count"].sum()
    _, values = _run(targets, shocks=())
    assert list(values) == [0.0, 0.0, 0.0, 0.0]


def test_open_interest_falls_by_what_liquidations_closed():
    targets = [
        _target("open_interest_change", unit="%", population="btc-perps"),
        _target("open_interest_change", unit="%", asset="SILVER"),
        _target("return", unit="%", asset="BTC"),
    ]
    result, (btc_change, silver_change, btc_return) = _run(targets)
    # USD open interest moves with the price and with the contracts closed: liquidated
    # positions leave, so it falls by more than the price
    assert btc_change < btc_return < 0 and silver_change < 0
    snapshots = result.events[result.events.kind == "open_interest"]
    assert snapshots.population.value_counts().min() == 48 + 1  # hourly, and the start
    _, (calm_btc, calm_silver, _) = _run(targets, shocks=())
    assert btc_change < calm_btc <= 0  # funding alone liquidates only a few marginal accounts
    assert abs(calm_silver) < 1e-9  # no liquidation, no new position: nothing changes


def test_adl_counts_grow_when_the_insurance_fund_cannot_absorb():
    book = {**PERPS, "name": "btc-perps", "asset": "BTC", "leverage": {"dist": "fixed",
            "value": 50}}  # fmt: skip
    targets = [_target("adl_accounts", unit="accounts")]
    result, (empty,) = _run(targets, populations=[book])
    _, (funded,) = _run(targets, populations=[{**book, "insurance_fund_usd": 1e10}])
    assert empty == result.events.loc[result.events.kind == "perp_adl", "count"].sum() > 0
    assert funded < empty


def test_carry_funds_repay_yen_in_dollars_and_yen():
    from tests.populations.test_carry import ASSETS as CARRY_ASSETS
    from tests.populations.test_carry import FUND

    targets = [_target("carry_repaid"), _target("carry_repaid", unit="JPY")]
    crash = {"type": "news", "time": "2026-01-05T12:00:00Z",
             "returns": {"BTC": -0.2, "ETH": -0.2, "NDX": -0.1}}  # fmt: skip
    raw = base_raw(assets=CARRY_ASSETS, populations=[FUND], shocks=[crash], targets=targets,
                   market={"noise_scale": 0.0})  # fmt: skip
    result = simulate(build(raw), seed=0)
    usd, yen = result.targets_table().modelled
    repay = result.events[result.events.kind == "fx_repay"]
    assert usd > 0 and np.isclose(usd, repay.notional_usd.sum())
    assert np.isclose(yen, (repay.notional_usd * repay.price).sum()) and 140 * usd < yen
    calm = simulate(build({**raw, "shocks": []}), seed=0).targets_table().modelled
    assert list(calm) == [0.0, 0.0]  # leverage never left the band: nothing repaid


@pytest.mark.parametrize(
    ("target", "where", "says"),
    [
        (_target("adl_accounts", unit="accounts", side="long"), "targets.0.side",
         "only the filters asset, venue, population"),
        (_target("liquidations", population="comex-specs"), "targets.0.population",
         "perp_book population for liquidations, found 'comex-specs' (futures_book)"),
        (_target("liquidations", population="nobody"), "targets.0.population",
         "expected a defined population"),
        (_target("liquidations", unit="BTC"), "targets.0.unit", "expected one of USD"),
        (_target("liquidated_accounts_24h", unit="USD"), "targets.0.unit", "accounts"),
        (_target("return"), "targets.0.asset", "expected the asset"),
        (_target("low", asset="BTC", unit="%"), "targets.0.unit", "expected 'USD' for low"),
        (_target("worst_24h", asset="BTC", unit="%", side="long"), "targets.0.side",
         "no side on a price metric"),
        (_target("liquidations", venue="ftx"), "targets.0.venue", "expected a defined venue"),
        (_target("carry_repaid", unit="EUR"), "targets.0.unit", "expected one of USD"),
    ],
)  # fmt: skip
def test_a_target_that_cannot_be_computed_as_asked_is_one_clear_error(target, where, says):
    raw = base_raw(venues=VENUES, assets=ASSETS, populations=POPULATIONS, targets=[target])
    with pytest.raises(ScenarioError) as caught:
        build(raw)
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert any(path == where and says in message for path, message in problems), problems


def test_a_bar_dated_at_its_open_is_read_only_once_it_has_closed():
    """Daily bars stamped at 00:00 of their day close 24 h later: with `stamp: open` the
    bar of the start day (not yet closed) is not the starting price."""
    points = [["2026-01-03T00:00:00Z", 100.0], ["2026-01-04T00:00:00Z", 110.0],
              ["2026-01-05T00:00:00Z", 120.0]]  # fmt: skip
    asset = {**base_raw()["assets"][0], "price": None, "history": {"points": points}}
    asset.pop("price")
    as_close = build(base_raw(assets=[asset]))
    as_open = build(base_raw(assets=[{**asset, "history": {"points": points, "stamp": "open"}}]))
    assert initial_prices(as_close)[0] == 120.0  # a close known at the start
    assert initial_prices(as_open)[0] == 110.0  # the 4 Jan bar closed at 5 Jan 00:00
    only_today = [points[-1]]
    with pytest.raises(ScenarioError, match=r"expected data on or before clock\.start"):
        build(base_raw(assets=[{**asset, "history": {"points": only_today, "stamp": "open"}}]))

"""feb-2026 before its first shock against observed calm days (issue 7, must show 4):
like with like — the Binance-only Coinglass file for BTC+ETH, the model's books scaled by
Binance's share of open interest (docs/scenarios/feb-2026.md §4.1, §7)."""

import numpy as np
import pandas as pd
import pytest
from tests.conftest import SHARED_DATA

BINANCE_SHARE = {"btc-perps": 0.22, "eth-perps": 0.30}  # docs §4.1 (ETH 0.25-0.45)


def _observed_calm_days() -> pd.Series:
    """Binance BTC+ETH liquidations per UTC day on calm days (|log BTC return| < 2%),
    2024-11-01 … file end (docs §7), USD."""
    liq = pd.read_csv(SHARED_DATA / "crypto_liquidations_coinglass_daily.csv", parse_dates=["date"])
    day = liq[liq.coin.isin(["BTC", "ETH"])].groupby("date").total_liq_usd.sum()
    btc = pd.read_csv(SHARED_DATA / "btc_usd_daily_yahoo.csv", parse_dates=["date"])
    move = np.log(btc.set_index("date").close).diff().abs().reindex(day.index)
    return day[(day.index >= "2024-11-01") & (move < 0.02)]


@pytest.fixture(scope="module")
def pre_shock_days(feb_2026_seed_0):
    result = feb_2026_seed_0
    scenario = result.scenario
    first = min(
        pd.Timestamp(s.time if hasattr(s, "time") else s.start)
        for s in scenario.shocks
        if s.type not in ("driver", "margin_change")
    )
    events = result.events.assign(time=result.times[result.events.step.to_numpy() + 1])
    liq = events[(events.kind == "perp_liquidation") & (events.time < first.floor("1D"))]
    scaled = liq.notional_usd * liq.population.map(BINANCE_SHARE)
    days = pd.date_range(result.times[0], first.floor("1D"), freq="1D", inclusive="left")
    return scaled.groupby(liq.time.dt.floor("1D")).sum().reindex(days, fill_value=0.0)


def test_the_observed_calm_day_distribution_is_the_documented_one():
    calm = _observed_calm_days()
    assert len(calm) == 262
    assert calm.quantile(0.9) == pytest.approx(61.7e6, rel=0.01)


def test_days_before_the_first_shock_liquidate_like_observed_calm_days(pre_shock_days):
    observed = _observed_calm_days()
    p90 = observed.quantile(0.9)
    assert len(pre_shock_days) == 28  # 2 … 29 Jan
    # observed calm days exceed their own p90 one day in ten; over 28 days a book that
    # liquidates like them does so about 3 times (≤ 5 with 90% probability, binomial)
    assert (pre_shock_days > p90).sum() <= 5
    assert pre_shock_days.quantile(0.9) <= 1.5 * p90
    assert pre_shock_days.median() <= observed.median()

"""Helpers for the detect tests: synthetic prices, real-data file list, small params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deleverage.detect import DetectParams

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

# Groups for the real-data tests: safe haven = silver/gold, tech = Nasdaq-100/SOX,
# speculative = BTC; plus the yen, the dollar and the 10-year JGB for the narratives.
REAL_FILES = (
    "silver_futures_comex_yahoo_daily.csv",
    "gold_futures_comex_yahoo_daily.csv",
    "nasdaq100_daily_close.csv",
    "sox_philly_semis_daily.csv",
    "btc_usd_daily_yahoo.csv",
    "usdjpy_fred_dexjpus_daily.csv",
    "dxy_ice_dollar_index_daily.csv",
    "jgb_yields_mof_daily.csv#jgb_10y",
)
FEB_2026 = "2026-01-15:2026-02-10"

# Short windows so synthetic panels of a few hundred bars exercise every indicator.
SMALL = DetectParams(
    min_history=60,
    vol_window=10,
    cmax_window=60,
    spillover_window=60,
    absorption_window=60,
    leadlag_window=60,
    corr_window=20,
    var_lags=1,
)


def synthetic_prices(n: int = 400, seed: int = 0, freq: str = "B") -> pd.DataFrame:
    """Correlated random walks for the recognised assets; JGB10Y is a yield in % p.a."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2021-01-04", periods=n, freq=freq, tz="UTC")
    vols = {
        "SILVER": 0.02,
        "GOLD": 0.01,
        "NDX": 0.012,
        "SOX": 0.018,
        "BTC": 0.04,
        "USDJPY": 0.006,
        "DXY": 0.004,
    }
    common = rng.standard_normal(n)
    cols = {}
    for ident, vol in vols.items():
        shocks = vol * (0.5 * common + np.sqrt(0.75) * rng.standard_normal(n))
        cols[ident] = 100.0 * np.exp(np.cumsum(shocks))
    cols["JGB10Y"] = 1.0 + np.cumsum(0.03 * rng.standard_normal(n))
    return pd.DataFrame(cols, index=index)

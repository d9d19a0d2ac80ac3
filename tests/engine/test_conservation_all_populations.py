"""Issue 3, must-show 7: units of every asset and total cash are conserved at every step
with every population on, over randomly generated scenarios (hypothesis)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build, run_and_check_conservation

RISK = ("BTC", "SILVER", "NDX")


def _assets(draw):
    spec = {
        "BTC": ("crypto", "peripheral", "crypto", 90_000.0, 0.03, 3e10),
        "SILVER": ("metal", "peripheral", "comex", 80.0, 0.03, 3e10),
        "NDX": ("equity_index", "semi_core", "crypto", 25_000.0, 0.01, 2e11),
    }
    assets = [
        {
            "id": a,
            "class": c,
            "tier": t,
            "venue": v,
            "price": p,
            "daily_vol": vol * draw(st.floats(0.5, 2.0)),
            "adv_usd": adv * draw(st.floats(0.1, 2.0)),
        }
        for a, (c, t, v, p, vol, adv) in spec.items()
    ]
    assets[1].update(initial_margin_pct=11.0, maintenance_margin_pct=10.0)
    assets += [
        {
            "id": "USDJPY",
            "class": "fx",
            "tier": "core",
            "venue": "crypto",
            "currency": "JPY",
            "price": 156.0,
            "daily_vol": 0.006,
            "adv_usd": 1e12,
        },
        {
            "id": "JGB40Y",
            "class": "bond",
            "tier": "core",
            "venue": "comex",
            "price": 100.0,
            "daily_vol": 0.007,
            "adv_usd": 2e9,
            "duration_years": 22.0,
            "yield_pct": 3.5,
        },
    ]
    return assets


def _populations(draw):
    u = lambda lo, hi: draw(st.floats(lo, hi))  # noqa: E731 - a short local sampler
    weights = {a: u(0.1, 1.0) for a in RISK}
    pops = [
        {
            "type": "perp_book",
            "name": "perps",
            "asset": "BTC",
            "margin_rules": draw(st.sampled_from(["binance-like", "hyperliquid-like"])),
            "margin_mode": draw(st.sampled_from(["cross", "isolated"])),
            "accounts": draw(st.integers(10, 3000)),
            "open_interest_usd": u(1e8, 2e10),
            "long_share": u(0.2, 0.8),
            "leverage": {"dist": "uniform", "low": 2, "high": 40},  # ≤ hyperliquid's 40x
            "insurance_fund_usd": u(0.0, 1e9),
        },
        {
            "type": "futures_book",
            "name": "futures",
            "asset": "SILVER",
            "accounts": draw(st.integers(1, 2000)),
            "notional_usd": u(1e8, 3e10),
            "long_share": u(0.0, 1.0),
            "margin_cushion": {"dist": "uniform", "low": 1.0, "high": 2.0},
            "cash_buffer": {"dist": "uniform", "low": 0.0, "high": 3.0},
        },
        {
            "type": "carry_funds",
            "name": "carry",
            "funds": draw(st.integers(1, 50)),
            "equity_usd": u(1e8, 2e10),
            "weights": weights,
            "fx_asset": "USDJPY",
            "rate_asset": "JGB40Y",
            "leverage": {"dist": "uniform", "low": 1.5, "high": 5.0},
            "target_leverage": 4.0,
            "buffer_leverage": 5.0,
            "default_leverage": 8.0,
            "usd_yield_pct": 4.0,
            "funding_pct": 1.0,
            "carry_to_vol_threshold": {"dist": "uniform", "low": 0.0, "high": 0.5},
        },
        {
            "type": "pb_funds",
            "name": "pb",
            "funds": draw(st.integers(1, 50)),
            "equity_usd": u(1e8, 2e10),
            "weights": weights,
            "leverage": {"dist": "uniform", "low": 1.5, "high": 6.0},
            "haircut_pct": {a: u(2, 40) for a in RISK},
            "default_leverage": 15,
        },
        {
            "type": "stop_loss",
            "name": "stops",
            "asset": draw(st.sampled_from(RISK)),
            "accounts": draw(st.integers(1, 5000)),
            "notional_usd": u(1e7, 1e10),
            "stop_distance": {"dist": "uniform", "low": 0.0, "high": 0.3},
        },
        {
            "type": "value_funds",
            "name": "value",
            "asset": draw(st.sampled_from(RISK)),
            "funds": 5,
            "capital_usd": u(1e7, 5e9),
            "aggressiveness": {"dist": "uniform", "low": 1, "high": 20},
            "max_leverage": u(1.0, 8.0),
        },
        {
            "type": "vol_target",
            "name": "vt",
            "weights": weights,
            "capital_usd": u(1e8, 5e10),
            "target_vol": 0.01,
        },
        {
            "type": "trend_followers",
            "name": "cta",
            "weights": weights,
            "capital_usd": u(1e8, 5e10),
            "lookback": "1d",
        },
        {
            "type": "etf_flows",
            "name": "etf",
            "asset": "BTC",
            "aum_usd": u(1e9, 1e11),
            "sensitivity": u(0.0, 1.0),
        },
    ]
    return pops


@st.composite
def scenarios(draw):
    venues = [
        {"id": "crypto", "kind": "crypto", "margin_rules": "binance-like"},
        {
            "id": "comex",
            "kind": "futures",
            "session": {
                "timezone": "America/New_York",
                "days": ["sun", "mon", "tue", "wed", "thu"],
                "open": "18:00",
                "close": "17:00",
            },
            "settlement": ["13:30"],
        },
    ]
    shocks = [
        {
            "type": "news",
            "time": "2026-01-05T14:00:00Z",
            "returns": {a: draw(st.floats(-0.3, 0.1)) for a in RISK},
        },
        {
            "type": "fx",
            "time": "2026-01-05T16:00:00Z",
            "pair": "USDJPY",
            "change": draw(st.floats(-0.06, 0.03)),
        },
        {
            "type": "rate",
            "time": "2026-01-05T06:00:00Z",
            "asset": "JGB40Y",
            "change_bp": draw(st.floats(-10, 40)),
        },
        {
            "type": "margin_change",
            "announced": "2026-01-05T10:00:00Z",
            "effective": "2026-01-05T20:00:00Z",
            "venue": "comex",
            "asset": "SILVER",
            "initial_pct": 16.0,
            "maintenance_pct": 15.0,
        },
    ]
    channels = {c: draw(st.booleans()) for c in ("fx_feedback", "pecking_order", "insurance_adl")}
    raw = base_raw(
        clock={
            "start": "2026-01-05T00:00:00Z",
            "end": "2026-01-06T12:00:00Z",
            "step": draw(st.sampled_from(["5min", "15min", "1h"])),
        },
        venues=venues,
        assets=_assets(draw),
        populations=_populations(draw),
        shocks=shocks,
        channels=channels,
        market={"max_rounds": draw(st.integers(2, 50))},
    )
    return build(raw), draw(st.integers(0, 2**32 - 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_population_on_conserves_units_and_cash_at_every_step(case):
    run_and_check_conservation(*case)

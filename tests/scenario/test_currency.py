"""Quote currencies (issue 13, item 1): an asset priced in yen or euros translates into USD
through an fx pair at the same step; mistakes are one line (file, key path, expected,
found) and exit code 2."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build, run_and_check_conservation
from typer.testing import CliRunner

from deleverage import simulate
from deleverage.cli.main import app
from deleverage.market.fx import Translation
from deleverage.populations.systematic import VolTargetPopulation
from deleverage.scenario.export import scenario_json_schema
from deleverage.scenario.schema import VolTargetFunds
from deleverage.stress import validate_portfolio
from deleverage.stress.run import run_book

runner = CliRunner()
USDJPY0, NIKKEI0 = 156.0, 50_000.0


def _asset(asset_id, cls, price, **more):
    return {"id": asset_id, "class": cls, "tier": "core", "venue": "spot", "price": price,
            "daily_vol": 0.01, "adv_usd": 5e10, **more}  # fmt: skip


def _history(price):
    """Ten daily closes up to the start, ±1% around `price`: the funds start invested."""
    closes = price * np.exp(0.01 * np.array([0, 1, -1, 1, -1, 1, -1, 1, -1, 0]))
    days = pd.date_range(end="2026-01-05", periods=len(closes), freq="D")
    points = zip(days, closes, strict=True)
    return {"points": [[f"{day:%Y-%m-%d}T00:00:00Z", float(c)] for day, c in points]}


USDJPY = _asset("USDJPY", "fx", USDJPY0, currency="JPY")
EURUSD = _asset("EURUSD", "fx", 1.08, base="EUR")
NIKKEI = _asset("NIKKEI", "equity_index", NIKKEI0, currency="JPY")
BUND = _asset("BUND", "bond", 130.0, currency="EUR")


# ------------------------------------------------------------------ the translation


@settings(max_examples=60, deadline=None)
@given(
    usdjpy=st.floats(80.0, 300.0),
    eurusd=st.floats(0.6, 1.8),
    nikkei=st.floats(1e3, 1e5),
    bund=st.floats(50.0, 200.0),
    btc=st.floats(1e3, 1e6),
)
def test_units_are_valued_in_usd_at_the_same_prices_fx_rate(usdjpy, eurusd, nikkei, bund, btc):
    scenario = build(base_raw(assets=[*base_raw()["assets"], USDJPY, EURUSD, NIKKEI, BUND]))
    fx = Translation.build(scenario)
    price = np.array([btc, usdjpy, eurusd, nikkei, bund])
    unit = fx.unit_usd(price)
    assert unit[0] == btc  # USD-quoted: the price itself, exactly
    assert unit[1] == 1.0  # USD/JPY: one unit is one dollar
    assert unit[2] == eurusd  # EUR/USD: one unit is one euro, priced in dollars
    assert unit[3] == pytest.approx(nikkei / usdjpy, rel=1e-14)  # yen through USD/JPY
    assert unit[4] == pytest.approx(bund * eurusd, rel=1e-14)  # euros through EUR/USD
    rates = dict(zip(fx.currencies, fx.usd_per(price), strict=True))
    assert rates == pytest.approx({"USD": 1.0, "EUR": eurusd, "JPY": 1.0 / usdjpy}, rel=1e-14)


def test_a_usd_flow_into_a_yen_index_trades_like_its_dollar_twin():
    """ADV, depth and a flow are USD figures: a $10bn sale into an index priced in yen moves
    it by the same log amount as into the same index quoted in USD at price ÷ USDJPY, and
    the volume recorded in USD is the same."""
    twin = _asset("NKY_USD", "equity_index", NIKKEI0 / USDJPY0)
    flows = [{"type": "flow", "asset": a, "start": "2026-01-05T06:00:00Z", "duration": "1h",
              "notional_usd": -1e10} for a in ("NIKKEI", "NKY_USD")]  # fmt: skip
    raw = base_raw(assets=[USDJPY, NIKKEI, twin], shocks=flows, market={"noise_scale": 0.0})
    result = run_and_check_conservation(build(raw), seed=0)
    log_price = np.log(result.market["price"])
    moved = log_price - log_price[:1]
    assert moved[:, 1].min() < -0.002  # the sale moves the index (a real test)
    np.testing.assert_allclose(moved[:, 1], moved[:, 2], rtol=1e-9, atol=1e-12)
    volume = np.nansum(result.market["volume_usd"], axis=0)
    assert volume[1] == pytest.approx(volume[2], rel=1e-9) and volume[1] > 1e9


def test_value_funds_size_a_yen_holding_in_usd_like_its_dollar_twin():
    """Value funds with $1bn each, 10% below their anchor: demand β·m·W over the unit's USD
    value buys the same units of the yen index as of its dollar twin (priced at price ÷
    USDJPY), pays them in yen, and reports the same USD notional."""
    twin = _asset("NKY_USD", "equity_index", NIKKEI0 / USDJPY0)
    funds = [{"type": "value_funds", "name": f"value-{a}", "asset": a, "funds": 5,
              "capital_usd": 1e9, "anchor": anchor, "aggressiveness": {"dist": "fixed",
              "value": 5.0}} for a, anchor in (("NIKKEI", NIKKEI0 / 0.9),
                                              ("NKY_USD", NIKKEI0 / USDJPY0 / 0.9))]  # fmt: skip
    raw = base_raw(assets=[USDJPY, NIKKEI, twin], populations=funds, market={"noise_scale": 0.0})
    result = run_and_check_conservation(build(raw), seed=0)
    trades = result.events[result.events.kind == "value_trade"].groupby("asset")
    quantity, notional = trades.quantity.sum(), trades.notional_usd.sum()
    assert quantity["NIKKEI"] > 0 and notional["NIKKEI"] > 1e8
    assert quantity["NIKKEI"] == pytest.approx(quantity["NKY_USD"], rel=1e-9)
    assert notional["NIKKEI"] == pytest.approx(notional["NKY_USD"], rel=1e-9)
    log_price = np.log(result.market["price"][-1] / result.market["price"][0])
    assert log_price[1] == pytest.approx(log_price[2], rel=1e-9) and log_price[1] > 0


# ------------------------------------------------------------------ a foreign holder


def _holder(fx_move: float, quote: str = "JPY"):
    """A USD-based vol-target fund long the Nikkei (at most 1× equity), the index flat in
    yen (no noise, no news on it), USDJPY moved by `fx_move` (log) on day one. Returns the
    fund (its arrays at the end), the result and the start and end prices."""
    nikkei = {**NIKKEI, "history": _history(NIKKEI0)}
    if quote == "USD":
        nikkei = {**nikkei, "currency": "USD", "price": NIKKEI0 / USDJPY0,
                  "history": _history(NIKKEI0 / USDJPY0)}  # fmt: skip
    spec = {"type": "vol_target", "name": "vt", "weights": {"NIKKEI": 1.0},
            "capital_usd": 1e9, "target_vol": 0.02, "max_leverage": 1.0}  # fmt: skip
    shocks = [{"type": "fx", "time": "2026-01-05T12:00:00Z", "pair": "USDJPY",
               "change": fx_move}]  # fmt: skip
    raw = base_raw(assets=[USDJPY, nikkei], shocks=shocks, market={"noise_scale": 0.0})
    scenario = build(raw)
    funds = []

    def extra(ctx):
        funds.append(VolTargetPopulation(VolTargetFunds(**spec), ctx))
        return funds[-1]

    result = simulate(scenario, seed=0, check_invariants=True, extra=[extra])
    assert result.diagnostics["max_unit_drift"] < 1e-9
    assert result.diagnostics["max_cash_drift_ratio"] < 1e-9  # USD and JPY each conserved
    return funds[0], result


def test_a_usd_fund_long_a_flat_yen_index_loses_in_usd_when_the_yen_falls():
    """USDJPY +5% (the yen 4.9% weaker), the Nikkei unchanged in yen: the fund loses exactly
    its holding's value × (1 − S0/S1) in USD, nothing trades, and the balance sheet
    reconciles in USD: equity = USD cash + (yen cash + units · price) / USDJPY."""
    fund, result = _holder(0.05)
    price = result.market["price"]
    np.testing.assert_allclose(price[:, 1], NIKKEI0, rtol=1e-13)  # flat in yen, every step
    s0, s1 = price[0, 0], price[-1, 0]
    assert s1 == pytest.approx(s0 * np.exp(0.05), rel=1e-12)
    units = fund.units[:, 1]
    assert (units > 0).all() and (result.events.kind == "rebalance").sum() == 0
    held_usd0 = units * NIKKEI0 / s0
    equity0, equity1 = 1e9 / fund.units.shape[0], fund.equity(price[-1])
    loss = held_usd0 * (1.0 - s0 / s1)  # local P&L 0 + translation v·(1/S1 − 1/S0)
    np.testing.assert_allclose(equity0 - equity1, loss, rtol=1e-9)
    assert (loss > 0.03 * held_usd0).all()
    cash_jpy = fund.cash_local[:, fund.fx.currencies.index("JPY") - 1]
    identity = fund.cash_usd + (cash_jpy + units * price[-1, 1]) / s1
    np.testing.assert_allclose(identity, equity1, rtol=1e-12)


def test_the_yen_rising_gains_and_a_dollar_quoted_twin_does_not_move():
    gain, result = _holder(-0.05)
    s0, s1 = result.market["price"][0, 0], result.market["price"][-1, 0]
    equity0 = 1e9 / gain.units.shape[0]
    held_usd0 = gain.units[:, 1] * NIKKEI0 / s0
    np.testing.assert_allclose(gain.equity(result.market["price"][-1]) - equity0,
                               held_usd0 * (s0 / s1 - 1.0), rtol=1e-9)  # fmt: skip
    assert (held_usd0 * (s0 / s1 - 1.0) > 0).all()
    twin, result = _holder(0.05, quote="USD")
    np.testing.assert_allclose(twin.equity(result.market["price"][-1]), equity0, rtol=1e-12)


def test_a_stressed_book_holding_the_nikkei_loses_the_translation_when_the_yen_falls():
    """`stress` books value a yen position through the same translation: 1,000 units at
    ¥50,000 held at a broker lose v·(1 − S0/S1) in USD when USDJPY rises 5%."""
    shocks = [{"type": "fx", "time": "2026-01-05T12:00:00Z", "pair": "USDJPY", "change": 0.05}]
    raw = base_raw(assets=[USDJPY, NIKKEI], shocks=shocks, market={"noise_scale": 0.0})
    scenario = build(raw)
    book = {"name": "me", "cash": {"USD": 1e8}, "response": {"kind": "pecking_order"},
            "positions": [{"asset": "NIKKEI", "quantity": 1000.0, "venue": "spot",
                           "margin": {"type": "broker", "haircut_pct": 15}}]}  # fmt: skip
    _, held = run_book(scenario, validate_portfolio(book, "book.yaml", scenario))
    equity = held.record["equity_usd"]
    value0 = 1000.0 * NIKKEI0 / USDJPY0
    assert equity[0] - equity[-1] == pytest.approx(value0 * (1 - np.exp(-0.05)), rel=1e-9)


# ------------------------------------------------------------------ mistakes, exit 2


def _nikkei(**more):
    return {**NIKKEI, **more}


CASES = {
    "unknown_currency": (
        [USDJPY, _nikkei(currency="YEN")],
        "assets.NIKKEI.currency",
        "expected an ISO 4217 currency code",
    ),
    "missing_pair": (
        [_nikkei()],
        "assets.NIKKEI.currency",
        "expected an fx pair asset that translates JPY into USD",
    ),
    "pair_quoting_another_currency": (
        [USDJPY, EURUSD, _nikkei(fx_pair="EURUSD")],
        "assets.NIKKEI.fx_pair",
        "expected a pair quoting JPY against USD, found 'EURUSD': EUR/USD",
    ),
    "pair_not_defined": (
        [USDJPY, _nikkei(fx_pair="USDJPY_F")],
        "assets.NIKKEI.fx_pair",
        "expected a defined fx pair asset, found 'USDJPY_F'",
    ),
    "pair_not_fx": (
        [USDJPY, _nikkei(fx_pair="BTC")],
        "assets.NIKKEI.fx_pair",
        "expected an fx pair, found 'BTC' of class crypto",
    ),
    "two_pairs_none_named": (
        [USDJPY, {**USDJPY, "id": "USDJPY_NDF"}, _nikkei()],
        "assets.NIKKEI.fx_pair",
        "expected fx_pair naming one of the pairs quoting JPY (USDJPY, USDJPY_NDF)",
    ),
    "cross_pair": (
        [_asset("EURJPY", "fx", 165.0, currency="JPY", base="EUR")],
        "assets.EURJPY",
        "expected a pair against USD",
    ),
    "base_on_an_index": (
        [USDJPY, _nikkei(base="USD")],
        "assets.NIKKEI",
        "expected base only on an fx pair",
    ),
    "fx_pair_on_a_usd_asset": (
        [USDJPY, _asset("SPX", "equity_index", 6000.0, fx_pair="USDJPY")],
        "assets.SPX",
        "expected no fx_pair on a USD-quoted asset, found 'USDJPY'",
    ),
    "fx_pair_on_a_pair": (
        [{**USDJPY, "fx_pair": "USDJPY"}],
        "assets.USDJPY",
        "expected no fx_pair on an fx pair",
    ),
    "futures_book_on_a_yen_asset": (
        [USDJPY, _nikkei(initial_margin_pct=10.0, maintenance_margin_pct=9.0)],
        "populations.fut.asset",
        "expected a USD-quoted asset or a USD/xxx pair",
    ),
}
FUTURES = {"type": "futures_book", "name": "fut", "asset": "NIKKEI", "accounts": 100,
           "notional_usd": 1e9, "margin_cushion": {"dist": "fixed", "value": 1.5},
           "cash_buffer": {"dist": "fixed", "value": 0.5}}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_currency_mistake_is_one_clear_line_and_exit_2(case, write_scenario):
    assets, key_path, found = CASES[case]
    populations = [FUTURES] if case.startswith("futures") else []
    raw = base_raw(assets=[*base_raw()["assets"], *assets], populations=populations)
    path = write_scenario(raw, f"{case}.yaml")
    result = runner.invoke(app, ["run", str(path), "--no-store"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(f"{case}.yaml: {key_path}" in line and found in line for line in lines), lines
    assert "Traceback" not in result.output


def test_the_exported_schema_completes_and_checks_currency_codes():
    defs = scenario_json_schema()["$defs"]["Asset"]["properties"]
    assert "JPY" in defs["currency"]["enum"] and "YEN" not in defs["currency"]["enum"]
    assert "fx_pair" in defs and "EUR" in defs["base"]["anyOf"][0]["enum"]


def test_a_named_pair_either_way_round_runs(write_scenario):
    raw = base_raw(assets=[*base_raw()["assets"], USDJPY, EURUSD, _nikkei(fx_pair="USDJPY"),
                           BUND])  # fmt: skip
    result = runner.invoke(app, ["run", str(write_scenario(raw)), "--no-store"])
    assert result.exit_code == 0, result.output

"""Must show 3: a bad portfolio file gives one clear line per problem (file, key path,
expected, found) and exit code 2, before anything runs."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build
from typer.testing import CliRunner

from deleverage.cli.main import app
from deleverage.stress import PortfolioError, validate_portfolio

runner = CliRunner()

MARKET = base_raw(
    venues=[
        {"id": "crypto", "kind": "crypto", "margin_rules": "binance-like"},
        {"id": "comex", "kind": "futures", "margin_rules": "cme-like"},
        {"id": "fx", "kind": "fx"},
    ],
    assets=[
        {"id": "BTC", "class": "crypto", "tier": "peripheral", "venue": "crypto",
         "price": 100_000.0, "daily_vol": 0.03, "adv_usd": 2e10},
        {"id": "SILVER", "class": "metal", "tier": "peripheral", "venue": "comex",
         "price": 80.0, "daily_vol": 0.03, "adv_usd": 4e10, "initial_margin_pct": 9,
         "maintenance_margin_pct": 9},
        {"id": "USDJPY", "class": "fx", "tier": "core", "venue": "fx", "currency": "JPY",
         "price": 156.0, "daily_vol": 0.006, "adv_usd": 5e10},
    ],
)  # fmt: skip

GOOD = {
    "name": "book",
    "cash": {"USD": 1e6},
    "borrowing": [{"currency": "JPY", "amount": 1e8, "rate_pct": 0.5}],
    "positions": [
        {"asset": "SILVER", "quantity": 10_000, "venue": "comex", "margin": {"type": "exchange"}},
        {"asset": "BTC", "quantity": 2, "venue": "crypto",
         "margin": {"type": "perp", "leverage": 10}},
    ],
    "stops": [{"asset": "SILVER", "trigger": 70, "quantity": -10_000}],
    "response": {"kind": "pecking_order", "reserve_usd": 1e5},
}  # fmt: skip


def _bad(path: str, value):
    """GOOD with one value replaced (`a.0.b` addresses list items by index)."""
    raw = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return raw


CASES = [
    ("unknown asset", _bad("positions.1.asset", "DOGE"),
     "positions.1.asset: expected a scenario asset (BTC, SILVER, USDJPY), found 'DOGE'"),
    ("a sale order naming an asset not held", _bad("response", {"kind": "fixed_list",
     "order": ["BTC", "GOLD"]}), "response.order.1: expected an asset held in positions, "
     "found 'GOLD'"),
    ("negative cash", _bad("cash", {"USD": -5.0}),
     "cash.USD: expected greater than or equal to 0"),
    ("leverage above the venue's maximum", _bad("positions.1.margin.leverage", 150),
     "positions.1.margin.leverage: expected at most 100x (binance-like at 200,000 USD"),
    ("unknown venue", _bad("positions.1.venue", "kraken"),
     "positions.1.venue: expected a scenario venue (crypto, comex, fx), found 'kraken'"),
    ("wrong type", _bad("positions.0.quantity", "lots"),
     "positions.0.quantity: expected a valid number, unable to parse string as a number, "
     "found 'lots'"),
    ("not finite", _bad("positions.0.quantity", float("inf")),
     "positions.0.quantity: expected a finite number"),
    ("unknown currency", _bad("cash", {"EUR": 1e6}),
     "cash.EUR: expected a currency the scenario prices (USD, JPY), found 'EUR'"),
    ("unknown key", _bad("positions.0.size", 3),
     "positions.0.size: unknown key; expected one of: asset, quantity, venue, margin"),
    ("the asset's venue", _bad("positions.1.venue", "comex"),
     "positions.1.venue: expected BTC's venue 'crypto', found 'comex'"),
    ("perp on a venue without a perp rule set", _bad("positions.0.margin", {"type": "perp",
     "leverage": 2}), "positions.0.margin.type: expected a venue with a perp rule set"),
    ("unknown margin type", _bad("positions.0.margin", {"type": "portfolio"}),
     "positions.0.margin: expected 'type' one of 'exchange', 'broker', 'perp', found "
     "'portfolio'"),
    ("stop that adds to the position", _bad("stops.0.quantity", 5_000),
     "stops.0.quantity: expected a stop that reduces the position of 10000, found 5000"),
    ("missing loan rate", _bad("borrowing.0", {"currency": "JPY", "amount": 1e8}),
     "borrowing.0.rate_pct: expected this required key, found it missing"),
]  # fmt: skip


@pytest.fixture(scope="module")
def market_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("market") / "market.yaml"
    path.write_text(yaml.safe_dump(MARKET, sort_keys=False))
    return path


def test_a_good_portfolio_loads():
    portfolio = validate_portfolio(GOOD, "book.yaml", build(MARKET))
    assert [p.asset for p in portfolio.positions] == ["SILVER", "BTC"]


@pytest.mark.parametrize(("kind", "raw", "line"), CASES, ids=[c[0] for c in CASES])
def test_each_mistake_gives_one_line_and_exit_2(tmp_path, market_file, kind, raw, line):
    book = tmp_path / "book.yaml"
    book.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = runner.invoke(app, ["stress", str(book), "--scenario", str(market_file)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: book.yaml: ") and line in lines[0], lines[0]
    assert "Traceback" not in result.output and result.stdout == ""


def test_every_problem_of_a_file_is_listed_once(tmp_path, market_file):
    raw = _bad("positions.1.asset", "DOGE")
    raw["cash"] = {"EUR": 1.0}
    raw["positions"][0]["venue"] = "crypto"
    book = tmp_path / "book.yaml"
    book.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = runner.invoke(app, ["stress", str(book), "--scenario", str(market_file)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        "cash.EUR", "positions.0.venue", "positions.1.asset"
    ]  # fmt: skip


def test_a_missing_file_and_an_unparsable_one_exit_2(tmp_path, market_file):
    missing = runner.invoke(app, ["stress", str(tmp_path / "none.yaml"), "--scenario",
                                  str(market_file)])  # fmt: skip
    assert missing.exit_code == 2 and "expected a portfolio file, found none" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("positions: [asset: BTC\n")
    result = runner.invoke(app, ["stress", str(broken), "--scenario", str(market_file)])
    assert result.exit_code == 2 and "expected valid YAML" in result.stderr


@settings(max_examples=40, deadline=None)
@given(leverage=st.floats(1.0, 200.0), quantity=st.floats(0.01, 5_000.0))
def test_perp_leverage_is_accepted_exactly_up_to_the_tier_maximum(leverage, quantity):
    from deleverage.venues import perp_rules

    table = perp_rules("binance-like").table
    limit = table.max_leverage[table.tier(quantity * 100_000.0)]
    raw = copy.deepcopy(GOOD)
    raw["positions"][1].update(quantity=quantity, margin={"type": "perp", "leverage": leverage})
    market = build(MARKET)
    if leverage <= limit:
        validate_portfolio(raw, "book.yaml", market)
    else:
        with pytest.raises(PortfolioError, match="expected at most"):
            validate_portfolio(raw, "book.yaml", market)


def test_the_command_prints_static_and_endogenous_side_by_side(tmp_path, market_file):
    import json

    book = tmp_path / "book.yaml"
    book.write_text(yaml.safe_dump(GOOD, sort_keys=False))
    args = ["stress", str(book), "--scenario", str(market_file), "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    modes = {m["mode"] for m in payload["metrics"]}
    assert {"static", "endogenous"} <= modes and payload["equity_usd"] > 0
    unknown = runner.invoke(app, [*args[:4], "--find-breaking-shock", "tsunami"])
    assert unknown.exit_code == 2
    assert "--find-breaking-shock: tsunami: expected a scalable shock" in unknown.stderr

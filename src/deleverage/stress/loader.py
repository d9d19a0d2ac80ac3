"""Load and check a portfolio file against the scenario it is stressed in.

`load_portfolio` returns a `Portfolio` or raises `PortfolioError` listing every problem as
"file: key.path: expected …, found …" (the scenario loader's style; the CLI exits 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from deleverage.errors import Problem, ScenarioError, UserError
from deleverage.scenario.currency import pair_base
from deleverage.scenario.loader import _problems_from_validation, _read_raw
from deleverage.scenario.schema import PerpBook, Scenario
from deleverage.stress.schema import ExchangeMargin, Portfolio
from deleverage.venues import PerpRules, perp_rules

PERP_RULE_SETS = ("binance-like", "bybit-like", "hyperliquid-like")


class PortfolioError(UserError):
    """The portfolio file is invalid, or does not fit the scenario's market."""


def currencies(scenario: Scenario) -> dict[str, str | None]:
    """Currencies the market can value in USD: USD, and each quote currency of a USD/xxx
    pair (e.g. JPY through USDJPY) -> the pair's asset id (None for USD)."""
    found: dict[str, str | None] = {"USD": None}
    for asset in scenario.assets:
        if pair_base(asset) == "USD":  # a USD/xxx pair, not an asset quoted in xxx
            found.setdefault(asset.currency, asset.id)
    return found


def exchange_margins(
    scenario: Scenario, margin: ExchangeMargin, asset_id: str
) -> tuple[float, float] | None:
    """(initial, maintenance) % that stand in while the venue's schedule gives none: the
    position's own, else those of the scenario's futures book on the asset (its accounts'
    terms); None when neither gives a maintenance rate."""
    if margin.maintenance_pct is not None:
        return margin.initial_pct or margin.maintenance_pct, margin.maintenance_pct
    asset = scenario.assets[scenario.asset_index()[asset_id]]
    if asset.maintenance_margin_pct is not None:
        return (
            asset.initial_margin_pct or asset.maintenance_margin_pct,
            asset.maintenance_margin_pct,
        )
    for book in scenario.populations:
        if book.type == "futures_book" and book.asset == asset_id and book.maintenance_margin_pct:
            return (
                book.initial_margin_pct or book.maintenance_margin_pct,
                book.maintenance_margin_pct,
            )
    return None


def venue_rules(scenario: Scenario, asset_id: str) -> tuple[PerpRules, PerpBook | None]:
    """The perp rule set everyone trading `asset_id` follows: the scenario's perp book on
    the asset (its rule set, maximum leverage and fee) or else the venue's defaults."""
    asset = scenario.assets[scenario.asset_index()[asset_id]]
    venue = scenario.venues[scenario.venue_index()[asset.venue]]
    book = next(
        (p for p in scenario.populations if p.type == "perp_book" and p.asset == asset_id), None
    )
    name = (book.margin_rules if book else None) or venue.margin_rules
    if name not in PERP_RULE_SETS:
        raise ValueError(f"{asset_id}: venue {venue.id!r} has no perp rule set ({name!r})")
    if book is None:
        return perp_rules(name), None
    fee = None if book.liquidation_fee_pct is None else book.liquidation_fee_pct / 100.0
    return perp_rules(name, max_leverage=book.max_leverage, liquidation_fee=fee), book


def _semantic_problems(
    portfolio: Portfolio, scenario: Scenario, source: str, price0
) -> list[Problem]:
    problems: list[Problem] = []

    def bad(path: str, message: str) -> None:
        problems.append(Problem(source, path, message))

    assets = {a.id: a for a in scenario.assets}
    venues = {v.id: v for v in scenario.venues}
    index = scenario.asset_index()
    money = currencies(scenario)
    known = f"({', '.join(money)})"
    for name in portfolio.cash:
        if name not in money:
            bad(f"cash.{name}", f"expected a currency the scenario prices {known}, found {name!r}")
    for j, loan in enumerate(portfolio.borrowing):
        if loan.currency not in money:
            bad(
                f"borrowing.{j}.currency",
                f"expected a currency the scenario prices {known}, found {loan.currency!r}",
            )
    held: dict[str, float] = {}
    for j, position in enumerate(portfolio.positions):
        at = f"positions.{j}"
        asset = assets.get(position.asset)
        if position.asset in held:
            bad(f"{at}.asset", f"expected one position per asset, found {position.asset!r} twice")
        held[position.asset] = position.quantity  # stops and the order refer to it by name
        if asset is None:
            bad(f"{at}.asset", f"expected a scenario asset ({', '.join(assets)}), found "
                f"{position.asset!r}")  # fmt: skip
            continue
        venue = venues.get(position.venue)
        if venue is None:
            bad(f"{at}.venue", f"expected a scenario venue ({', '.join(venues)}), found "
                f"{position.venue!r}")  # fmt: skip
            continue
        if venue.id != asset.venue:
            bad(f"{at}.venue", f"expected {asset.id}'s venue {asset.venue!r}, found {venue.id!r}")
            continue
        if asset.currency not in money:
            bad(f"{at}.asset", f"expected an asset quoted in a currency with a USD/xxx pair "
                f"{known}, found {asset.id!r} quoted in {asset.currency}")  # fmt: skip
            continue
        margin = position.margin
        if margin.type == "perp":
            try:
                rules, _ = venue_rules(scenario, asset.id)
            except ValueError:
                bad(f"{at}.margin.type", f"expected a venue with a perp rule set "
                    f"({', '.join(PERP_RULE_SETS)}), found {venue.id!r} with "
                    f"{venue.margin_rules!r}")  # fmt: skip
                continue
            if asset.currency != "USD":
                bad(f"{at}.asset", f"expected a USD-quoted perp, found {asset.currency}")
            entry = position.entry_price or float(price0[index[asset.id]])
            notional = abs(position.quantity) * entry
            limit = float(rules.table.max_leverage[rules.table.tier(notional)])
            if margin.leverage > limit:
                bad(f"{at}.margin.leverage", f"expected at most {limit:g}x ({rules.name} at "
                    f"{notional:,.0f} USD notional), found {margin.leverage:g}")  # fmt: skip
        elif position.entry_price is not None:
            bad(f"{at}.entry_price", "expected no entry_price: it is used by perps only, found "
                f"{position.entry_price:g}")  # fmt: skip
        if margin.type == "exchange":
            if exchange_margins(scenario, margin, asset.id) is None:
                bad(f"{at}.margin", f"expected maintenance_pct: {asset.id} has no exchange "
                    "margin at the start in the scenario, found none")  # fmt: skip
            if (margin.initial_pct or 100.0) < (margin.maintenance_pct or 0.0):
                bad(f"{at}.margin.maintenance_pct", "expected at most initial_pct, found "
                    f"{margin.maintenance_pct:g} > {margin.initial_pct:g}")  # fmt: skip
    for j, stop in enumerate(portfolio.stops):
        at = f"stops.{j}"
        if stop.asset not in held:
            bad(f"{at}.asset", f"expected an asset held in positions ({', '.join(held)}), found "
                f"{stop.asset!r}")  # fmt: skip
        elif stop.quantity * held[stop.asset] > 0 or abs(stop.quantity) > abs(held[stop.asset]):
            bad(f"{at}.quantity", f"expected a stop that reduces the position of "
                f"{held[stop.asset]:g}, found {stop.quantity:g}")  # fmt: skip
    for j, name in enumerate(portfolio.response.order):
        if name not in held:
            bad(f"response.order.{j}", f"expected an asset held in positions, found {name!r}")
    return problems


def validate_portfolio(raw: dict[str, Any], source: str, scenario: Scenario) -> Portfolio:
    from deleverage.engine.simulate import initial_prices

    try:
        portfolio = Portfolio.model_validate(raw)
    except ValidationError as exc:
        raise PortfolioError(_problems_from_validation(source, raw, exc, Portfolio)) from None
    problems = _semantic_problems(portfolio, scenario, source, initial_prices(scenario))
    if problems:
        raise PortfolioError(problems)
    return portfolio


def load_portfolio(path: str | Path, scenario: Scenario) -> Portfolio:
    """Read a YAML/TOML portfolio file and check it against `scenario`."""
    path = Path(path)
    if not path.is_file():
        raise PortfolioError([Problem(str(path), "", "expected a portfolio file, found none")])
    try:
        raw = _read_raw(path)
    except ScenarioError as exc:
        raise PortfolioError(exc.problems) from None
    return validate_portfolio(raw, path.name, scenario)

"""Load, override, validate and hash scenario files (YAML or TOML).

`load_scenario` turns a preset name or a path into an immutable `Scenario`, or raises a
`ScenarioError` listing every problem as "file: key.path: expected …, found …".
"""

from __future__ import annotations

import copy
import hashlib
import json
import reprlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from deleverage.errors import Problem, ScenarioError
from deleverage.scenario.currency import currency_problems
from deleverage.scenario.perp_venue import expand_baskets
from deleverage.scenario.schema import (
    CHANNELS,
    EVENT_METRICS,
    PERCENT_PRICE_METRICS,
    PRICE_METRICS,
    RatePath,
    Scenario,
)
from deleverage.scenario.series import SeriesError, history_series, read_series

PRESET_PACKAGE = "deleverage.scenario.presets"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    path: Path


def list_presets() -> list[Preset]:
    """Scenario presets shipped in the package, sorted by name."""
    presets = []
    for entry in resources.files(PRESET_PACKAGE).iterdir():
        if entry.name.endswith((".yaml", ".yml", ".toml")):
            path = Path(str(entry))
            raw = _read_raw(path)
            presets.append(Preset(path.stem, str(raw.get("description", "")).strip(), path))
    return sorted(presets, key=lambda p: p.name)


def resolve_path(name_or_path: str | Path) -> Path:
    """A preset name ('feb-2026') or a path to a scenario file."""
    path = Path(name_or_path)
    if path.suffix.lower() in (".yaml", ".yml", ".toml") or path.exists():
        if not path.is_file():
            raise ScenarioError([Problem(str(path), "", "expected a scenario file, found none")])
        return path
    for preset in list_presets():
        if preset.name == str(name_or_path):
            return preset.path
    names = ", ".join(p.name for p in list_presets())
    raise ScenarioError(
        [Problem(str(name_or_path), "", f"expected a preset name ({names}) or a file path")]
    )


MAX_ALIASES = 100  # YAML aliases (*name) in one file: enough for sharing, no "billion laughs"


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a bound on aliases, so a file of nested aliases cannot
    expand into billions of nodes when validated or shown in an error."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen = getattr(self, "aliases_seen", 0) + 1
            if self.aliases_seen > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(
                    f"line {mark.line + 1}: expected at most {MAX_ALIASES} aliases, found more"
                )
        return super().compose_node(parent, index)


def _read_raw(path: Path) -> dict[str, Any]:
    def problem(at: str, message: str) -> ScenarioError:
        return ScenarioError([Problem(path.name, at, message)])

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise problem("", f"expected a readable file, found {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise problem("", f"expected UTF-8 text, found byte {data[exc.start]:#04x} at offset "
                      f"{exc.start} (save the file as UTF-8)") from None  # fmt: skip
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        else:
            raw = yaml.load(text, Loader=_SafeLoader)
    except tomllib.TOMLDecodeError as exc:
        raise problem("", f"expected valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        raise problem(*_yaml_message(exc)) from None
    except RecursionError:
        raise problem("", "expected a scenario nested at most a few hundred levels deep") from None
    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem(path.name, "", f"expected a mapping at top level, found {type(raw).__name__}")]
        )
    return raw


def _yaml_message(exc: yaml.YAMLError) -> tuple[str, str]:
    """One line: where (line N, column M) and what PyYAML found wrong."""
    mark = getattr(exc, "problem_mark", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return at, f"expected valid YAML: {what}" + (f" ({context})" if context else "")


# --------------------------------------------------------------------------- overrides


def _parse_value(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return text


def _child(node: Any, key: str) -> tuple[Any, Any] | None:
    """Return (container, key) addressing `key` inside node; list items by index or id."""
    if isinstance(node, dict):
        return (node, key) if key in node else None
    if isinstance(node, list):
        if key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
            return node, int(key)
        for i, item in enumerate(node):
            if isinstance(item, dict) and key in (item.get("id"), item.get("name")):
                return node, i
    return None


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a raw scenario dict; list items by index or by id/name.

    The final key may be new only inside a mapping (so defaults can be overridden)."""
    parts = dotted.split(".")
    node: Any = raw
    for part in parts[:-1]:
        found = _child(node, part)
        if found is None:
            if isinstance(node, dict):
                node[part] = {}
                node = node[part]
                continue
            raise KeyError(part)
        container, key = found
        node = container[key]
    last = parts[-1]
    found = _child(node, last)
    if found is not None:
        container, key = found
        container[key] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise KeyError(last)


def apply_overrides(
    raw: dict[str, Any], sets: list[str] = (), channels: list[str] = ()
) -> dict[str, Any]:
    """Apply `--set key.path=value` and `--channels name=on|off` to a raw scenario."""
    raw, problems = _overridden(raw, sets, channels)
    if problems:
        raise ScenarioError(problems)
    return raw


def _overridden(
    raw: dict[str, Any], sets: list[str], channels: list[str]
) -> tuple[dict[str, Any], list[Problem]]:
    """The raw scenario with every well-formed override applied, and the problems of the
    others (so that they are reported together with the scenario's own)."""
    raw = copy.deepcopy(raw)
    problems = []
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key:
            problems.append(Problem("--set", item, "expected key.path=value"))
            continue
        try:
            set_path(raw, key.strip(), _parse_value(text))
        except KeyError as exc:
            problems.append(Problem("--set", key, f"expected an existing key path, found no {exc}"))
    for item in channels:
        for part in item.split(","):
            name, sep, state = part.partition("=")
            name, state = name.strip(), state.strip().lower()
            if name not in CHANNELS:
                problems.append(
                    Problem("--channels", name, f"expected one of {', '.join(CHANNELS)}")
                )
            elif not sep or state not in ("on", "off"):
                problems.append(Problem("--channels", part, "expected name=on or name=off"))
            else:
                raw.setdefault("channels", {})[name] = state == "on"
    return raw, problems


# --------------------------------------------------------------------------- errors


def _render_path(raw: Any, loc: tuple[Any, ...]) -> str:
    """('assets', 2, 'daily_vol') -> 'assets[BTC].daily_vol' using ids from the raw data;
    discriminator tags that pydantic inserts into the location are skipped."""
    out, node = "", raw
    for part in loc:
        if isinstance(part, int):
            label = str(part)
            if isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
                if isinstance(node, dict) and (node.get("id") or node.get("name")):
                    label = str(node.get("id") or node.get("name"))
            else:
                node = None
            out += f".{label}" if out else label
            continue
        if isinstance(part, str) and not (isinstance(node, dict) and part in node):
            kinds = node.get("type") if isinstance(node, dict) else None
            if kinds == part or "-" in part or "[" in part:
                continue  # a union tag, not a key of the file (also under a plain value)
        out += f".{part}" if out else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return out


def _allowed_keys(loc: tuple[Any, ...], model: Any = Scenario) -> list[str]:
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        model = _inner_model(fields[part].annotation)
    fields = getattr(model, "model_fields", {}) if model else {}
    return [f.alias or name for name, f in fields.items()]


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring = 2, 4, 4, 50


def _describe(value: Any) -> str:
    """A short repr that never expands a large or deeply nested value."""
    text = _SHORT.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problems_from_validation(
    source: str, raw: dict, exc: ValidationError, model: type[BaseModel] = Scenario
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _render_path(raw, loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(loc, model)
            hint = f"expected one of: {', '.join(allowed)}" if allowed else "expected a known key"
            message = f"unknown key; {hint}"
        elif kind == "missing":
            message = "expected this required key, found it missing"
        elif kind == "union_tag_invalid":
            ctx = err["ctx"]
            tags = ctx["expected_tags"]
            message = f"expected {ctx['discriminator']} one of {tags}, found {ctx['tag']!r}"
        elif kind == "too_short":
            found = _describe(err.get("input"))
            message = f"expected at least {err['ctx']['min_length']} item(s), found {found}"
        else:
            text = err["msg"]
            for prefix in ("Value error, ", "Input should be ", "Assertion failed, "):
                text = text.removeprefix(prefix)
            message = f"expected {text}, found {_describe(err.get('input'))}"
            if err["msg"].startswith("Value error, "):
                message = text
        problems.append(Problem(source, path, message))
    return problems


# --------------------------------------------------------------------------- semantics


def _resolve_file(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else (base / path)


def _perp_book_problems(book: Any, scenario: Scenario, base: Path) -> list[tuple[str, str]]:
    """A perp book needs a perp rule set (its own or its venue's) and a readable accounts file."""
    problems = []
    from deleverage.scenario.perp_venue import book_venue

    venue = book_venue(book, scenario)  # its own venue, or its asset's
    if book.venue is not None and venue is None:
        names = ", ".join(v.id for v in scenario.venues)
        return [("venue", f"expected a defined venue ({names}), found {book.venue!r}")]
    perp_rule_sets = ("binance-like", "bybit-like", "hyperliquid-like")
    if book.margin_rules is None and venue and venue.margin_rules not in perp_rule_sets:
        problems.append(
            (
                "margin_rules",
                f"expected {', '.join(perp_rule_sets)} here or on the asset's venue, "
                f"found venue {venue.id!r} with {venue.margin_rules!r}",
            )
        )
    rules_name = book.margin_rules or (venue.margin_rules if venue else None)
    from deleverage.populations.perps import read_accounts  # the reader lives with its user
    from deleverage.scenario.perp_venue import rules_for

    accounts = None
    if book.file is not None:
        try:
            accounts = read_accounts(_resolve_file(base, book.file))
        except ValueError as exc:
            problems.append(("file", str(exc)))
            return problems
    if rules_name not in perp_rule_sets:
        return problems
    table = rules_for(book, scenario, rules_name).table  # the book's or its asset's table
    if accounts is not None:
        allowed = table.max_leverage[table.tier(accounts.size * accounts.entry)]
        over = np.flatnonzero(accounts.leverage > allowed)
        if len(over):
            row = int(over[0])
            problems.append(
                (
                    "file",
                    f"row {row + 2}: expected leverage ≤ {allowed[row]:g}x, the {rules_name} "
                    f"maximum for its notional, found {accounts.leverage[row]:g}x "
                    f"({len(over)} such rows)",
                )
            )
    elif book.leverage is not None and book.leverage.dist in ("uniform", "triangular", "fixed"):
        # a bounded law above the maximum is a mistake; the tails of unbounded laws are
        # clipped to the tier's maximum, and the run logs how many (`perp_leverage_clipped`)
        top = float(table.max_leverage.max())
        highest = _support(book.leverage)[1]
        if highest > top:
            problems.append(
                (
                    "leverage",
                    f"expected draws ≤ {top:g}x, the {rules_name} maximum leverage, found a "
                    f"law reaching {highest:g}x",
                )
            )
    return problems


def _support(law: Any) -> tuple[float, float]:
    """The range a prior draws from in practice: its bounds, or ±6 standard deviations (a
    draw beyond has probability 2e-9; one that lands there and is invalid stops the run
    with a clear `ScenarioError`)."""
    if law.dist in ("uniform", "triangular"):
        return float(law.low), float(law.high)
    if law.dist == "normal":
        return float(law.mean - 6.0 * law.sd), float(law.mean + 6.0 * law.sd)
    if law.dist == "lognormal":
        spread = np.exp(6.0 * law.sigma)
        return float(law.median / spread), float(law.median * spread)
    return float(law.value), float(law.value)


def _check_driven_window(shock: Any, path: str, scenario: Scenario, base: Path, bad) -> None:
    """A driver must drive somewhere inside the clock: its observations, up to `until`, must
    overlap [start, end). It is free before its first observation."""
    if shock.file is not None:
        try:
            series = read_series(_resolve_file(base, shock.file), shock.column, shock.time_column)
        except SeriesError as exc:
            bad(f"{path}.file", str(exc))
            return
        first = series.index[0].to_pydatetime()
        if shock.kind == "price" and not (series > 0).all():
            found = float(series[~(series > 0)].iloc[0])
            bad(f"{path}.file", f"expected positive prices in {shock.column!r}, found {found}")
            return
    else:
        first = min(when for when, _ in shock.points)
    start, end = scenario.clock.start, scenario.clock.end
    stop = min(end, shock.until or end)
    if not max(first, start) < stop:
        bad(
            path,
            "expected a driven window that overlaps the clock window, found observations "
            f"from {first:%Y-%m-%d %H:%M} driving until {stop:%Y-%m-%d %H:%M}",
        )


def _semantic_problems(scenario: Scenario, source: str, base: Path) -> list[Problem]:
    """Cross-references and files: everything a single field cannot check by itself."""
    problems: list[Problem] = []

    def bad(path: str, message: str) -> None:
        problems.append(Problem(source, path, message))

    for kind, items, key in (
        ("assets", scenario.assets, "id"),
        ("venues", scenario.venues, "id"),
        ("populations", scenario.populations, "name"),
    ):
        seen: set[str] = set()
        for item in items:
            value = getattr(item, key)
            if value in seen:
                bad(f"{kind}.{value}.{key}", f"expected a unique {key}, found {value!r} twice")
            seen.add(value)

    assets = scenario.asset_index()
    venues = scenario.venue_index()

    def need_asset(path: str, asset_id: str) -> None:
        if asset_id not in assets:
            bad(path, f"expected a defined asset ({', '.join(assets)}), found {asset_id!r}")

    def need_venue(path: str, venue_id: str) -> None:
        if venue_id not in venues:
            bad(path, f"expected a defined venue ({', '.join(venues)}), found {venue_id!r}")

    start, end = scenario.clock.start, scenario.clock.end

    def need_in_window(path: str, when: Any) -> None:
        if not start <= when < end:
            bad(path, f"expected a time inside the clock window, found {when:%Y-%m-%d %H:%M}")

    for asset in scenario.assets:
        need_venue(f"assets.{asset.id}.venue", asset.venue)
        if asset.history is not None:
            try:
                spec = asset.history
                if spec.file is not None:
                    spec = spec.model_copy(update={"file": str(_resolve_file(base, spec.file))})
                series = history_series(spec, start)
                if series.empty:
                    bad(f"assets.{asset.id}.history", "expected data on or before clock.start")
                elif not (series > 0).all():
                    found = float(series[~(series > 0)].iloc[0])
                    bad(f"assets.{asset.id}.history", f"expected positive prices, found {found}")
            except SeriesError as exc:
                bad(f"assets.{asset.id}.history", str(exc))

    for key, message in currency_problems(scenario.assets):
        bad(key, message)

    for venue in scenario.venues:
        for j, outage in enumerate(venue.outages):
            need_in_window(f"venues.{venue.id}.outages.{j}.start", outage.start)
        for asset_id in venue.tier_tables:
            need_asset(f"venues.{venue.id}.tier_tables", asset_id)
        for j, rule in enumerate(venue.triggered_outages):
            need_asset(f"venues.{venue.id}.triggered_outages.{j}.asset", rule.asset)

    for key, message in _limit_problems(scenario):
        bad(key, message)

    for a, b, _ in scenario.market.correlation.pairs:
        need_asset("market.correlation.pairs", a)
        need_asset("market.correlation.pairs", b)
    for j, (a, b, _) in enumerate(scenario.market.cross_impact):
        need_asset(f"market.cross_impact.{j}", a)
        need_asset(f"market.cross_impact.{j}", b)

    for population in scenario.populations:
        # Any field named `asset` or `*_asset` names one asset, `*_venue` one venue;
        # `weights`/`holdings` map assets.
        for key, value in population:
            where = f"populations.{population.name}.{key}"
            if (key == "asset" or key.endswith("_asset")) and isinstance(value, str):
                need_asset(where, value)
            elif key.endswith("_venue") and isinstance(value, str):
                need_venue(where, value)
            elif key in ("weights", "holdings") and isinstance(value, dict):
                for asset_id in value:
                    need_asset(where, asset_id)
        # A spec may also check what it needs of those assets (a bond, margins, a currency).
        if hasattr(population, "check_assets"):
            by_id = {asset.id: asset for asset in scenario.assets}
            for key, message in population.check_assets(by_id):
                bad(f"populations.{population.name}.{key}", message)
        if hasattr(population, "check_scenario"):
            for key, message in population.check_scenario(scenario):
                bad(f"populations.{population.name}.{key}", message)
        if population.type == "perp_book":
            for key, message in _perp_book_problems(population, scenario, base):
                bad(f"populations.{population.name}.{key}", message)
        if population.type == "carry_funds":  # each dated leg is known from the start
            for key in ("investment_rate", "funding_rate"):
                rate = getattr(population, key)
                if isinstance(rate, RatePath) and rate.points[0][0] > start:
                    bad(
                        f"populations.{population.name}.{key}.points.0",
                        "expected a first point at or before clock.start (the rate in force "
                        f"when the run starts), found {rate.points[0][0]:%Y-%m-%d %H:%M}",
                    )

    for i, shock in enumerate(scenario.shocks):
        path = f"shocks.{i}"
        if shock.type in ("news", "policy"):
            for asset_id in shock.returns:
                need_asset(f"{path}.returns", asset_id)
        if shock.type == "factor":
            for asset_id in shock.betas:
                need_asset(f"{path}.betas", asset_id)
        if shock.type in ("earnings", "rate", "flow", "driver"):
            need_asset(f"{path}.asset", shock.asset)
        if shock.type == "fx":
            need_asset(f"{path}.pair", shock.pair)
        if shock.type == "mm_retreat":
            for asset_id in shock.assets:
                need_asset(f"{path}.assets", asset_id)
        if shock.type in ("margin_change", "outage"):
            need_venue(f"{path}.venue", shock.venue)
        if shock.type == "margin_change":
            need_asset(f"{path}.asset", shock.asset)
            if shock.in_usd and shock.asset in assets:
                if scenario.assets[assets[shock.asset]].contract_size is None:
                    bad(f"{path}.initial_usd", f"expected an asset with contract_size for "
                        f"margins in USD per contract, found {shock.asset!r} without")  # fmt: skip
        # Every dated shock falls inside the clock window: one before the start did not
        # happen in this run (it belongs in the starting state or the asset's history).
        for key in ("time", "start", "announced", "effective", "until"):
            when = getattr(shock, key, None)
            if when is not None:
                need_in_window(f"{path}.{key}", when)
        bond_needed = shock.type == "rate" or (shock.type == "driver" and shock.kind == "yield")
        if bond_needed and shock.asset in assets:
            asset = scenario.assets[assets[shock.asset]]
            if asset.duration_years is None or asset.yield_pct is None:
                bad(
                    f"{path}.asset",
                    f"expected a bond with duration_years and yield_pct, found {asset.id!r}",
                )
        if shock.type == "driver":
            _check_driven_window(shock, path, scenario, base, bad)
        if shock.type == "flow" and shock.asset in assets:
            # a programme beyond ten days of the asset's whole volume is outside what the
            # impact laws describe (facts 3.1: calibrated up to Q/V of order 1)
            adv = scenario.assets[assets[shock.asset]].adv_usd
            if abs(shock.notional_usd) > 10.0 * adv:
                bad(
                    f"{path}.notional_usd",
                    f"expected at most 10 × the asset's adv_usd ({10.0 * adv:.4g}), found "
                    f"{shock.notional_usd:.4g}",
                )

    for j, target in enumerate(scenario.targets):
        if target.asset is not None:
            need_asset(f"targets.{j}.asset", target.asset)
        if target.venue is not None:
            need_venue(f"targets.{j}.venue", target.venue)
        for key, message in _target_problems(target, scenario):
            bad(f"targets.{j}.{key}", message)
        if target.window is not None and not (start <= target.window[0] < target.window[1] <= end):
            bad(
                f"targets.{j}.window",
                "expected a window inside the clock window, found "
                f"{target.window[0]:%Y-%m-%d %H:%M} to {target.window[1]:%Y-%m-%d %H:%M}",
            )

    if not problems:
        try:
            np.linalg.cholesky(correlation_matrix(scenario))
        except np.linalg.LinAlgError:
            bad(
                "market.correlation",
                "expected a positive-definite correlation matrix, found one that is not",
            )
    return problems


def _limit_problems(scenario: Scenario) -> list[tuple[str, str]]:
    """Price limits and breakers name defined assets (one limit per asset), and their
    reset needs a venue that does what it says: closes between sessions or settles."""
    assets = {asset.id: asset for asset in scenario.assets}
    venues = {venue.id: venue for venue in scenario.venues}
    problems, limited = [], set()

    def check_reset(where: str, asset_id: str, reset: str) -> None:
        venue = venues.get(assets[asset_id].venue)
        if venue is None:
            return
        session = venue.session
        never_closes = session.hours_per_day >= 24.0 and len(set(session.days)) == 7
        if reset == "session" and never_closes:
            message = "expected a venue that closes between sessions for reset: session, found"
            problems.append((f"{where}.reset", f"{message} {venue.id!r} open 24/7 (use utc_day)"))
        if reset == "settlement" and not venue.settlement:
            message = "expected a venue with settlement times for reset: settlement, found"
            problems.append((f"{where}.reset", f"{message} {venue.id!r} with none"))

    def known(where: str, asset_id: str) -> bool:
        if asset_id not in assets:
            problems.append((where, f"expected a defined asset ({', '.join(assets)}), found "
                             f"{asset_id!r}"))  # fmt: skip
        return asset_id in assets

    for j, limit in enumerate(scenario.market.price_limits):
        where = f"market.price_limits.{j}"
        if known(f"{where}.asset", limit.asset):
            if limit.asset in limited:
                problems.append((f"{where}.asset", f"expected one limit per asset, found "
                                 f"{limit.asset!r} twice"))  # fmt: skip
            limited.add(limit.asset)
            check_reset(where, limit.asset, limit.reset)
    for j, breaker in enumerate(scenario.market.circuit_breakers):
        where = f"market.circuit_breakers.{j}"
        if known(f"{where}.index", breaker.index):
            check_reset(where, breaker.index, breaker.reset)
        for asset_id in breaker.assets:
            known(f"{where}.assets", asset_id)
    return problems


def _target_problems(target: Any, scenario: Scenario) -> list[tuple[str, str]]:
    """A computed metric must name what it needs (an asset for price metrics), use only the
    filters it has, a population that produces it and a unit it is measured in."""
    metric, problems = target.metric, []
    assets = {asset.id: asset for asset in scenario.assets}
    if metric in PRICE_METRICS:
        if target.asset is None:
            return [("asset", f"expected the asset whose price {metric} measures, found none")]
        extra = sorted(target.filters())
        if extra:
            problems.append((extra[0], f"expected no {extra[0]} on a price metric ({metric})"))
        currency = assets[target.asset].currency if target.asset in assets else None
        units = ("%",) if metric in PERCENT_PRICE_METRICS else (currency,)
        if currency is not None and target.unit not in units:
            problems.append(("unit", f"expected {units[0]!r} for {metric}, found {target.unit!r}"))
        return problems
    spec = EVENT_METRICS.get(metric)
    if spec is None:
        return []  # recorded as observed only
    for key in ("asset", *target.filters()):
        if key == "asset" and target.asset is None:
            continue
        if key not in spec.filters:
            allowed = ", ".join(spec.filters) or "none"
            problems.append((key, f"expected only the filters {allowed} on {metric}, found {key}"))
    types = {p.name: p.type for p in scenario.populations}
    if target.population is not None:
        kind = types.get(target.population)
        if kind is None:
            names = ", ".join(types) or "none defined"
            problems.append(("population", f"expected a defined population ({names}), found "
                             f"{target.population!r}"))  # fmt: skip
        elif kind not in spec.populations:
            wanted = " or ".join(spec.populations)
            problems.append(("population", f"expected a {wanted} population for {metric}, "
                             f"found {target.population!r} ({kind})"))  # fmt: skip
    units = list(spec.units)
    if "currency" in units:
        units.remove("currency")
        units += sorted(
            {assets[p.fx_asset].currency for p in scenario.populations
             if p.type == "carry_funds" and p.fx_asset in assets}
        )  # fmt: skip
    if target.unit not in units:
        problems.append(("unit", f"expected one of {', '.join(units)} for {metric}, found "
                         f"{target.unit!r}"))  # fmt: skip
    return problems


def correlation_matrix(scenario: Scenario) -> np.ndarray:
    """Block correlation: `within_block` inside a block, `across_blocks` between, pairs override."""
    spec = scenario.market.correlation
    blocks = [asset.correlation_block for asset in scenario.assets]
    n = len(blocks)
    matrix = np.array(
        [
            [spec.within_block if blocks[i] == blocks[j] else spec.across_blocks for j in range(n)]
            for i in range(n)
        ]
    )
    index = scenario.asset_index()
    for a, b, rho in spec.pairs:
        matrix[index[a], index[b]] = matrix[index[b], index[a]] = rho
    np.fill_diagonal(matrix, 1.0)
    return matrix


# --------------------------------------------------------------------------- public


def validate(
    raw: dict[str, Any], source: str, base: Path, problems: list[Problem] = ()
) -> Scenario:
    """The scenario `raw` as a `Scenario`, or a `ScenarioError` with every problem: those
    given (e.g. of overrides), the schema's, then cross-references and files."""
    problems = list(problems)
    raw = expand_baskets(raw)  # a perp basket is one perp book per coin
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(problems + _problems_from_validation(source, raw, exc)) from None
    except RecursionError:
        problems.append(Problem(source, "", "expected a scenario nested less deeply"))
        raise ScenarioError(problems) from None
    problems += _semantic_problems(scenario, source, base)
    for j, item in enumerate(scenario.uncertain):
        problems += _prior_problems(raw, item, f"uncertain.{j}", source)
    problems += _correlation_problems(scenario, source)
    if problems:
        raise ScenarioError(problems)
    return _absolute_files(scenario, base)


def _prior_problems(raw: dict[str, Any], item: Any, where: str, source: str) -> list[Problem]:
    """A prior must name existing keys and every value it can draw — its centre and both
    ends of its support (`_support`; for shares, each path at its mean share, at the whole
    total and near zero) — must give a valid scenario, so that no seed meets a draw the
    schema refuses. Inputs a draw scales must be numbers."""
    targets = item.targets
    for path in targets:
        try:
            base = _value_at(raw, path)
        except KeyError:
            return [Problem(source, f"{where}.path{'s' if item.paths else ''}",
                            f"expected an existing key path, found {path!r}")]  # fmt: skip
        number = isinstance(base, int | float) and not isinstance(base, bool)
        if item.mode == "scale" and not number:
            key = f"{where}.paths" if item.paths else f"{where}.path"
            message = f"expected a number to scale at {path}, found {_describe(base)}"
            return [Problem(source, key, message)]
    if item.shares is not None:
        total, mean = item.shares.total, item.shares.mean()
        trials = [total * mean, np.full(len(mean), total), np.full(len(mean), total * 1e-12)]
    else:
        ends = dict.fromkeys((item.prior.center(), *_support(item.prior)))
        trials = [np.full(len(targets), value) for value in ends]
    for values in trials:
        trial = copy.deepcopy(raw)
        _apply_draws(trial, item, values)
        try:
            Scenario.model_validate(trial)
        except ValidationError as exc:
            if any(err["type"] == "extra_forbidden" for err in exc.errors()):
                return [Problem(source, f"{where}.path", f"expected an existing key path, "
                                f"found {item.path or item.paths!r}")]  # fmt: skip
            first = _problems_from_validation(source, trial, exc)[0]
            shown = ", ".join(f"{v:g}" for v in dict.fromkeys(values.tolist()))
            kind = "shares" if item.shares is not None else "prior"
            return [
                Problem(
                    source,
                    f"{where}.{kind}",
                    f"expected draws valid for {', '.join(targets)}, found that a draw of "
                    f"{shown} gives {first.path}: {first.message}",
                )
            ]
    return []


def _value_at(raw: dict[str, Any], dotted: str) -> Any:
    """The value at a --set key path (KeyError if it does not exist; a missing last key of
    a mapping is a default not written in the file: None)."""
    node: Any = raw
    parts = dotted.split(".")
    for j, part in enumerate(parts):
        found = _child(node, part)
        if found is None:
            if j == len(parts) - 1 and isinstance(node, dict):
                return None
            raise KeyError(part)
        container, key = found
        node = container[key]
    return node


def _apply_draws(raw: dict[str, Any], item: Any, values: np.ndarray) -> None:
    """Set each of the item's key paths to its value (× the path's own value when the item
    scales), in the type of the value it replaces."""
    for path, value in zip(item.targets, values, strict=True):
        value = float(value)
        if item.mode == "scale":
            value *= _value_at(raw, path)
        set_path(raw, path, _as_field(raw, path, value))


def _correlation_problems(scenario: Scenario, source: str) -> list[Problem]:
    """Named priors are unique, correlations name other priors, agree both ways, and form
    a positive-definite matrix."""
    names = [item.name for item in scenario.uncertain]
    problems = []
    seen: set[str] = set()
    for j, name in enumerate(names):
        if name is not None and name in seen:
            problems.append(Problem(source, f"uncertain.{j}.name", f"expected a unique name, "
                                    f"found {name!r} twice"))  # fmt: skip
        seen.add(name)
    pairs: dict[tuple[str, str], float] = {}
    for j, item in enumerate(scenario.uncertain):
        for other, rho in item.correlation.items():
            where = f"uncertain.{j}.correlation"
            if other not in seen or other is None or other == item.name:
                problems.append(Problem(source, where, f"expected the name of another prior "
                                        f"({', '.join(n for n in names if n) or 'none named'}), "
                                        f"found {other!r}"))  # fmt: skip
                continue
            mine = item.name if item.name is not None else f"#{j}"
            key = tuple(sorted((mine, other)))
            if key in pairs and pairs[key] != rho:
                message = f"expected one correlation for {key[0]} and {key[1]}, found"
                problems.append(Problem(source, where, f"{message} {pairs[key]} and {rho}"))
            pairs[key] = rho
    if not problems and pairs:
        try:
            np.linalg.cholesky(_copula_matrix(scenario)[1])
        except np.linalg.LinAlgError:
            message = "expected correlations of a positive-definite matrix, found others"
            problems.append(Problem(source, "uncertain", message))
    return problems


def _copula_matrix(scenario: Scenario) -> tuple[list[int], np.ndarray]:
    """The uncertain items that take part in correlations and their correlation matrix."""
    items = scenario.uncertain
    label = [item.name if item.name is not None else f"#{j}" for j, item in enumerate(items)]
    edges = [
        (j, label.index(other), rho)
        for j, item in enumerate(items)
        for other, rho in item.correlation.items()
        if other in label
    ]
    members = sorted({j for j, _, _ in edges} | {k for _, k, _ in edges})
    matrix = np.eye(len(members))
    for j, k, rho in edges:
        a, b = members.index(j), members.index(k)
        matrix[a, b] = matrix[b, a] = rho
    return members, matrix


def _as_field(raw: dict[str, Any], dotted: str, value: float) -> float | int:
    """A draw in the type of the value it replaces: whole numbers (counts) are rounded."""
    node: Any = raw
    for part in dotted.split("."):
        found = _child(node, part)
        if found is None:
            return value
        container, key = found
        node = container[key]
    is_count = isinstance(node, int) and not isinstance(node, bool)
    return round(value) if is_count else value


def _absolute_files(scenario: Scenario, base: Path) -> Scenario:
    """Store file references as absolute paths so the engine need not know the base dir."""
    assets = [
        a.model_copy(
            update={
                "history": a.history.model_copy(
                    update={"file": str(_resolve_file(base, a.history.file).resolve())}
                )
            }
        )
        if a.history is not None and a.history.file is not None
        else a
        for a in scenario.assets
    ]
    shocks = [
        s.model_copy(update={"file": str(_resolve_file(base, s.file).resolve())})
        if s.type == "driver" and s.file
        else s
        for s in scenario.shocks
    ]
    populations = [
        p.model_copy(update={"file": str(_resolve_file(base, p.file).resolve())})
        if getattr(p, "file", None)
        else p
        for p in scenario.populations
    ]
    return scenario.model_copy(
        update={"assets": assets, "shocks": shocks, "populations": populations}
    )


def load_scenario(
    name_or_path: str | Path,
    sets: list[str] = (),
    channels: list[str] = (),
) -> Scenario:
    """Load a preset by name or a scenario file by path, apply overrides, and validate.

    Raises `ScenarioError` listing every problem (file, key path, expected, found)."""
    path = resolve_path(name_or_path)
    raw, problems = _overridden(_read_raw(path), list(sets), list(channels))
    return validate(raw, path.name, path.parent, problems)


def scenario_hash(scenario: Scenario) -> str:
    """SHA-256 of the canonical scenario; referenced files enter by content, not path."""
    payload = scenario.model_dump(mode="json", by_alias=True)
    digest = hashlib.sha256()
    files = (
        [a.history.file for a in scenario.assets if a.history and a.history.file]
        + [s.file for s in scenario.shocks if s.type == "driver" and s.file]
        + [p.file for p in scenario.populations if getattr(p, "file", None)]
    )
    for item in payload["assets"]:
        if item.get("history") and item["history"].get("file"):
            item["history"]["file"] = Path(item["history"]["file"]).name
    for item in payload["shocks"]:
        if item.get("type") == "driver" and item.get("file"):
            item["file"] = Path(item["file"]).name
    for item in payload["populations"]:
        if item.get("file"):
            item["file"] = Path(item["file"]).name
    digest.update(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    for name in files:
        digest.update(hashlib.sha256(Path(name).read_bytes()).digest())
    return digest.hexdigest()


def sample_uncertain(scenario: Scenario, rng: np.random.Generator) -> Scenario:
    """Draw every `uncertain` item once and return the scenario with the draws applied.
    Items in correlations take their draw from correlated normals (drawn first, one
    vector) through their prior's quantiles; the others draw in order, independently."""
    if not scenario.uncertain:
        return scenario
    raw = scenario.model_dump(mode="json", by_alias=True)
    members, matrix = _copula_matrix(scenario)
    correlated = {}
    if members:
        normals = np.linalg.cholesky(matrix) @ rng.standard_normal(len(members))
        from scipy.special import ndtr

        correlated = dict(zip(members, ndtr(normals), strict=True))
    for j, item in enumerate(scenario.uncertain):
        if item.shares is not None:
            values = item.shares.total * item.shares.sample(rng)
        elif j in correlated:
            values = np.full(len(item.targets), float(item.prior.quantile(correlated[j])))
        else:
            values = np.full(len(item.targets), float(item.prior.sample(rng)))
        _apply_draws(raw, item, values)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:  # a draw beyond the checked support (< 1e-15 per draw)
        raise ScenarioError(_problems_from_validation("uncertain draw", raw, exc)) from None

"""The result of one simulated path: one tidy table feeds every view (SPEC §1)."""

from __future__ import annotations

import functools
import subprocess
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from deleverage.results import html
from deleverage.results.shocks import shock_times
from deleverage.results.targets import SNAPSHOT_KINDS, event_target
from deleverage.scenario.schema import EVENT_METRICS, PRICE_METRICS, Scenario

TIDY_COLUMNS = [
    "run_id",
    "seed",
    "scenario",
    "time",
    "entity",
    "metric",
    "value",
    "unit",
    "basis",
    "window_start",
    "window_end",
]


@functools.cache  # once a process: every path's result records it
def package_version() -> str:
    try:
        return metadata.version("deleverage")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache  # once a process, not a `git` subprocess per path
def git_hash() -> str | None:
    """Commit of the source tree the package runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _worst_move(prices: np.ndarray, window: int) -> tuple[float, int]:
    """Worst simple return between two instants `window` steps apart (like a close-to-close
    daily move, but at every step) and the index where it ends."""
    if len(prices) <= window:
        window = len(prices) - 1
    moves = prices[window:] / prices[:-window] - 1.0
    end = int(np.argmin(moves))
    return float(moves[end]), end + window


def target_label(metric: str, asset: str | None = None, window=None, filters=None) -> str:
    """How a target (or any metric over a window) is named in tables: metric, asset, its
    filters (venue, population, side), window."""
    label = target_name(metric, asset, filters)
    if window:
        label += f" {window_text(*window)}"
    return label


def target_name(metric: str, asset: str | None = None, filters=None) -> str:
    """A target's name in the tidy frames: its metric, asset and filters (the window and the
    basis are columns of their own)."""
    name = f"{metric} {asset}" if asset else metric
    for key, value in (filters or {}).items():
        name += f" {key}={value}"
    return name


def window_text(start, end) -> str:
    """A UTC window for tables: 2026-01-05 06:00–01-06 06:00, or "whole run"."""
    if start is None or pd.isna(start):
        return "whole run"
    return f"{pd.Timestamp(start):%Y-%m-%d %H:%M}–{pd.Timestamp(end):%m-%d %H:%M}"


def utc(times) -> pd.Series:
    """Times (or None) as a column of UTC timestamps (NaT for none)."""
    return pd.to_datetime(pd.Series(times, dtype=object), utc=True)


@dataclass
class SimulationResult:
    scenario: Scenario
    seed: int
    path: int
    scenario_hash: str
    times: pd.DatetimeIndex  # n_steps + 1 instants (the initial state first)
    market: dict[str, np.ndarray]  # recorded (n_steps + 1, n_assets) arrays
    rounds: np.ndarray  # cascade rounds used per step
    events: pd.DataFrame
    diagnostics: dict[str, float]
    wall_seconds: float
    # per fund population: gross exposure ÷ equity at every recorded instant (n_steps + 1)
    fund_leverage: dict[str, np.ndarray] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    package_version: str = field(default_factory=package_version)
    git_hash: str | None = field(default_factory=git_hash)

    def __repr__(self) -> str:
        return (
            f"<SimulationResult {self.scenario.name} seed {self.seed} path {self.path}: "
            f"{len(self.asset_ids)} assets, {len(self.times) - 1:,} steps, "
            f"{len(self.events):,} event rows; run {self.run_id}>"
        )

    @property
    def asset_ids(self) -> list[str]:
        return [a.id for a in self.scenario.assets]

    def prices(self) -> pd.DataFrame:
        """Wide table of prices: UTC time × asset."""
        return pd.DataFrame(self.market["price"], index=self.times, columns=self.asset_ids)

    def leverage(self) -> pd.DataFrame:
        """Wide table of fund leverage (gross exposure ÷ equity, pooled over the funds still
        running): UTC time × fund population."""
        return pd.DataFrame(self.fund_leverage, index=self.times, columns=list(self.fund_leverage))

    def leverage_frame(self) -> pd.DataFrame:
        """Long per-step fund leverage: one row per (step, population)."""
        n_rows, names = len(self.times), list(self.fund_leverage)
        return pd.DataFrame(
            {
                "run_id": self.run_id,
                "step": np.repeat(np.arange(n_rows), len(names)),
                "time": np.repeat(self.times.tz_localize(None).to_numpy(), len(names)),
                "population": np.tile(names, n_rows),
                "leverage": self.leverage().to_numpy().reshape(-1),
            }
        )

    def market_frame(self) -> pd.DataFrame:
        """Long per-step market state: one row per (step, asset)."""
        n_rows, n_assets = self.market["price"].shape
        frame = pd.DataFrame(
            {
                "run_id": self.run_id,
                "step": np.repeat(np.arange(n_rows), n_assets),
                "time": np.repeat(self.times.tz_localize(None).to_numpy(), n_assets),
                "asset": np.tile(self.asset_ids, n_rows),
                "rounds": np.repeat(np.concatenate([[0], self.rounds]), n_assets),
            }
        )
        for name, values in self.market.items():
            frame[name] = values.reshape(-1)
        return frame

    @cached_property
    def _tidy(self) -> pd.DataFrame:
        rows = []
        for a, asset in enumerate(self.scenario.assets):
            volume = float(np.nansum(self.market["volume_usd"][:, a]))
            metrics = self._price_metrics(self.market["price"][:, a], self.times, asset.currency)
            metrics.append(("traded_volume", volume, "USD", self.times[-1]))
            rows += [(asset.id, metric, value, unit, at) for metric, value, unit, at in metrics]
        for target in self.scenario.targets:  # with their basis and UTC window
            filters = target.filters()
            modelled, unit = self.modelled(
                target.metric, target.asset, target.window, target.unit, **filters
            )
            name = target_name(target.metric, target.asset, filters)
            if "currency" in getattr(EVENT_METRICS.get(target.metric), "units", ()):
                name += f" in {target.unit}"  # the same metric may be asked in two units
            start, end = target.window or (None, None)
            rows.append(("targets", name, target.value, target.unit, end, "observed", start, end))
            rows.append(("targets", name, modelled, unit, end, "modelled", start, end))
        for name, values in self.fund_leverage.items():
            peak = int(np.nanargmax(values)) if np.isfinite(values).any() else 0
            rows.append((name, "leverage_start", float(values[0]), "ratio", self.times[0]))
            rows.append((name, "leverage_max", float(values[peak]), "ratio", self.times[peak]))
            rows.append((name, "leverage_end", float(values[-1]), "ratio", self.times[-1]))
        for kind, group in self.events.groupby("kind"):
            rows.append(("events", f"{kind}_rows", float(len(group)), "count", None))
        acting = self.events[
            (self.events.population != "") & ~self.events.kind.isin(SNAPSHOT_KINDS)
        ]
        for (population, kind, side), group in acting.groupby(["population", "kind", "side"]):
            metric = f"{kind}_{side}" if side else kind
            rows.append((population, f"{metric}_count", float(group["count"].sum()), "count", None))
            usd = float(group["notional_usd"].sum())
            rows.append((population, f"{metric}_usd", usd, "USD", None))
        for name, value in self.diagnostics.items():
            unit = "USD" if name.endswith("_usd") else "ratio" if "drift" in name else "count"
            rows.append(("diagnostics", name, float(value), unit, None))
        rows = [row if len(row) == 8 else (*row, "modelled", None, None) for row in rows]
        columns = ["entity", "metric", "value", "unit", "time", *TIDY_COLUMNS[-3:]]
        frame = pd.DataFrame(rows, columns=columns)
        frame.insert(0, "scenario", self.scenario.name)
        frame.insert(0, "seed", self.seed)
        frame.insert(0, "run_id", self.run_id)
        for column in ("time", "window_start", "window_end"):
            frame[column] = utc(frame[column])
        return frame[TIDY_COLUMNS]

    def _price_metrics(self, p: np.ndarray, times: pd.DatetimeIndex, unit: str) -> list[tuple]:
        """Start, end, low, return, max drawdown, worst 1 h and 24 h move of one path."""
        step = self.scenario.clock.step
        hour = max(1, round(pd.Timedelta("1h") / step))
        day = max(1, round(pd.Timedelta("24h") / step))
        low = int(np.argmin(p))
        drawdown = p / np.maximum.accumulate(p) - 1.0
        trough = int(np.argmin(drawdown))
        worst_1h, end_1h = _worst_move(p, hour)
        worst_24h, end_24h = _worst_move(p, day)
        return [
            ("start", float(p[0]), unit, times[0]),
            ("end", float(p[-1]), unit, times[-1]),
            ("low", float(p[low]), unit, times[low]),
            ("return", (p[-1] / p[0] - 1) * 100, "%", times[-1]),
            ("max_drawdown", drawdown[trough] * 100, "%", times[trough]),
            ("worst_1h", worst_1h * 100, "%", times[end_1h]),
            ("worst_24h", worst_24h * 100, "%", times[end_24h]),
        ]

    def modelled(
        self,
        metric: str,
        asset: str | None = None,
        window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
        unit: str = "",
        *,
        venue: str | None = None,
        population: str | None = None,
        side: str | None = None,
    ) -> tuple[float, str]:
        """The modelled value and unit of `metric` (for `asset`, within the UTC `window`,
        event metrics narrowed by venue, population and side): the counterpart of an
        observed target (NaN where none is computed)."""
        times = self.times
        inside = np.ones(len(times), dtype=bool)
        if window:
            inside = (times >= window[0]) & (times <= window[1])
        if asset and metric in PRICE_METRICS:
            a = self.asset_ids.index(asset)
            path = self.market["price"][inside, a]
            for name, value, value_unit, _ in self._price_metrics(path, times[inside], unit):
                if name == metric:
                    return float(value), value_unit
        return event_target(
            self.scenario,
            times,
            self.events,
            metric,
            asset=asset,
            window=window,
            unit=unit,
            venue=venue,
            population=population,
            side=side,
        )

    def targets_table(self) -> pd.DataFrame:
        """Observed targets of the scenario next to their modelled values, one row per
        target: target (metric and asset), window_start, window_end (UTC; NaT: the whole
        run), observed, modelled, unit (a pivot of `to_frame`)."""
        tidy = self._tidy[self._tidy.entity == "targets"]
        observed = tidy[tidy.basis == "observed"].reset_index(drop=True)
        modelled = tidy[tidy.basis == "modelled"].reset_index(drop=True)
        return pd.DataFrame(
            {
                "target": observed.metric,
                "window_start": observed.window_start,
                "window_end": observed.window_end,
                "observed": observed.value,
                "modelled": modelled.value,
                "unit": observed.unit,
            }
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy long table: run id, seed, scenario, time, entity, metric, value, unit, basis,
        window_start, window_end. Targets: entity `targets`, metric the target's metric and
        asset (`worst_24h BTC`), one `observed` and one `modelled` row, the target's UTC
        window (NaT: the whole run)."""
        return self._tidy.copy()

    def asset_table(self) -> pd.DataFrame:
        """Per-asset summary (a pivot of `to_frame`), with the time of the trough."""
        tidy = self._tidy[self._tidy.entity.isin(self.asset_ids)]
        table = tidy.pivot(index="entity", columns="metric", values="value")
        table["trough_time"] = tidy[tidy.metric == "max_drawdown"].set_index("entity")["time"]
        return table.loc[self.asset_ids]

    def activity_table(self) -> pd.DataFrame:
        """What each population did (a pivot of `to_frame`): accounts or funds involved and
        notional in USD, per event kind and side, largest notional first."""
        other = [*self.asset_ids, "targets", "events", "diagnostics"]
        tidy = self._tidy[~self._tidy.entity.isin(other)]
        if tidy.empty:
            return pd.DataFrame(columns=["population", "event", "count", "notional_usd"])
        counts = tidy[tidy.metric.str.endswith("_count")]
        usd = tidy[tidy.metric.str.endswith("_usd")]
        table = pd.DataFrame(
            {
                "population": counts.entity.to_numpy(),
                "event": counts.metric.str.removesuffix("_count").to_numpy(),
                "count": counts.value.to_numpy(),
                "notional_usd": usd.value.to_numpy(),
            }
        )
        return table.sort_values("notional_usd", ascending=False, ignore_index=True)

    def leverage_table(self) -> pd.DataFrame:
        """Per fund population: leverage (gross exposure ÷ equity) at the start, its
        maximum and when, and at the end (a pivot of `to_frame`)."""
        names = list(self.fund_leverage)
        tidy = self._tidy[
            self._tidy.entity.isin(names) & self._tidy.metric.str.startswith("leverage_")
        ]
        table = tidy.pivot(index="entity", columns="metric", values="value").reindex(names)
        peak = tidy[tidy.metric == "leverage_max"].set_index("entity")["time"]
        return pd.DataFrame(
            {
                "population": names,
                "start": table.get("leverage_start", pd.Series(dtype=float)).to_numpy(),
                "max": table.get("leverage_max", pd.Series(dtype=float)).to_numpy(),
                "max_time": peak.reindex(names).to_numpy(),
                "end": table.get("leverage_end", pd.Series(dtype=float)).to_numpy(),
            }
        )

    def summary(self) -> str:
        """Plain-text tables: targets, assets, the largest population flows, diagnostics
        (the same tables as the report and the notebook view)."""
        header = (
            f"run {self.run_id}  scenario {self.scenario.name}  seed {self.seed}  path "
            f"{self.path}  hash {self.scenario_hash[:12]}  (modelled)"
        )
        return html.text(header, self.sections())

    def _repr_html_(self) -> str:
        return html.paragraph(repr(self)) + "".join(
            html.table(*section) for section in self.sections()[:2]
        )

    def sections(self) -> list[tuple]:
        """(title, columns, formatted rows, caption, numeric columns) of the report's tables."""
        assets = self.asset_table()
        currency = {a.id: a.currency for a in self.scenario.assets}
        out = [
            (
                "Targets: observed vs modelled",
                ["target", "window (UTC)", "observed", "modelled", "modelled ÷ observed", "hit"],
                [
                    [
                        r.target,
                        window_text(r.window_start, r.window_end),
                        html.number(r.observed, r.unit),
                        html.number(r.modelled, r.unit),
                        html.ratio(r.modelled / r.observed if r.observed else float("nan")),
                        "— (one path)",
                    ]
                    for r in self.targets_table().itertuples(index=False)
                ],
                "Observed values are the scenario's targets (sources in the scenario file); hit "
                "or miss needs a band over paths: `deleverage run SCENARIO --paths N`.",
                [False, False, True, True, True, False],
            ),
            (
                "Assets (modelled)",
                [
                    "asset",
                    "start",
                    "end",
                    "low",
                    "max drawdown",
                    "worst 1 h",
                    "worst 24 h",
                    "trough",
                ],
                [
                    [
                        asset,
                        *(html.number(r[k], currency[asset]) for k in ("start", "end", "low")),
                        *(
                            html.number(r[k], "%")
                            for k in ("max_drawdown", "worst_1h", "worst_24h")
                        ),
                        html.stamp(r["trough_time"]),
                    ]
                    for asset, r in assets.iterrows()
                ],
                None,
                [False, *[True] * 6, False],
            ),
            (
                "Largest population flows (modelled)",
                ["population", "event", "accounts/funds", "notional"],
                [
                    [
                        r.population,
                        r.event.replace("_", " "),
                        f"{r.count:,.0f}",
                        html.number(r.notional_usd, "USD"),
                    ]
                    for r in self.activity_table().head(20).itertuples(index=False)
                ],
                None,
                [False, False, True, True],
            ),
            (
                "Fund leverage: gross exposure ÷ equity (modelled)",
                ["population", "start", "max", "max at", "end"],
                [
                    [
                        r.population,
                        html.ratio(r.start),
                        html.ratio(r.max),
                        html.stamp(r.max_time),
                        html.ratio(r.end),
                    ]
                    for r in self.leverage_table().itertuples(index=False)
                ],
                "Pooled over the funds still running (defaulted funds and funds without equity "
                "drop out).",
                [False, True, True, False, True],
            ),
            (
                "Diagnostics",
                ["diagnostic", "value"],
                [[k.replace("_", " "), html.number(float(v))] for k, v in self.diagnostics.items()],
                "Anything capped, dropped or left waiting is counted here; drifts are the "
                "invariant checks (0 when not checked).",
                [False, True],
            ),
        ]
        return [s for s in out if s[2] or not s[0].startswith("Fund leverage")]  # no funds

    def plot(self):
        """Figure: prices rebased to 100, market-maker bid depth and, when the scenario has
        fund populations, their leverage (gross exposure ÷ equity). A bare matplotlib
        `Figure`: the user's backend and pyplot figures are left alone."""
        from matplotlib.figure import Figure

        ratios = [3, 1, 1] if self.fund_leverage else [3, 1]
        fig = Figure(figsize=(10, 7 + 2 * (len(ratios) == 3)))
        top, bottom, *funds = fig.subplots(
            len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios}
        )
        if funds:
            self.leverage().plot(ax=funds[0], lw=0.8)
            funds[0].set_ylabel("fund leverage ×")
            funds[0].legend(fontsize=7)
        prices = self.prices()
        (prices / prices.iloc[0] * 100).plot(ax=top, lw=1)
        top.set_ylabel("price, rebased to 100 (modelled)")
        top.set_title(f"{self.scenario.name} — run {self.run_id}, seed {self.seed}")
        pd.DataFrame(self.market["depth_bid"], index=self.times, columns=self.asset_ids).plot(
            ax=bottom, lw=0.8, legend=False
        )
        bottom.set_ylabel("bid depth ×")
        bottom.set_yscale("log")
        fig.tight_layout()
        return fig

    def figures(
        self,
        observed: dict[str, pd.Series] | None = None,
        explanation: pd.DataFrame | None = None,
    ) -> list[tuple[str, object, str]]:
        """The report's charts as (name, Figure, caption): prices with `observed` series
        (asset id → price series with a UTC index) and shock markers, liquidations by venue
        and side with margin calls, market depth, and the attribution waterfalls of an
        `explanation` (an `ExplainResult.to_frame()`) when given."""
        from deleverage.results import charts

        shocks = shock_times(self.scenario)
        out = [
            (
                "prices",
                charts.prices_figure(self, shocks, observed or {}),
                "Prices by asset: modelled (blue), observed (black) where given; dotted: shocks.",
            ),
            (
                "liquidations",
                charts.flows_figure(self, shocks),
                "Forced liquidations per hour by venue and side; margin calls per hour.",
            ),
            ("depth", charts.depth_figure(self, shocks), "Market makers' bid depth."),
        ]
        if self.fund_leverage:
            caption = "Fund leverage: gross exposure ÷ equity per population, pooled over funds."
            out.append(("leverage", charts.leverage_figure(self, shocks), caption))
        if explanation is not None and len(explanation):
            targeted = {t.asset for t in self.scenario.targets if t.asset} | {"liquidations"}
            shapley = explanation[explanation.metric == "shapley"]
            for game in dict.fromkeys(shapley.game):
                entities = list(dict.fromkeys(shapley.entity[shapley.game == game]))
                chosen = [e for e in entities if e in targeted] or entities
                title = f"Shapley attribution over {game} (modelled)"
                figure = charts.waterfall_figure(explanation, game, chosen, title)
                out.append((f"waterfall-{game}", figure, title))
        return out

    def report(
        self,
        path: str | Path,
        observed: dict[str, pd.Series] | None = None,
        explanation: pd.DataFrame | None = None,
        png_dir: str | Path | None = None,
    ) -> Path:
        """Self-contained offline HTML (inline SVG, no script or network source): the charts
        of `figures(observed, explanation)`, then the targets, assets, flows, fund
        leverage, amplification, shocks and diagnostics tables. `png_dir`: also write each
        chart as `png_dir/NAME.png` (NAME as in the page's `chart-NAME` ids)."""
        figures = self.figures(observed, explanation)

        parts = [
            html.paragraph(
                f"scenario {self.scenario.name}, seed {self.seed}, path {self.path}, hash "
                f"{self.scenario_hash[:12]}, {len(self.times) - 1:,} steps, version "
                f"{self.package_version}. Figures are modelled; observed series and targets are "
                "marked observed.",
                "label",
            )
        ]
        parts += [html.chart(fig, name, caption) for name, fig, caption in figures]
        parts += [html.table(*section) for section in self.sections()]
        if explanation is not None and len(explanation):
            parts.append(_amplification_table(explanation))
        shocks = shock_times(self.scenario)
        parts.append(
            html.table(
                "Shocks",
                ["time", "kind", "shock"],
                [[html.stamp(r.time), r.kind, r.label] for r in shocks.itertuples(index=False)],
            )
        )
        page = html.write_page(path, f"deleverage run {self.run_id}", parts)
        if png_dir is not None:
            html.write_pngs([(name, fig) for name, fig, _ in figures], png_dir)
        return page


def _amplification_table(tidy: pd.DataFrame) -> str:
    """The amplification table of a stored explanation."""
    names = ["amplification", "move_all_channels", "move_channels_off"]
    table = tidy[tidy.metric.isin(names)].pivot(index="entity", columns="metric", values="value")
    rows = [
        [asset, html.number(r.move_all_channels, "%"), html.number(r.move_channels_off, "%"),
         html.ratio(r.amplification)]
        for asset, r in table.iterrows()
    ]  # fmt: skip
    return html.table(
        "Amplification: all channels ÷ all channels off (explanation)",
        ["asset", "move, all channels", "move, shocks only", "ratio"],
        rows,
        None,
        [False, True, True, True],
    )

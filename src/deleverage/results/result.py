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
from deleverage.scenario.schema import Scenario

TIDY_COLUMNS = ["run_id", "seed", "scenario", "time", "entity", "metric", "value", "unit", "basis"]


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


def target_label(metric: str, asset: str | None = None, window=None) -> str:
    """How a target (or any metric over a window) is named in tables: metric, asset, window."""
    label = f"{metric} {asset}" if asset else metric
    if window:
        label += f" {window[0]:%Y-%m-%d %H:%M}–{window[1]:%m-%d %H:%M}"
    return label


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
        for target in self.scenario.targets:
            modelled, unit = self.modelled(target.metric, target.asset, target.window, target.unit)
            label = target_label(target.metric, target.asset, target.window)
            at = target.window[1] if target.window else None
            rows.append(("targets", f"{label}:observed", target.value, target.unit, at))
            rows.append(("targets", f"{label}:modelled", modelled, unit, at))
        for kind, group in self.events.groupby("kind"):
            rows.append(("events", f"{kind}_rows", float(len(group)), "count", None))
        acting = self.events[self.events.population != ""]
        for (population, kind, side), group in acting.groupby(["population", "kind", "side"]):
            metric = f"{kind}_{side}" if side else kind
            rows.append((population, f"{metric}_count", float(group["count"].sum()), "count", None))
            usd = float(group["notional_usd"].sum())
            rows.append((population, f"{metric}_usd", usd, "USD", None))
        for name, value in self.diagnostics.items():
            unit = "USD" if name.endswith("_usd") else "ratio" if "drift" in name else "count"
            rows.append(("diagnostics", name, float(value), unit, None))
        frame = pd.DataFrame(rows, columns=["entity", "metric", "value", "unit", "time"])
        frame.insert(0, "scenario", self.scenario.name)
        frame.insert(0, "seed", self.seed)
        frame.insert(0, "run_id", self.run_id)
        frame["basis"] = np.where(frame.metric.str.endswith(":observed"), "observed", "modelled")
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
    ) -> tuple[float, str]:
        """The modelled value and unit of `metric` (for `asset`, within the UTC `window`):
        the counterpart of an observed target (NaN where none is computed)."""
        times = self.times
        inside = np.ones(len(times), dtype=bool)
        if window:
            inside = (times >= window[0]) & (times <= window[1])
        if asset and metric in (
            "start",
            "end",
            "low",
            "return",
            "max_drawdown",
            "worst_1h",
            "worst_24h",
        ):
            a = self.asset_ids.index(asset)
            path = self.market["price"][inside, a]
            for name, value, value_unit, _ in self._price_metrics(path, times[inside], unit):
                if name == metric:
                    return float(value), value_unit
        events = self.events.assign(time=times[self.events.step.to_numpy() + 1])
        if metric in ("liquidations_24h", "liquidated_accounts_24h"):
            # largest 24 h of perp liquidations: notional, or liquidation events (an account
            # de-risked in several orders counts once per order, as exchange feeds report them)
            rows = events[(events.kind == "perp_liquidation") & inside[events.step.to_numpy() + 1]]
            column, unit = (
                ("notional_usd", "USD") if metric == "liquidations_24h" else ("count", "accounts")
            )
            per_step = rows.groupby("time")[column].sum()
            if per_step.empty:
                return 0.0, unit
            return float(per_step.rolling("24h").sum().max()), unit
        if metric == "etf_flow":  # net creations (+) or redemptions (−) in the window
            rows = events[(events.kind == "etf_flow") & inside[events.step.to_numpy() + 1]]
            if asset:
                rows = rows[rows.asset == asset]
            return float((np.sign(rows.quantity) * rows.notional_usd).sum()), "USD"
        return float("nan"), unit

    def targets_table(self) -> pd.DataFrame:
        """Observed targets of the scenario next to their modelled values (a pivot of
        `to_frame`)."""
        tidy = self._tidy[self._tidy.entity == "targets"]
        parts = tidy.metric.str.rsplit(":", n=1, expand=True)
        if tidy.empty:
            return pd.DataFrame(columns=["target", "observed", "modelled", "unit"])
        table = tidy.assign(target=parts[0], basis=parts[1]).pivot(
            index="target", columns="basis", values="value"
        )
        table.columns.name = None
        table["unit"] = tidy.groupby(parts[0]).unit.first()
        order = list(dict.fromkeys(parts[0]))
        return table.loc[order, ["observed", "modelled", "unit"]].reset_index()

    def to_frame(self) -> pd.DataFrame:
        """Tidy long table: run id, seed, scenario, time, entity, metric, value, unit, basis."""
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
        tidy = self._tidy[~self._tidy.entity.isin([*self.asset_ids, "events", "diagnostics"])]
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
                ["target", "observed", "modelled", "modelled ÷ observed", "hit"],
                [
                    [
                        r.target,
                        html.number(r.observed, r.unit),
                        html.number(r.modelled, r.unit),
                        html.ratio(r.modelled / r.observed if r.observed else float("nan")),
                        "— (one path)",
                    ]
                    for r in self.targets_table().itertuples(index=False)
                ],
                "Observed values are the scenario's targets (sources in the scenario file); hit "
                "or miss needs a band over paths: `deleverage run SCENARIO --paths N`.",
                [False, True, True, True, False],
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
                "Diagnostics",
                ["diagnostic", "value"],
                [[k.replace("_", " "), html.number(float(v))] for k, v in self.diagnostics.items()],
                "Anything capped, dropped or left waiting is counted here; drifts are the "
                "invariant checks (0 when not checked).",
                [False, True],
            ),
        ]
        return out

    def plot(self):
        """Figure: prices rebased to 100, and market-maker bid depth. A bare matplotlib
        `Figure`: the user's backend and pyplot figures are left alone."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 7))
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
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
    ) -> Path:
        """Self-contained offline HTML (inline SVG with a PNG of each chart, no script or
        network source): the charts of `figures(observed, explanation)`, then the targets,
        assets, flows, amplification, shocks and diagnostics tables."""

        parts = [
            html.paragraph(
                f"scenario {self.scenario.name}, seed {self.seed}, path {self.path}, hash "
                f"{self.scenario_hash[:12]}, {len(self.times) - 1:,} steps, version "
                f"{self.package_version}. Figures are modelled; observed series and targets are "
                "marked observed.",
                "label",
            )
        ]
        parts += [
            html.chart(fig, name, caption)
            for name, fig, caption in self.figures(observed, explanation)
        ]
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
        return html.write_page(path, f"deleverage run {self.run_id}", parts)


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

"""The result of a Monte Carlo run: per-path summaries, and bands over paths (SPEC §10).

One computation feeds every view: the per-path tables (`path_targets`,
`path_amplification`) are reduced once into the tidy `to_frame()`; the band and
amplification tables, the summary, the JSON of the CLI, the plot and the report are
pivots of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from deleverage.results import html
from deleverage.results.result import (
    TIDY_COLUMNS,
    SimulationResult,
    git_hash,
    package_version,
    utc,
    window_text,
)
from deleverage.scenario.schema import Scenario

BAND_KEYS = ("observed", "p10", "median", "p90", "hit", "band_width")
QUANTILES = {"p10": 10.0, "median": 50.0, "p90": 90.0}


def quantiles(values: np.ndarray) -> dict[str, float]:
    """p10, median and p90 over paths (linear interpolation); NaN paths are left out."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {name: float("nan") for name in QUANTILES}
    return {name: float(np.percentile(values, q)) for name, q in QUANTILES.items()}


def format_value(value: float) -> str:
    """Short, readable numbers for the band tables: 2.6bn, 509.7M, 60,074, -31.3, —."""
    if pd.isna(value):
        return "—"
    size = abs(value)
    if size >= 1e9:
        return f"{value / 1e9:.4g}bn"
    if size >= 1e6:
        return f"{value / 1e6:.4g}M"
    if size >= 1e4:
        return f"{value:,.0f}"
    return f"{value:,.4g}"


def hit_text(hit) -> str:
    return "—" if pd.isna(hit) else "yes" if hit else "no"


@dataclass
class MonteCarloResult:
    """`paths` paths of one scenario and seed (path = 0 … paths−1).

    path_targets: one row per (path, target): the target's modelled value on that path,
        computed exactly as `SimulationResult.targets_table()` does.
    path_amplification: one row per (path, asset): the asset's move (%) with the
        scenario's channels and with all channels off (same seed and path), and their ratio.
        Empty when the run was made without amplification.
    """

    scenario: Scenario
    seed: int
    paths: int
    scenario_hash: str
    path_targets: pd.DataFrame  # path, target, window_start, window_end, observed, modelled, …
    path_amplification: pd.DataFrame  # path, asset, measure, move_pct, move_channels_off_pct, …
    diagnostics: dict[str, float]
    wall_seconds: float
    workers: int = 1
    path_results: list[SimulationResult] | None = None  # only with keep_paths
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    package_version: str = field(default_factory=package_version)
    git_hash: str | None = field(default_factory=git_hash)

    def __repr__(self) -> str:
        return (
            f"<MonteCarloResult {self.scenario.name} seed {self.seed}: {self.paths} paths, "
            f"{len(self.scenario.targets)} targets; run {self.run_id}>"
        )

    @property
    def amplification(self) -> bool:
        return not self.path_amplification.empty

    @cached_property
    def _bands(self) -> pd.DataFrame:
        """Per target (metric and asset, window): the observed value and the band of the
        modelled values over paths."""
        rows = []
        keys = ["target", "window_start", "window_end"]
        for (label, start, end), group in self.path_targets.groupby(keys, sort=False, dropna=False):
            first = group.iloc[0]
            band = quantiles(group.modelled.to_numpy())
            width = band["p90"] - band["p10"]
            # No band (the target is not computed by the model): neither hit nor miss.
            observed = float(first.observed)
            hit = pd.NA if np.isnan(width) else bool(band["p10"] <= observed <= band["p90"])
            rows.append((label, start, end, first.unit, observed, *band.values(), hit, width))
        table = pd.DataFrame(rows, columns=[*keys, "unit", *BAND_KEYS])
        table["hit"] = table["hit"].astype("boolean")  # <NA>: no band to compare with
        for column in ("window_start", "window_end"):
            table[column] = utc(table[column])
        return table

    @cached_property
    def _tidy(self) -> pd.DataFrame:
        rows = [("run", "paths", float(self.paths), "count", None, "modelled", None, None)]
        for band in self._bands.itertuples(index=False):
            window = (band.window_start, band.window_end)
            at, unit = band.window_end, band.unit
            rows.append(("targets", band.target, band.observed, unit, at, "observed", *window))
            for key in BAND_KEYS[1:]:
                value = getattr(band, key)
                value = float("nan") if value is pd.NA else float(value)
                unit_of = "bool" if key == "hit" else unit
                rows.append(
                    ("targets", f"{band.target}:{key}", value, unit_of, at, "modelled", *window)
                )
        if len(self._bands):
            inside = float(self._bands.hit.sum())
            with_band = float(self._bands.hit.notna().sum())
            rows.append(
                ("run", "targets_inside_band", inside, "count", None, "modelled", None, None)
            )
            rows.append(
                ("run", "targets_with_band", with_band, "count", None, "modelled", None, None)
            )
        for asset, group in self.path_amplification.groupby("asset", sort=False):
            at = group.time.iloc[0]
            start = group.window_start.iloc[0]
            for metric, column, unit in (
                ("amplification", "amplification", "ratio"),
                ("move_all_channels", "move_pct", "%"),
                ("move_channels_off", "move_channels_off_pct", "%"),
            ):
                value = quantiles(group[column].to_numpy())["median"]
                rows.append((asset, metric, value, unit, at, "modelled", start, at))
        for name, value in self.diagnostics.items():
            unit = "USD" if name.endswith("_usd") else "ratio" if "drift" in name else "count"
            rows.append(("diagnostics", name, float(value), unit, None, "modelled", None, None))
        columns = ["entity", "metric", "value", "unit", "time", *TIDY_COLUMNS[-3:]]
        frame = pd.DataFrame(rows, columns=columns)
        frame.insert(0, "scenario", self.scenario.name)
        frame.insert(0, "seed", self.seed)
        frame.insert(0, "run_id", self.run_id)
        for column in ("time", "window_start", "window_end"):
            frame[column] = utc(frame[column])
        return frame[TIDY_COLUMNS]

    def to_frame(self) -> pd.DataFrame:
        """Tidy long table: run id, seed, scenario, time, entity, metric, value, unit, basis,
        window_start, window_end. Targets (entity `targets`): the metric and asset of the
        target (`low BTC`) with its observed value (basis `observed`), and
        `<target>:p10|median|p90|band_width|hit` over paths (basis `modelled`), each with the
        target's UTC window (NaT: the whole run); assets: median `amplification`,
        `move_all_channels`, `move_channels_off` over paths, with the window measured."""
        return self._tidy.copy()

    def value(self, entity: str, metric: str, window_start=None) -> float:
        """One cell of `to_frame`; `window_start` picks one of several targets that differ
        only by their window."""
        tidy = self._tidy
        chosen = (tidy.entity == entity) & (tidy.metric == metric)
        if window_start is not None:
            chosen &= tidy.window_start == pd.Timestamp(window_start)
        return float(tidy.value[chosen].iloc[0])

    def bands_table(self) -> pd.DataFrame:
        """Per target: target (metric and asset), window_start, window_end (UTC; NaT: the
        whole run), unit, observed, p10, median, p90, hit, band_width (the tidy frame's
        target rows, one per target)."""
        return self._bands.copy()

    def amplification_table(self) -> pd.DataFrame:
        """Per asset: what the move is measured on, and the medians over paths of the move
        with all channels, with all channels off, and of their ratio (a pivot of
        `to_frame`)."""
        columns = ["asset", "measure", "move_pct", "move_channels_off_pct", "amplification"]
        if not self.amplification:
            return pd.DataFrame(columns=columns)
        names = {
            "move_all_channels": "move_pct",
            "move_channels_off": "move_channels_off_pct",
            "amplification": "amplification",
        }
        tidy = self._tidy[self._tidy.metric.isin(names)]
        table = tidy.pivot(index="entity", columns="metric", values="value").rename(columns=names)
        measures = self.path_amplification.groupby("asset", sort=False).measure.first()
        table = table.loc[measures.index].assign(measure=measures)
        table.columns.name = None
        table = table.rename_axis("asset").reset_index()
        return table[columns]

    def hits_line(self) -> str:
        inside, with_band = (
            self.value("run", "targets_inside_band"),
            self.value("run", "targets_with_band"),
        )
        line = f"{inside:.0f} of {with_band:.0f} observed targets inside their 10–90% band"
        if missing := len(self.scenario.targets) - with_band:
            line += f" ({missing:.0f} not computed by the model)"
        return line

    def summary(self) -> str:
        """Plain-text tables: the band of every target, the amplification per asset and the
        diagnostics (the same tables as the report and the notebook view)."""
        header = (
            f"run {self.run_id}  scenario {self.scenario.name}  seed {self.seed}  paths "
            f"{self.paths}  hash {self.scenario_hash[:12]}  (modelled bands)"
        )
        return html.text(header, self.sections())

    def _repr_html_(self) -> str:
        return html.paragraph(repr(self)) + "".join(html.table(*t) for t in self.sections()[:2])

    def sections(self) -> list[tuple]:
        """(title, columns, formatted rows, caption, numeric columns) of the report's tables."""
        bands = [
            [r.target, window_text(r.window_start, r.window_end),
             *(html.number(v, r.unit) for v in (r.observed, r.p10, r.median, r.p90)),
             hit_text(r.hit), html.number(r.band_width, r.unit)]
            for r in self.bands_table().itertuples(index=False)
        ]  # fmt: skip
        amplification = [
            [r.asset, r.measure, html.number(r.move_pct, "%"),
             html.number(r.move_channels_off_pct, "%"), html.ratio(r.amplification)]
            for r in self.amplification_table().itertuples(index=False)
        ]  # fmt: skip
        diagnostics = [[k.replace("_", " "), html.number(v)] for k, v in self.diagnostics.items()]
        return [
            (
                "Targets: observed vs modelled band",
                ["target", "window (UTC)", "observed", "p10", "median", "p90", "hit", "band width"],
                bands,
                self.hits_line() if len(bands) else None,
                [False, False, True, True, True, True, False, True],
            ),
            (
                "Amplification: all channels ÷ all channels off (medians over paths)",
                ["asset", "measured on", "move", "channels off", "amplification"],
                amplification,
                None,
                [False, False, True, True, True],
            ),
            (
                "Diagnostics (summed over paths; drifts are maxima)",
                ["diagnostic", "value"],
                diagnostics,
                None,
                [False, True],
            ),
        ]

    def plot(self):
        """Figure: each target's 10–90% band and median over paths beside its observed value,
        all divided by |observed| (so the observed value sits at ±1); below, the median
        amplification per asset. A bare matplotlib `Figure`: the user's backend and pyplot
        figures are left alone."""
        from matplotlib.figure import Figure

        bands = self.bands_table()
        amplification = self.amplification_table()
        n_panels = 1 + bool(len(amplification))
        fig = Figure(figsize=(10, 2 + 0.45 * max(len(bands), 1) + 3 * (n_panels - 1)))
        axes = fig.subplots(n_panels, 1, squeeze=False)[:, 0]
        top = axes[0]
        scale = bands.observed.abs().replace(0.0, 1.0).to_numpy(dtype=float)
        y = np.arange(len(bands))[::-1]
        low, high = bands.p10.to_numpy(float) / scale, bands.p90.to_numpy(float) / scale
        top.hlines(y, low, high, lw=6, color="tab:blue", alpha=0.5, label="modelled p10–p90")
        top.plot(
            bands["median"].to_numpy(float) / scale,
            y,
            "|",
            ms=14,
            color="tab:blue",
            label="modelled median",
        )
        top.plot(bands.observed.to_numpy(float) / scale, y, "D", color="black", label="observed")
        labels = [
            f"{r.target} {window_text(r.window_start, r.window_end)}"
            for r in bands.itertuples(index=False)
        ]
        top.set_yticks(y, labels, fontsize=8)
        top.axvline(0.0, color="grey", lw=0.5)
        top.set_xlabel("value ÷ |observed|")
        top.set_title(
            f"{self.scenario.name} — run {self.run_id}, seed {self.seed}, {self.paths} paths\n"
            + (self.hits_line() if len(bands) else "no targets")
        )
        top.legend(fontsize=8, loc="best")
        if len(amplification):
            bottom = axes[1]
            bottom.bar(amplification.asset, amplification.amplification, color="tab:red")
            bottom.axhline(1.0, color="grey", lw=0.8)
            bottom.set_ylabel("amplification (median)\nall channels ÷ all off")
        fig.tight_layout()
        return fig

    def report(self, path: str | Path, png_dir: str | Path | None = None) -> Path:
        """Self-contained offline HTML: the bands chart and every table. `png_dir`: also
        write the chart as `png_dir/bands.png`."""
        figure = self.plot()
        parts = [
            html.paragraph(
                f"scenario {self.scenario.name}, seed {self.seed}, {self.paths} paths, hash "
                f"{self.scenario_hash[:12]}, version {self.package_version}. Bands and "
                "amplification are modelled; observed values come from the scenario's targets.",
                "label",
            ),
            html.chart(figure, "bands", "Each target's 10–90% band beside its observed value."),
        ]
        parts += [html.table(*section) for section in self.sections()]
        page = html.write_page(path, f"deleverage Monte Carlo run {self.run_id}", parts)
        if png_dir is not None:
            html.write_pngs([("bands", figure)], png_dir)
        return page

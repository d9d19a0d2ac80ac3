"""DetectResult: one tidy table feeds the summary, the JSON, the plot and the HTML report."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from deleverage.detect.indicators import DetectParams, Indicators
from deleverage.detect.indicators.cocrash import episodes
from deleverage.detect.loaders import Panel
from deleverage.detect.narratives import NARRATIVES, NarrativeReport, stamp, verdict_word

FRAME_COLUMNS = ["run_id", "seed", "scenario", "time", "entity", "metric", "value", "unit"]
VERDICT_UNIT = "+1 supports, +0.5 partly, 0 inconclusive, -1 contradicts"


@dataclass(frozen=True)
class Provenance:
    """Where the prices came from: "observed" market data or a "modelled" simulation run."""

    kind: str = "observed"
    run_id: str | None = None
    seed: int | None = None
    scenario: str | None = None


def _series_rows(data, entity, metric: str, unit: str) -> pd.DataFrame:
    s = data.dropna()
    return pd.DataFrame(
        {
            "time": s.index,
            "entity": entity,
            "metric": metric,
            "value": s.to_numpy(dtype=float),
            "unit": unit,
        }
    )


def _point(time, entity: str, metric: str, value: float, unit: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": [time],
            "entity": [entity],
            "metric": [metric],
            "value": [float(value)],
            "unit": [unit],
        }
    )


def build_frame(
    panel: Panel,
    ind: Indicators,
    stylized: pd.DataFrame,
    report: NarrativeReport,
    provenance: Provenance,
) -> pd.DataFrame:
    """The tidy long table: every number any view shows is one of its rows."""
    parts = []
    add = parts.append
    for col in ind.stress.columns:
        if col.startswith("rho_"):
            add(_series_rows(ind.stress[col], col[4:], "stress_correlation", "corr"))
    add(_series_rows(ind.stress.get("ciss", pd.Series(dtype=float)), "all", "ciss", "index 0-1"))
    add(_series_rows(ind.stress["turbulence_rank"], "all", "turbulence_rank", "share of past bars"))
    add(_series_rows(ind.stress["alarm"], "all", "stress_alarm", "0/1"))
    add(
        _series_rows(
            ind.stress.get("co_movement_share", pd.Series(dtype=float)),
            "all",
            "co_movement_share",
            "share of index",
        )
    )
    for market in ind.subindices.columns:
        add(_series_rows(ind.subindices[market], market, "stress_subindex", "index 0-1"))
    chi2 = "squared Mahalanobis distance"
    add(_series_rows(ind.turbulence["turbulence"], "all", "turbulence", chi2))
    for ident in panel.assets:
        add(_series_rows(ind.turbulence[ident], ident, "turbulence_contribution", chi2))
    add(_series_rows(ind.absorption, "all", "absorption_ratio", "fraction of variance"))
    if ind.cocrash is not None:
        for col in ind.cocrash.columns:
            entity, _, what = col.rpartition("_")
            if what == "threshold":
                add(_series_rows(ind.cocrash[col], entity, "tail_threshold", "log return"))
            elif what == "tail":
                unit = "multiple of tail threshold"
                add(_series_rows(ind.cocrash[col], entity, "tail_multiple", unit))
        add(_series_rows(ind.cocrash["flag"], "all", "co_crash_flag", "0/1"))
        add(
            _series_rows(
                ind.cocrash["severity"], "all", "co_crash_severity", "multiple of tail threshold"
            )
        )
    add(_series_rows(ind.spillover["total"], "all", "spillover_total", "% of forecast variance"))
    for col in ind.spillover.columns[1:]:
        direction, _, ident = col.partition("_")
        add(
            _series_rows(
                ind.spillover[col], ident, f"spillover_{direction}", "% of forecast variance"
            )
        )
    for col in ind.leadlag.columns:
        add(_series_rows(ind.leadlag[col], col[5:], "lead_score", "corr difference"))
    if ind.carry is not None:
        units = {
            "regime": "+1 carry unwind, -1 fiscal shock, 0 none",
            "yen_risk_corr": "corr",
            "rate_differential": "pp",
            "carry_unwind": "score",
            "fiscal_shock": "score",
        }
        for col in ind.carry.columns:
            add(_series_rows(ind.carry[col], "carry", col, units.get(col, "z")))
    last = ind.returns.index[-1]
    for ident, row in stylized.iterrows():
        for metric, value in row.dropna().items():
            add(_point(last, ident, metric, value, "corr" if "corr" in metric else "dimensionless"))
    add(_window_rows(panel, ind, report))
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True)
    frame.insert(0, "scenario", provenance.scenario)
    frame.insert(0, "seed", provenance.seed)
    frame.insert(0, "run_id", provenance.run_id)
    return frame[FRAME_COLUMNS]


def _window_rows(panel: Panel, ind: Indicators, report: NarrativeReport) -> pd.DataFrame:
    start, end = report.window
    bars = ind.returns.index[(ind.returns.index >= start) & (ind.returns.index <= end)]
    end_bar = bars[-1]
    rows = []
    ids = list(panel.assets)
    block = ind.spillover_pairwise[ind.returns.index.get_indexer(bars)]
    estimated = block[~np.isnan(block).any(axis=(1, 2))]  # bars with a full VAR window
    if len(estimated):
        net = estimated.mean(axis=0)
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if i != j:
                    unit = "% of forecast variance, window mean"
                    rows.append(
                        _point(end_bar, f"{a}->{b}", "net_spillover_pairwise", net[i, j], unit)
                    )
    ll_index = ind.leadlag.index
    ll_end = ll_index[ll_index <= end_bar]
    if len(ll_end):
        asym = ind.leadlag_pairwise[ll_index.get_loc(ll_end[-1])]
        ll_ids = [c[5:] for c in ind.leadlag.columns]
        for i, a in enumerate(ll_ids):
            for j, b in enumerate(ll_ids):
                if i != j and not np.isnan(asym[i, j]):
                    rows.append(
                        _point(ll_end[-1], f"{a}->{b}", "lead_lag", asym[i, j], "corr difference")
                    )
    peak, trough = report.crash
    rows.append(_point(peak, "risk_basket", "crash_peak", 0.0, "log return"))
    rows.append(_point(trough, "risk_basket", "crash_return", report.crash_return, "log return"))
    for group, move in report.group_moves.iterrows():
        rows.append(_point(trough, group, "crash_return", move["return"], "log return"))
        rows.append(
            _point(
                trough, group, "crash_vol_units", move["vol_units"], "multiples of own volatility"
            )
        )
    for onset in report.onsets.values():
        rows.append(_point(onset.bar, onset.group, "onset_return", onset.value, "log return"))
    for key in NARRATIVES:
        rows.append(_point(end_bar, key, "narrative_score", report.scores[key], "-1..1"))
    for e in report.evidence:
        rows.append(
            _point(end_bar, f"{e.narrative}:{e.code}", "evidence_observed", e.observed, e.unit)
        )
        rows.append(
            _point(end_bar, f"{e.narrative}:{e.code}", "evidence_verdict", e.verdict, VERDICT_UNIT)
        )
    return pd.concat(rows, ignore_index=True)


@dataclass(frozen=True)
class Section:
    """One table of the summary: title, column names, rows of text, caption."""

    title: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    caption: str | None = None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.{digits}f}"


@dataclass(frozen=True)
class DetectResult:
    """Forensics of one price panel: indicators per bar and rival explanations for a window."""

    provenance: Provenance
    panel: Panel
    indicators: Indicators
    narratives: NarrativeReport
    frame: pd.DataFrame
    params: DetectParams

    # ------------------------------------------------------------------ views

    @property
    def label(self) -> str:
        """Either "observed" (market data) or "modelled" (a simulated run)."""
        return self.provenance.kind

    @property
    def window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.narratives.window

    @property
    def repairs(self) -> tuple[str, ...]:
        return self.panel.repairs

    def to_frame(self) -> pd.DataFrame:
        """Tidy long table: run_id, seed, scenario, time (UTC), entity, metric, value, unit."""
        return self.frame.copy()

    def value(self, entity: str, metric: str, time: pd.Timestamp | None = None) -> float:
        """One cell of to_frame() (the latest one if time is None); NaN if absent."""
        f = self.frame
        rows = f[(f["entity"] == entity) & (f["metric"] == metric)]
        if time is not None:
            rows = rows[rows["time"] == time]
        return float(rows["value"].iloc[-1]) if len(rows) else math.nan

    def series(self, entity: str, metric: str) -> pd.Series:
        """A per-bar metric as a time series."""
        f = self.frame
        rows = f[(f["entity"] == entity) & (f["metric"] == metric)]
        return pd.Series(
            rows["value"].to_numpy(),
            index=pd.DatetimeIndex(rows["time"]),
            name=f"{entity}:{metric}",
        )

    def co_crash_days(self) -> pd.Series:
        """Severity on every bar where the co-crash flag fired (whole sample)."""
        flag = self.series("all", "co_crash_flag")
        severity = self.series("all", "co_crash_severity")
        return severity[flag[flag == 1].index]

    def narratives_table(self) -> pd.DataFrame:
        return self.narratives.table()

    def narratives_markdown(self) -> str:
        """The rival-explanations table and its evidence, as Markdown."""
        t = self.narratives_table()
        lines = [
            "| narrative | score | supports | partly | inconclusive | contradicts | untestable |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for _, r in t.iterrows():
            lines.append(
                f"| {r['narrative']} | {_fmt(r['score'])} | {r['supports']} | "
                f"{r['partly']} | {r['inconclusive']} | {r['contradicts']} | "
                f"{r['untestable']} |"
            )
        lines += [
            "",
            self.verdict_sentence(),
            "",
            "| narrative | prediction | data | verdict |",
            "|---|---|---|---|",
        ]
        for e in self.narratives.evidence:
            lines.append(
                f"| {NARRATIVES[e.narrative]} | {e.claim} | {e.detail} | "
                f"{verdict_word(e.verdict)} |"
            )
        return "\n".join(lines)

    def verdict_sentence(self) -> str:
        """Which narrative the data favour, and how strongly, in one sentence."""
        n = self.narratives
        if n.no_crash:
            return (
                "No crash in this window: on no bar were all groups (safe haven, tech, "
                "speculative) in their tails together, so no narrative is favoured."
            )
        if n.favoured is None:
            return "No narrative scores above zero: the data favour none of them."
        best = n.scores[n.favoured]
        runner = n.scores.drop(n.favoured).dropna().sort_values(ascending=False)
        if n.strength == "tied":
            tied = [NARRATIVES[k] for k in runner.index if runner[k] == best]
            return (
                f"The data favour {NARRATIVES[n.favoured]} and {', '.join(tied)} equally "
                f"(score {_fmt(best)})."
            )
        after = (
            f" over {NARRATIVES[runner.index[0]]} ({_fmt(runner.iloc[0])})" if len(runner) else ""
        )
        return (
            f"The data favour {NARRATIVES[n.favoured]} (score {_fmt(best)}){after}: {n.strength}."
        )

    def sections(self) -> list[Section]:
        """The summary's tables as plain data (rendered by rich or as HTML)."""
        w0, w1 = self.window
        f = self.frame
        in_window = f[(f["time"] >= w0) & (f["time"] <= w1) & (f["entity"] == "all")]

        def peak_of(metric: str):
            rows = in_window[in_window.metric == metric]
            return rows.loc[rows["value"].idxmax()] if len(rows) else None

        stress = []
        if (peak := peak_of("ciss")) is not None:
            stress.append(["composite stress index, peak", stamp(peak.time), _fmt(peak.value)])
            stress.append(
                [
                    "  share from co-movement",
                    stamp(peak.time),
                    _fmt(self.value("all", "co_movement_share", peak.time)),
                ]
            )
        if (peak := peak_of("turbulence")) is not None:
            stress.append(["turbulence, peak", stamp(peak.time), _fmt(peak.value, 1)])
            stress.append(
                [
                    "  absorption ratio at that bar",
                    stamp(peak.time),
                    _fmt(self.value("all", "absorption_ratio", peak.time)),
                ]
            )
        spill = in_window[in_window.metric == "spillover_total"]
        if len(spill):
            stress.append(
                [
                    "total spillover (Diebold–Yilmaz), window end",
                    stamp(spill.time.iloc[-1]),
                    _fmt(spill.value.iloc[-1], 1) + "%",
                ]
            )
        days = self.co_crash_days()
        inside = days[(days.index >= w0) & (days.index <= w1)]
        stress.append(
            [
                "co-crash bars in the window (severity)",
                ", ".join(stamp(t) for t in inside.index) or "none",
                ", ".join(_fmt(v) for v in inside) or "-",
            ]
        )
        stress.append(["co-crash bars in the whole sample", str(len(days)), "-"])
        if self.indicators.cocrash is not None:
            ranked = episodes(self.indicators.cocrash).head(5)
            stress.append(
                [
                    "most severe co-crash episodes (whole sample)",
                    ", ".join(stamp(t) for t in ranked["peak"]) or "none",
                    ", ".join(_fmt(v) for v in ranked["severity"]) or "-",
                ]
            )
        alarm = self.indicators.stress["alarm"]
        inside_alarm = alarm[(alarm.index >= w0) & (alarm.index <= w1)].dropna()
        if len(inside_alarm):
            stress.append(
                [
                    "stress alarm (turbulence top 5% or co-crash): window end",
                    stamp(inside_alarm.index[-1]),
                    "yes" if inside_alarm.iloc[-1] == 1 else "no",
                ]
            )
            stress.append(
                ["  bars with the alarm on in the window", "-", str(int(inside_alarm.sum()))]
            )
        out = [Section(f"Stress in the window ({self.label})", ("measure", "bar", "value"), stress)]

        peak, trough = self.narratives.crash
        crash = []
        for group, move in self.narratives.group_moves.iterrows():
            o = self.narratives.onsets.get(group)
            crash.append(
                [
                    group,
                    stamp(o.bar) if o else "none",
                    f"{o.start_utc:%d %b %H:%M} – {o.end_utc:%d %b %H:%M}" if o else "-",
                    f"{o.value * 100:+.1f}%" if o else "-",
                    f"{move['return'] * 100:+.1f}%",
                    f"{move['vol_units']:+.1f}",
                ]
            )
        out.append(
            Section(
                "The crash: risk-basket peak to trough, and who broke first (UTC)",
                (
                    "group",
                    "first tail loss (bar)",
                    "UTC interval",
                    "one-bar",
                    "crash move",
                    "in own σ",
                ),
                crash,
                f"crash window: after {stamp(peak)} to {stamp(trough)}, basket "
                f"{self.narratives.crash_return * 100:+.1f}% (log)",
            )
        )

        counts = ("supports", "partly", "inconclusive", "contradicts", "untestable")
        rival = [
            [r["narrative"], _fmt(r["score"]), *(str(r[c]) for c in counts)]
            for _, r in self.narratives_table().iterrows()
        ]
        out.append(
            Section(
                "Rival explanations (what each predicts vs what the data show)",
                ("narrative", "score", *counts),
                rival,
                self.verdict_sentence(),
            )
        )
        evidence = [
            [NARRATIVES[e.narrative], e.claim, e.detail, verdict_word(e.verdict)]
            for e in self.narratives.evidence
        ]
        out.append(
            Section(
                "Evidence per narrative", ("narrative", "prediction", "data", "verdict"), evidence
            )
        )
        last = self.indicators.returns.index[-1]
        facts = [
            [
                ident,
                *(
                    _fmt(self.value(ident, m, last))
                    for m in ("excess_kurtosis", "autocorr_r_lag1", "autocorr_abs_r")
                ),
            ]
            for ident in self.panel.assets
        ]
        down, other = (_fmt(self.value("all", m)) for m in ("corr_down", "corr_other"))
        out.append(
            Section(
                "Stylized facts (whole sample)",
                ("asset", "excess kurtosis", "autocorr r (lag 1)", "autocorr |r| (lags 1-5)"),
                facts,
                f"mean pairwise correlation of grouped assets: {down} on down bars, "
                f"{other} on other bars",
            )
        )
        return out

    def header(self) -> str:
        p, prices = self.provenance, self.panel.prices
        source = (
            "observed market data"
            if p.kind == "observed"
            else (f"modelled: run {p.run_id}, scenario {p.scenario}, seed {p.seed}")
        )
        w0, w1 = self.window
        return (
            f"deleverage detect — {source}\n"
            f"{len(prices)} {'daily' if self.panel.daily else 'intraday'} bars "
            f"{prices.index[0].date()} .. {prices.index[-1].date()}; assets "
            f"{', '.join(self.panel.assets)}; window {w0.date()} .. {w1.date()}"
        )

    def render(self, console: Console) -> None:
        """Print the summary with rich tables."""
        console.print(self.header(), markup=False, highlight=False)
        for section in self.sections():
            table = Table(title=section.title, caption=section.caption)
            for col in section.columns:
                table.add_column(col, overflow="fold")
            for row in section.rows:
                table.add_row(*row)
            console.print(table)
        for note in self.indicators.notes:
            console.print(f"note: {note}", markup=False, highlight=False)
        console.print(f"{len(self.repairs)} input notes and repairs (see --format json):")
        for line in self.repairs:
            console.print(f"  {line}", markup=False, highlight=False)

    def summary(self, width: int = 120) -> str:
        """Plain-text summary (the same tables the CLI prints)."""
        buf = io.StringIO()
        self.render(Console(file=buf, width=width, color_system=None, force_terminal=False))
        return buf.getvalue()

    def to_dict(self) -> dict:
        """JSON-ready dict: metadata, narratives, evidence, and every frame row in the window."""
        w0, w1 = self.window
        f = self.frame
        rows = f[(f["time"] >= w0) & (f["time"] <= w1)].copy()
        rows["time"] = rows["time"].map(lambda t: t.isoformat())
        rows["value"] = rows["value"].map(lambda v: None if math.isnan(v) else v)
        n = self.narratives
        return {
            "label": self.label,
            "run_id": self.provenance.run_id,
            "seed": self.provenance.seed,
            "scenario": self.provenance.scenario,
            "window": [w0.isoformat(), w1.isoformat()],
            "crash": {
                "peak": n.crash[0].isoformat(),
                "trough": n.crash[1].isoformat(),
                "basket_log_return": n.crash_return,
            },
            "favoured": n.favoured,
            "strength": n.strength,
            "no_crash": n.no_crash,
            "co_crash_bars_in_window": n.co_moves,
            "scores": {k: (None if math.isnan(v) else v) for k, v in n.scores.items()},
            "evidence": [
                {
                    "narrative": e.narrative,
                    "code": e.code,
                    "prediction": e.claim,
                    "data": e.detail,
                    "observed": None if math.isnan(e.observed) else e.observed,
                    "unit": e.unit,
                    "verdict": verdict_word(e.verdict),
                }
                for e in n.evidence
            ],
            "co_crash_bars": {t.isoformat(): v for t, v in self.co_crash_days().items()},
            "notes": list(self.indicators.notes),
            "repairs": list(self.repairs),
            "rows": rows.to_dict(orient="records"),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    def plot(self):
        """Matplotlib figure: stress index, co-crash flags, turbulence, spillover network."""
        from deleverage.detect.report import overview_figure

        return overview_figure(self)

    def report(self, path: str | Path) -> Path:
        """Write an offline, self-contained HTML page (inline SVG, no scripts)."""
        from deleverage.detect.report import write_html

        return write_html(self, Path(path))

"""The answer to "would my book have survived?": one result type, one renderer per view
(summary text, tidy frame, figure, offline HTML), as the other result types."""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from deleverage.results import html as page
from deleverage.results.result import git_hash, package_version
from deleverage.scenario.schema import Scenario
from deleverage.stress.schema import Portfolio

NEVER = -1
MODES = ("static", "endogenous")


@dataclass(frozen=True)
class BookPaths:
    """The book over paths in one mode: equity (paths × steps, USD after each step) and the
    step of the first margin call and of the first forced liquidation (−1: none)."""

    equity: np.ndarray
    first_call: np.ndarray
    liquidation: np.ndarray


@dataclass(frozen=True)
class BreakingShock:
    """Reverse stress: per path the smallest scale of `shock` that liquidates the book
    (inf: none up to `max_scale`); `median` breaks it in half of the paths, inside
    [`low`, `high`] with probability ≥ `confidence`."""

    shock: str
    scales: np.ndarray
    median: float
    low: float
    high: float
    confidence: float
    max_scale: float
    tolerance: float

    def summary(self) -> str:
        broken = np.isfinite(self.scales).mean()
        return (
            f"breaking shock ({self.shock}): scale {_scale(self.median)} liquidates the book in "
            f"half of {len(self.scales)} paths, {self.confidence:.0%} interval "
            f"[{_scale(self.low)}, {_scale(self.high)}] (bisection to ±{self.tolerance:g}); "
            f"{broken:.0%} of paths break at or below ×{self.max_scale:g}"
        )


def _scale(value: float) -> str:
    return f"×{value:.2f}" if np.isfinite(value) else "> max"


@dataclass
class StressResult:
    scenario: Scenario
    portfolio: Portfolio
    seed: int
    paths: int
    scenario_hash: str
    times: pd.DatetimeIndex  # end of each step
    equity0: float  # USD at the start
    endogenous: BookPaths
    static: BookPaths
    held_shortfall: np.ndarray  # (paths,) USD: untouched book below maintenance, worst
    cut_order: pd.DataFrame
    wall_seconds: float
    breaking: BreakingShock | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    package_version: str = field(default_factory=package_version)
    git_hash: str | None = field(default_factory=git_hash)

    def mode(self, name: str) -> BookPaths:
        return {"static": self.static, "endogenous": self.endogenous}[name]

    def pnl(self, name: str) -> np.ndarray:
        """Final P&L per path, USD."""
        return self.mode(name).equity[:, -1] - self.equity0

    def drawdown(self, name: str) -> np.ndarray:
        """Worst drawdown per path: the largest fall of equity from its running peak (the
        start included), as a share of that peak."""
        equity = np.concatenate([np.full((self.paths, 1), self.equity0),
                                 self.mode(name).equity], axis=1)  # fmt: skip
        peak = np.maximum.accumulate(equity, axis=1)
        return np.max((peak - equity) / np.abs(peak), axis=1)

    def extra_cash_95(self) -> float:
        """Cash to add at the start so that the book survives 95% of paths untouched."""
        return float(np.quantile(self.held_shortfall, 0.95))

    def _time(self, steps: np.ndarray) -> pd.Timestamp | None:
        hit = steps[steps != NEVER]
        return None if not len(hit) else self.times[int(np.median(hit))]

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per metric, static and endogenous side by side."""
        rows = []
        for name in MODES:
            book, pnl = self.mode(name), self.pnl(name)
            values = {
                "P&L median": (np.median(pnl), "USD"),
                "P&L 5% (worst 1 in 20)": (np.quantile(pnl, 0.05), "USD"),
                "P&L 95%": (np.quantile(pnl, 0.95), "USD"),
                "P&L median % of equity": (100 * np.median(pnl) / self.equity0, "%"),
                "P(margin call)": (np.mean(book.first_call != NEVER), "share"),
                "first margin call (median)": (self._time(book.first_call), "UTC"),
                "P(liquidation)": (np.mean(book.liquidation != NEVER), "share"),
                "first liquidation (median)": (self._time(book.liquidation), "UTC"),
                "worst drawdown median": (100 * np.median(self.drawdown(name)), "%"),
                "worst drawdown 95%": (100 * np.quantile(self.drawdown(name), 0.95), "%"),
            }
            rows += [(metric, name, value, unit) for metric, (value, unit) in values.items()]
        frame = pd.DataFrame(rows, columns=["metric", "mode", "value", "unit"])
        wide = frame.pivot(index="metric", columns="mode", values="value")
        units = frame.drop_duplicates("metric").set_index("metric")["unit"]
        order = list(dict.fromkeys(frame.metric))
        return wide.loc[order, list(MODES)].assign(unit=units.loc[order]).reset_index()

    def to_frame(self) -> pd.DataFrame:
        """Tidy: one row per (metric, mode) with value and unit, plus the extra cash, the
        cut order and the breaking shock."""
        tidy = self.table.melt(id_vars=["metric", "unit"], var_name="mode", value_name="value")
        extra = [("extra cash to survive at 95%", "both", self.extra_cash_95(), "USD")]
        for rank, row in enumerate(self.cut_order.itertuples(), 1):
            extra.append((f"cut order {rank}: {row.asset}", "cost per margin released",
                          row.cost_per_margin, "USD/USD"))  # fmt: skip
        if self.breaking is not None:
            b = self.breaking
            for metric, value in (("median", b.median), ("low", b.low), ("high", b.high)):
                extra.append((f"breaking scale {metric}", b.shock, value, "scale"))
        more = pd.DataFrame(extra, columns=["metric", "mode", "value", "unit"])
        return pd.concat([tidy[["metric", "mode", "value", "unit"]], more], ignore_index=True)

    def summary(self) -> str:
        def show(value, unit) -> str:
            if value is None or (isinstance(value, float) and np.isnan(value)):
                return "—"
            if unit == "UTC":
                return f"{value:%Y-%m-%d %H:%M}"
            if unit == "share":
                return f"{value:.0%}"
            if unit == "%":
                return f"{value:.1f}%"
            return f"{value:,.0f}"

        lines = [
            f"portfolio {self.portfolio.name} in {self.scenario.name}: seed {self.seed}, "
            f"{self.paths} path(s), equity at start {self.equity0:,.0f} USD",
            f"{'':30s} {'static':>18s} {'endogenous':>18s}",
        ]
        for row in self.table.itertuples():
            lines.append(
                f"{row.metric:30s} {show(row.static, row.unit):>18s} "
                f"{show(row.endogenous, row.unit):>18s}"
            )
        lines.append(
            f"extra cash that survives 95% of paths (book held untouched): "
            f"{self.extra_cash_95():,.0f} USD"
        )
        order = ", ".join(
            f"{r.asset} ({100 * r.cost_per_margin:.2f}%)" for r in self.cut_order.itertuples()
        )
        lines.append(f"cut first (impact cost ÷ margin released): {order}")
        if self.breaking is not None:
            lines.append(self.breaking.summary())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.summary())}</pre>"

    def plot(self):
        """Equity over time (median and 10-90% band) static vs endogenous, and the final
        P&L distributions."""
        from matplotlib.figure import Figure  # a bare figure: the user's backend is left alone

        fig = Figure(figsize=(10, 7))
        top, bottom = fig.subplots(2, 1)
        for name, color in zip(MODES, ("tab:blue", "tab:red"), strict=True):
            equity = self.mode(name).equity
            low, mid, high = np.nanquantile(equity, [0.1, 0.5, 0.9], axis=0)
            top.plot(self.times, mid, color=color, label=f"{name} (median)")
            top.fill_between(self.times, low, high, color=color, alpha=0.2)
            bottom.hist(self.pnl(name), bins=min(30, max(5, self.paths)), alpha=0.5,
                        color=color, label=name)  # fmt: skip
        top.axhline(self.equity0, color="grey", lw=0.8)
        top.set_ylabel("equity, USD (10-90% band)")
        top.legend()
        bottom.set_xlabel("final P&L, USD")
        bottom.set_ylabel("paths")
        bottom.legend()
        fig.tight_layout()
        return fig

    def report(self, path: str | Path) -> Path:
        """Self-contained offline HTML (the shared report writer): the comparison, the cut
        order and the figure as inline SVG."""
        chart = page.chart(self.plot(), "equity", "equity band (10-90%) and final P&L, per run")
        cut = self.cut_order
        parts = [
            page.paragraph(
                f"portfolio {self.portfolio.name} in scenario {self.scenario.name}, seed "
                f"{self.seed}, {self.paths} paths, hash {self.scenario_hash}, version "
                f"{self.package_version}"
            ),
            f"<pre>{html.escape(self.summary())}</pre>",
            chart,
            page.table(
                "Cut order",
                [str(c) for c in cut.columns],
                [
                    [v if isinstance(v, str) else f"{v:,.4g}" for v in row]
                    for row in cut.itertuples(index=False)
                ],
                numeric=[not pd.api.types.is_string_dtype(cut[c]) for c in cut.columns],
            ),
        ]
        return page.write_page(path, f"deleverage stress {self.run_id}", parts)

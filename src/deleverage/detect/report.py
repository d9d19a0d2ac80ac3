"""Figure and offline HTML page for a DetectResult (inline SVG, no scripts, no CDN)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from deleverage.detect.narratives import stamp
from deleverage.results import html as page

if TYPE_CHECKING:
    from deleverage.detect.result import DetectResult

CONTEXT_BEFORE, CONTEXT_AFTER = 120, 20  # bars shown around the analysis window


def _context(result: DetectResult):
    index = result.indicators.returns.index
    w0, w1 = result.window
    first = max(int((index < w0).sum()) - CONTEXT_BEFORE, 0)
    last = min(int((index <= w1).sum()) + CONTEXT_AFTER, len(index)) - 1
    return index[first], index[last]


def _clip(series, start, end):
    return series[(series.index >= start) & (series.index <= end)]


def _network(ax, result: DetectResult, label: str) -> None:
    f = result.frame
    pair = f[f.metric == "net_spillover_pairwise"]
    ids = list(result.panel.assets)
    angle = np.linspace(0, 2 * np.pi, len(ids), endpoint=False)
    pos = {a: (np.cos(t), np.sin(t)) for a, t in zip(ids, angle, strict=True)}
    ax.set_title(f"Net spillovers, window mean ({label})")
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    edges = pair[pair.value > 0].nlargest(10, "value")
    scale = edges.value.max() if len(edges) else 1.0
    for _, e in edges.iterrows():
        a, b = e.entity.split("->")
        ax.annotate(
            "",
            xy=pos[b],
            xytext=pos[a],
            arrowprops={
                "arrowstyle": "-|>",
                "lw": 0.5 + 3.5 * e.value / scale,
                "color": "tab:red",
                "alpha": 0.7,
                "shrinkA": 14,
                "shrinkB": 14,
            },
        )
    w0, w1 = result.window
    for a in ids:
        net = _clip(result.series(a, "spillover_net"), w0, w1).mean()
        ax.scatter(*pos[a], s=900, color="tab:blue" if net <= 0 else "tab:red", alpha=0.3)
        ax.text(*pos[a], f"{a}\n{net:+.1f}", ha="center", va="center", fontsize=8)
    ax.text(
        0,
        -1.45,
        "arrow: i transmits more to j than it receives (%); node: net",
        ha="center",
        fontsize=7,
    )


def overview_figure(result: DetectResult) -> Figure:
    """Stress index and co-movement share, co-crash flags, turbulence, spillover network."""
    label = result.label
    start, end = _context(result)
    w0, w1 = result.window
    fig = Figure(figsize=(12, 9), layout="constrained")
    axes = fig.subplot_mosaic(
        [["stress", "net"], ["crash", "net"], ["turb", "net"]], width_ratios=[1.8, 1]
    )
    fig.suptitle(f"deleverage detect — {label} data, window {w0.date()} .. {w1.date()}")

    ax = axes["stress"]
    ax.plot(
        _clip(result.series("all", "ciss"), start, end), color="black", label="CISS-style index"
    )
    ax.set_ylabel("index 0-1")
    ax.set_title(f"Composite stress index and its co-movement share ({label})")
    twin = ax.twinx()
    twin.plot(
        _clip(result.series("all", "co_movement_share"), start, end),
        color="tab:orange",
        lw=0.8,
        label="co-movement share",
    )
    twin.set_ylim(-1, 1)
    twin.set_ylabel("share (clipped to ±1)")
    ax.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)

    ax = axes["crash"]
    ax.set_title(f"Co-crash: every group in its tail at once ({label})")
    severity = _clip(result.series("all", "co_crash_severity"), start, end)
    if len(severity):
        ax.plot(severity.clip(lower=0), color="tab:gray", lw=0.8, label="severity")
        ax.axhline(1.0, color="tab:red", lw=0.6, ls="--")
        flags = _clip(result.co_crash_days(), start, end)
        ax.scatter(flags.index, flags.to_numpy(), color="tab:red", zorder=3, label="co-crash")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_ylabel("× tail threshold")

    ax = axes["turb"]
    ax.set_title(f"Turbulence and absorption ratio ({label})")
    ax.plot(_clip(result.series("all", "turbulence"), start, end), color="tab:purple", lw=0.8)
    ax.set_ylabel("turbulence (χ²)")
    twin = ax.twinx()
    twin.plot(
        _clip(result.series("all", "absorption_ratio"), start, end), color="tab:green", lw=0.8
    )
    twin.set_ylabel("absorption ratio")
    for key in ("stress", "crash", "turb"):
        axes[key].axvspan(w0, w1, color="tab:blue", alpha=0.08)
        axes[key].tick_params(axis="x", labelsize=7)
    _network(axes["net"], result, label)
    return fig


def write_html(result: DetectResult, path: Path) -> Path:
    """Write the self-contained report (the shared offline page writer of every report);
    returns the path written."""
    days = result.co_crash_days()
    title, subtitle = result.header().splitlines()[:2]
    parts = [
        page.paragraph(subtitle),
        f"<p class='label'>All figures and tables show <b>{html.escape(result.label)}</b> "
        "data.</p>",
        page.chart(result.plot(), "overview", f"indicators and co-crash bars ({result.label})"),
    ]
    parts += [page.table(s.title, s.columns, s.rows, s.caption) for s in result.sections()]
    parts.append(
        page.table(
            f"Co-crash bars, whole sample ({result.label})",
            ("bar", "severity"),
            [[stamp(t), f"{v:.2f}"] for t, v in days.items()],
            numeric=[False, True],
        )
    )
    parts.append(page.table("Notes", ("note",), [[n] for n in result.indicators.notes]))
    parts.append(page.table("Input notes and repairs", ("line",), [[r] for r in result.repairs]))
    return page.write_page(path, title, parts)

"""One way to write an offline report page (SPEC §1): inline SVG charts, escaped tables of
formatted numbers, no script and no network source.

Used by the run, Monte Carlo and explain reports; the layout and style are those of the
`detect` report."""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PNG_DPI = 110
STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto}"
    "table{border-collapse:collapse;margin:6px 0}"
    "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".cap{font-style:italic}.label{color:#444}figure{margin:12px 0}"
    "figcaption{font-size:13px;color:#444}"
)


def number(value, unit: str = "") -> str:
    """A readable number with its unit: 2.61bn USD, 509.7M USD, 60,074 USD, −31.35 %, —."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    size = abs(value)
    if size >= 1e9:
        text = f"{value / 1e9:,.3f}bn"
    elif size >= 1e6:
        text = f"{value / 1e6:,.1f}M"
    elif size >= 1e4:
        text = f"{value:,.0f}"
    elif size >= 100:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.4g}"
    text = text.replace("-", "−")
    return f"{text} {unit}".rstrip() if unit else text


def ratio(value) -> str:
    """A ratio to 3 significant digits: 1.07 ×."""
    return "—" if value is None or pd.isna(value) else f"{value:.3g} ×".replace("-", "−")


def stamp(time) -> str:
    if time is None or pd.isna(time):
        return "—"
    return pd.Timestamp(time).strftime("%Y-%m-%d %H:%M UTC")


def svg(fig: Figure) -> str:
    """The figure as inline SVG for an HTML page: without the XML prologue, the RDF
    metadata block and the namespace declarations (HTML's parser sets them), so the page
    names no http address at all."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})  # reproducible output
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)
    return re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)


def chart(fig: Figure, name: str, caption: str) -> str:
    """A figure: the chart as inline SVG and its caption (`write_pngs` writes the same
    figures as PNG files: `deleverage report RUN --png DIR`)."""
    return (
        f"<figure id='chart-{html.escape(name)}' class='chart'>{svg(fig)}"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def write_pngs(figures: Iterable[tuple[str, Figure]], folder: str | Path) -> list[Path]:
    """Each (name, figure) as `folder/name.png` (the folder is made if missing): the very
    figures a report draws as SVG, rasterised by matplotlib."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures:
        written.append(folder / f"{name}.png")
        fig.savefig(written[-1], format="png", dpi=PNG_DPI, metadata={"Software": None})
    return written


def table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    caption: str | None = None,
    numeric: Sequence[bool] | None = None,
) -> str:
    """A titled table of already formatted cells (strings); `numeric` right-aligns columns."""
    numeric = numeric or [False] * len(columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if n else ''}>{html.escape(str(v))}</td>"
            for v, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    cap = f"<p class='cap'>{html.escape(caption)}</p>" if caption else ""
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>{cap}"


def paragraph(text: str, css: str | None = None) -> str:
    return f"<p{f' class={css}' if css else ''}>{html.escape(text)}</p>"


def page(title: str, parts: Iterable[str]) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>"
    )


def write_page(path: str | Path, title: str, parts: Iterable[str]) -> Path:
    """Write the page whole (built in memory first: no half-written file on an error)."""
    text = page(title, parts)
    out = Path(path)
    out.write_text(text, encoding="utf-8")
    return out


def text(header: str, sections: Iterable[Sequence]) -> str:
    """The same titled tables as plain text, for `summary()` (every result type renders its
    `sections()` here, in the CLI with Rich, and in its HTML report)."""
    lines = [header]
    for title, columns, rows, caption, *rest in sections:
        numeric = rest[0] if rest else [False] + [True] * (len(columns) - 1)
        cells = [[str(c) for c in columns], *([str(v) for v in row] for row in rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        lines += ["", title]
        for row in cells:
            lines.append(
                "  ".join(
                    f"{v:>{w}}" if n else f"{v:<{w}}"
                    for v, w, n in zip(row, widths, numeric, strict=True)
                ).rstrip()
            )
        if caption:
            lines.append(caption)
    return "\n".join(lines)

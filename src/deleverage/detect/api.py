"""`detect()`: forensics of a price panel, observed or modelled (SPEC §7)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from deleverage.detect.assets import AssetSpec
from deleverage.detect.errors import DataError
from deleverage.detect.indicators import DetectParams, Indicators, compute_all, groups_of
from deleverage.detect.indicators.stylized import stylized_facts
from deleverage.detect.loaders import Panel, load_panel
from deleverage.detect.narratives import score_narratives
from deleverage.detect.result import DetectResult, Provenance, build_frame
from deleverage.detect.simulated import from_simulation

# Default window around the stress peak: 25 bars before and 5 after on daily data,
# 5 days before and 1 after on intraday bars.
AUTO_DAILY = (25, 5)
AUTO_INTRADAY = (pd.Timedelta(days=5), pd.Timedelta(days=1))

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
Window = str | tuple[str | pd.Timestamp, str | pd.Timestamp] | None


def _timestamp(text, end: bool, source: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(text)
    except ValueError:
        raise DataError.one(
            source, str(text), "a date or timestamp (ISO 8601)", repr(text)
        ) from None
    date_only = isinstance(text, str) and _DATE.fullmatch(text.strip()) is not None
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    # A date as the end of a window means the whole of that UTC day.
    return t + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if end and date_only else t


def parse_window(window: Window, source: str = "--window") -> tuple[pd.Timestamp, pd.Timestamp]:
    """(start, end) in UTC from "START:END" (dates), "START/END" or a pair.

    A date-only END covers that whole UTC day.
    """
    if isinstance(window, str):
        parts = window.split("/") if "/" in window else window.split(":")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            expected = "START:END (dates) or START/END, e.g. 2026-01-15:2026-02-10"
            raise DataError.one(source, window, expected, repr(window))
        window = (parts[0].strip(), parts[1].strip())
    start, end = _timestamp(window[0], False, source), _timestamp(window[1], True, source)
    if start > end:
        raise DataError.one(
            source, f"{window[0]}:{window[1]}", "START before END", "START after END"
        )
    return start, end


def _resolve_window(window: Window, ind: Indicators, params: DetectParams, daily: bool):
    index = ind.returns.index
    earliest = index[min(params.min_history, len(index) - 1)]
    if window is None:
        stress = ind.stress["ciss"] if "ciss" in ind.stress else ind.turbulence["turbulence"]
        peak = stress.loc[earliest:].idxmax()
        if daily:
            pos = index.get_loc(peak)
            start, end = (
                index[max(pos - AUTO_DAILY[0], 0)],
                index[min(pos + AUTO_DAILY[1], len(index) - 1)],
            )
        else:
            start, end = peak - AUTO_INTRADAY[0], peak + AUTO_INTRADAY[1]
        return max(start, earliest), min(end, index[-1])
    start, end = parse_window(window)
    inside = index[(index >= start) & (index <= end)]
    if len(inside) < 3:
        span = f"data {index[0].date()} .. {index[-1].date()}, {len(inside)} bars inside"
        raise DataError.one(
            "--window",
            f"{start.date()}:{end.date()}",
            "a window with at least 3 bars of data",
            span,
        )
    if start < earliest:
        raise DataError.one(
            "--window",
            f"{start.date()}:{end.date()}",
            f"a start on or after {earliest.date()} (the first "
            f"{params.min_history} bars are history for the expanding estimates)",
            str(start.date()),
        )
    return start, end


def detect(
    data: str | Path | pd.DataFrame | Panel | Sequence[str | Path | pd.DataFrame] | object,
    window: Window = None,
    *,
    assets: Mapping[str, AssetSpec | str] | None = None,
    tz: str | None = None,
    freq: str | None = None,
    params: DetectParams | None = None,
    provenance: Provenance | None = None,
) -> DetectResult:
    """Stress, co-crash, spillovers, carry and rival explanations for a price panel.

    data: file paths ("PATH", "PATH#KEY,KEY", "DB.duckdb:TABLE"), wide frames with a
    UTC DatetimeIndex, a Panel, or a simulation result (anything with `.prices()`).
    window: "START:END", "START/END" or (start, end), UTC; None = 25 bars before to 5
    after the peak of the stress index (5 days before, 1 after on intraday data).
    assets: KEY -> AssetSpec or "ID:GROUP:MARKET[:KIND[:CLOSE_UTC]]" to override
    recognised names. tz: zone of timestamps that carry none (default UTC). freq:
    intraday bar length (default: coarsest input spacing, at least 1h).
    """
    params = params or DetectParams()
    if isinstance(data, Panel):
        panel = data
    elif hasattr(data, "prices") and callable(data.prices):
        panel, provenance = from_simulation(data, freq)
    else:
        sources = [data] if isinstance(data, str | Path | pd.DataFrame) else list(data)
        panel = load_panel(sources, assets=assets, tz=tz, freq=freq)
    need = params.min_history + 10
    if len(panel.prices) < need:
        raise DataError.one(
            "input",
            "bars",
            f"at least {need} aligned bars (min_history + 10)",
            f"{len(panel.prices)} bars",
        )
    provenance = provenance or Provenance()
    ind = compute_all(panel, params)
    report = score_narratives(panel, ind, _resolve_window(window, ind, params, panel.daily), params)
    grouped = [i for members in groups_of(panel).values() for i in members]
    stylized = stylized_facts(ind.returns, grouped if len(grouped) >= 2 else None)
    frame = build_frame(panel, ind, stylized, report, provenance)
    return DetectResult(provenance, panel, ind, report, frame, params)

"""Compile the scenario's exogenous shocks (SPEC §5) onto the step grid.

A shock at time τ takes effect at the first step that starts at or after τ (nothing is
known before it happens). Jumps on a closed venue wait and open as a gap. `driver` is the
log price a driven asset follows, NaN where it is free: before the series' first point and
from the step containing the driver's `until` on (the engine switches the asset's noise
off only where the driver is not NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deleverage.scenario.schema import Scenario
from deleverage.scenario.series import read_series


@dataclass
class MarginEvent:
    step: int
    kind: str  # "announced" | "effective"
    venue: str
    asset: str
    initial_pct: float
    maintenance_pct: float


@dataclass
class Timeline:
    jumps: np.ndarray  # (T, A) log-return jumps
    retreat: np.ndarray  # (T, A) depth multiplier from mm_retreat shocks
    gap: np.ndarray  # (T, A) empty band around mid, log units
    driver: np.ndarray  # (T, A) log reference price to follow, NaN where free
    flow_usd: np.ndarray  # (T, A) exogenous programme, USD per step (+ buy)
    labels: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # step -> (kind, label)
    margin: list[MarginEvent] = field(default_factory=list)
    dropped: int = 0  # shocks that fall after the last step


def _step_at(starts: pd.DatetimeIndex, when, side: str = "left") -> int:
    """The first step that starts at or after `when` ("right": after it)."""
    return int(starts.searchsorted(pd.Timestamp(when), side=side))


def _driver_path(shock, starts: pd.DatetimeIndex) -> np.ndarray:
    """The driven value at each step start: NaN before the first observation and from the
    step containing `until` on (the asset is free there)."""
    if shock.file is not None:
        series = read_series(Path(shock.file), shock.column, shock.time_column)
    else:
        times, values = zip(*shock.points, strict=True)
        series = pd.Series(values, index=pd.DatetimeIndex(times)).sort_index()
    x = series.index.asi8.astype(float)
    t = starts.asi8.astype(float)
    if shock.interpolation == "linear":
        path = np.interp(t, x, series.to_numpy(dtype=float))
    else:
        path = series.to_numpy(dtype=float)[
            np.clip(np.searchsorted(x, t, side="right") - 1, 0, None)
        ]
    path = np.where(t >= x[0], path, np.nan)  # free before the first observation
    if shock.until is not None:
        path[max(0, _step_at(starts, shock.until, side="right") - 1) :] = np.nan
    return path


def compile_timeline(scenario: Scenario, starts: pd.DatetimeIndex, price0: np.ndarray) -> Timeline:
    n_steps, index = len(starts), scenario.asset_index()
    shape = (n_steps, len(scenario.assets))
    tl = Timeline(
        np.zeros(shape), np.ones(shape), np.zeros(shape), np.full(shape, np.nan), np.zeros(shape)
    )
    dt = pd.Timedelta(scenario.clock.step)

    def jump(when, asset_id: str, log_return: float, kind: str, label: str | None) -> None:
        k = _step_at(starts, when)
        if k >= n_steps:
            tl.dropped += 1
            return
        tl.jumps[k, index[asset_id]] += log_return
        tl.labels.setdefault(k, []).append((kind, label or f"{kind} {asset_id} {log_return:+.4f}"))

    for shock in scenario.shocks:
        kind = shock.type
        if kind in ("news", "policy"):
            for asset_id, value in shock.returns.items():
                jump(shock.time, asset_id, value, kind, shock.label)
        elif kind == "factor":  # one surprise, many assets through their betas
            for asset_id, beta in shock.betas.items():
                jump(shock.time, asset_id, beta * shock.surprise, kind, shock.label)
        elif kind == "earnings":
            jump(shock.time, shock.asset, shock.log_return, kind, shock.label)
        elif kind == "rate":
            duration = scenario.assets[index[shock.asset]].duration_years
            jump(shock.time, shock.asset, -duration * shock.change_bp / 1e4, kind, shock.label)
        elif kind == "fx":
            jump(shock.time, shock.pair, shock.change, kind, shock.label)
        elif kind == "mm_retreat":
            k0 = _step_at(starts, shock.start)
            k1 = _step_at(starts, pd.Timestamp(shock.start) + pd.Timedelta(shock.duration))
            cols = [index[a] for a in shock.assets]
            tl.retreat[k0:k1, cols] *= shock.depth_multiplier
            tl.gap[k0:k1, cols] = np.maximum(tl.gap[k0:k1, cols], np.log1p(shock.gap_pct / 100))
            if k0 < n_steps:
                tl.labels.setdefault(k0, []).append((kind, shock.label or "market makers retreat"))
        elif kind == "flow":
            k0 = _step_at(starts, shock.start)
            n = max(1, int(np.ceil(pd.Timedelta(shock.duration) / dt)))
            weights = np.ones(n) if shock.shape == "uniform" else np.linspace(2.0, 0.0, n + 1)[:-1]
            weights = weights / weights.sum() * shock.notional_usd
            k1 = min(k0 + n, n_steps)
            tl.flow_usd[k0:k1, index[shock.asset]] += weights[: k1 - k0]
            tl.dropped += int(k0 + n > n_steps)
        elif kind == "driver":
            asset = scenario.assets[index[shock.asset]]
            path = _driver_path(shock, starts)
            if shock.kind == "yield":  # Δlog p = −D·Δy, relative to the initial yield
                path = (
                    np.log(price0[index[shock.asset]])
                    - asset.duration_years * (path - asset.yield_pct) / 100
                )
            else:
                path = np.log(path)
            tl.driver[:, index[shock.asset]] = path
        elif kind == "margin_change" and not shock.in_usd:  # USD: futures books apply them
            for when, stage in ((shock.announced, "announced"), (shock.effective, "effective")):
                k = _step_at(starts, when)
                if k < n_steps:
                    tl.margin.append(
                        MarginEvent(
                            k,
                            stage,
                            shock.venue,
                            shock.asset,
                            shock.initial_pct,
                            shock.maintenance_pct,
                        )
                    )
    return tl

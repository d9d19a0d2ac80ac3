"""Figures of one run, each a bare matplotlib `Figure` (the user's backend and pyplot
figures are left alone): prices with observed series and shock markers, liquidations by
venue and side, margin calls, market depth, fund leverage, and the attribution waterfall."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

LIQUIDATIONS = ("perp_liquidation", "liquidation")


def _grid(n: int, cols: int, width: float = 4.0, height: float = 2.6):
    cols = max(1, min(n, cols))
    rows = (max(n, 1) + cols - 1) // cols
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes


def _markers(ax, shocks: pd.DataFrame, start, end) -> None:
    inside = shocks[(shocks.time >= start) & (shocks.time <= end)]
    for time in inside.time.drop_duplicates():
        ax.axvline(time, color="tab:purple", lw=0.6, ls=":", alpha=0.8)


def prices_figure(result, shocks: pd.DataFrame, observed: dict[str, pd.Series]) -> Figure:
    """One panel per asset: the modelled price, the observed series where given (clipped to
    the run), and a dotted line at every shock."""
    prices = result.prices()
    fig, axes = _grid(len(prices.columns), 3)
    start, end = prices.index[0], prices.index[-1]
    for ax, asset in zip(axes, prices.columns, strict=False):
        ax.plot(prices.index, prices[asset], lw=0.8, color="tab:blue", label="modelled")
        if asset in observed:
            seen = observed[asset]
            seen = seen[(seen.index >= start) & (seen.index <= end)]
            ax.plot(seen.index, seen.to_numpy(), lw=1.0, color="black", label="observed")
            ax.legend(fontsize=7, loc="best")
        _markers(ax, shocks, start, end)
        currency = result.scenario.assets[result.asset_ids.index(asset)].currency
        ax.set_title(f"{asset} ({currency})", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("Prices (modelled; observed in black where given); dotted: shocks", fontsize=10)
    return fig


def _hourly(events: pd.DataFrame, times: pd.DatetimeIndex, by: list[str], column: str):
    timed = events.assign(time=times[events.step.to_numpy() + 1].floor("1h"))
    table = timed.pivot_table(index="time", columns=by, values=column, aggfunc="sum")
    if table.empty:
        return table
    full = pd.date_range(times[0].floor("1h"), times[-1].floor("1h"), freq="1h")
    return table.reindex(full, fill_value=0.0).fillna(0.0)


def flows_figure(result, shocks: pd.DataFrame) -> Figure:
    """Forced liquidations per hour by venue and side (USD), and margin calls per hour by
    population (accounts or funds called)."""
    events = result.events
    fig = Figure(figsize=(11, 6.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    liquidations = events[events.kind.isin(LIQUIDATIONS)]
    side = liquidations.side.where(liquidations.side != "", "both sides")
    keyed = liquidations.assign(key=liquidations.venue + " " + side)
    table = _hourly(keyed, result.times, ["key"], "notional_usd")
    if len(table):
        bottom_level = np.zeros(len(table))
        for key in table.columns:
            values = table[key].to_numpy() / 1e6
            top.bar(table.index, values, width=1 / 24, bottom=bottom_level, label=key, align="edge")
            bottom_level += values
        top.legend(fontsize=7, loc="upper left")
    else:
        top.text(0.5, 0.5, "no liquidations", ha="center", transform=top.transAxes)
    top.set_ylabel("liquidations, M USD / hour")
    top.set_title("Forced liquidations by venue and side (modelled)", fontsize=9)
    calls = events[events.kind == "margin_call"]
    table = _hourly(calls, result.times, ["population"], "count")
    if len(table):
        for population in table.columns:
            bottom.step(table.index, table[population], where="post", lw=0.9, label=population)
        bottom.legend(fontsize=7, loc="upper left")
    else:
        bottom.text(0.5, 0.5, "no margin calls", ha="center", transform=bottom.transAxes)
    bottom.set_ylabel("margin calls / hour")
    bottom.set_title("Margin calls by population (accounts or funds called; modelled)", fontsize=9)
    for ax in (top, bottom):
        _markers(ax, shocks, result.times[0], result.times[-1])
        ax.tick_params(labelsize=7)
    return fig


def depth_figure(result, shocks: pd.DataFrame) -> Figure:
    """Market makers' bid depth per asset, as a multiple of normal depth (log scale)."""
    fig, axes = _grid(1, 1, width=11, height=3.2)
    ax = axes[0]
    for a, asset in enumerate(result.asset_ids):
        ax.plot(result.times, result.market["depth_bid"][:, a], lw=0.8, label=asset)
    ax.set_yscale("log")
    ax.set_ylabel("bid depth × normal")
    ax.set_title("Market depth (modelled); dotted: shocks", fontsize=9)
    ax.legend(fontsize=7, ncol=6, loc="lower left")
    _markers(ax, shocks, result.times[0], result.times[-1])
    ax.tick_params(labelsize=7)
    return fig


def leverage_figure(result, shocks: pd.DataFrame) -> Figure:
    """Leverage of each fund population over time: gross exposure ÷ equity, pooled over the
    funds still running."""
    fig, axes = _grid(1, 1, width=11, height=3.2)
    ax = axes[0]
    leverage = result.leverage()
    for name in leverage.columns:
        ax.plot(leverage.index, leverage[name], lw=0.9, label=name)
    ax.set_ylabel("gross exposure ÷ equity")
    ax.set_title("Fund leverage by population (modelled); dotted: shocks", fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    _markers(ax, shocks, result.times[0], result.times[-1])
    ax.tick_params(labelsize=7)
    return fig


def waterfall_figure(tidy: pd.DataFrame, game: str, entities: list[str], title: str) -> Figure:
    """Per outcome: from its value with no player of `game` on, each player's Shapley value
    (green up, red down, ± standard error when sampled), to its value with all of them.
    `tidy` is an explanation's `to_frame()`."""
    rows = tidy[(tidy.game == game) & (tidy.metric == "shapley")]
    totals = tidy[(tidy.game == game) & tidy.metric.isin(["no_player", "all_players"])]
    fig, axes = _grid(len(entities), 3, width=4.3, height=3.4)
    for ax, entity in zip(axes, entities, strict=False):
        part = rows[rows.entity == entity]
        ends = totals[totals.entity == entity].set_index("metric").value
        unit = part.unit.iloc[0]
        scale, label = (1e9, "bn USD") if unit == "USD" else (1.0, unit)
        level = ends["no_player"] / scale
        bottoms, heights, colors = [0.0], [level], ["tab:gray"]
        for value in part.value.to_numpy() / scale:
            bottoms.append(level)
            heights.append(value)
            colors.append("tab:red" if value < 0 else "tab:green")
            level += value
        bottoms.append(0.0)
        heights.append(ends["all_players"] / scale)
        colors.append("tab:gray")
        x = np.arange(len(heights))
        ax.bar(x, heights, bottom=bottoms, color=colors)
        errors = part.std_error.to_numpy() / scale
        if (errors > 0).any():
            tops = np.add(bottoms[1:-1], heights[1:-1])
            ax.errorbar(x[1:-1], tops, yerr=errors, fmt="none", color="black", lw=0.8)
        ax.axhline(0.0, color="black", lw=0.5)
        names = ["none", *(p[:22] for p in part.player), "all"]
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set_title(entity, fontsize=9)
        ax.set_ylabel(label)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=10)
    return fig

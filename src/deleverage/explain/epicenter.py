"""Where the cascade started (SPEC §6): the peak hour of forced selling, the shock before it
and the first forced seller after that shock; and the first margin call, liquidation and
fund default per asset and venue."""

from __future__ import annotations

import pandas as pd

from deleverage.results.result import SimulationResult
from deleverage.results.shocks import shock_times

# Sales nobody chose at that moment: triggered stops, liquidations, pecking-order sales of
# funds in call, fund defaults.
FORCED_KINDS = ("stop_triggered", "perp_liquidation", "liquidation", "forced_sale", "fund_default")
FIRSTS = {
    "first_margin_call": ("margin_call",),
    "first_liquidation": ("perp_liquidation", "liquidation"),
    "first_fund_default": ("fund_default",),
}
EPICENTER_COLUMNS = [
    "what",
    "time",
    "kind",
    "population",
    "venue",
    "asset",
    "notional_usd",
    "detail",
]


def _timed(result: SimulationResult) -> pd.DataFrame:
    events = result.events
    return events.assign(time=result.times[events.step.to_numpy() + 1])


def forced_sales(result: SimulationResult) -> pd.DataFrame:
    events = _timed(result)
    selling = events.kind.isin(FORCED_KINDS) & (events.quantity <= 0) & (events.notional_usd > 0)
    return events[selling]


def epicenter(result: SimulationResult) -> pd.DataFrame:
    """Rows: the peak hour of forced selling (its end and the notional sold in it), the last
    shock at or before that peak (the shock that started the cascade), and the first forced
    sale at or after that shock (the first forced seller; without a shock before the peak,
    the first forced sale of the 24 h before it). Empty when nothing was forced to sell."""
    forced = forced_sales(result)
    if forced.empty:
        return pd.DataFrame(columns=EPICENTER_COLUMNS)
    hourly = forced.groupby("time").notional_usd.sum().rolling("1h").sum()
    peak = hourly.idxmax()
    shocks = shock_times(result.scenario)
    before = shocks[shocks.time <= peak]
    since = before.time.iloc[-1] if len(before) else peak - pd.Timedelta("24h")
    cascade = forced[(forced.time >= since) & (forced.time <= peak)]
    first = cascade.sort_values(["step", "round", "seq"]).iloc[0]
    rows = [
        (
            "peak hour of forced selling (end)",
            peak,
            "forced sales",
            "",
            "",
            "",
            float(hourly.max()),
            f"{cascade.notional_usd.sum() / 1e6:,.1f}M USD forced from {first.time:%m-%d %H:%M}",
        )
    ]
    if len(before):
        shock = before.iloc[-1]
        rows.append(
            ("shock that started it", shock.time, shock.kind, "", "", "", float("nan"), shock.label)
        )
    rows.append(
        (
            "first forced seller",
            first.time,
            first.kind,
            first.population,
            first.venue,
            first.asset,
            float(first.notional_usd),
            first.detail,
        )
    )
    return pd.DataFrame(rows, columns=EPICENTER_COLUMNS)


def timeline(result: SimulationResult) -> pd.DataFrame:
    """First margin call, first liquidation and first fund default per (asset, venue): time,
    population, accounts or funds involved, notional (USD)."""
    events = _timed(result)
    rows = []
    for what, kinds in FIRSTS.items():
        chosen = events[events.kind.isin(kinds)]
        for (asset, venue), group in chosen.groupby(["asset", "venue"], sort=False):
            first = group.sort_values(["step", "round", "seq"]).iloc[0]
            rows.append(
                (what, asset or "—", venue or "—", first.time, first.population, first.kind,
                 int(first["count"]), float(first.notional_usd))
            )  # fmt: skip
    frame = pd.DataFrame(
        rows,
        columns=["what", "asset", "venue", "time", "population", "kind", "count", "notional_usd"],
    )
    return frame.sort_values("time", ignore_index=True)

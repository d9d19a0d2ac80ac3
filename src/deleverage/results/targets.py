"""Modelled counterparts of event targets (SPEC §10): liquidations by asset, venue,
population and side, counts, margin-book liquidations, ADL, open-interest change, currency
repaid by carry funds and ETF flows, all read off one run's event log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.results.events import EventLog
from deleverage.scenario.schema import EVENT_METRICS, Scenario

# event kinds per (metric family, population type)
_KINDS = {
    ("liquidations", "perp_book"): ("perp_liquidation",),
    ("liquidations", "perp_cross_margin"): ("perp_liquidation",),  # one row per coin
    ("margin_book", "futures_book"): ("liquidation",),
    ("margin_book", "pb_funds"): ("forced_sale",),  # sales on a margin call or a default
    ("margin_book", "margin_loans"): ("liquidation",),  # the broker's sales
    ("adl", "perp_book"): ("perp_adl",),
    ("open_interest", "perp_book"): ("open_interest",),
    ("open_interest", "futures_book"): ("open_interest",),
    ("carry", "carry_funds"): ("fx_repay",),
    ("etf", "etf_flows"): ("etf_flow",),
}
_FAMILY = {
    "liquidations": "liquidations",
    "liquidations_24h": "liquidations",
    "liquidated_accounts": "liquidations",
    "liquidated_accounts_24h": "liquidations",
    "margin_book_liquidations": "margin_book",
    "margin_book_liquidated_accounts": "margin_book",
    "adl_accounts": "adl",
    "open_interest_change": "open_interest",
    "carry_repaid": "carry",
    "etf_flow": "etf",
}
SNAPSHOT_KINDS = ("open_interest",)  # states, not actions: not in the activity tables


def snapshot_open_interest(populations, price: np.ndarray, log: EventLog) -> None:
    """One `open_interest` row per futures or perp book: its one-sided open interest
    (units and USD at `price`), for `open_interest_change` targets. A book whose channel
    is off logs nothing, as it does nothing."""
    for population in populations:
        if population.kind not in ("perp_book", "futures_book") or not population.enabled:
            continue
        usd = population.open_interest_usd(float(price[population.asset]))
        log.add(
            "open_interest",
            population=population.name,
            asset=population.asset_id,
            quantity=usd / float(price[population.asset]),
            notional_usd=usd,
            price=float(price[population.asset]),
        )


def event_target(
    scenario: Scenario,
    times: pd.DatetimeIndex,
    events: pd.DataFrame,
    metric: str,
    *,
    asset: str | None = None,
    window=None,
    unit: str = "",
    venue: str | None = None,
    population: str | None = None,
    side: str | None = None,
) -> tuple[float, str]:
    """The modelled value of event metric `metric` with its filters, or (NaN, unit) for a
    metric that is not computed."""
    if metric not in EVENT_METRICS:
        return float("nan"), unit
    family = _FAMILY[metric]
    # a scenario population counts with the kinds of its type; accounts from outside the
    # scenario (`simulate(extra=...)`, e.g. a stress-tested book) with any of the family's
    types = {p.name: p.type for p in scenario.populations}
    family_kinds = {k for (f, _), ks in _KINDS.items() if f == family for k in ks}
    rows = events[events.kind.isin(family_kinds)]
    allowed = [
        kind in (_KINDS.get((family, types[name]), ()) if name in types else family_kinds)
        for name, kind in zip(rows.population, rows.kind, strict=True)
    ]
    rows = rows[np.array(allowed, dtype=bool)]
    rows = rows.assign(time=times[rows.step.to_numpy(dtype=np.int64) + 1])
    if window is not None and family != "open_interest":
        rows = rows[(rows.time >= window[0]) & (rows.time <= window[1])]
    if asset is not None:
        rows = rows[rows.asset == asset]
    if venue is not None:
        # an event that names its venue counts there (a perp book on its own venue, §7 of
        # docs/scenarios/language.md); one that does not, at its asset's venue
        on_venue = rows.asset.isin({a.id for a in scenario.assets if a.venue == venue})
        rows = rows[np.where(rows.venue.notna(), rows.venue == venue, on_venue)]
    if population is not None:
        rows = rows[rows.population == population]
    if side is not None:
        # prime-brokered funds hold long books: their forced sales close longs
        rows = rows[rows.side.where(rows.kind != "forced_sale", "long") == side]

    if family == "open_interest":
        return _open_interest_change(rows, times, window), "%"
    if family == "carry":
        amount = rows.notional_usd if unit == "USD" else rows.notional_usd * rows.price
        return float(amount.sum()), unit
    if family == "etf":
        return float((np.sign(rows.quantity) * rows.notional_usd).sum()), "USD"
    counts = metric.endswith(("accounts", "accounts_24h"))
    column, out_unit = ("count", "accounts") if counts else ("notional_usd", "USD")
    if metric.endswith("_24h"):
        per_step = rows.groupby("time")[column].sum()
        if per_step.empty:
            return 0.0, out_unit
        return float(per_step.rolling("24h").sum().max()), out_unit
    return float(rows[column].sum()), out_unit


def _open_interest_change(rows: pd.DataFrame, times: pd.DatetimeIndex, window) -> float:
    """% change of the summed open interest between the last snapshots at or before the
    window's start and end (the run's first and last without a window)."""
    if rows.empty:
        return float("nan")
    total = rows.groupby("time").notional_usd.sum()
    begin, end = (times[0], times[-1]) if window is None else window
    before_start, before_end = total[total.index <= begin], total[total.index <= end]
    if before_start.empty or before_end.empty or before_start.iloc[-1] == 0.0:
        return float("nan")
    return (before_end.iloc[-1] / before_start.iloc[-1] - 1.0) * 100.0

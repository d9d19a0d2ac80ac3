"""Every detect indicator, computed once per panel; none looks ahead."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from deleverage.detect.indicators.carry import carry_indicator
from deleverage.detect.indicators.cocrash import co_crash
from deleverage.detect.indicators.leadlag import common_sampling, lead_lag
from deleverage.detect.indicators.spillover import rolling_spillovers
from deleverage.detect.indicators.stress import ciss, market_subindices, stress_alarm
from deleverage.detect.indicators.stylized import stylized_facts
from deleverage.detect.indicators.turbulence import absorption_ratio, turbulence
from deleverage.detect.loaders import Panel

RISK_GROUPS = ("tech", "speculative")  # what a yen-funded carry book holds (SPEC §4.3)


@dataclass(frozen=True)
class DetectParams:
    """Tuning of every indicator. Counts are in bars of the panel (days on daily data).

    sync_bars: horizon of lead–lag returns; None = 2 on daily closes (asynchronous
    closes), 1 on intraday bars.
    tail_quantile: co-crash tail probability per trading day of each asset's
    standardised returns (scaled per bar on intraday data); tail_halflife_days: memory
    of the volatility that standardises them; tail_tolerance: bars by which the
    groups' tail losses may differ. Set on the development half of the labelled
    episodes in docs/detect.md (2011–2020 and the calm year 2017).
    alarm_rank: the stress alarm fires when turbulence is in this top share of its
    own history (0.95: its worst 5% of bars), or when the co-crash flag fires.
    """

    min_history: int = 250
    vol_window: int = 20
    cmax_window: int = 250
    ewma_lambda: float = 0.93
    tail_quantile: float = 0.075
    tail_halflife_days: float = 250.0
    tail_tolerance: int = 1
    sync_bars: int | None = None
    spillover_window: int = 200
    var_lags: int = 2
    fevd_horizon: int = 10
    absorption_window: int = 250
    absorption_fraction: float = 0.2
    leadlag_window: int = 250
    carry_bars: int = 5
    corr_window: int = 60
    regime_threshold: float = 1.0
    alarm_rank: float = 0.95

    def sync(self, panel: Panel) -> int:
        return self.sync_bars or (2 if panel.daily else 1)


@dataclass(frozen=True)
class Indicators:
    """Indicator tables indexed by bar (UTC), plus pairwise arrays (bars, N, N)."""

    returns: pd.DataFrame
    subindices: pd.DataFrame
    stress: pd.DataFrame
    turbulence: pd.DataFrame
    absorption: pd.Series
    cocrash: pd.DataFrame | None
    spillover: pd.DataFrame
    spillover_pairwise: np.ndarray
    leadlag: pd.DataFrame
    leadlag_pairwise: np.ndarray
    carry: pd.DataFrame | None
    notes: tuple[str, ...]

    def series(self) -> dict[str, pd.DataFrame | pd.Series | np.ndarray]:
        """Every per-bar output by name (what the no-look-ahead guarantee covers)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "notes" and getattr(self, f.name) is not None
        }


def groups_of(panel: Panel) -> dict[str, list[str]]:
    """Crash groups present in the panel, in the order safe_haven, tech, speculative."""
    out: dict[str, list[str]] = {}
    for ident, spec in panel.assets.items():
        if spec.group:
            out.setdefault(spec.group, []).append(ident)
    order = ("safe_haven", "tech", "speculative")
    return {g: out[g] for g in order if g in out}


def risk_return(returns: pd.DataFrame, panel: Panel) -> pd.Series | None:
    """Equal-weight (by group) one-bar return of the risk assets a carry book holds."""
    groups = groups_of(panel)
    legs = [returns[groups[g]].mean(axis=1) for g in RISK_GROUPS if g in groups]
    if not legs:
        members = [i for i, s in panel.assets.items() if s.market in ("equity", "crypto")]
        legs = [returns[members].mean(axis=1)] if members else []
    return pd.concat(legs, axis=1).mean(axis=1) if legs else None


def jgb_id(panel: Panel) -> str | None:
    """The JGB series for the carry indicator: JGB10Y if present, else any JGB."""
    jgbs = sorted(i for i in panel.assets if i.startswith("JGB"))
    return "JGB10Y" if "JGB10Y" in jgbs else (jgbs[0] if jgbs else None)


def _rates_up(returns: pd.DataFrame, panel: Panel, ident: str) -> pd.Series:
    # A yield's change is already "rates up"; a bond price falls when yields rise.
    return returns[ident] if panel.assets[ident].kind == "yield" else -returns[ident]


def compute_all(panel: Panel, params: DetectParams) -> Indicators:
    """Run every indicator on a panel."""
    p = params
    returns = panel.returns()
    notes = []
    markets = {i: s.market for i, s in panel.assets.items() if s.market}
    kinds = {i: s.kind for i, s in panel.assets.items()}
    subindices = market_subindices(
        panel.prices, returns, markets, kinds, p.vol_window, p.cmax_window, p.min_history
    )
    stress = ciss(subindices, p.ewma_lambda) if markets else pd.DataFrame(index=returns.index)
    groups = groups_of(panel)
    sync = p.sync(panel)
    cocrash = None
    if len(groups) >= 2:
        cocrash = co_crash(
            returns,
            panel.observed(),
            groups,
            quantile=p.tail_quantile,
            halflife_days=p.tail_halflife_days,
            tolerance=p.tail_tolerance,
            min_periods=p.min_history,
            daily=panel.daily,
        )
        if len(groups) < 3:
            notes.append(f"co-crash uses the groups present: {', '.join(groups)}")
    else:
        notes.append("co-crash needs at least two of safe_haven, tech, speculative groups")
    spill, pairwise = rolling_spillovers(returns, p.spillover_window, p.var_lags, p.fevd_horizon)
    if panel.daily:
        ll_returns = returns
        notes.append(
            f"daily closes are asynchronous (e.g. Tokyo ~06:00, COMEX ~18:30, New York "
            f"~21:00, crypto 24:00 UTC): co-crash lets groups' tail losses be "
            f"{p.tail_tolerance} bar(s) apart; lead–lag uses overlapping {sync}-bar "
            f"returns; spillovers use one-bar returns and can make a later-closing "
            f"market look like a receiver"
        )
    else:
        ll_returns = common_sampling(returns, panel.fresh)
        notes.append("lead–lag uses returns between bars where every asset traded")
    leadlag, ll_pairwise = lead_lag(ll_returns, 1 if not panel.daily else sync, p.leadlag_window)
    carry = None
    risk = risk_return(returns, panel)
    if "USDJPY" in panel.assets and risk is not None:
        jgb = jgb_id(panel)
        rates_up = _rates_up(returns, panel, jgb) if jgb else None
        carry = carry_indicator(
            -returns["USDJPY"],
            risk,
            rates_up,
            p.carry_bars,
            p.corr_window,
            p.min_history,
            p.regime_threshold,
        )
        if jgb and "UST10Y" in panel.assets and panel.assets[jgb].kind == "yield":
            carry["rate_differential"] = (panel.prices["UST10Y"] - panel.prices[jgb]).loc[
                returns.index
            ]
    else:
        notes.append("carry indicator needs USDJPY and risk assets (tech/speculative groups)")
    turb = turbulence(returns, p.min_history)
    stress = stress_alarm(stress, turb["turbulence"], cocrash, p.alarm_rank, p.min_history)
    return Indicators(
        returns,
        subindices,
        stress,
        turb,
        absorption_ratio(returns, p.absorption_window, p.absorption_fraction),
        cocrash,
        spill,
        pairwise,
        leadlag,
        ll_pairwise,
        carry,
        tuple(notes),
    )


__all__ = ["DetectParams", "Indicators", "compute_all", "groups_of", "stylized_facts"]

"""Carry unwind or fiscal term-premium shock?

A yen carry unwind (borrow yen, hold dollar risk) shows as the yen rising while risk
assets fall: funds repay yen as they sell. A fiscal term-premium shock in Japan
(SPEC §5: 20 Jan 2026) shows as JGB yields jumping with a *weaker* yen: investors
sell Japan, they do not buy yen. The two have opposite yen signs, so the indicator
can tell them apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.detect.indicators.transforms import expanding_rms, trailing_sum


def carry_indicator(
    yen_up: pd.Series,
    risk: pd.Series,
    rates_up: pd.Series | None,
    bars: int,
    corr_window: int,
    min_periods: int,
    threshold: float = 1.0,
) -> pd.DataFrame:
    """Carry-unwind and fiscal-shock scores from `bars`-bar moves in units of past size.

    yen_up: one-bar yen appreciation (−Δ log USDJPY); risk: one-bar return of risk
    assets; rates_up: one-bar rise in JGB yields (pp), or None. Each `bars`-bar move
    is divided by the root mean square of its own earlier values (a z-score).
    carry_unwind = sqrt(max(z_yen, 0)·max(−z_risk, 0)) (yen up AND risk down);
    fiscal_shock = sqrt(max(z_jgb, 0)·max(−z_yen, 0)) (yields up AND yen down);
    regime = +1 carry unwind, −1 fiscal shock (score ≥ threshold), else 0;
    yen_risk_corr: trailing correlation of one-bar yen and risk moves (negative in a
    carry regime: the yen rises when risk falls).
    """
    moves = {"yen": yen_up, "risk": risk}
    if rates_up is not None:
        moves["jgb"] = rates_up
    z = {}
    out = {}
    for name, series in moves.items():
        k_bar = trailing_sum(series, bars)
        z[name] = k_bar / expanding_rms(k_bar, min_periods)
        out[f"z_{name}"] = z[name]
    out["carry_unwind"] = np.sqrt(z["yen"].clip(lower=0) * (-z["risk"]).clip(lower=0))
    if rates_up is not None:
        out["fiscal_shock"] = np.sqrt(z["jgb"].clip(lower=0) * (-z["yen"]).clip(lower=0))
    else:
        out["fiscal_shock"] = pd.Series(np.nan, index=yen_up.index)
    carry = out["carry_unwind"] >= threshold
    fiscal = out["fiscal_shock"] >= threshold
    regime = np.where(carry, 1.0, np.where(fiscal, -1.0, 0.0))
    out["regime"] = pd.Series(regime, index=yen_up.index).where(out["carry_unwind"].notna())
    out["yen_risk_corr"] = yen_up.rolling(corr_window, min_periods=corr_window).corr(risk)
    return pd.DataFrame(out, index=yen_up.index)

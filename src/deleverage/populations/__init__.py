"""Populations of holders. A new population is one module plus one line in `REGISTRY`:
scenario type -> (builder, the channel that switches its feedback off)."""

from __future__ import annotations

from collections.abc import Callable

from deleverage.populations.base import BuildContext, MarketView, Orders, Population
from deleverage.populations.carry import CarryFundsPopulation
from deleverage.populations.end_investors import EndInvestors
from deleverage.populations.etf_flows import EtfFlowPopulation
from deleverage.populations.futures_margin import FuturesPopulation
from deleverage.populations.margin_loans import MarginLoanPopulation
from deleverage.populations.perp_cross import CrossMarginPopulation
from deleverage.populations.perp_venue import build_perp_population
from deleverage.populations.prime_broker import PrimeBrokerPopulation
from deleverage.populations.stop_loss import StopLossPopulation
from deleverage.populations.systematic import TrendPopulation, VolTargetPopulation
from deleverage.populations.value_funds import ValueFundPopulation
from deleverage.populations.vol_etps import VolEtpPopulation

REGISTRY: dict[str, tuple[Callable[..., Population], str]] = {
    "stop_loss": (StopLossPopulation, "stop_loss"),
    "futures_book": (FuturesPopulation, "margin_calls"),
    "margin_loans": (MarginLoanPopulation, "margin_calls"),
    "carry_funds": (CarryFundsPopulation, "carry_unwind"),
    "pb_funds": (PrimeBrokerPopulation, "margin_calls"),
    "value_funds": (ValueFundPopulation, "margin_calls"),
    "vol_target": (VolTargetPopulation, "vol_targeting"),
    "trend_followers": (TrendPopulation, "stop_loss"),
    "etf_flows": (EtfFlowPopulation, "etf_flows"),
    "perp_book": (build_perp_population, "perp_liquidations"),
    "vol_etps": (VolEtpPopulation, "vol_etp_rebalancing"),
    "perp_cross_margin": (CrossMarginPopulation, "perp_liquidations"),
}

__all__ = [
    "REGISTRY",
    "BuildContext",
    "EndInvestors",
    "MarketView",
    "Orders",
    "Population",
    "StopLossPopulation",
]

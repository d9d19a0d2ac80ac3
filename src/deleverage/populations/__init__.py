"""Populations of holders. A new population is one module plus one line in `REGISTRY`:
scenario type -> (builder, the channel that switches its feedback off)."""

from __future__ import annotations

from collections.abc import Callable

from deleverage.populations.base import BuildContext, MarketView, Orders, Population
from deleverage.populations.end_investors import EndInvestors
from deleverage.populations.stop_loss import StopLossPopulation

REGISTRY: dict[str, tuple[Callable[..., Population], str]] = {
    "stop_loss": (StopLossPopulation, "stop_loss"),
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

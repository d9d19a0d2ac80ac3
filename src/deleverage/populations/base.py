"""The interface every population of holders implements (SPEC §4; STYLE "State is arrays").

A population is arrays of accounts plus four behaviours the engine calls every round:
`mark` (mark to market, decide forced and voluntary trades), `orders` (the open orders),
`apply_fills` (settle what the market filled), and `holdings`/`cash` for the invariants.
Orders for a closed venue stay open in the population and are sent again until filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from deleverage.results.events import EventLog


@dataclass(frozen=True)
class Orders:
    """Market orders: asset index, signed quantity in units (+ buy), and the owner group
    inside the population (an account index or an aggregate bucket)."""

    asset: np.ndarray
    quantity: np.ndarray
    owner: np.ndarray

    @classmethod
    def empty(cls) -> Orders:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class MarketView:
    """What a population may see: this step's prices and which assets can trade."""

    step: int
    time: np.datetime64
    price: np.ndarray  # (A,) current prices
    is_open: np.ndarray  # (A,) bool


class Population(Protocol):
    name: str
    kind: str

    def mark(self, view: MarketView, log: EventLog) -> None:
        """Mark to market at `view.price` and create any forced or voluntary orders."""

    def orders(self) -> Orders:
        """All orders currently open (filled ones are removed by `apply_fills`)."""

    def apply_fills(
        self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog
    ) -> None:
        """Settle the `filled` subset of `orders` at `price` (one price per order)."""

    def holdings(self, n_assets: int) -> np.ndarray:
        """Units held per asset, summed over accounts (+ long)."""

    def cash(self) -> float:
        """Cash held, summed over accounts, USD."""

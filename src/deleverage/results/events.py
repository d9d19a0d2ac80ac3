"""Append-only event log: trades, triggers, margin calls, liquidations, defaults, shocks.

Events are aggregated per (step, round, kind, population, asset): one row says how many
accounts did what, for how many units, at which price — never one row per account.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

COLUMNS = (
    "step",
    "round",
    "kind",
    "population",
    "venue",
    "asset",
    "side",
    "count",
    "quantity",
    "notional_usd",
    "price",
    "fee_usd",
    "detail",
)


@dataclass
class EventLog:
    step: int = 0
    round: int = 0
    rows: list[tuple] = field(default_factory=list)

    def add(
        self,
        kind: str,
        *,
        population: str = "",
        venue: str = "",
        asset: str = "",
        side: str = "",
        count: int = 1,
        quantity: float = 0.0,
        notional_usd: float = 0.0,
        price: float = float("nan"),
        fee_usd: float = 0.0,
        detail: str = "",
    ) -> None:
        self.rows.append(
            (
                self.step,
                self.round,
                kind,
                population,
                venue,
                asset,
                side,
                int(count),
                float(quantity),
                float(notional_usd),
                float(price),
                float(fee_usd),
                detail,
            )
        )

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=list(COLUMNS))
        frame.insert(0, "seq", range(len(frame)))
        return frame

"""Venue margin rule sets for perpetual futures (SPEC §4.1; facts §1), as pure vectorized
functions: one module per rule set (`binance`, `bybit`, `hyperliquid`), the shared funding
formula (`funding`), tiered maintenance margin (`tiers`), and the loss waterfall past an
account's collateral (`insurance`: fund capacity and auto-deleveraging).

`perp_rules(name, ...)` assembles the parameters a perp population needs for a venue whose
`margin_rules` is `binance-like`, `bybit-like` or `hyperliquid-like`.
"""

from __future__ import annotations

from deleverage.venues.rules import PerpRules, perp_rules
from deleverage.venues.tiers import TierTable

__all__ = ["PerpRules", "TierTable", "perp_rules"]

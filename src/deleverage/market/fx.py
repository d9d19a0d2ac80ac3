"""USD value of prices quoted in other currencies, at the FX price of the same step.

`Translation` holds, per quote currency of the scenario (USD first), the column of the fx
pair that translates it and which way round the pair is quoted; per asset, the column of
its quote currency. For a vector of prices of one step:

    usd_per(price)[c] = 1                    for USD
                      = 1 / price[pair_c]    for a USD/xxx pair (USDJPY: yen per dollar)
                      = price[pair_c]        for a xxx/USD pair (EURUSD: dollars per euro)
    unit_usd(price)[a] = 1                              for a USD/xxx pair (one unit is $1)
                       = price[a] · usd_per(price)[quote_a]  otherwise

so a holder of yen assets has USD value Σ units·price / USDJPY, and its USD P&L is the
local P&L translated plus the translation of what it held: d(v/S) = dv/S + v·d(1/S).
With USD-quoted assets and USD/xxx pairs only, unit_usd is the price (1 for the pairs),
exactly as before quote currencies existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deleverage.scenario.currency import pair_base, quoting_pairs, translating_pair


@dataclass(frozen=True)
class Translation:
    currencies: tuple[str, ...]  # quote currencies, USD first
    quote: np.ndarray  # (A,) column in `currencies` of each asset's quote currency
    pair: np.ndarray  # (C,) asset column of the pair translating each currency (0 for USD)
    power: np.ndarray  # (C,) usd_per = price[pair] ** power: 0 for USD, −1 USD/xxx, +1 xxx/USD
    usd_base: np.ndarray  # (A,) bool: a USD/xxx pair, whose unit is one dollar
    translated: bool  # some unit's USD value needs an FX rate (not only USD and USD/xxx)

    @classmethod
    def build(cls, scenario) -> Translation:
        assets = scenario.assets
        index = {a.id: i for i, a in enumerate(assets)}
        currencies = ["USD", *sorted({a.currency for a in assets} - {"USD"})]
        pair, power = np.zeros(len(currencies), dtype=np.int64), np.zeros(len(currencies))
        for c, currency in enumerate(currencies[1:], start=1):
            chosen = None
            for asset in assets:  # a non-fx asset's own (named or only) pair
                if asset.currency == currency and (found := translating_pair(asset, assets)):
                    chosen = found
                    break
            if chosen is None:  # only pairs are quoted in it: the first that translates it
                chosen = next(iter(quoting_pairs(currency, assets)), None)
            if chosen is not None:
                pair[c], power[c] = index[chosen.asset], -1.0 if chosen.inverse else 1.0
        usd_base = np.array([pair_base(a) == "USD" for a in assets])
        quote = np.array([currencies.index(a.currency) for a in assets], dtype=np.int64)
        translated = bool(np.any(~usd_base & (quote != 0)))
        return cls(tuple(currencies), quote, pair, power, usd_base, translated)

    def usd_per(self, price: np.ndarray) -> np.ndarray:
        """(..., C) USD value of one unit of each quote currency at these (..., A) prices
        (a leading axis: one row per lane)."""
        if len(self.currencies) == 1:
            return np.ones((*price.shape[:-1], 1))
        return price[..., self.pair] ** self.power

    def unit_usd(self, price: np.ndarray) -> np.ndarray:
        """(..., A) USD value of one unit of each asset at these (..., A) prices."""
        if not self.translated:
            return np.where(self.usd_base, 1.0, price)
        return np.where(self.usd_base, 1.0, price * self.usd_per(price)[..., self.quote])

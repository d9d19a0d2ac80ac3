"""Quote currencies and the FX pairs that translate them into USD (issue 13, item 1).

An asset's `currency` is the currency its price is quoted in (a Nikkei index or a JGB
future in JPY, a Bund future in EUR). Every USD figure of the run — notional, P&L, depth
and ADV, liquidations, balance sheets — translates a non-USD price through an FX pair
asset of the same scenario, at that pair's price of the same step. A pair is quoted
either way round against USD:

* USD/xxx (class fx, `currency: JPY`; its `base` is USD): one unit is one dollar, priced
  in yen, so one yen is worth 1 / price dollars (USDJPY, USDCNH);
* xxx/USD (class fx, `currency: USD`, `base: EUR`): one unit is one euro, priced in
  dollars, so one euro is worth price dollars (EURUSD, GBPUSD, AUDUSD).

An asset names its pair with `fx_pair`, or leaves it out when the scenario holds exactly
one pair quoting its currency. Cross pairs (EURJPY) are not supported: both legs go
through USD.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, WithJsonSchema

# ISO 4217 codes of currencies in circulation (the ISO 4217 list, "current currency & funds").
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
    BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
    JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR
    ZMW ZWG""".split()
)
# Offshore codes that markets quote although ISO does not list them (offshore yuan).
MARKET_CODES = frozenset({"CNH"})
KNOWN = ISO_4217 | MARKET_CODES


def _known_currency(code: str) -> str:
    if code not in KNOWN:
        raise ValueError(
            f"expected an ISO 4217 currency code in capitals (USD, JPY, EUR, GBP, CNH, ...), "
            f"found {code!r}"
        )
    return code


CurrencyCode = Annotated[
    str,
    AfterValidator(_known_currency),
    WithJsonSchema({"type": "string", "enum": sorted(KNOWN)}),  # editors complete the codes
]


class Pair(NamedTuple):
    """How one currency translates into USD: through `asset`'s price, as 1 / price
    (`inverse`: a USD/xxx pair priced in xxx) or as the price (a xxx/USD pair)."""

    asset: str
    inverse: bool


def pair_base(asset: Any) -> str | None:
    """The currency one unit of an fx asset is: its `base`, or USD for a pair priced in
    another currency (USDJPY); None for anything else (an fx index priced in USD)."""
    if asset.asset_class != "fx":
        return None
    if asset.base is not None:
        return asset.base
    return "USD" if asset.currency != "USD" else None


def quoting_pairs(currency: str, assets: list[Any]) -> list[Pair]:
    """The scenario's pairs that translate `currency` into USD, either way round."""
    pairs = []
    for asset in assets:
        base = pair_base(asset)
        if base == "USD" and asset.currency == currency:
            pairs.append(Pair(asset.id, True))
        elif base == currency and asset.currency == "USD":
            pairs.append(Pair(asset.id, False))
    return pairs


def translating_pair(asset: Any, assets: list[Any]) -> Pair | None:
    """The pair translating a non-fx asset's quote currency (None for USD and for pairs:
    a pair's own unit value is set by its price). Assumes a validated scenario."""
    if asset.currency == "USD" or asset.asset_class == "fx":
        return None
    pairs = quoting_pairs(asset.currency, assets)
    if asset.fx_pair is not None:
        pairs = [p for p in pairs if p.asset == asset.fx_pair]
    return pairs[0]


def asset_problems(asset: Any) -> str | None:
    """What one asset's currency keys contradict by themselves, or None."""
    if asset.asset_class == "fx":
        if asset.fx_pair is not None:
            return "expected no fx_pair on an fx pair (its price is the exchange rate)"
        if asset.base == asset.currency:
            return f"expected a base other than the quote currency, found {asset.base} on both"
        if asset.currency != "USD" and asset.base not in (None, "USD"):
            return (
                f"expected a pair against USD (USD/{asset.currency}, or {asset.base}/USD priced "
                f"in USD), found a cross {asset.base}/{asset.currency}"
            )
        return None
    if asset.base is not None:
        return f"expected base only on an fx pair, found it on class {asset.asset_class}"
    if asset.currency == "USD" and asset.fx_pair is not None:
        return f"expected no fx_pair on a USD-quoted asset, found {asset.fx_pair!r}"
    return None


def currency_problems(assets: list[Any]) -> list[tuple[str, str]]:
    """(key path, message) for every quote currency the scenario cannot translate into USD:
    a missing pair, a named pair that is not defined, not a pair, or quotes another
    currency, or several pairs and none named."""
    problems = []
    by_id = {a.id: a for a in assets}
    for asset in assets:
        if asset.asset_class == "fx" or asset.currency == "USD":
            continue
        currency, named, at = asset.currency, asset.fx_pair, f"assets.{asset.id}"
        pairs = quoting_pairs(currency, assets)
        pair = by_id.get(named)
        if named is not None and pair is None:
            found = f"expected a defined fx pair asset, found {named!r}"
        elif named is not None and pair.asset_class != "fx":
            found = f"expected an fx pair, found {named!r} of class {pair.asset_class}"
        elif named is not None and named not in [p.asset for p in pairs]:
            quoted = f"{pair_base(pair) or 'an index'}/{pair.currency}"
            found = f"expected a pair quoting {currency} against USD, found {named!r}: {quoted}"
        elif named is None and not pairs:
            at += ".currency"
            found = (
                f"expected an fx pair asset that translates {currency} into USD (USD{currency}: "
                f"class fx, currency {currency}; or {currency}USD: class fx, currency USD, "
                f"base {currency}), found none"
            )
        elif named is None and len(pairs) > 1:
            names = ", ".join(p.asset for p in pairs)
            found = f"expected fx_pair naming one of the pairs quoting {currency} ({names}), "
            found += "found none named"
        else:
            continue
        problems.append((at if at.endswith(".currency") else f"{at}.fx_pair", found))
    return problems

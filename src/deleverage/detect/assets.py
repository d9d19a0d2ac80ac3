"""What each price series is: its asset id, crash group, stress market and units.

Groups are the three legs of the Jan–Feb 2026 "liquidity black hole" (SPEC §0): a
safe haven (silver, gold), tech faith (Nasdaq-100, semis) and the speculative casino
(crypto). Markets are the CISS sub-index a series feeds (SPEC §7).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from deleverage.detect.errors import DataError, Problem

GROUPS = ("safe_haven", "tech", "speculative")
MARKETS = ("equity", "metals", "crypto", "fx_carry", "rates")
KINDS = ("price", "yield")

# Approximate hour (UTC, winter time) at which a daily close is struck, used to
# order daily bars honestly in UTC: a Tokyo close comes ~15 h before a New York one.
_CLOSE_UTC_BY_MARKET = {"crypto": 24.0, "equity": 21.0, "metals": 18.5, "fx_carry": 21.0}


@dataclass(frozen=True)
class AssetSpec:
    """One asset: id, crash group, CISS market, units and daily close time.

    kind "price": levels > 0, analysed as log returns; kind "yield": % p.a.,
    analysed as changes in percentage points. close_utc: hour of day (UTC) of the
    daily close, 24 = midnight at the end of the day.
    """

    id: str
    group: str | None = None
    market: str | None = None
    kind: str = "price"
    close_utc: float = 21.0

    @classmethod
    def parse(cls, text: str, source: str = "--asset") -> AssetSpec:
        """Parse "ID[:GROUP[:MARKET[:KIND[:CLOSE_UTC]]]]"; "none" clears a field."""
        parts = [p.strip() for p in text.split(":")]
        if not parts[0] or len(parts) > 5:
            raise DataError.one(source, text, "ID[:GROUP[:MARKET[:KIND[:CLOSE_UTC]]]]", text)
        fields = [*parts, "", "", "", ""][:5]
        ident, group, market, kind, close = fields
        group = None if group in ("", "none") else group
        market = None if market in ("", "none") else market
        problems = []
        if group is not None and group not in GROUPS:
            problems.append((source, f"{text} (group)", f"one of {', '.join(GROUPS)}", group))
        if market is not None and market not in MARKETS:
            problems.append((source, f"{text} (market)", f"one of {', '.join(MARKETS)}", market))
        if kind not in ("", *KINDS):
            problems.append((source, f"{text} (kind)", f"one of {', '.join(KINDS)}", kind))
        close_utc = _CLOSE_UTC_BY_MARKET.get(market or "", 21.0)
        if close:
            try:
                close_utc = float(close)
            except ValueError:
                close_utc = math.nan
            if not 0.0 <= close_utc <= 24.0:
                problems.append((source, f"{text} (close_utc)", "an hour 0-24", close))
        if problems:
            raise DataError([Problem(*p) for p in problems])
        return cls(ident.upper(), group, market, kind or "price", close_utc)


def _spec(ident: str, group: str | None, market: str, kind: str = "price", close=None):
    close_utc = _CLOSE_UTC_BY_MARKET.get(market, 21.0) if close is None else close
    return AssetSpec(ident, group, market, kind, close_utc)


# Recognised names, first match wins (so "nasdaq100" is tried before "nasdaq").
_ALIASES: tuple[tuple[tuple[str, ...], AssetSpec], ...] = (
    (("btc", "bitcoin", "xbt", "btcusd", "btcusdt"), _spec("BTC", "speculative", "crypto")),
    (("eth", "ether", "ethereum", "ethusd", "ethusdt"), _spec("ETH", "speculative", "crypto")),
    (("silver", "xag", "xagusd", "slv", "si"), _spec("SILVER", "safe_haven", "metals")),
    (("gold", "xau", "xauusd", "gld", "gc"), _spec("GOLD", "safe_haven", "metals")),
    (("copper", "hg"), _spec("COPPER", None, "metals")),
    (("nasdaq100", "ndx", "qqq", "nq"), _spec("NDX", "tech", "equity")),
    (("sox", "smh", "soxx", "semis"), _spec("SOX", "tech", "equity")),
    (("amd",), _spec("AMD", "tech", "equity")),
    (("nvda", "nvidia"), _spec("NVDA", "tech", "equity")),
    (("nasdaq", "ixic", "ccmp"), _spec("IXIC", "tech", "equity")),
    (("sp500", "spx", "gspc", "spy"), _spec("SPX", None, "equity")),
    (("nikkei", "nikkei225", "n225", "nkx", "nky"), _spec("NKY", None, "equity", close=6.0)),
    (("usdjpy", "dexjpus", "jpy"), _spec("USDJPY", None, "fx_carry")),
    (("dxy", "dtwexbgs", "usdx", "uup"), _spec("DXY", None, "fx_carry")),
)
_JGB = re.compile(r"jgb_?(\d+)y")
_UST = re.compile(r"(?:dgs|ust_?|us)(\d+)y?$")


def recognise(name: str) -> AssetSpec | None:
    """Default spec for a column, file or asset name, or None if not recognised."""
    lowered = name.lower()
    tokens = [t for t in re.split(r"[^a-z0-9]+", lowered) if t]
    compact = "".join(tokens)
    if m := _JGB.search(compact):
        return _spec(f"JGB{int(m.group(1))}Y", None, "rates", "yield", close=6.0)
    for token in tokens:
        if m := _UST.fullmatch(token):
            return _spec(f"UST{int(m.group(1))}Y", None, "rates", "yield")
    for aliases, spec in _ALIASES:
        if any(a in tokens for a in aliases) or compact in aliases:
            return spec
    return None


def default_spec(name: str) -> AssetSpec:
    """Recognised spec for a name, else an ungrouped price series named after it."""
    return recognise(name) or AssetSpec(re.sub(r"[^A-Z0-9_]+", "_", name.upper()).strip("_"))


def spec_for_class(ident: str, asset_class: str) -> AssetSpec:
    """Spec for a simulated asset from its scenario class (all simulated values are prices)."""
    known = recognise(ident)
    market = {
        "crypto": "crypto",
        "equity": "equity",
        "equity_index": "equity",
        "metal": "metals",
        "commodity": "metals",
        "fx": "fx_carry",
        "bond": "rates",
    }.get(asset_class)
    group = known.group if known else None
    return replace(_spec(ident, group, market or "equity"), id=ident, market=market)

"""Optional online adapters: download public daily series into a file `detect` reads.

Never used by the tests or by any other command; a user who is online runs
`deleverage fetch fred:DEXJPUS yahoo:SI=F ccxt:binance:BTC/USDT --out prices.csv`.
FRED needs nothing beyond the standard library; Yahoo and exchange APIs need the
`adapters` extra (`pip install "deleverage[adapters]"`: yfinance, ccxt).
"""

from __future__ import annotations

import importlib
import io
import urllib.parse
import urllib.request
from collections.abc import Callable

import pandas as pd

from deleverage.detect.errors import DataError

FRED_CSV = "https://fred.stlouisfed.org/graph/fredgraph.csv?id={series}"
Opener = Callable[[str], bytes]


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _optional(module: str, source: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError.one(
            source, module, 'the package (pip install "deleverage[adapters]")', "it missing"
        ) from None


def fetch_fred(series: str, opener: Opener = _download) -> pd.Series:
    """A FRED series (e.g. DEXJPUS, yen per dollar) as floats by date; '.' gaps dropped."""
    raw = opener(FRED_CSV.format(series=urllib.parse.quote(series)))
    frame = pd.read_csv(io.BytesIO(raw))
    if frame.shape[1] != 2:
        raise DataError.one(f"fred:{series}", "columns", "two (date, value)", str(list(frame)))
    values = pd.to_numeric(frame.iloc[:, 1], errors="coerce")
    series_out = pd.Series(values.to_numpy(), index=pd.to_datetime(frame.iloc[:, 0]), name=series)
    return series_out.dropna()


def fetch_yahoo(symbol: str) -> pd.Series:
    """Daily closes of a Yahoo Finance symbol (e.g. SI=F, ^SOX) via yfinance."""
    yfinance = _optional("yfinance", f"yahoo:{symbol}")
    history = yfinance.Ticker(symbol).history(period="max", interval="1d", auto_adjust=False)
    if history.empty:
        raise DataError.one(f"yahoo:{symbol}", "history", "daily prices", "none")
    closes = history["Close"]
    closes.index = pd.DatetimeIndex(closes.index).tz_localize(None).normalize()
    return closes.rename(symbol)


def fetch_exchange(exchange: str, market: str) -> pd.Series:
    """Daily closes (UTC days) of an exchange market via ccxt, e.g. binance, BTC/USDT."""
    ccxt = _optional("ccxt", f"ccxt:{exchange}:{market}")
    if not hasattr(ccxt, exchange):
        raise DataError.one(f"ccxt:{exchange}", "exchange", "one ccxt knows", repr(exchange))
    rows = getattr(ccxt, exchange)().fetch_ohlcv(market, timeframe="1d", limit=1000)
    frame = pd.DataFrame(rows, columns=["ms", "open", "high", "low", "close", "volume"])
    return pd.Series(
        frame.close.to_numpy(),
        index=pd.to_datetime(frame.ms, unit="ms"),
        name=f"{exchange}:{market}",
    )


def fetch(source: str, opener: Opener = _download) -> pd.Series:
    """One `SOURCE:SYMBOL` (fred:ID, yahoo:SYMBOL, ccxt:EXCHANGE:MARKET)."""
    kind, _, symbol = source.partition(":")
    if not symbol:
        raise DataError.one("fetch", source, "SOURCE:SYMBOL, e.g. fred:DEXJPUS", repr(source))
    if kind == "fred":
        return fetch_fred(symbol, opener)
    if kind == "yahoo":
        return fetch_yahoo(symbol)
    if kind == "ccxt":
        exchange, _, market = symbol.partition(":")
        return fetch_exchange(exchange, market)
    raise DataError.one("fetch", source, "a source fred, yahoo or ccxt", repr(kind))


def fetch_panel(sources: list[str], opener: Opener = _download) -> pd.DataFrame:
    """A wide daily table (date × series) that `deleverage detect` reads as it is."""
    columns = [fetch(source, opener) for source in sources]
    frame = pd.concat(columns, axis=1).sort_index()
    frame.index.name = "date"
    return frame

"""Reading observed series (drivers, price histories) from CSV or Parquet files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


class SeriesError(ValueError):
    """A series file cannot be used; the message says why."""


def read_series(path: Path, column: str, time_column: str) -> pd.Series:
    """Return the numeric column `column` indexed by UTC time, sorted, duplicates dropped."""
    if not path.is_file():
        raise SeriesError(f"expected a readable file, found no file at {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except Exception as exc:  # parser errors come in many types; all mean "unreadable"
        raise SeriesError(f"expected CSV or Parquet, could not read {path.name}: {exc}") from exc
    for name in (time_column, column):
        if name not in frame.columns:
            raise SeriesError(
                f"expected a column {name!r} in {path.name}, found columns {list(frame.columns)}"
            )
    times = pd.to_datetime(frame[time_column], utc=True, errors="coerce")
    values = pd.to_numeric(frame[column], errors="coerce")
    series = pd.Series(values.to_numpy(), index=pd.DatetimeIndex(times)).dropna()
    series = series[series.index.notna()].sort_index()
    series = series[~series.index.duplicated(keep="last")]
    if series.empty:
        raise SeriesError(
            f"expected numeric values in column {column!r} of {path.name}, found none"
        )
    return series


def history_series(history, start) -> pd.Series:
    """An asset's `history` (file or inline points) up to and including `start`, as prices
    indexed by UTC time. Nothing after the clock start is returned (SPEC §4)."""
    if history.file is not None:
        series = read_series(Path(history.file), history.column, history.time_column)
    else:
        times = pd.DatetimeIndex([pd.Timestamp(t) for t, _ in history.points])
        series = pd.Series([float(v) for _, v in history.points], index=times).sort_index()
        series = series[~series.index.duplicated(keep="last")]
    return series[series.index <= pd.Timestamp(start)]

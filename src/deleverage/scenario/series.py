"""Reading observed series (drivers, price histories) from CSV or Parquet files."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd


class SeriesError(ValueError):
    """A series file cannot be used; the message says why."""


def read_series(path: Path, column: str, time_column: str) -> pd.Series:
    """Return the numeric column `column` indexed by UTC time, sorted, duplicates dropped.
    A file is parsed once per content version (the loader, the engine and every population
    that reads an asset's history ask for it); each caller gets its own copy."""
    if not path.is_file():
        raise SeriesError(f"expected a readable file, found no file at {path}")
    stat = path.stat()
    version = (stat.st_mtime_ns, stat.st_size)
    return _parse(str(path.resolve()), version, column, time_column).copy()


@functools.lru_cache(maxsize=64)
def _parse(name: str, version: tuple[int, int], column: str, time_column: str) -> pd.Series:
    path = Path(name)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except Exception as exc:  # parser errors come in many types; all mean "unreadable"
        raise SeriesError(f"expected CSV or Parquet, could not read {path.name}: {exc}") from exc
    for wanted in (time_column, column):
        if wanted not in frame.columns:
            raise SeriesError(
                f"expected a column {wanted!r} in {path.name}, found columns {list(frame.columns)}"
            )
    # every row is used or the file is refused: a row silently dropped changes results
    raw_times = frame[time_column]
    times = pd.to_datetime(raw_times, utc=True, errors="coerce", format="mixed")
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for bad, wanted, shown in (
        (times.isna().to_numpy(), "a date or timestamp", raw_times),
        (~np.isfinite(values.to_numpy()), "a finite number", frame[column]),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SeriesError(
                f"{path.name} row {row + 2}: expected {wanted} in column "
                f"{time_column if shown is raw_times else column!r}, found {shown.iloc[row]!r} "
                f"({int(bad.sum())} such rows)"
            )
    series = pd.Series(values.to_numpy(), index=pd.DatetimeIndex(times)).sort_index()
    series = series[~series.index.duplicated(keep="last")]
    if series.empty:
        raise SeriesError(
            f"expected numeric values in column {column!r} of {path.name}, found none"
        )
    return series


def history_series(history, start) -> pd.Series:
    """An asset's `history` (file or inline points) up to and including `start`, as prices
    indexed by the UTC time each became known: bars dated at their open (`stamp: open`)
    are moved to their close, `bar` later. Nothing after the clock start is returned
    (SPEC §4)."""
    if history.file is not None:
        series = read_series(Path(history.file), history.column, history.time_column)
    else:
        times = pd.DatetimeIndex([pd.Timestamp(t) for t, _ in history.points])
        series = pd.Series([float(v) for _, v in history.points], index=times).sort_index()
        series = series[~series.index.duplicated(keep="last")]
    if history.stamp == "open":
        series.index = series.index + pd.Timedelta(history.bar)
    return series[series.index <= pd.Timestamp(start)]

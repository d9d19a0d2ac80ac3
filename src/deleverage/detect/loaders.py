"""Read user price files into one aligned panel, with every repair reported.

Sources are CSV, Parquet, a DuckDB table (`file.duckdb:table`) or a pandas frame;
each is wide (one column per asset) or long (time, asset key, value). A source may
end in `#KEY,KEY` to keep only those columns or asset keys. Anything that cannot be
used as given is a `Problem` (all are collected, then raised as one `DataError`);
anything fixed on the way (sorting, exact duplicates, missing-value markers, calendar
fills, trimming to the common span) is a line in `Panel.repairs`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from deleverage.detect.assets import AssetSpec, default_spec
from deleverage.detect.errors import DataError, Problem

TIME_COLUMNS = ("datetime_utc", "datetime", "timestamp", "time", "date", "ts")
KEY_COLUMNS = ("symbol", "asset", "ticker", "coin", "instrument", "series")
# Preferred value column when a file holds one series in several columns (OHLC, fixes).
VALUE_COLUMNS = ("close", "adj_close", "price", "value", "settle", "usd", "usd_pm", "usd_am")
IGNORED_COLUMNS = ("open", "high", "low", "volume", "source", "quote_volume", "trade_count")
SOURCE_COLUMNS = ("source", "provider", "vendor")
# Sources of one asset may differ by this much (median |log ratio| where they overlap)
# before they count as two different series: close times and fixes differ a little.
MAX_SOURCE_GAP = 0.02
# No observation for longer than this is a data gap (marked missing), not a shut
# market: the longest regular closure is a holiday weekend (~3.7 days for US stocks).
MAX_CLOSED = pd.Timedelta(days=4)
MISSING_MARKERS = ("", ".", "-", "na", "n/a", "nan", "null", "none", "#n/a")
_OFFSET = re.compile(r"(?:z|[+-]\d\d:?\d\d)$", re.IGNORECASE)


@dataclass(frozen=True)
class Series:
    """One asset's observations: UTC timestamps (sorted, unique) and float values."""

    spec: AssetSpec
    values: pd.Series
    source: str


@dataclass(frozen=True)
class Panel:
    """Aligned levels of every asset on one bar calendar.

    prices: UTC DatetimeIndex (a daily bar is stamped at 00:00 UTC of its date),
    one column per asset id, prices or yields in % p.a. fresh: True where the
    value was observed in that bar rather than carried forward. gap: True where the
    carried value sits in a data gap (no observation for longer than MAX_CLOSED, longer
    than any weekend or holiday), i.e. missing rather than a shut market.
    """

    prices: pd.DataFrame
    assets: dict[str, AssetSpec]
    fresh: pd.DataFrame
    daily: bool
    repairs: tuple[str, ...] = ()
    gap: pd.DataFrame | None = None

    def gaps(self) -> pd.DataFrame:
        """The gap mask (all False when none was recorded)."""
        if self.gap is None:
            return pd.DataFrame(False, index=self.prices.index, columns=self.prices.columns)
        return self.gap

    def observed(self) -> pd.DataFrame:
        """On the returns' bars: True where the return is a real observation.

        False where the value was carried forward (a shut market or a holiday), inside
        a data gap, and on the first bar after a gap (its return spans the gap).
        """
        gap = self.gaps()
        after_gap = gap.shift(1, fill_value=False) & ~gap
        return (self.fresh & ~gap & ~after_gap).iloc[1:]

    def returns(self) -> pd.DataFrame:
        """Per-bar log returns (prices) or changes in percentage points (yields)."""
        out = {}
        for ident, spec in self.assets.items():
            level = self.prices[ident]
            out[ident] = level.diff() if spec.kind == "yield" else np.log(level).diff()
        return pd.DataFrame(out, index=self.prices.index).iloc[1:]

    def head(self, n: int) -> Panel:
        """The first n bars, as if the data had ended there."""
        gap = None if self.gap is None else self.gap.iloc[:n]
        return Panel(
            self.prices.iloc[:n], self.assets, self.fresh.iloc[:n], self.daily, self.repairs, gap
        )

    def span(self, start: str | None = None, end: str | None = None) -> Panel:
        """The bars from start to end (inclusive, UTC dates or times)."""
        keep = self.prices.loc[start:end].index
        note = f"calendar: restricted to {keep[0]} .. {keep[-1]}"
        return Panel(
            self.prices.loc[keep],
            self.assets,
            self.fresh.loc[keep],
            self.daily,
            (*self.repairs, note),
            None if self.gap is None else self.gap.loc[keep],
        )

    def bar_interval(self, ident: str, time: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
        """UTC interval (start, end] over which asset `ident`'s bar at `time` moved."""
        pos = self.prices.index.get_loc(time)
        prev = self.prices.index[max(pos - 1, 0)]
        if not self.daily:
            return prev, time
        close = pd.Timedelta(hours=self.assets[ident].close_utc)
        return prev + close, time + close


# ----------------------------------------------------------------------------- reading


def split_source(text: str) -> tuple[Path, str | None, tuple[str, ...] | None]:
    """Split "PATH[:TABLE][#KEY,KEY]" into path, DuckDB table and selected keys."""
    keys = None
    if "#" in text:
        text, _, selected = text.rpartition("#")
        keys = tuple(k.strip() for k in selected.split(",") if k.strip())
    table = None
    m = re.fullmatch(r"(.+\.(?:duckdb|db)):([^:/\\]+)", text)
    if m:
        text, table = m.group(1), m.group(2)
    return Path(text), table, keys


def _read(path: Path, table: str | None) -> pd.DataFrame:
    label = str(path)
    if not path.is_file():
        raise DataError.one(label, "file", "an existing file", "no such file")
    suffix = path.suffix.lower()
    if suffix in (".duckdb", ".db"):
        if table is None:
            raise DataError.one(label, "table", "PATH.duckdb:TABLE", "no table named")
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
                if table not in tables:
                    found = f"'{table}' not among tables [{', '.join(tables)}]"
                    raise DataError.one(label, "table", "an existing table", found)
                return con.execute(f'SELECT * FROM "{table}"').df()
        except duckdb.Error as exc:
            found = str(exc).strip().splitlines()[0]
            raise DataError.one(label, "file", "a DuckDB database", found) from None
    if suffix in (".parquet", ".pq"):
        try:
            with duckdb.connect() as con:
                return con.execute("SELECT * FROM read_parquet(?)", [str(path)]).df()
        except duckdb.Error as exc:
            raise DataError.one(label, "file", "a Parquet file", str(exc).splitlines()[0]) from None
    if suffix in (".csv", ".txt", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        try:
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            found = str(exc).strip().splitlines()[0] or "unreadable text"
            raise DataError.one(
                label, "file", "comma-separated text with a header", found
            ) from None
    found = f"extension '{path.suffix}'"
    raise DataError.one(label, "file", ".csv, .tsv, .parquet or .duckdb:TABLE", found)


def _row(frame_kind: str, i: int) -> str:
    # CSV line numbers count the header; other sources count rows from 1.
    return f"line {i + 2}" if frame_kind == "csv" else f"row {i + 1}"


def _examples(values: pd.Series, mask: np.ndarray, frame_kind: str) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(f"'{values.iloc[i]}' at {_row(frame_kind, i)}" for i in idx[:3])
    more = f" (and {len(idx) - 3} more)" if len(idx) > 3 else ""
    return shown + more


def _parse_times(raw: pd.Series, tz: str | None, label: str, col: str, frame_kind: str):
    """(UTC timestamps, whether naive times of day were assumed UTC, problems).

    Naive times are taken in `tz` (default UTC); timestamps with an offset are converted.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC"), False, []
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        clock = (raw != raw.dt.normalize()).any()
        try:
            local = raw.dt.tz_localize(tz or "UTC")
        except (ValueError, TypeError) as exc:  # DST gaps/folds in a local zone
            problem = Problem(label, col, f"unambiguous local times in {tz}", str(exc))
            return raw.dt.tz_localize("UTC"), False, [problem]
        return local.dt.tz_convert("UTC"), tz is None and clock, []
    text = raw.astype(str).str.strip()
    has_offset = text.str.contains(_OFFSET).to_numpy()
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if has_offset.any():
        out[has_offset] = pd.to_datetime(
            text[has_offset], utc=True, errors="coerce", format="ISO8601"
        )
    naive = ~has_offset
    assumed_utc = False
    if naive.any():
        parsed = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
        assumed_utc = tz is None and bool((parsed != parsed.dt.normalize()).any())
        try:
            out[naive] = parsed.dt.tz_localize(tz or "UTC").dt.tz_convert("UTC")
        except (ValueError, TypeError) as exc:  # DST gaps/folds in a local zone
            return out, False, [Problem(label, col, f"unambiguous local times in {tz}", str(exc))]
    bad = out.isna().to_numpy()
    if bad.any():
        found = _examples(text, bad, frame_kind)
        return out, False, [Problem(label, col, "ISO 8601 dates or timestamps", found)]
    return out, assumed_utc, []


def _parse_values(raw: pd.Series, label: str, key: str, frame_kind: str):
    """Floats from a column; missing-value markers become NaN, other text is a problem."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype(float), 0, []
    text = raw.astype(str).str.strip()
    missing = text.str.lower().isin(MISSING_MARKERS).to_numpy() | raw.isna().to_numpy()
    values = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = values.isna().to_numpy() & ~missing
    if bad.any():
        found = _examples(text, bad, frame_kind)
        return values, 0, [Problem(label, key, "numbers (or an empty cell for missing)", found)]
    return values.astype(float), int(missing.sum()), []


def _find(columns: Sequence[str], names: Sequence[str]) -> str | None:
    lowered = {c.lower().strip(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _layout(frame: pd.DataFrame, stem: str, label: str, keys):
    """(time column, {series name: (value column, row mask)}, ignored columns)."""
    columns = [str(c) for c in frame.columns]
    time_col = _find(columns, TIME_COLUMNS)
    if time_col is None:
        found = f"columns [{', '.join(columns)}]"
        raise DataError.one(label, "time column", f"a column named {'/'.join(TIME_COLUMNS)}", found)
    key_col = _find(columns, KEY_COLUMNS)
    ignored: list[str] = []
    if key_col is not None:
        value_col = _find(columns, VALUE_COLUMNS)
        if value_col is None:
            found = f"columns [{', '.join(columns)}]"
            raise DataError.one(label, "value column", f"one of {'/'.join(VALUE_COLUMNS)}", found)
        names = pd.unique(frame[key_col].astype(str).str.strip())
        selected = [n for n in names if keys is None or n in keys]
        layout = {
            n: (value_col, (frame[key_col].astype(str).str.strip() == n).to_numpy())
            for n in selected
        }
        missing = [k for k in keys or () if k not in names]
        expected, found = f"asset keys in column '{key_col}'", ", ".join(missing)
    else:
        rest = [c for c in columns if c != time_col and c.lower() not in IGNORED_COLUMNS]
        preferred = _find(rest, VALUE_COLUMNS)
        everything = np.ones(len(frame), dtype=bool)
        if keys is None and preferred is not None:
            layout = {stem: (preferred, everything)}
            ignored = [c for c in columns if c not in (time_col, preferred)]
        else:
            selected = [c for c in rest if keys is None or c in keys]
            layout = {c: (c, everything) for c in selected}
        missing = [k for k in keys or () if k not in columns]
        expected, found = "column names", ", ".join(missing)
    if missing:
        raise DataError.one(label, "#selection", expected, found)
    if not layout:
        raise DataError.one(label, "value columns", "at least one price column", "none")
    return time_col, layout, ignored


def read_source(
    source: str | Path | pd.DataFrame,
    assets: Mapping[str, AssetSpec],
    tz: str | None = None,
    used: set[str] | None = None,
) -> tuple[list[Series], list[str]]:
    """Series and repair notes from one source; raises DataError listing every problem."""
    if isinstance(source, pd.DataFrame):
        frame, label, keys, kind, stem = source, "<frame>", None, "frame", "value"
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.rename_axis("time").reset_index()
    else:
        path, table, keys = split_source(str(source))
        label = str(source).split("#")[0]
        frame = _read(path, table)
        kind = "csv" if path.suffix.lower() in (".csv", ".txt", ".tsv") else "table"
        stem = table or path.stem
    if frame.empty:
        raise DataError.one(label, "rows", "at least one data row", "none")
    frame = frame.reset_index(drop=True)
    time_col, layout, ignored_cols = _layout(frame, stem, label, keys)
    ignored = f"; ignored columns {', '.join(ignored_cols)}" if ignored_cols else ""
    source_col = _find([str(c) for c in frame.columns], SOURCE_COLUMNS)
    repairs = []
    times, assumed_utc, problems = _parse_times(frame[time_col], tz, label, time_col, kind)
    if assumed_utc:
        repairs.append(f"{label}: {time_col}: times of day without a time zone taken as UTC")
    out = []
    for name, (col, mask) in layout.items():
        spec = assets.get(name) or assets.get(name.lower()) or default_spec(name)
        if used is not None:
            used.update({name, name.lower()})
        key = name if col == name else f"{col} ({name})"
        values, n_missing, bad = _parse_values(frame[col][mask], label, key, kind)
        problems += bad
        if bad:
            continue
        s = pd.Series(values.to_numpy(), index=pd.DatetimeIndex(times[mask]), name=spec.id)
        keep = (s.notna() & s.index.notna()).to_numpy()
        s = s[keep]
        if n_missing:
            repairs.append(f"{label}: {key}: {n_missing} missing values skipped")
        groups = f"group {spec.group or '-'}, market {spec.market or '-'}, {spec.kind}"
        repairs.append(f"{label}: {key} read as {spec.id} ({groups}){ignored}")
        origin = frame[source_col][mask][keep] if source_col else None
        if origin is not None and origin.nunique() > 1:
            parts = []
            for name_src in pd.unique(origin):
                part, notes, issues = _clean(
                    s[(origin == name_src).to_numpy()], spec, label, f"{key} [{name_src}]"
                )
                repairs += notes
                problems += issues
                if part is not None:
                    parts.append((str(name_src), part))
            series, notes, issues = merge_sources(parts, label, key)
        else:
            series, notes, issues = _clean(s, spec, label, key)
        repairs += notes
        problems += issues
        if series is not None:
            out.append(Series(spec, series, label))
    if problems:
        raise DataError(problems)
    return out, repairs


def _clean(s: pd.Series, spec: AssetSpec, label: str, key: str):
    """Sort, drop exact duplicate rows, refuse conflicting duplicates and bad prices."""
    notes, problems = [], []
    if s.empty:
        return None, notes, [Problem(label, key, "at least one numeric value", "none")]
    if not s.index.is_monotonic_increasing:
        s = s.sort_index(kind="stable")
        notes.append(f"{label}: {key}: rows sorted by time")
    dup = s.index.duplicated(keep=False)
    if dup.any():
        groups = s[dup].groupby(level=0)
        conflicting = groups.nunique() > 1
        if conflicting.any():
            stamps = [t.isoformat() for t in conflicting[conflicting].index[:3]]
            found = f"different values at the same time {', '.join(stamps)}"
            problems.append(Problem(label, key, "one value per timestamp", found))
        else:
            n = int(s.index.duplicated().sum())
            notes.append(f"{label}: {key}: {n} exact duplicate rows dropped")
        s = s[~s.index.duplicated()]
    if not np.isfinite(s.to_numpy()).all():
        bad = s[~np.isfinite(s.to_numpy())]
        found = f"{bad.iloc[0]} at {bad.index[0].isoformat()} ({len(bad)} such)"
        problems.append(Problem(label, key, "finite numbers", found))
    elif spec.kind == "price" and (s <= 0).any():
        first = s[s <= 0]
        found = f"{first.iloc[0]} at {first.index[0].isoformat()} ({len(first)} such)"
        problems.append(Problem(label, key, "prices > 0 (or map it as a yield)", found))
    return s, notes, problems


def merge_sources(parts: list[tuple[str, pd.Series]], label: str, key: str):
    """One series from several sources of the same asset, by a stated rule.

    The source with the most observations is primary (ties: the first given); at a
    timestamp where it has no value the next source in that order fills it. Where
    sources overlap, their median |log ratio| must stay within MAX_SOURCE_GAP, or they
    are two different series (a problem, not a guess).
    """
    if len(parts) == 1:
        return parts[0][1], [], []
    ranked = sorted(parts, key=lambda p: -len(p[1]))
    merged = ranked[0][1]
    counts = []
    for name, s in ranked[1:]:
        common = merged.index.intersection(s.index)
        if len(common):
            a, b = merged.loc[common].to_numpy(), s.loc[common].to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                diff = np.abs(np.log(a / b)) if (a > 0).all() and (b > 0).all() else np.abs(a - b)
            gap = float(np.median(diff))
            if gap > MAX_SOURCE_GAP:
                found = (
                    f"{ranked[0][0]} and {name} differ by median {gap:.1%} on {len(common)} bars"
                )
                problem = Problem(
                    label, key, f"sources within {MAX_SOURCE_GAP:.0%} of each other", found
                )
                return None, [], [problem]
        added = s.index.difference(merged.index)
        counts.append(f"{name} fills {len(added)} of its {len(s)} bars")
        merged = pd.concat([merged, s.loc[added]]).sort_index()
    note = (
        f"{label}: {key}: {len(parts)} sources; {ranked[0][0]} ({len(ranked[0][1])} bars) "
        f"is primary, {'; '.join(counts)} (rule: most observations first, others fill gaps)"
    )
    return merged, [note], []


# ---------------------------------------------------------------------------- aligning


def _spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    """Median time between consecutive observations."""
    return (index[1:] - index[:-1]).median()


def _is_daily(s: pd.Series) -> bool:
    idx = s.index
    if len(idx) < 2:
        return True
    midnight = (idx == idx.normalize()).all()
    return bool(midnight or _spacing(idx) >= pd.Timedelta(hours=20))


def _daily(series: list[Series], repairs: list[str]):
    by_date = {}
    for s in series:
        dated = s.values.copy()
        dated.index = s.values.index.normalize()
        if dated.index.has_duplicates:
            dated = dated.groupby(level=0).last()
            repairs.append(
                f"{s.source}: {s.spec.id}: intraday values reduced to the last per UTC day"
            )
        by_date[s.spec.id] = dated
    weekend = {k: float((v.index.day_of_week >= 5).mean()) for k, v in by_date.items()}
    weekday_only = [k for k, share in weekend.items() if share < 0.05]
    start = max(v.index[0] for v in by_date.values())
    end = min(v.index[-1] for v in by_date.values())
    base = weekday_only or list(by_date)
    calendar = pd.DatetimeIndex(sorted(set().union(*(by_date[k].index for k in base))))
    calendar = calendar[(calendar >= start) & (calendar <= end)]
    if weekday_only and len(weekday_only) < len(by_date):
        seven = [k for k in by_date if k not in weekday_only]
        repairs.append(
            f"calendar: weekdays (as {', '.join(weekday_only)} trade); weekend moves of "
            f"{', '.join(seven)} fold into the next weekday bar"
        )
    return by_date, calendar, start, end


def _duration(step: pd.Timedelta) -> str:
    minutes = step / pd.Timedelta("1min")
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes / 60:g}h"
    return f"{minutes:g}min" if minutes >= 1 else f"{step.total_seconds():g}s"


def _intraday(series: list[Series], step: pd.Timedelta | None, repairs: list[str]):
    spacings = [_spacing(s.values.index) for s in series]
    step = step or max(*spacings, pd.Timedelta("1h"))
    if step > min(spacings):
        repairs.append(
            f"calendar: {_duration(step)} bars (finest input every "
            f"{_duration(min(spacings))}); each bar holds the last value in it"
        )
    by_bar = {}
    for s in series:
        binned = s.values.resample(step, label="right", closed="right").last().dropna()
        by_bar[s.spec.id] = binned
    start = max(v.index[0] for v in by_bar.values())
    end = min(v.index[-1] for v in by_bar.values())
    calendar = pd.date_range(start, end, freq=step)
    return by_bar, calendar, start, end


def _data_gaps(observed: pd.DatetimeIndex, calendar: pd.DatetimeIndex) -> pd.Series:
    """True at bars whose last and next observations are more than MAX_CLOSED apart."""
    times = observed.as_unit("ns").asi8
    after = np.searchsorted(times, calendar.as_unit("ns").asi8, side="left")
    before = np.searchsorted(times, calendar.as_unit("ns").asi8, side="right") - 1
    prev = times[np.clip(before, 0, len(times) - 1)]
    nxt = times[np.clip(after, 0, len(times) - 1)]
    known = (before >= 0) & (after < len(times))
    wide = (nxt - prev) > MAX_CLOSED.value
    return pd.Series(known & wide, index=calendar)


def _stamp(t: pd.Timestamp) -> str:
    return str(t.date()) if t == t.normalize() else t.isoformat()


def align(series: list[Series], freq: str | None = None, repairs=()) -> Panel:
    """Put every series on one UTC bar calendar (daily if any series is daily)."""
    repairs = list(repairs)
    problems = []
    by_id: dict[str, list[Series]] = {}
    for s in series:
        by_id.setdefault(s.spec.id, []).append(s)
    series = []
    for ident, same in by_id.items():
        if len(same) == 1:
            series.append(same[0])
            continue
        parts = [(s.source, s.values) for s in same]
        merged, notes, issues = merge_sources(parts, " + ".join(p[0] for p in parts), ident)
        repairs += notes
        problems += issues
        if merged is not None:
            series.append(Series(same[0].spec, merged, " + ".join(p[0] for p in parts)))
    if not series and not problems:
        problems.append(Problem("input", "assets", "at least one price series", "none"))
    if problems:
        raise DataError(problems)
    daily = any(_is_daily(s.values) for s in series)
    step = None
    if freq is not None:
        try:
            step = pd.Timedelta(freq)
        except ValueError:
            step = pd.Timedelta(0)
        if step <= pd.Timedelta(0):
            raise DataError.one("--freq", freq, "a bar length such as 1h or 15min", repr(freq))
        if daily:
            repairs.append(f"calendar: --freq {freq} ignored, as daily series set daily bars")
    by_bar, calendar, start, end = (
        _daily(series, repairs) if daily else _intraday(series, step, repairs)
    )
    if len(calendar) == 0:
        spans = "; ".join(
            f"{k} {v.index[0].date()}..{v.index[-1].date()}" for k, v in by_bar.items()
        )
        raise DataError.one("input", "time span", "overlapping dates across assets", spans)
    late = [k for k, v in by_bar.items() if v.index[0] == start]
    early = [k for k, v in by_bar.items() if v.index[-1] == end]
    if any(v.index[0] < start or v.index[-1] > end for v in by_bar.values()):
        repairs.append(
            f"calendar: common span {_stamp(start)} .. {_stamp(end)} kept (starts with "
            f"{', '.join(late)}; ends with {', '.join(early)})"
        )
    prices, fresh, gaps = {}, {}, {}
    for k, v in by_bar.items():
        fresh[k] = v.reindex(calendar).notna()
        gaps[k] = _data_gaps(v.index, calendar) & ~fresh[k]
        if gaps[k].any():
            repairs.append(
                f"{k}: {int(gaps[k].sum())} bars inside data gaps longer than "
                f"{MAX_CLOSED.days} days marked missing (not a shut market)"
            )
        # Carry the last observation at or before each bar (also from before the span).
        prices[k] = v.reindex(v.index.union(calendar)).ffill().reindex(calendar)
        filled = int((~fresh[k]).sum())
        if filled:
            runs = (~fresh[k]).astype(int).groupby(fresh[k].cumsum()).sum()
            repairs.append(
                f"{k}: {filled} bars without a value carried forward "
                f"(longest run {int(runs.max())})"
            )
    prices = pd.DataFrame(prices, index=calendar)
    assets = {s.spec.id: s.spec for s in series}
    return Panel(
        prices,
        assets,
        pd.DataFrame(fresh, index=calendar),
        daily,
        tuple(repairs),
        pd.DataFrame(gaps, index=calendar),
    )


def load_panel(
    sources: Sequence[str | Path | pd.DataFrame],
    assets: Mapping[str, AssetSpec | str] | None = None,
    tz: str | None = None,
    freq: str | None = None,
) -> Panel:
    """Read every source, map names to assets, and align them on one calendar."""
    specs = {
        k: v if isinstance(v, AssetSpec) else AssetSpec.parse(v, f"asset {k}")
        for k, v in (assets or {}).items()
    }
    if tz is not None:
        try:
            pd.Timestamp("2000-01-01").tz_localize(tz)
        except (KeyError, ValueError, TypeError):
            raise DataError.one(
                "--tz", tz, "an IANA time zone such as Asia/Tokyo", repr(tz)
            ) from None
    series, repairs, problems, used = [], [], [], set()
    for source in sources:
        try:
            got, notes = read_source(source, specs, tz, used)
        except DataError as exc:
            problems += exc.problems
            continue
        series += got
        repairs += notes
    unknown = [k for k in specs if k not in used and k.lower() not in used]
    problems += [
        Problem("--asset", k, "a column, asset key or file name in the inputs", "no match")
        for k in unknown
    ]
    if problems:
        raise DataError(problems)
    return align(series, freq, repairs)

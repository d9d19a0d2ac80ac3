"""Loaders: formats, layouts, time zones, calendars, and every repair reported."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from detect_helpers import synthetic_prices

from deleverage.detect import AssetSpec, DataError
from deleverage.detect.assets import recognise
from deleverage.detect.loaders import load_panel, split_source


def _write(path, text: str):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("name", "ident", "group", "market", "kind"),
    [
        ("btc_usd_daily_yahoo", "BTC", "speculative", "crypto", "price"),
        ("silver_futures_comex_yahoo_daily", "SILVER", "safe_haven", "metals", "price"),
        ("nasdaq100_daily_close", "NDX", "tech", "equity", "price"),
        ("nasdaq_composite_daily", "IXIC", "tech", "equity", "price"),
        ("^SOX", "SOX", "tech", "equity", "price"),
        ("jgb_10y", "JGB10Y", None, "rates", "yield"),
        ("dgs10", "UST10Y", None, "rates", "yield"),
        ("usdjpy_fred_dexjpus_daily", "USDJPY", None, "fx_carry", "price"),
        ("GC=F", "GOLD", "safe_haven", "metals", "price"),
    ],
)
def test_recognised_names_get_sensible_defaults(name, ident, group, market, kind):
    spec = recognise(name)
    assert (spec.id, spec.group, spec.market, spec.kind) == (ident, group, market, kind)


def test_unrecognised_names_are_not_guessed():
    assert recognise("vix_cboe_daily") is None


def test_asset_spec_parses_every_field():
    spec = AssetSpec.parse("ZZ:tech:equity:price:14.5")
    assert spec == AssetSpec("ZZ", "tech", "equity", "price", 14.5)
    assert AssetSpec.parse("yy:none:rates:yield").group is None


def test_split_source_reads_table_and_key_selection():
    assert split_source("a/b.duckdb:prices#BTC,ETH") == (
        Path("a/b.duckdb"),
        "prices",
        ("BTC", "ETH"),
    )
    assert split_source("c.csv") == (Path("c.csv"), None, None)


def test_wide_csv_with_offsets_is_converted_to_utc_and_sorted(tmp_path):
    path = _write(
        tmp_path / "p.csv",
        "time,btc,eth\n"
        "2026-01-01T10:00:00+09:00,100,10\n"
        "2026-01-01T00:00:00+00:00,99,9\n"
        "2026-01-01T02:00:00+00:00,101,11\n",
    )
    panel = load_panel([path], freq="1h")
    assert list(panel.prices.columns) == ["BTC", "ETH"]
    assert str(panel.prices.index.tz) == "UTC"
    # 10:00+09:00 is 01:00 UTC: the three rows are 00:00, 01:00, 02:00 UTC
    np.testing.assert_allclose(panel.prices["BTC"], [99, 100, 101])
    assert any("rows sorted by time" in r for r in panel.repairs)


def test_naive_timestamps_can_be_given_a_zone(tmp_path):
    path = _write(
        tmp_path / "p.csv", "time,btc\n2026-01-05 09:00,1\n2026-01-05 10:00,2\n2026-01-05 11:00,3\n"
    )
    panel = load_panel([path], tz="America/New_York", freq="1h")
    assert panel.prices.index[0] == pd.Timestamp("2026-01-05 14:00", tz="UTC")


def test_long_format_with_missing_markers_and_exact_duplicates_is_repaired(tmp_path):
    path = _write(
        tmp_path / "long.csv",
        "date,symbol,close\n"
        "2026-01-05,QQQ,10\n2026-01-05,GLD,5\n2026-01-06,QQQ,.\n"
        "2026-01-06,GLD,6\n2026-01-06,GLD,6\n2026-01-07,QQQ,12\n2026-01-07,GLD,7\n",
    )
    panel = load_panel([path])
    assert set(panel.prices.columns) == {"NDX", "GOLD"}
    assert panel.prices.loc["2026-01-06", "NDX"].item() == 10  # carried forward
    assert not panel.fresh.loc["2026-01-06", "NDX"].item()
    repairs = "\n".join(panel.repairs)
    assert "1 missing values skipped" in repairs
    assert "1 exact duplicate rows dropped" in repairs
    assert "NDX: 1 bars without a value carried forward" in repairs


def test_key_selection_keeps_only_the_named_columns(tmp_path):
    path = _write(tmp_path / "y.csv", "date,jgb_2y,jgb_10y\n2026-01-05,1,2\n2026-01-06,1,2.1\n")
    panel = load_panel([path + "#jgb_10y"])
    assert list(panel.prices.columns) == ["JGB10Y"]
    assert panel.assets["JGB10Y"].kind == "yield"


def test_seven_day_crypto_folds_into_the_weekday_calendar(tmp_path):
    days = pd.date_range("2026-01-02", "2026-01-12", freq="D")  # Fri .. Mon
    btc = _write(
        tmp_path / "btc.csv",
        "date,close\n" + "".join(f"{d.date()},{100 + i}\n" for i, d in enumerate(days)),
    )
    weekdays = days[days.day_of_week < 5]
    ndx = _write(
        tmp_path / "ndx.csv",
        "date,close\n" + "".join(f"{d.date()},{200 + i}\n" for i, d in enumerate(weekdays)),
    )
    panel = load_panel([btc, ndx])
    assert (panel.prices.index.day_of_week < 5).all()
    # Monday 5 Jan's BTC price includes the weekend move: 100 (Fri) -> 103 (Mon)
    assert panel.prices.loc["2026-01-05", "BTC"].item() == 103
    assert any("weekend moves of BTC fold into the next weekday bar" in r for r in panel.repairs)


def test_intraday_inputs_are_sampled_on_a_common_utc_grid(tmp_path):
    prices = synthetic_prices(48, freq="15min")[["BTC", "NDX"]]
    panel = load_panel([prices])
    assert not panel.daily
    assert panel.prices.index.freq == pd.Timedelta("1h")
    assert any("1h bars (finest input every 15min)" in r for r in panel.repairs)


def test_parquet_and_duckdb_tables_load_like_csv(tmp_path):
    frame = synthetic_prices(30)[["BTC", "GOLD"]].rename_axis("date").reset_index()
    frame["date"] = frame["date"].dt.tz_localize(None)
    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE prices AS SELECT * FROM frame")
        con.execute(f"COPY prices TO '{tmp_path / 'p.parquet'}' (FORMAT parquet)")
    from_db = load_panel([f"{tmp_path / 'store.duckdb'}:prices"])
    from_parquet = load_panel([str(tmp_path / "p.parquet")])
    pd.testing.assert_frame_equal(from_db.prices, from_parquet.prices)
    np.testing.assert_allclose(from_db.prices["GOLD"], frame["GOLD"])


def test_all_problems_of_all_files_are_reported_together(tmp_path):
    bad_value = _write(tmp_path / "a.csv", "date,btc\n2026-01-05,1\n2026-01-06,abc\n")
    bad_date = _write(tmp_path / "b.csv", "date,gold\n2026-01-05,1\n31/01/2026,2\n")
    with pytest.raises(DataError) as caught:
        load_panel([bad_value, bad_date, str(tmp_path / "missing.csv")])
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{bad_value}: btc: expected numbers")
    assert "'abc' at line 3" in lines[0]
    assert "'31/01/2026' at line 3" in lines[1]
    assert "no such file" in lines[2]
    assert caught.value.problems[1].key == "date"

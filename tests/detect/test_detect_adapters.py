"""The optional online adapters, tested without any network: a fake opener stands in."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from deleverage.cli.main import app
from deleverage.detect import DataError
from deleverage.detect.adapters import FRED_CSV, fetch, fetch_panel
from deleverage.detect.loaders import load_panel

FRED = b"observation_date,DEXJPUS\n2026-01-29,152.88\n2026-01-30,.\n2026-02-02,155.2\n"


def fake_opener(seen):
    def opener(url):
        seen.append(url)
        return FRED

    return opener


def test_fred_series_are_parsed_with_their_gaps_dropped():
    seen = []
    series = fetch("fred:DEXJPUS", fake_opener(seen))
    assert seen == [FRED_CSV.format(series="DEXJPUS")]
    assert series.to_dict() == {
        pd.Timestamp("2026-01-29"): 152.88,
        pd.Timestamp("2026-02-02"): 155.2,
    }


def test_a_fetched_panel_is_a_file_detect_reads(tmp_path):
    frame = fetch_panel(["fred:DEXJPUS"], fake_opener([]))
    path = tmp_path / "usdjpy.csv"
    frame.to_csv(path)
    panel = load_panel([str(path)])
    assert list(panel.prices.columns) == ["USDJPY"]  # the FRED id is recognised as the yen pair
    assert panel.prices["USDJPY"].tolist() == [152.88, 155.2]


@pytest.mark.parametrize("source, key", [("nope:X", "nope:X"), ("fred", "fred")])
def test_bad_sources_are_user_errors(source, key):
    with pytest.raises(DataError, match=key):
        fetch(source, fake_opener([]))


def test_a_missing_optional_package_is_a_clear_exit_2(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_yfinance(name, *args, **kwargs):
        if name == "yfinance":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yfinance)
    out = tmp_path / "x.csv"
    result = CliRunner().invoke(app, ["fetch", "yahoo:SI=F", "--out", str(out)])
    assert result.exit_code == 2
    assert "deleverage[adapters]" in result.stderr
    assert not out.exists()

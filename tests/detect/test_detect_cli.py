"""`deleverage detect` through the CLI: malformed inputs exit 2 with one line per problem."""

from __future__ import annotations

import json
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest
import typer
from detect_helpers import synthetic_prices
from typer.testing import CliRunner

from deleverage.cli.detect import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app holding only detect."""

    register(app)
    return app


def invoke(*args: str):
    return runner.invoke(_app(), ["detect", *args])


def _csv(path, frame: pd.DataFrame) -> str:
    frame.rename_axis("date").to_csv(path, date_format="%Y-%m-%d")
    return str(path)


@pytest.fixture
def good(tmp_path) -> list[str]:
    prices = synthetic_prices(320, seed=5)
    return [
        _csv(tmp_path / f"{c.lower()}.csv", prices[[c]].rename(columns={c: "close"}))
        for c in ("SILVER", "GOLD", "NDX", "SOX", "BTC", "USDJPY")
    ]


def _dst_parquet(path) -> str:
    # naive hourly times through 2021-03-14 02:00, which does not exist in New York
    times = pd.date_range("2021-03-13", periods=48, freq="h")
    frame = pd.DataFrame({"time": times, "btc": 100.0 + np.arange(48.0)})
    frame.to_parquet(path)
    return str(path)


def _bad_files(tmp_path) -> dict[str, tuple[list[str], str]]:
    """Malformed inputs: (CLI args, text the error line must contain)."""

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    ok = _csv(tmp_path / "ok_btc.csv", synthetic_prices(320)[["BTC"]])
    return {
        "missing file": ([str(tmp_path / "nope.csv")], "expected an existing file"),
        "unsupported format": ([write("p.xlsx", "x")], "expected .csv, .tsv, .parquet"),
        "empty file": ([write("empty.csv", "")], "expected comma-separated text"),
        "no time column": ([write("nt.csv", "a,b\n1,2\n")], "time column: expected a column"),
        "bad date": (
            [write("bd.csv", "date,btc\n2026-01-05,1\n2026-13-45,2\n")],
            "'2026-13-45' at line 3",
        ),
        "non-numeric value": (
            [write("nn.csv", "date,btc\n2026-01-05,1\n2026-01-06,1.2.3\n")],
            "expected numbers",
        ),
        "conflicting duplicates": (
            [write("dup.csv", "date,btc\n2026-01-05,1\n2026-01-05,2\n")],
            "expected one value per timestamp",
        ),
        "non-positive price": (
            [write("neg.csv", "date,gold\n2026-01-05,1\n2026-01-06,-3\n")],
            "expected prices > 0",
        ),
        "long file without value column": (
            [write("lv.csv", "date,symbol,volume\n2026-01-05,QQQ,1\n")],
            "value column",
        ),
        "same asset from sources that disagree": (
            [ok, _csv(tmp_path / "btc2.csv", synthetic_prices(320, seed=9)[["BTC"]])],
            "expected sources within 2% of each other",
        ),
        "bad window": ([ok, "--window", "2021-01-01"], "expected START:END (dates)"),
        "window outside the data": (
            [ok, "--window", "2030-01-01:2030-02-01"],
            "at least 3 bars of data",
        ),
        "unknown group": ([ok, "--asset", "BTC=BTC:casino"], "expected one of safe_haven"),
        "mapping matches nothing": ([ok, "--asset", "doge=DOGE"], "no match"),
        "missing duckdb table": (
            [_store(tmp_path / "s.duckdb", synthetic_prices(5)) + ":prices"],
            "'prices' not among tables [market, runs]",
        ),
        "not a duckdb file": (
            [write("fake.duckdb", "not a database") + ":prices"],
            "expected a DuckDB database",
        ),
        "too few bars": (
            [write("short.csv", "date,btc\n2026-01-05,1\n2026-01-06,2\n")],
            "expected at least 260 aligned bars",
        ),
        "no input at all": ([], "expected exactly one of FILE..., --run RUN_ID or --demo"),
        "unknown format": ([ok, "--format", "xml"], "expected one of table, json, html"),
        "unknown time zone": ([ok, "--tz", "Mars/Olympus"], "expected an IANA time zone"),
        "bad bar length": ([ok, "--freq", "often"], "expected a bar length"),
        "infinite price": (
            [write("inf.csv", "date,gold\n2026-01-05,1\n2026-01-06,inf\n")],
            "expected finite numbers",
        ),
        "DST gap in a Parquet file with --tz": (
            [_dst_parquet(tmp_path / "dst.parquet"), "--tz", "America/New_York"],
            "expected unambiguous local times in America/New_York",
        ),
        "--out below a file": (
            [ok, "--out", str(tmp_path / "ok_btc.csv" / "r.txt")],
            "--out",
        ),
    }


MALFORMED = (
    "missing file",
    "unsupported format",
    "empty file",
    "no time column",
    "bad date",
    "non-numeric value",
    "conflicting duplicates",
    "non-positive price",
    "long file without value column",
    "same asset from sources that disagree",
    "bad window",
    "window outside the data",
    "unknown group",
    "mapping matches nothing",
    "missing duckdb table",
    "not a duckdb file",
    "too few bars",
    "no input at all",
    "unknown format",
    "unknown time zone",
    "bad bar length",
    "infinite price",
    "DST gap in a Parquet file with --tz",
    "--out below a file",
)


def test_every_malformed_case_is_exercised(tmp_path):
    assert set(_bad_files(tmp_path)) == set(MALFORMED)


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_input_gives_one_clear_line_and_exit_2(tmp_path, case):
    args, expected = _bad_files(tmp_path)[case]
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in res.output
    assert res.stdout == ""


def test_several_problems_give_one_line_each(tmp_path):
    cases = _bad_files(tmp_path)
    args = cases["bad date"][0] + cases["non-numeric value"][0] + cases["missing file"][0]
    res = invoke(*args)
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 3


def test_help_explains_every_option():
    res = invoke("--help")
    assert res.exit_code == 0
    for option in (
        "--window",
        "--format",
        "--out",
        "--asset",
        "--tz",
        "--freq",
        "--run",
        "--db",
        "--demo",
    ):
        assert option in res.output


def test_files_to_json_and_html(good, tmp_path):
    res = invoke(*good, "--format", "json", "--window", "2022-01-10:2022-02-18")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["label"] == "observed" and payload["window"][0].startswith("2022-01-10")
    out = tmp_path / "r.html"
    res = invoke(*good, "--format", "html", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "<svg" in out.read_text(encoding="utf-8")


def test_table_output_prints_the_rival_explanations(good):
    res = invoke(*good, "--window", "2022-01-10:2022-02-18")
    assert res.exit_code == 0, res.output
    assert "Rival explanations" in res.stdout and "observed" in res.stdout


def _store(path, prices: pd.DataFrame) -> str:
    long = (
        prices.rename_axis("time").reset_index().melt("time", var_name="asset", value_name="price")
    )
    long["time"] = long["time"].dt.tz_localize(None)
    long["run_id"], long["step"] = "r1", 0
    with duckdb.connect(str(path)) as con:
        con.register("long", long)
        con.execute("CREATE TABLE market AS SELECT run_id, step, time, asset, price FROM long")
        con.execute(
            "CREATE TABLE runs AS SELECT 'r1' AS run_id, 'feb-2026' AS scenario_name, "
            "7::BIGINT AS seed"
        )
    return str(path)


def test_run_from_the_results_store_is_modelled(tmp_path):
    db = _store(tmp_path / "s.duckdb", synthetic_prices(24 * 20, freq="1h").drop(columns="JGB10Y"))
    res = invoke("--run", "r1", "--db", db, "--format", "json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert (payload["label"], payload["run_id"], payload["seed"], payload["scenario"]) == (
        "modelled",
        "r1",
        7,
        "feb-2026",
    )
    missing = invoke("--run", "zz", "--db", db)
    assert missing.exit_code == 2
    assert "runs include r1" in missing.stderr


def test_demo_glue_follows_the_simulator_contract(monkeypatch):
    prices = synthetic_prices(24 * 20, freq="1h").drop(columns="JGB10Y")
    fake = SimpleNamespace(
        prices=lambda: prices,
        run_id="demo",
        seed=0,
        scenario=SimpleNamespace(
            name="feb-2026",
            assets=[
                SimpleNamespace(id=c, asset_class=k)
                for c, k in (
                    ("SILVER", "metal"),
                    ("GOLD", "metal"),
                    ("NDX", "equity_index"),
                    ("SOX", "equity_index"),
                    ("BTC", "crypto"),
                    ("USDJPY", "fx"),
                    ("DXY", "fx"),
                )
            ],
        ),
    )
    monkeypatch.setattr("deleverage.detect.simulated.demo_result", lambda: fake)
    res = invoke("--demo")
    assert res.exit_code == 0, res.output
    assert "modelled: run demo, scenario feb-2026, seed 0" in res.stdout


def test_demo_runs_on_the_feb_2026_preset():
    res = invoke("--demo", "--format", "json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert (payload["label"], payload["scenario"], payload["seed"]) == ("modelled", "feb-2026", 0)
    assert payload["rows"] and set(payload["scores"]) == {
        "carry_unwind",
        "dollar_policy_shock",
        "margin_spiral_metals",
        "tech_earnings_repricing",
        "crypto_native_deleveraging",
    }


def test_out_into_a_missing_folder_creates_it(good, tmp_path):
    for fmt, name in (("table", "a/b/r.txt"), ("json", "c/r.json"), ("html", "d/e/r.html")):
        target = tmp_path / name
        res = invoke(*good, "--format", fmt, "--out", str(target))
        assert res.exit_code == 0, res.output
        assert target.is_file() and target.stat().st_size > 0


def test_a_constant_price_series_runs_without_a_traceback(good, tmp_path):
    flat = synthetic_prices(320, seed=5)[["GOLD"]].rename(columns={"GOLD": "close"})
    flat["close"] = 1900.0
    files = [f for f in good if not f.endswith("gold.csv")]
    files.append(_csv(tmp_path / "gold_flat.csv", flat))
    res = invoke(*files, "--format", "json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    gold = [r for r in payload["rows"] if r["entity"] == "GOLD" and r["metric"] == "tail_threshold"]
    assert gold == []  # a price that never moves has no tail, and nothing breaks

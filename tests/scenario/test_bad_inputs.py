"""A corpus of bad inputs, one per class the audit found (issue 8): every one ends the command
with exit 2 and only `error:` lines naming where, what was expected and what was found — no
traceback, no NaN result, and nothing written (no store, no report, no export)."""

import copy
import sqlite3

import duckdb
import pytest
import yaml
from tests.conftest import base_raw
from typer.testing import CliRunner

from deleverage.cli.main import app

runner = CliRunner()


def _with(path: str, value, raw=None) -> dict:
    """base_raw() with `value` at a dotted path (list items by index)."""
    raw = copy.deepcopy(raw or base_raw())
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


NEWS = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.1}}
PERPS = {
    "type": "perp_book",
    "name": "perps",
    "asset": "BTC",
    "margin_rules": "hyperliquid-like",
    "accounts": 100,
    "open_interest_usd": 1e8,
    "leverage": {"dist": "uniform", "low": 2, "high": 100},  # above hyperliquid's 40x
}
EARNINGS = {
    "type": "earnings",
    "time": "2026-01-05T12:00:00Z",
    "asset": "BTC",
    "actual": 1.0,
    "consensus": 0.0,
}


def _driver_file(tmp_path, rows: str, kind="price"):
    path = tmp_path / "driver.csv"
    path.write_text("date,close\n" + rows)
    shock = {"type": "driver", "asset": "BTC", "kind": kind, "file": str(path), "column": "close"}
    return base_raw(shocks=[shock])


# name -> (raw scenario or a function of tmp_path giving one, extra CLI args, text expected)
SCENARIO_CASES = {
    "infinite_price": (base_raw(), ["--set", "assets.BTC.price=1.0e999"], "assets.BTC.price"),
    "nan_volatility": (_with("assets.0.daily_vol", float("nan")), [], "assets.BTC.daily_vol"),
    "infinite_news_return": (
        base_raw(shocks=[{**NEWS, "returns": {"BTC": float("-inf")}}]),
        [],
        "shocks.0.returns.BTC",
    ),
    "nonpositive_driver_point": (
        base_raw(
            shocks=[{"type": "driver", "asset": "BTC", "points": [["2026-01-05T00:00Z", 0.0]]}]
        ),
        [],
        "expected positive prices",
    ),
    "negative_driver_point_in_a_file": (
        lambda tmp: _driver_file(tmp, "2026-01-05,100000\n2026-01-06,-1\n"),
        [],
        "expected positive prices",
    ),
    "nan_in_a_driver_file": (
        lambda tmp: _driver_file(tmp, "2026-01-05,100000\n2026-01-06,\n"),
        [],
        "row 3: expected a finite number",
    ),
    "unparsable_time_in_a_driver_file": (
        lambda tmp: _driver_file(tmp, "2026-01-05,100000\nyesterday,99000\n"),
        [],
        "row 3: expected a date or timestamp",
    ),
    "prior_that_can_draw_an_invalid_value": (
        base_raw(
            uncertain=[
                {
                    "path": "assets.BTC.daily_vol",
                    "prior": {"dist": "normal", "mean": 0.03, "sd": 0.02},
                }
            ]
        ),
        [],
        "uncertain.0.prior",
    ),
    "target_window_outside_the_clock": (
        base_raw(
            targets=[
                {
                    "metric": "return",
                    "asset": "BTC",
                    "value": -10,
                    "unit": "%",
                    "window": ["2026-02-01T00:00Z", "2026-02-02T00:00Z"],
                }
            ]
        ),
        [],
        "targets.0.window",
    ),
    "step_longer_than_the_window": (
        _with("clock", {"start": "2026-01-05T00:00Z", "end": "2026-01-05T00:30Z", "step": "1h"}),
        [],
        "no longer than the window",
    ),
    "zero_half_life": (
        base_raw(market={"market_makers": {"vol_half_life": "0s"}}),
        [],
        "market.market_makers.vol_half_life",
    ),
    "consensus_zero": (base_raw(shocks=[EARNINGS]), [], "expected a nonzero consensus"),
    "empty_driver_points": (
        base_raw(shocks=[{"type": "driver", "asset": "BTC", "points": []}]),
        [],
        "shocks.0.points",
    ),
    "a_long_time_zone_name": (
        base_raw(venues=[{"id": "spot", "session": {"timezone": "A" * 5000}}]),
        [],
        "expected an IANA time zone",
    ),
    "leverage_law_above_the_rule_sets_maximum": (
        base_raw(populations=[PERPS]),
        [],
        "expected draws ≤ 40x",
    ),
    "negative_seed": (base_raw(), ["--seed", "-1"], "--seed"),
    "seed_beyond_64_bits": (base_raw(), ["--seed", str(2**63)], "--seed"),
}


def _assert_clean_failure(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("error: ") for line in lines), lines
    assert any(expected in line for line in lines), lines
    assert "Traceback" not in result.output and "nan" not in result.stdout.lower()


@pytest.mark.parametrize("case", sorted(SCENARIO_CASES))
def test_a_bad_scenario_input_is_exit_2_with_one_clear_message_and_writes_nothing(case, tmp_path):
    raw, args, expected = SCENARIO_CASES[case]
    raw = raw(tmp_path) if callable(raw) else raw
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    db, report = tmp_path / "runs.duckdb", tmp_path / "report.html"
    result = runner.invoke(app, ["run", str(path), "--db", str(db), "--report", str(report), *args])
    _assert_clean_failure(result, expected)
    assert not db.exists() and not report.exists()


# --------------------------------------------------------------------------- files


def _bomb(levels: int = 12) -> str:
    """A YAML "billion laughs": each level doubles... by ten."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + f"\nname: *a{levels - 1}\n"


FILE_CASES = {
    "utf16.yaml": (yaml.safe_dump(base_raw()).encode("utf-16"), "expected UTF-8 text"),
    "latin1.yaml": (
        yaml.safe_dump({**base_raw(), "description": "café"}, allow_unicode=True).encode("latin-1"),
        "expected UTF-8 text",
    ),
    "deep.yaml": (("name: " + "[" * 20_000 + "]" * 20_000 + "\n").encode(), "nested"),
    "bomb.yaml": (_bomb().encode(), "expected at most 100 aliases"),
    "syntax.yaml": (b"name: x\nclock: [unclosed\n", "syntax.yaml: line 3, column 1"),
}


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_a_bad_scenario_file_is_exit_2_with_one_line(name, tmp_path):
    data, expected = FILE_CASES[name]
    path = tmp_path / name
    path.write_bytes(data)
    db = tmp_path / "runs.duckdb"
    result = runner.invoke(app, ["run", str(path), "--db", str(db)])
    _assert_clean_failure(result, expected)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not db.exists()


def test_a_folder_named_like_a_scenario_is_a_clear_error(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    result = runner.invoke(app, ["run", str(tmp_path / "dir.yaml"), "--no-store"])
    _assert_clean_failure(result, "expected a scenario file")


# --------------------------------------------------------------------------- outputs


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(base_raw()))
    return path


def _sqlite(path):
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (x)")


def _foreign_duckdb(path):
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE customers (x INTEGER)")


@pytest.mark.parametrize(
    "make, expected",
    [
        (_sqlite, "found another kind of file"),
        (_foreign_duckdb, "found other tables (customers)"),
        (lambda p: p.mkdir(), "found a folder"),
    ],
)
def test_a_db_that_is_not_a_results_store_is_refused_before_the_run(
    make, expected, scenario_file, tmp_path
):
    db = tmp_path / "store.duckdb"
    make(db)
    before = db.stat().st_mtime_ns
    result = runner.invoke(app, ["run", str(scenario_file), "--db", str(db)])
    _assert_clean_failure(result, expected)
    assert db.stat().st_mtime_ns == before


def test_an_empty_db_file_left_by_a_failed_create_becomes_a_new_store(scenario_file, tmp_path):
    # a full disk can leave a 0-byte file behind; it holds no run and breaks nothing later
    db = tmp_path / "store.duckdb"
    db.write_bytes(b"")
    result = runner.invoke(app, ["run", str(scenario_file), "--db", str(db)])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_output_paths_are_checked_before_the_work(scenario_file, tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    result = runner.invoke(
        app,
        [
            "run",
            str(scenario_file),
            "--no-store",
            "--report",
            str(missing / "r.html"),
            "--seed",
            "-3",
        ],
    )
    _assert_clean_failure(result, "--report")
    assert len(result.stderr.strip().splitlines()) == 2  # both problems, at once
    db = tmp_path / "runs.duckdb"
    assert runner.invoke(app, ["run", str(scenario_file), "--db", str(db)]).exit_code == 0
    for out, expected in (
        (tmp_path / "x.csv", "expected a .parquet"),
        (missing / "x.parquet", "existing folder"),
    ):
        exported = runner.invoke(app, ["export", "market", str(out), "--db", str(db)])
        _assert_clean_failure(exported, expected)
        assert not out.exists()


def test_a_results_store_can_be_listed_while_another_run_is_simulating(
    scenario_file, tmp_path, monkeypatch
):
    # the store is opened for writing only to commit: a run in progress holds no lock
    db = tmp_path / "runs.duckdb"
    assert runner.invoke(app, ["run", str(scenario_file), "--db", str(db)]).exit_code == 0
    from deleverage.engine import simulate as engine

    listed = []
    original = engine.simulate

    def simulate_and_list(*args, **kwargs):
        kwargs["progress"] = lambda done, total: (
            listed or listed.append(runner.invoke(app, ["runs", "--db", str(db)]))
        )
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "simulate", simulate_and_list)
    assert runner.invoke(app, ["run", str(scenario_file), "--db", str(db)]).exit_code == 0
    assert listed and listed[0].exit_code == 0, listed[0].output


# --------------------------------------------------------------------------- messages


def test_every_problem_of_overrides_and_file_is_reported_at_once(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_with("assets.0.daily_vol", -1.0)))
    args = ["--set", "assets.NOPE.price=1", "--set", "assets.BTC.adv_usd=-5", "--set", "x"]
    result = runner.invoke(app, ["run", str(path), "--no-store", *args])
    _assert_clean_failure(result, "assets.BTC.daily_vol")
    text = result.stderr
    for expected in ("assets.NOPE.price", "assets.BTC.adv_usd", "--set: x", "assets.BTC.daily_vol"):
        assert expected in text, text


def test_an_error_key_path_can_be_pasted_into_set(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_with("assets.0.adv_usd", -5.0)))
    failed = runner.invoke(app, ["run", str(path), "--no-store"])
    key = failed.stderr.split("s.yaml: ")[1].split(":")[0]
    assert key == "assets.BTC.adv_usd"
    fixed = runner.invoke(app, ["run", str(path), "--no-store", "--set", f"{key}=2e10"])
    assert fixed.exit_code == 0, fixed.output


def test_a_copy_with_updates_is_validated_like_a_file():
    from pydantic import ValidationError
    from tests.conftest import build

    scenario = build(base_raw())
    asset = scenario.assets[0]
    with pytest.raises(ValidationError, match="daily_vol"):
        asset.model_copy(update={"daily_vol": float("nan")})
    assert asset.model_copy(update={"daily_vol": 0.05}).daily_vol == 0.05
    assert asset.model_copy() == asset

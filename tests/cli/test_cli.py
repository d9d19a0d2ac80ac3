import json

import duckdb
import yaml
from tests.conftest import PERPS, base_raw
from typer.testing import CliRunner

from deleverage.cli.main import app

runner = CliRunner()


def test_run_prints_the_summary_and_stores_the_run(tmp_path):
    db = tmp_path / "r.duckdb"
    result = runner.invoke(app, ["run", "feb-2026", "--seed", "4", "--db", str(db)])
    assert result.exit_code == 0, result.output
    for asset in ("BTC", "SILVER", "USDJPY"):
        assert asset in result.stdout
    with duckdb.connect(str(db), read_only=True) as con:
        run_id, seed = con.execute("SELECT run_id, seed FROM runs").fetchone()
    assert seed == 4 and run_id in result.stdout


def test_json_output_carries_every_summary_metric_and_honours_overrides(tmp_path):
    args = [
        "run",
        "feb-2026",
        "--no-store",
        "--format",
        "json",
        "--set",
        "assets.BTC.price=50000",
        "--channels",
        "stop_loss=off,mm_retreat=off",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    start = [m for m in payload["metrics"] if m["entity"] == "BTC" and m["metric"] == "start"]
    assert start[0]["value"] == 50000 and start[0]["basis"] == "modelled"
    assert start[0]["window_start"] is None and start[0]["window_end"] is None
    # two silver targets that differ only by their window: the window is a column
    silver = [m for m in payload["metrics"] if m["metric"] == "return SILVER"]
    assert [(m["entity"], m["basis"], m["window_start"]) for m in silver] == [
        ("targets", "observed", "2026-01-29T18:30:00.000Z"),
        ("targets", "modelled", "2026-01-29T18:30:00.000Z"),
        ("targets", "observed", "2026-02-04T18:30:00.000Z"),
        ("targets", "modelled", "2026-02-04T18:30:00.000Z"),
    ]
    assert silver[0]["value"] == -31.35 and silver[0]["window_end"] == "2026-01-30T18:30:00.000Z"
    events = {m["metric"] for m in payload["metrics"] if m["entity"] == "events"}
    assert "stop_triggered_rows" not in events


def _small_scenario(tmp_path) -> str:
    """A two-day BTC market with a perp book and a crash: a run with events in seconds (the
    commands below read a run; `feb-2026` itself runs in the test above)."""
    shock = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.15}}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(base_raw(name="small", populations=[PERPS], shocks=[shock])))
    return str(path)


def test_scenarios_runs_and_export(tmp_path):
    db = tmp_path / "r.duckdb"
    listed = runner.invoke(app, ["scenarios"]).stdout
    assert all(name in listed for name in ("feb-2026", "feb-2018", "mar-2020"))
    ran = runner.invoke(app, ["run", _small_scenario(tmp_path), "--db", str(db)])
    assert ran.exit_code == 0, ran.output
    listed = runner.invoke(app, ["runs", "--db", str(db)])
    assert listed.exit_code == 0 and "small" in listed.stdout
    out = tmp_path / "events.parquet"
    exported = runner.invoke(app, ["export", "events", str(out), "--db", str(db)])
    assert exported.exit_code == 0 and out.stat().st_size > 0
    bad = runner.invoke(app, ["export", "trades", str(out), "--db", str(db)])
    assert bad.exit_code == 2 and "expected one of runs, market, events, metrics" in bad.stderr
    missing = runner.invoke(app, ["runs", "--db", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 2


def test_every_command_explains_itself():
    for command in ("run", "scenarios", "runs", "export"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_report_writes_an_offline_html_page(tmp_path):
    page = tmp_path / "report.html"
    scenario = _small_scenario(tmp_path)
    result = runner.invoke(app, ["run", scenario, "--no-store", "--report", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "<svg" in text and "id='chart-prices'" in text  # charts inline, as SVG
    for needle in ("<script", "<link", 'src="http', "src='http", 'href="http', "href='http"):
        assert needle not in text


def test_a_target_the_model_does_not_compute_reads_not_modelled_not_nan():
    """feb-2018 records the VIX close, XIV's value and VIX-futures volume as observed only."""
    result = runner.invoke(app, ["run", "feb-2018", "--no-store"])
    assert result.exit_code == 0, result.output
    table = result.stdout[result.stdout.index("targets: observed vs modelled") :]
    rows = [line for line in table.splitlines() if "vix_futures_volume" in line]
    assert rows and "not modelled" in rows[0]
    assert "nan" not in table.split("diagnostics:")[0]

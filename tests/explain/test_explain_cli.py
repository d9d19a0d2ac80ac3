"""`deleverage explain` and `deleverage report` from the command line: a stored run is
explained, the explanation is stored with it and drawn in its report; mistakes exit 2 with
one line each and write nothing."""

from __future__ import annotations

import json

import duckdb
import yaml
from tests.explain.conftest import crash_raw
from typer.testing import CliRunner

from deleverage.cli.main import app

runner = CliRunner()


def _stored_run(tmp_path, *extra):
    scenario = tmp_path / "crash.yaml"
    scenario.write_text(yaml.safe_dump(crash_raw(), sort_keys=False))
    db = tmp_path / "r.duckdb"
    done = runner.invoke(app, ["run", str(scenario), "--db", str(db), "--format", "json", *extra])
    assert done.exit_code == 0, done.output
    return db, json.loads(done.stdout)["run_id"]


def test_explain_a_stored_run_then_report_it_with_its_waterfall_and_pngs(tmp_path):
    db, run_id = _stored_run(tmp_path, "--seed", "1")
    args = ["explain", run_id, "--db", str(db), "--game", "shocks", "--format", "json"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    assert payload["explained_run"] == run_id and payload["seed"] == 1
    assert {row["player"] for row in payload["attribution"]} == {"drop", "desks pull back"}
    assert payload["methods"]["shocks"].startswith("2 players, exact")
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute(
            "SELECT count(*) FROM explanations WHERE run_id = ? AND metric = 'shapley'", [run_id]
        ).fetchall()[0][0]
    assert stored == len(payload["attribution"])

    csv = tmp_path / "btc.csv"
    csv.write_text("date,close\n2026-01-05T12:00:00Z,95000\n2026-01-06T00:00:00Z,92000\n")
    out, pngs = tmp_path / "report.html", tmp_path / "png"
    args = ["report", run_id, "--db", str(db), "--out", str(out), "--png", str(pngs),
            "--observed", f"BTC={csv}"]  # fmt: skip
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "id='chart-waterfall-shocks'" in out.read_text()
    assert sorted(p.name for p in pngs.iterdir()) == [
        "depth.png", "liquidations.png", "prices.png", "waterfall-shocks.png"
    ]  # fmt: skip
    assert out.read_text().count("<figure ") == 4  # one PNG per chart of the page
    for png in pngs.iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "wrote 4 PNG files" in done.output


def test_mistakes_exit_2_with_one_line_and_write_nothing(tmp_path):
    db, run_id = _stored_run(tmp_path, "--seed", "0")
    csv = tmp_path / "btc.csv"
    csv.write_text("date,price\n2026-01-05,95000\n")
    out = tmp_path / "report.html"
    cases = [
        (["explain", "0123456789ab", "--db", str(db)], "expected a stored run"),
        (["explain", run_id, "--db", str(db), "--game", "fees"], "expected channels or shocks"),
        (["explain", run_id, "--db", str(db), "--channel", "etf_flows"], "the scenario uses"),
        (["explain", run_id, "--db", str(db), "--permutations", "1"], "≥ 2"),
        (["report", run_id, "--db", str(db), "--out", str(out), "--observed", f"BTC={csv}"],
         "expected 'close' (choose with #COLUMN)"),
        (["report", run_id, "--db", str(db), "--out", str(out), "--observed", f"ETH={csv}#price"],
         "expected an asset of the run"),
        (["report", "nope", "--db", str(db), "--out", str(out)], "expected a stored run"),
        (["report", run_id, "--db", str(db), "--out", str(out), "--png", str(csv)],
         "expected a folder, found a file"),
    ]  # fmt: skip
    for args, message in cases:
        done = runner.invoke(app, args)
        assert done.exit_code == 2, (args, done.output)
        assert message in done.output and "Traceback" not in done.output
        assert len(done.output.strip().splitlines()) == 1, done.output
    assert not out.exists()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM explanations").fetchall()[0][0] == 0

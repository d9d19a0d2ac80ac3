"""Malformed scenario files: exit code 2, one line per problem (file, key path, expected,
found), no traceback, and no new run in the store."""

import duckdb
import pytest
from tests.conftest import base_raw
from typer.testing import CliRunner

from deleverage.cli.main import app

runner = CliRunner()


def _asset(**changes):
    raw = base_raw()
    raw["assets"][0].update(changes)
    return raw


def _session(**changes):
    return base_raw(venues=[{"id": "spot", "session": {"timezone": "UTC", **changes}}])


CASES = {
    "unknown_top_level_key": (base_raw(asets=[]), "asets", "unknown key"),
    "unknown_nested_key": (
        _asset(daily_volatility=0.1),
        "assets.BTC.daily_volatility",
        "unknown key",
    ),
    "wrong_type": (_asset(daily_vol="high"), "assets.BTC.daily_vol", "'high'"),
    "bad_date": (
        base_raw(clock={"start": "2026-13-45", "end": "2026-01-07"}),
        "clock.start",
        "2026-13-45",
    ),
    "bad_time_zone": (
        _session(timezone="Mars/Olympus_Mons"),
        "venues.spot.session.timezone",
        "Mars",
    ),
    "undefined_asset": (
        base_raw(
            shocks=[{"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"DOGE": -0.1}}]
        ),
        "shocks.0.returns",
        "'DOGE'",
    ),
    "undefined_venue": (_asset(venue="moon"), "assets.BTC.venue", "'moon'"),
    "negative_volume": (_asset(adv_usd=-5), "assets.BTC.adv_usd", "greater than or equal to"),
    "empty_calendar": (
        _session(days=[]),
        "venues.spot.session.days",
        "at least 1 item(s), found []",
    ),
    "unreadable_driver_file": (
        base_raw(
            shocks=[{"type": "driver", "asset": "BTC", "file": "missing.csv", "column": "close"}]
        ),
        "shocks.0.file",
        "no file",
    ),
    "end_before_start": (
        base_raw(clock={"start": "2026-01-07T00:00:00Z", "end": "2026-01-05T00:00:00Z"}),
        "clock",
        "must be after start",
    ),
    "bad_duration": (
        base_raw(
            clock={
                "start": "2026-01-05T00:00:00Z",
                "end": "2026-01-07T00:00:00Z",
                "step": "5 parsecs",
            }
        ),
        "clock.step",
        "5 parsecs",
    ),
    "unknown_shock_type": (
        base_raw(shocks=[{"type": "meteor", "time": "2026-01-05T12:00:00Z"}]),
        "shocks.0",
        "meteor",
    ),
    "duplicate_asset": (base_raw(assets=base_raw()["assets"] * 2), "assets.BTC.id", "twice"),
    "time_outside_clock": (
        base_raw(
            shocks=[{"type": "news", "time": "2027-01-05T12:00:00Z", "returns": {"BTC": -0.1}}]
        ),
        "shocks.0.time",
        "inside the clock",
    ),
}


@pytest.fixture(scope="module")
def store_with_one_run(tmp_path_factory):
    db = tmp_path_factory.mktemp("store") / "runs.duckdb"
    path = tmp_path_factory.mktemp("ok") / "ok.yaml"
    import yaml

    path.write_text(yaml.safe_dump(base_raw()))
    result = runner.invoke(app, ["run", str(path), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


def _count_runs(db) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_scenario_is_one_clear_line_and_exit_2(
    case, write_scenario, store_with_one_run
):
    raw, key_path, found = CASES[case]
    path = write_scenario(raw, f"{case}.yaml")
    result = runner.invoke(app, ["run", str(path), "--db", str(store_with_one_run)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no error message"
    assert any(f"{case}.yaml: {key_path}" in line and found in line for line in lines), lines
    assert "Traceback" not in result.output
    assert _count_runs(store_with_one_run) == 1


def test_a_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nclock: [unclosed\n")
    result = runner.invoke(app, ["run", str(path), "--no-store"])
    assert result.exit_code == 2
    assert "broken.yaml: line" in result.stderr


def test_bad_overrides_and_channel_names_are_user_errors():
    result = runner.invoke(
        app,
        [
            "run",
            "feb-2026",
            "--no-store",
            "--set",
            "assets.NOPE.price=1",
            "--channels",
            "stop_los=off",
        ],
    )
    assert result.exit_code == 2
    assert "--set: assets.NOPE.price" in result.stderr
    assert "--channels: stop_los: expected one of" in result.stderr


def test_several_problems_are_all_reported(write_scenario):
    raw = _asset(adv_usd=-1, daily_vol=-2, venue="moon")
    result = runner.invoke(app, ["run", str(write_scenario(raw)), "--no-store"])
    assert result.exit_code == 2
    assert sum("assets.BTC" in line for line in result.stderr.splitlines()) >= 2

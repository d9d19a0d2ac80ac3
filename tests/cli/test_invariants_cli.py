"""`--check-invariants` sees money moved inside a population, not only its trades: a mutant
perp book that drops the liquidation-fee credit to the insurance fund fails the check."""

import inspect
import sys
import types

import duckdb
import pytest
from tests.populations.test_perps import _crash_scenario
from typer.testing import CliRunner

from deleverage import simulate
from deleverage.cli.main import app
from deleverage.populations import REGISTRY
from deleverage.populations import perps as perps_module

FEE_CREDIT = "self.fund_cash += float(fee.sum())"


@pytest.fixture
def no_fee_credit(monkeypatch):
    """The perp population with the fee credit to the fund deleted (a mutant)."""
    source = inspect.getsource(perps_module)
    assert source.count(FEE_CREDIT) == 1
    mutant = types.ModuleType("perps_without_fee_credit")
    monkeypatch.setitem(sys.modules, mutant.__name__, mutant)  # dataclasses look it up
    code = compile(source.replace(FEE_CREDIT, "pass"), perps_module.__file__, "exec")
    exec(code, mutant.__dict__)  # the package's own source with one line deleted
    _, channel = REGISTRY["perp_book"]
    monkeypatch.setitem(REGISTRY, "perp_book", (mutant.PerpPopulation, channel))


def test_a_run_that_drops_the_fee_credit_breaks_the_invariants(no_fee_credit):
    result = simulate(_crash_scenario(), seed=1, check_invariants=True)
    fees = result.events[result.events.kind == "perp_market_liquidation"]
    assert fees.fee_usd.sum() > 1_000
    assert result.diagnostics["max_cash_drift_ratio"] > 1e-6


def test_the_unmutated_run_keeps_them():
    result = simulate(_crash_scenario(), seed=1, check_invariants=True)
    assert result.diagnostics["max_cash_drift_ratio"] < 1e-9


def test_check_invariants_fails_the_command_and_stores_nothing(no_fee_credit, tmp_path):
    db = tmp_path / "r.duckdb"
    scenario = tmp_path / "crash.yaml"
    scenario.write_text(_crash_scenario().model_dump_json(by_alias=True))
    args = ["run", str(scenario), "--check-invariants", "--db", str(db)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "invariant broken" in result.stderr and "Traceback" not in result.output
    if db.exists():
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_plain_pytest_collects_the_suite_without_pythonpath():
    # `pytest` alone (not `python -m pytest`) finds the package and the `tests.*` helpers
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pytest_script = Path(sys.executable).parent / "pytest"  # the console script
    target = "tests/populations/test_perp_waterfall.py"
    done = subprocess.run(
        [str(pytest_script), "--collect-only", "-q", "-p", "no:cacheprovider", target],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "test_adl_closes_no_position_when_there_is_no_deficit" in done.stdout

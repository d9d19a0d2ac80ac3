"""`deleverage schema` (issue 13, Must-show 3): the exported JSON Schema accepts the shipped
scenarios as an editor reads them and refuses the mistakes the loader refuses."""

import json
import re
from datetime import date, datetime

import jsonschema
import pytest
import yaml
from tests.conftest import base_raw, build
from typer.testing import CliRunner

from deleverage.cli.main import app
from deleverage.errors import ScenarioError
from deleverage.scenario.export import scenario_json_schema
from deleverage.scenario.loader import list_presets

runner = CliRunner()


class _Yaml12(yaml.SafeLoader):
    """YAML 1.2 numbers, as editors read them: `5.0e10` is a float (PyYAML's YAML 1.1 reads
    it as text, which the loader then converts)."""


_Yaml12.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _as_editor_reads(text: str) -> dict:
    """A scenario file as an editor validates it: YAML 1.2 numbers, timestamps and dates as
    ISO text."""
    raw = yaml.load(text, Loader=_Yaml12)

    def text(value):
        if isinstance(value, datetime | date):
            return value.isoformat()
        raise TypeError(type(value))

    return json.loads(json.dumps(raw, default=text))


@pytest.fixture(scope="module")
def validator():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_schema_describes_keys_with_their_documentation(validator):
    defs = validator.schema["$defs"]
    assert validator.schema["$schema"].endswith("2020-12/schema")
    # model docstrings and field descriptions travel into the schema
    assert "UTC" in defs["Clock"]["description"]
    assert "square-root" in defs["Liquidity"]["properties"]["impact_y"]["description"]
    # durations are written as in scenario files, and the alias `class` is the key
    assert defs["Clock"]["properties"]["step"]["default"] == "5min"
    assert "class" in defs["Asset"]["properties"] and "asset_class" not in defs["Asset"]["required"]


@pytest.mark.parametrize("path", [p.path for p in list_presets()], ids=lambda p: p.name)
def test_shipped_presets_validate_against_the_schema(validator, path):
    raw = _as_editor_reads(path.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(raw)]
    assert errors == []


BAD = {
    "unknown key": {**base_raw(), "clok": {}},
    "text for a number": base_raw(assets=[{**base_raw()["assets"][0], "daily_vol": "high"}]),
    "volatility out of range": base_raw(assets=[{**base_raw()["assets"][0], "daily_vol": 3.0}]),
    "bad duration": base_raw(clock={**base_raw()["clock"], "step": "five minutes"}),
    "unknown shock type": base_raw(shocks=[{"type": "meteor", "time": "2026-01-05T12:00:00Z"}]),
    "missing required key": base_raw(venues=[{"kind": "crypto"}]),
}


@pytest.mark.parametrize("case", BAD)
def test_the_schema_refuses_what_the_loader_refuses(validator, case):
    raw = BAD[case]
    assert list(validator.iter_errors(raw)), f"{case}: schema accepted it"
    with pytest.raises(ScenarioError):
        build(raw)


def test_the_schema_accepts_a_small_valid_scenario(validator):
    raw = base_raw(
        shocks=[{"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.1}}]
    )
    build(raw)  # the loader accepts it
    assert list(validator.iter_errors(raw)) == []


def test_output_writes_the_same_schema_to_a_file(tmp_path):
    target = tmp_path / "scenario.schema.json"
    result = runner.invoke(app, ["schema", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text()) == json.loads(
        json.dumps(scenario_json_schema(), ensure_ascii=False)
    )


def test_an_unwritable_output_is_one_clear_error(tmp_path):
    result = runner.invoke(app, ["schema", "--output", str(tmp_path / "missing" / "s.json")])
    assert result.exit_code == 2
    assert "--output" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "missing").exists()

"""The scenario format as a JSON Schema (draft 2020-12), for editors that validate and
complete scenario files as they are typed (`deleverage schema`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from deleverage.scenario.schema import Scenario, _format_duration

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _ScenarioSchema(GenerateJsonSchema):
    """pydantic's generator with defaults written the way scenario files write them."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return _format_duration(dft)
        return super().encode_default(dft)


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file: every key with its type, range, default and
    description (from the schema's field descriptions and model docstrings). Rules across
    keys (references to defined assets, files, the clock window) are checked only by
    `deleverage run`; the schema is what an editor can check by itself."""
    schema = Scenario.model_json_schema(by_alias=True, schema_generator=_ScenarioSchema)
    return {
        "$schema": DIALECT,
        "title": "deleverage scenario",
        **{key: value for key, value in schema.items() if key != "title"},
    }

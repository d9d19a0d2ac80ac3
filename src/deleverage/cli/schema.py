"""`deleverage schema`: the JSON Schema of the scenario format (SPEC §2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from deleverage.cli.console import err
from deleverage.errors import Problem, UserError

HELP = """Print the JSON Schema (draft 2020-12) of scenario files, or write it with --output.

Editors validate and complete scenario files with it: in VS Code (YAML extension) add
`# yaml-language-server: $schema=deleverage-scenario.schema.json` at the top of a scenario,
or map the file in `yaml.schemas`. The schema checks every key, type, range and default;
references between keys (a shock naming a defined asset, files, times inside the clock)
are checked when the scenario is loaded (`deleverage run`)."""


def schema_command(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSON file to write (default: standard output)."),
    ] = None,
) -> None:
    from deleverage.cli.main import fail, output_path_problems
    from deleverage.scenario.export import scenario_json_schema

    text = json.dumps(scenario_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        problems = output_path_problems(output, "--output", (".json",))
        if problems:
            raise UserError(problems)
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError([Problem("--output", str(output), f"expected a writable file, "
                                     f"found {exc.strerror}")]) from None  # fmt: skip
    except UserError as exc:
        raise fail(exc) from None
    err.print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("schema", help=HELP)(schema_command)

"""User-facing errors: one line per problem, naming where, what was expected and found."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    source: str  # file name, or "--set" / "--channels" for command-line input
    path: str  # key path inside the source, e.g. "assets[BTC].daily_vol"
    message: str  # "expected …, found …"

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.path}: {self.message}"
            if self.path
            else f"{self.source}: {self.message}"
        )


class UserError(Exception):
    """A mistake in user input. The CLI prints each problem and exits with code 2."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ScenarioError(UserError):
    """The scenario file (or an override applied to it) is invalid."""

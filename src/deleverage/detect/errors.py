"""Errors raised on bad user input: one line per problem, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where, what was expected, what was found."""

    source: str  # file, table or command-line option
    key: str  # column, asset key or option value
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: expected {self.expected}; found {self.found}"


class DataError(ValueError):
    """Input data (or an option about it) that detect cannot use as given."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]):
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, source: str, key: str, expected: str, found: str) -> DataError:
        return cls([Problem(source, key, expected, found)])

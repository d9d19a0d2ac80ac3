"""Lanes (issue 9): the paths of a batch side by side, one more leading axis on every
array of the market's state, so one step advances them all. Each part of the market is
built for one path and then stacked; these are the helpers the parts stack with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, is_dataclass

import numpy as np

from deleverage.market.fx import Translation


def same_in_every_lane(values: Sequence, name: str):
    """The one value every lane has (a scenario's structure); ValueError naming the field
    if the lanes differ."""
    if any(not np.array_equal(value, values[0]) for value in values[1:]):
        raise ValueError(f"cannot stack lanes: {name} differs between lanes")
    return values[0]


def stacked_lanes(values: Sequence, name: str) -> np.ndarray:
    """Per-lane values stacked on a new leading lane axis; ValueError naming the field if
    their shapes differ."""
    shapes = {np.shape(value) for value in values}
    if len(shapes) > 1:
        raise ValueError(f"cannot stack lanes: {name} has shapes {sorted(shapes)} in the lanes")
    return np.stack(values)


def stack_lanes(objects: list):
    """One object of the same dataclass with the lanes side by side: every array field
    stacked on a new leading axis, dataclass fields stacked field by field, numbers and
    switches that differ between lanes as an (L, 1) column (they broadcast against (L, A)
    arrays and give each row the bits of its own scalar, except as an exponent: NumPy
    computes x**2.0 as a square only for a scalar exponent, so a column exponent is applied
    row by row); anything else must be the same in every lane."""
    first = objects[0]
    values = {}
    for f in fields(first):
        column = [getattr(o, f.name) for o in objects]
        value = column[0]
        name = f"{type(first).__name__}.{f.name}"
        if isinstance(value, np.ndarray):
            values[f.name] = stacked_lanes(column, name)
        elif is_dataclass(value) and not isinstance(value, Translation):
            values[f.name] = stack_lanes(column)
        elif all(_same(value, v) for v in column[1:]):
            values[f.name] = value
        elif isinstance(value, int | float):  # bools too
            values[f.name] = np.array(column)[:, None]
        else:
            raise ValueError(f"cannot stack lanes: {name} differs between lanes")
    return type(first)(**values)


def _same(a, b) -> bool:
    if isinstance(a, Translation):
        return a.currencies == b.currencies and all(
            np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)
        )
    return a == b

"""Populations as lanes (issue 9): the i-th population of every lane of a batch (a *slot*)
marked at once, so a round's per-call overhead is paid once for the batch, not once a lane.

Each lane keeps its own population object, which goes on working on its own: orders,
fills, holdings, leverage and any action a mark decides. A type that can share its
marks has a classmethod `stack(populations)` that moves the lanes' arrays into one array
with a leading lane axis and rebinds each lane's attributes to its row (views: a lane's
writes are the stacked array's), and returns the slot, whose `mark_lanes` does for the
active lanes what `mark` does for one. A type without `stack`, or lanes whose i-th
populations differ in type or size, are marked lane by lane as before.

A slot's mark must give each lane exactly what that lane's own `mark` gives, to the last
bit: only per-element operations and products that stay one BLAS call per lane (a stacked
`matmul` over the lane axis dispatches the lane's own matrix-vector product).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from deleverage.populations.base import MarketView, Population
from deleverage.results.events import EventLog


class LanedPopulation(Protocol):
    def mark_lanes(self, view: MarketView, rows: np.ndarray, logs: Sequence[EventLog]) -> None:
        """Mark the populations of lanes `rows` at `view`, whose arrays are (len(rows), A):
        row n of them is lane rows[n]'s market; `logs[n]` is its event log."""


def stack_populations(lanes: Sequence[Sequence[Population]]) -> list[LanedPopulation | None]:
    """One entry per population slot: the slot stacked over the lanes, or None where its
    lanes mark one by one (a single lane, a type without `stack`, populations that differ)."""
    n_slots = len(lanes[0])
    if len(lanes) < 2 or any(len(populations) != n_slots for populations in lanes):
        return [None] * n_slots
    slots: list[LanedPopulation | None] = []
    for i in range(n_slots):
        column = [populations[i] for populations in lanes]
        kind = type(column[0])
        stack = getattr(kind, "stack", None)
        same_type = all(type(p) is kind for p in column)
        slots.append(stack(column) if stack is not None and same_type else None)
    return slots


def stack_rows(objects: Sequence, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The lanes' arrays `names` stacked on a new leading axis, each lane's attribute
    rebound to its row (a view), so the lane's own code and the slot write the same
    memory. Returns the stacked arrays by name."""
    stacked = {}
    for name in names:
        array = np.stack([getattr(o, name) for o in objects])
        for row, o in enumerate(objects):
            setattr(o, name, array[row])
        stacked[name] = array
    return stacked


def same_shapes(objects: Sequence, names: Sequence[str]) -> bool:
    """Whether every lane's arrays `names` have the first lane's shapes (else no stack)."""
    first = [np.shape(getattr(objects[0], name)) for name in names]
    return all([np.shape(getattr(o, name)) for name in names] == first for o in objects[1:])


def lanes_of(view: MarketView, rows: np.ndarray, logs: Sequence[EventLog], keep: np.ndarray):
    """The view, rows and logs of the lanes `keep` (a mask over `rows`) selects."""
    if keep.all():
        return view, rows, logs
    index = np.flatnonzero(keep)
    return view.row(index), rows[index], [logs[n] for n in index]

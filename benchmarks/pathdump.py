"""Bit-identity check for speed-ups: dump one simulated path, then compare two dumps.

    python benchmarks/pathdump.py dump OUT.pkl [--scenario feb-2026] [--seed 0] [--set K=V ...]
    python benchmarks/pathdump.py compare BEFORE.pkl AFTER.pkl

`dump` runs `simulate(load_scenario(SCENARIO, sets), seed)` with the package on the path
(run it once with the old tree's `src` on PYTHONPATH, once with the new) and pickles every
recorded market array, the rounds, the diagnostics, the funds' leverage and the event log;
it prints the CPU seconds of the path. `compare` checks exact equality (NaN equal to NaN),
array by array and the event log column by column, prints IDENTICAL or each difference,
and exits 1 on any difference. A tool, not a test: the tests check mechanisms, this checks
that a change meant to be a pure speed-up changed no number.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time

import numpy as np
import pandas as pd


def dump(out: str, scenario: str, seed: int, sets: list[str]) -> None:
    from deleverage import load_scenario, simulate

    started = time.process_time()
    result = simulate(load_scenario(scenario, sets=sets), seed=seed)
    cpu = time.process_time() - started
    data = {
        "market": {k: np.asarray(v) for k, v in result.market.items()},
        "rounds": np.asarray(result.rounds),
        "diagnostics": result.diagnostics,
        "fund_leverage": {k: np.asarray(v) for k, v in result.fund_leverage.items()},
        "events": result.events,
    }
    with open(out, "wb") as f:
        pickle.dump(data, f)
    print(f"{out}: CPU {cpu:.2f} s, {int(result.rounds.sum())} rounds, {len(result.events)} events")


def _same_column(a: pd.Series, b: pd.Series) -> bool:
    x, y = a.to_numpy(), b.to_numpy()
    if x.dtype.kind == "f" and y.dtype.kind == "f":
        return np.array_equal(x, y, equal_nan=True)
    return bool((a.astype(str) == b.astype(str)).all())


def differences(before: dict, after: dict) -> list[str]:
    """Names of everything that differs between two dumps."""
    found = []
    for part in ("market", "fund_leverage"):
        for name in sorted(set(before[part]) | set(after[part])):
            x, y = before[part].get(name), after[part].get(name)
            if x is None or y is None or not np.array_equal(x, y, equal_nan=True):
                found.append(f"{part}.{name}")
    if not np.array_equal(before["rounds"], after["rounds"]):
        found.append("rounds")
    if before["diagnostics"] != after["diagnostics"]:
        found.append("diagnostics")
    x, y = before["events"], after["events"]
    if x.shape != y.shape or list(x.columns) != list(y.columns):
        found.append(f"events: shape {x.shape} against {y.shape}")
    else:
        found += [f"events.{c}" for c in x.columns if not _same_column(x[c], y[c])]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump")
    dumping.add_argument("out")
    dumping.add_argument("--scenario", default="feb-2026")
    dumping.add_argument("--seed", type=int, default=0)
    dumping.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    comparing = commands.add_parser("compare")
    comparing.add_argument("before")
    comparing.add_argument("after")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.out, args.scenario, args.seed, args.sets)
        return
    with open(args.before, "rb") as f:
        before = pickle.load(f)
    with open(args.after, "rb") as f:
        after = pickle.load(f)
    found = differences(before, after)
    for name in found:
        print("DIFFERENT", name)
    print(
        "IDENTICAL" if not found else f"{len(found)} differences",
        f"({len(after['events'])} events)",
    )
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()

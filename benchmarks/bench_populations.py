"""Benchmark: CPU seconds of one path spent inside each population type.

    python benchmarks/bench_populations.py [SCENARIO] [--seed S] [--set KEY=VALUE ...]

The fixed cost of a feb-2026 path (its perp books at 2 accounts each, so the accounts'
turnover drops out):

    python benchmarks/bench_populations.py feb-2026 \
        --set populations.btc-perps.accounts=2 --set populations.eth-perps.accounts=2

Wraps the methods the engine calls (`mark`, `orders`, `apply_fills`, `gross_leverage`,
`take_lay_off`) of every population class with a CPU clock (`time.process_time`) and
prints the path's CPU and each class's share. The wrappers cost ≈ 1 µs a call (about
0.4 s a feb-2026 path), the same whatever the code under them: compare figures of two
trees run by this script, not against a bare run. Prints figures, asserts nothing.

`--lanes L` runs paths 0..L-1 as lanes of one batch (`simulate_lanes`) and prints per-path
figures; a type marked as a population slot (`populations.lanes`) shows its `mark_lanes`
(the whole slot's marks ÷ L) under the slot's class.
"""

from __future__ import annotations

import argparse
import collections
import functools
import sys
import time

from deleverage import load_scenario, simulate_lanes
from deleverage.populations import REGISTRY, EndInvestors, perps

ENGINE_CALLS = (
    "mark",
    "mark_lanes",
    "orders",
    "apply_fills",
    "gross_leverage",
    "gross_leverage_lanes",
    "take_lay_off",
)


def _clocked(function, spent: collections.Counter, method: str, depth: list[int]):
    """`function` timed into `spent[class, method]`; a call made inside another timed call
    (a subclass calling its base's method) is counted once, by the outer one."""

    @functools.wraps(function)
    def clocked(self, *args, **kwargs):
        if depth[0]:
            return function(self, *args, **kwargs)
        depth[0] += 1
        started = time.process_time()
        try:
            return function(self, *args, **kwargs)
        finally:
            spent[type(self).__name__, method] += time.process_time() - started
            depth[0] -= 1

    return clocked


def _population_classes() -> set[type]:
    """Every population class (a perp venue's builder makes perps.py's classes)."""
    classes = {build for build, _ in REGISTRY.values() if isinstance(build, type)}
    classes.add(EndInvestors)
    classes |= {
        obj
        for obj in vars(perps).values()
        if isinstance(obj, type) and hasattr(obj, "mark") and hasattr(obj, "apply_fills")
    }
    slots = set()  # the stacked forms of the types that mark as population slots
    for cls in classes:
        module = sys.modules[cls.__module__]
        slots |= {obj for obj in vars(module).values() if hasattr(obj, "mark_lanes")}
    return classes | slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="feb-2026")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--lanes",
        type=int,
        default=1,
        help="paths run as lanes of one batch (figures are per path: the batch's ÷ lanes)",
    )
    args = parser.parse_args()
    scenario = load_scenario(args.scenario, sets=args.sets)
    spent: collections.Counter = collections.Counter()
    wrapped, depth = set(), [0]
    for cls in _population_classes():
        for method in ENGINE_CALLS:
            owner = next((base for base in cls.__mro__ if method in vars(base)), None)
            if owner is not None and (owner, method) not in wrapped:
                wrapped.add((owner, method))
                setattr(owner, method, _clocked(vars(owner)[method], spent, method, depth))
    started = time.process_time()
    simulate_lanes(scenario, args.seed, range(args.lanes))
    cpu = (time.process_time() - started) / args.lanes
    for key in spent:
        spent[key] /= args.lanes
    by_class: collections.Counter = collections.Counter()
    for (name, _), seconds in spent.items():
        by_class[name] += seconds
    perp_cpu = sum(s for name, s in by_class.items() if "Perp" in name or "Cross" in name)
    funds = sum(by_class.values()) - perp_cpu
    lanes = f", {args.lanes} lanes, per path" if args.lanes > 1 else ""
    print(f"{args.scenario} seed {args.seed}{lanes}: path {cpu:.2f} s CPU")
    print(f"  fund populations {funds:.2f} s ({100 * funds / cpu:.0f}%), perps {perp_cpu:.2f} s")
    for name, seconds in by_class.most_common():
        timed = [method for method in ENGINE_CALLS if (name, method) in spent]
        calls = ", ".join(f"{method} {spent[name, method]:.2f}" for method in timed)
        print(f"  {name:24s} {seconds:6.2f} s   ({calls})")


if __name__ == "__main__":
    main()

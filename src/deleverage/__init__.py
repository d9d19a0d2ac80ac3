"""deleverage: simulate, detect and explain cross-asset liquidity crashes."""

from deleverage.engine.montecarlo import simulate_paths
from deleverage.engine.simulate import simulate, simulate_lanes
from deleverage.explain import ExplainResult, explain
from deleverage.results.montecarlo import MonteCarloResult
from deleverage.results.result import SimulationResult
from deleverage.results.store import open_run
from deleverage.scenario import Scenario, list_presets, load_scenario

__all__ = [
    "ExplainResult",
    "MonteCarloResult",
    "Scenario",
    "SimulationResult",
    "explain",
    "list_presets",
    "load_scenario",
    "open_run",
    "simulate",
    "simulate_lanes",
    "simulate_paths",
]

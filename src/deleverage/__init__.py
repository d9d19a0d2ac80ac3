"""deleverage: simulate, detect and explain cross-asset liquidity crashes."""

from deleverage.engine.montecarlo import simulate_paths
from deleverage.engine.simulate import simulate
from deleverage.results.montecarlo import MonteCarloResult
from deleverage.results.result import SimulationResult
from deleverage.scenario import Scenario, list_presets, load_scenario

__all__ = [
    "MonteCarloResult",
    "Scenario",
    "SimulationResult",
    "list_presets",
    "load_scenario",
    "simulate",
    "simulate_paths",
]

"""deleverage: simulate, detect and explain cross-asset liquidity crashes."""

from deleverage.engine.simulate import simulate
from deleverage.results.result import SimulationResult
from deleverage.scenario import Scenario, list_presets, load_scenario

__all__ = ["Scenario", "SimulationResult", "list_presets", "load_scenario", "simulate"]

"""Scenario files: schema, loading, presets."""

from deleverage.scenario.loader import list_presets, load_scenario, scenario_hash
from deleverage.scenario.schema import CHANNELS, Scenario

__all__ = ["CHANNELS", "Scenario", "list_presets", "load_scenario", "scenario_hash"]

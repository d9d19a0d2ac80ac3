"""The simulation engine: one path of a scenario, step by step."""

"""What caused a crash: amplification, Shapley attribution, epicenter (SPEC §6)."""

from deleverage.explain.api import explain
from deleverage.explain.result import ExplainResult
from deleverage.explain.shapley import Shapley, shapley, shapley_exact, shapley_sampled

__all__ = ["ExplainResult", "Shapley", "explain", "shapley", "shapley_exact", "shapley_sampled"]

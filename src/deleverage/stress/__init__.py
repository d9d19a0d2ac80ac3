"""Portfolio stress (SPEC §8): would a user's book have survived the scenario?

`load_portfolio(path, scenario)` reads and checks a portfolio file; `stress(portfolio,
scenario, paths=...)` runs it inside the scenario's market (endogenous) and revalued beside
it (static); `find_breaking_shock` searches the shock size that liquidates it.
"""

from deleverage.stress.loader import PortfolioError, load_portfolio, validate_portfolio
from deleverage.stress.result import BreakingShock, StressResult
from deleverage.stress.run import find_breaking_shock, run_book, scale_shocks, stress
from deleverage.stress.schema import Portfolio

__all__ = [
    "BreakingShock",
    "Portfolio",
    "PortfolioError",
    "StressResult",
    "find_breaking_shock",
    "load_portfolio",
    "run_book",
    "scale_shocks",
    "stress",
    "validate_portfolio",
]

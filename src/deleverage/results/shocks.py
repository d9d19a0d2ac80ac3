"""When and what each shock of a scenario is, for markers, tables and the epicenter."""

from __future__ import annotations

import pandas as pd

from deleverage.scenario.schema import Scenario


def shock_name(scenario: Scenario, j: int) -> str:
    shock = scenario.shocks[j]
    what = getattr(shock, "asset", None) or ",".join(getattr(shock, "assets", [])) or ""
    return shock.label or f"{shock.type} {what}".strip() + f" #{j}"


def shock_times(scenario: Scenario) -> pd.DataFrame:
    """When each shock acts: time, kind, label (one row per effect: a margin change is
    announced and takes effect; a driver releases its asset at `until`)."""
    rows = []
    for j, shock in enumerate(scenario.shocks):
        name = shock_name(scenario, j)
        if shock.type == "margin_change":
            rows.append((shock.effective, shock.type, f"{name} (effective)"))
        elif shock.type == "driver":
            if shock.until is not None:
                rows.append((shock.until, shock.type, f"{shock.asset} released: {name}"))
        else:
            at = getattr(shock, "time", None) or getattr(shock, "start", None)
            rows.append((at, shock.type, name))
    frame = pd.DataFrame(rows, columns=["time", "kind", "label"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.sort_values("time", ignore_index=True)

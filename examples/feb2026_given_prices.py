"""feb-2026 with BTC and ETH replayed along their observed path: how much do the perp
books liquidate when the crash's prices are given?

A check of the liquidation mechanics against the crash itself (issue 7): the preset's
books, calibrated only on calm days, meet the observed prices of 30 Jan – 6 Feb.

    python examples/feb2026_given_prices.py ../shared/data

reads `intraday_1h_yahoo_2025-2026.csv` (hourly BTC-USD, ETH-USD) and the daily
`btc_usd_daily_yahoo.csv` / `eth_usd_daily_yahoo.csv` (before the hourly series starts)
from the data folder given, and prints the perp liquidations per UTC day and the targets.
"""

import sys
from pathlib import Path

import pandas as pd
import yaml

from deleverage import SimulationResult, list_presets, simulate
from deleverage.scenario.loader import validate

START, END = pd.Timestamp("2026-01-02"), pd.Timestamp("2026-02-09")


def observed_points(data: Path, symbol: str, daily_file: str) -> list[list]:
    """Closes from the clock start to the end of the run: hourly where the hourly series
    has begun, daily before (each close stamped at the end of its bar)."""
    hourly = pd.read_csv(data / "intraday_1h_yahoo_2025-2026.csv", parse_dates=["datetime_utc"])
    hourly = hourly[hourly.symbol == symbol].set_index("datetime_utc").close
    hourly.index = hourly.index + pd.Timedelta("1h")  # bars are stamped at their start
    hourly = hourly[(hourly.index >= START) & (hourly.index <= END)]
    daily = pd.read_csv(data / daily_file, parse_dates=["date"]).set_index("date").close
    daily.index = daily.index + pd.Timedelta("1D")
    daily = daily[daily.index < hourly.index.min()]
    series = pd.concat([daily, hourly]).sort_index()
    series = series[(series.index >= START) & (series.index <= END)]
    return [[t.strftime("%Y-%m-%dT%H:%M:%SZ"), float(v)] for t, v in series.items()]


def given_prices(data: Path) -> SimulationResult:
    """feb-2026, seed 0, with BTC and ETH driven along their observed path."""
    preset = next(p for p in list_presets() if p.name == "feb-2026")
    raw = yaml.safe_load(preset.path.read_text())
    for asset, symbol, daily in (
        ("BTC", "BTC-USD", "btc_usd_daily_yahoo.csv"),
        ("ETH", "ETH-USD", "eth_usd_daily_yahoo.csv"),
    ):
        raw["shocks"].append(
            {
                "type": "driver",
                "asset": asset,
                "label": f"observed {asset} (Yahoo hourly closes)",
                "source": f"{data.name}/intraday_1h_yahoo_2025-2026.csv, {daily}",
                "points": observed_points(data, symbol, daily),
            }
        )
    return simulate(validate(raw, preset.path.name, preset.path.parent), seed=0)


def main(data: Path) -> None:
    result = given_prices(data)
    events = result.events.assign(time=result.times[result.events.step.to_numpy() + 1])
    liquidations = events[(events.kind == "perp_liquidation") & (events.time >= "2026-01-29")]
    per_day = liquidations.pivot_table(
        index=liquidations.time.dt.strftime("%d %b"),
        columns="population",
        values="notional_usd",
        aggfunc="sum",
        sort=False,
    )
    print("Perp liquidations per UTC day, $M (observed prices given):")
    print((per_day.fillna(0.0) / 1e6).round(0).to_string())
    print()
    print(result.targets_table().to_string())


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))

"""The result of `explain`: amplification, Shapley attribution, epicenter and timeline.

The tables are the computation; `to_frame()` lays them out tidy, and the summary, plot and
report are views of the same tables.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deleverage.results import html
from deleverage.results.result import TIDY_COLUMNS, package_version
from deleverage.scenario.schema import Scenario

WINDOW = ["window_start", "window_end"]
EXTRA_COLUMNS = ["game", "player", "venue", "std_error"]


def _window(window) -> tuple:
    return (window[0], window[1]) if window else (None, None)


def _signed(value: float, unit: str, std_error: float = 0.0) -> str:
    text = html.number(value, unit)
    if std_error > 0:
        text += f" ± {html.number(std_error)}"
    return text


@dataclass
class ExplainResult:
    """What caused one path's moves and liquidations.

    amplification: per asset, the move with the scenario's channels, with all channels off,
        and their ratio.
    attribution: per (game, player, outcome): the Shapley value and its standard error (0
        when exact). Outcomes: each asset's move (%) and total liquidations (USD).
    totals: per (game, outcome): v(no player), v(all players), the sum of the values (equal
        to their difference), exact or over how many sampled orders, coalitions simulated.
    epicenter, timeline: see `deleverage.explain.epicenter`.
    """

    scenario: Scenario
    seed: int
    path: int
    explained_run: str | None
    amplification: pd.DataFrame
    attribution: pd.DataFrame
    totals: pd.DataFrame
    epicenter: pd.DataFrame
    timeline: pd.DataFrame
    wall_seconds: float
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    package_version: str = field(default_factory=package_version)

    def __repr__(self) -> str:
        games = ", ".join(
            f"{g} ({int(t.players.iloc[0])} players, "
            f"{'exact' if t.exact.iloc[0] else f'{int(t.permutations.iloc[0])} orders'})"
            for g, t in self.totals.groupby("game", sort=False)
        )
        return (
            f"<ExplainResult {self.scenario.name} seed {self.seed} path {self.path}: "
            f"{len(self.amplification)} assets; {games or 'no game'}>"
        )

    # ------------------------------------------------------------------ tables

    def to_frame(self) -> pd.DataFrame:
        """Tidy long table: run id, seed, scenario, time, entity, metric, value, unit, basis,
        window_start, window_end (the window an outcome is measured in), game, player,
        venue, std_error. Everything modelled."""
        rows = []
        for r in self.amplification.itertuples(index=False):
            for metric, value, unit in (
                ("amplification", r.amplification, "ratio"),
                ("move_all_channels", r.move_pct, "%"),
                ("move_channels_off", r.move_channels_off_pct, "%"),
            ):
                rows.append(
                    (None, r.asset, metric, value, unit, *_window(r.window), "", "", "", 0.0)
                )
        for r in self.attribution.itertuples(index=False):
            rows.append(
                (None, r.entity, "shapley", r.value, r.unit, *_window(r.window), r.game, r.player,
                 "", r.std_error)
            )  # fmt: skip
        for r in self.totals.itertuples(index=False):
            for metric, value in (("no_player", r.none), ("all_players", r.all)):
                rows.append(
                    (None, r.entity, metric, value, r.unit, *_window(r.window), r.game, "", "", 0.0)
                )
        for r in self.epicenter.itertuples(index=False):
            metric = r.what.split(" (")[0].replace(" ", "_")
            rows.append(
                (r.time, "epicenter", metric, r.notional_usd, "USD", None, None, "",
                 r.population, r.venue, 0.0)
            )  # fmt: skip
        for r in self.timeline.itertuples(index=False):
            rows.append(
                (r.time, r.asset, r.what, r.notional_usd, "USD", None, None, "", r.population,
                 r.venue, 0.0)
            )  # fmt: skip
        frame = pd.DataFrame(
            rows,
            columns=["time", "entity", "metric", "value", "unit", *WINDOW, *EXTRA_COLUMNS],
        )
        frame.insert(0, "scenario", self.scenario.name)
        frame.insert(0, "seed", self.seed)
        frame.insert(0, "run_id", self.run_id)
        frame["basis"] = "modelled"
        for column in ("time", "window_start", "window_end"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame[[*TIDY_COLUMNS, *EXTRA_COLUMNS]]

    def attribution_table(self, game: str = "channels") -> pd.DataFrame:
        """Players × outcomes (Shapley values), then the row `all − none` (what they add up
        to). Units: % for asset moves, USD for liquidations."""
        rows = self.attribution[self.attribution.game == game]
        table = rows.pivot(index="player", columns="entity", values="value")
        order = list(dict.fromkeys(rows.entity))
        table = table.loc[list(dict.fromkeys(rows.player)), order]
        totals = self.totals[self.totals.game == game].set_index("entity")
        table.loc["all − none"] = (totals["all"] - totals["none"]).loc[order]
        table.columns.name = None
        return table

    def errors_table(self, game: str = "channels") -> pd.DataFrame:
        rows = self.attribution[self.attribution.game == game]
        table = rows.pivot(index="player", columns="entity", values="std_error")
        return table.loc[list(dict.fromkeys(rows.player)), list(dict.fromkeys(rows.entity))]

    def method(self, game: str) -> str:
        totals = self.totals[self.totals.game == game]
        if totals.empty:
            return "not run"
        first = totals.iloc[0]
        how = (
            "exact over all coalitions"
            if first.exact
            else f"{first.permutations} sampled orders (± standard error)"
        )
        return f"{first.players} players, {how}, {first.evaluations} runs, common random numbers"

    # ------------------------------------------------------------------ views

    def _header(self) -> str:
        run = f"run {self.explained_run}, " if self.explained_run else ""
        return (
            f"explain {self.scenario.name}: {run}seed {self.seed}, path {self.path} "
            f"(modelled; {self.wall_seconds:.1f} s)"
        )

    def sections(self) -> list[tuple[str, list[str], list[list[str]], str]]:
        """(title, columns, formatted rows, caption) of every table, for text and HTML."""
        out = []
        amp = self.amplification
        out.append(
            (
                "Amplification: all channels ÷ all channels off (shocks only)",
                ["asset", "measured on", "move, all channels", "move, shocks only", "ratio"],
                [
                    [
                        r.asset,
                        r.measure,
                        html.number(r.move_pct, "%"),
                        html.number(r.move_channels_off_pct, "%"),
                        html.ratio(r.amplification),
                    ]
                    for r in amp.itertuples(index=False)
                ],
                "Same seed and path, same shocks; only the feedback channels differ.",
            )
        )
        for game in dict.fromkeys(self.totals.game):
            table, errors = self.attribution_table(game), self.errors_table(game)
            units = self.totals[self.totals.game == game].set_index("entity").unit
            rows = []
            for player, row in table.iterrows():
                rows.append(
                    [player]
                    + [
                        _signed(
                            row[e], units[e], errors.at[player, e] if player in errors.index else 0
                        )
                        for e in table.columns
                    ]
                )
            out.append(
                (
                    f"Shapley attribution over {game}",
                    [game[:-1], *table.columns],
                    rows,
                    f"{self.method(game)}. Each cell: how much the {game[:-1]} adds to the "
                    "outcome, averaged over the orders it can join in; the last row is the "
                    "outcome with all of them minus with none, which the column adds up to.",
                )
            )
        out.append(
            (
                "Epicenter",
                ["what", "time", "kind", "population", "venue", "asset", "notional", "detail"],
                [
                    [
                        r.what,
                        html.stamp(r.time),
                        r.kind,
                        r.population,
                        r.venue,
                        r.asset,
                        html.number(r.notional_usd, "USD"),
                        r.detail,
                    ]
                    for r in self.epicenter.itertuples(index=False)
                ],
                "The peak hour of forced selling, the last shock at or before it, and the first "
                "forced sale (stop, liquidation, forced sale, default) from that shock on.",
            )
        )
        out.append(
            (
                "Timeline: first margin call, liquidation and fund default",
                ["what", "asset", "venue", "time", "population", "accounts/funds", "notional"],
                [
                    [
                        r.what.replace("_", " "),
                        r.asset,
                        r.venue,
                        html.stamp(r.time),
                        r.population,
                        f"{r.count:,}",
                        html.number(r.notional_usd, "USD"),
                    ]
                    for r in self.timeline.itertuples(index=False)
                ],
                None,
            )
        )
        return out

    def summary(self) -> str:
        """Plain-text tables (the same as the report, the notebook view and the CLI)."""
        return html.text(self._header(), self.sections())

    def _repr_html_(self) -> str:
        parts = [html.paragraph(self._header())]
        parts += [html.table(t, c, r, cap) for t, c, r, cap in self.sections()[:3]]
        return "".join(parts)

    def plot(self, game: str = "channels", entities: list[str] | None = None):
        """Waterfall per outcome: from the outcome with no player of `game` on, each
        player's Shapley value, to the outcome with all of them. A bare matplotlib `Figure`:
        the user's backend and pyplot figures are left alone."""
        from deleverage.results.charts import waterfall_figure

        title = f"{self.scenario.name}, seed {self.seed}: Shapley attribution over {game}"
        return waterfall_figure(self.to_frame(), game, entities or self._moved(game), title)

    def _moved(self, game: str) -> list[str]:
        """Outcomes worth a panel: assets with a target, else every one, and liquidations."""
        entities = list(dict.fromkeys(self.attribution[self.attribution.game == game].entity))
        targeted = {t.asset for t in self.scenario.targets if t.asset}
        chosen = [e for e in entities if e in targeted or e == "liquidations"]
        return chosen or entities

    def report(self, path: str | Path) -> Path:
        """Self-contained offline HTML: every table and a waterfall per game."""
        parts = [html.paragraph(self._header(), "label")]
        for game in dict.fromkeys(self.totals.game):
            parts.append(
                html.chart(self.plot(game), f"waterfall-{game}", f"Shapley attribution over {game}")
            )
        parts += [html.table(t, c, r, cap) for t, c, r, cap in self.sections()]
        return html.write_page(path, f"deleverage explain {self.scenario.name}", parts)

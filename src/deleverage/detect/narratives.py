"""Rival explanations, head to head (SPEC §7).

Each narrative of a cross-asset crash predicts things that can be checked in prices:
which market broke first (in UTC, honest about asynchronous closes), which fell most
relative to its own volatility, which way the yen and the dollar went, which market
transmitted shocks to the others. Every prediction becomes one piece of evidence with
a verdict: +1 supports, +0.5 partly (e.g. tied first), 0 inconclusive, −1
contradicts, NaN untestable with the data given. A narrative's score is the mean of
its testable verdicts (−1..1); the data favour the top score. Strength counts
untestable predictions as missing: the leader's score with each of them against it
must beat the runner-up's with each of them for it, by ≥ 0.5 (strong), ≥ 0.25
(moderate) or > 0 (weak). A window without a co-crash bar (every group in its tail
within the tolerance) holds no crash to explain, and nothing is favoured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deleverage.detect.indicators import DetectParams, Indicators, groups_of, risk_return
from deleverage.detect.indicators.cocrash import (
    VOL_WARMUP_DAYS,
    bars_per_day,
    in_tail,
    tail_threshold,
)
from deleverage.detect.indicators.transforms import expanding_rms
from deleverage.detect.loaders import Panel

NARRATIVES = {
    "carry_unwind": "Yen carry unwind",
    "dollar_policy_shock": "Dollar / policy shock",
    "margin_spiral_metals": "Margin spiral in metals",
    "tech_earnings_repricing": "Tech-earnings repricing",
    "crypto_native_deleveraging": "Crypto-native deleveraging",
}
# Metals are the safe-haven group and crypto the speculative one (SPEC §0).
GROUP_LABELS = {
    "safe_haven": "metals (safe haven)",
    "tech": "tech stocks",
    "speculative": "crypto (speculative)",
}
VERDICT_WORDS = {1.0: "supports", 0.5: "partly", 0.0: "inconclusive", -1.0: "contradicts"}


def stamp(t: pd.Timestamp) -> str:
    """A bar's time: the date for daily bars, date and UTC time for intraday ones."""
    return str(t.date()) if t == t.normalize() else f"{t:%Y-%m-%d %H:%M}"


def verdict_word(v: float) -> str:
    return "untestable" if np.isnan(v) else VERDICT_WORDS[v]


@dataclass(frozen=True)
class Evidence:
    """One prediction of one narrative, what the data show, and the verdict."""

    narrative: str
    code: str
    claim: str
    observed: float
    unit: str
    detail: str
    verdict: float


@dataclass(frozen=True)
class Onset:
    """First tail loss of a group in the crash, with the UTC interval it happened in."""

    group: str
    bar: pd.Timestamp
    start_utc: pd.Timestamp
    end_utc: pd.Timestamp
    value: float

    def precedes(self, other: Onset) -> bool:
        return self.end_utc <= other.start_utc


@dataclass(frozen=True)
class NarrativeReport:
    """Evidence and scores of every narrative over one analysis window."""

    window: tuple[pd.Timestamp, pd.Timestamp]
    crash: tuple[pd.Timestamp, pd.Timestamp]  # bar of the basket's peak, bar of its trough
    crash_return: float  # peak-to-trough log return of the risk basket
    onsets: dict[str, Onset]
    group_moves: pd.DataFrame  # per group: crash-window log return, in units of own vol
    evidence: tuple[Evidence, ...]
    scores: pd.Series
    favoured: str | None
    strength: str
    co_moves: int = -1  # co-crash bars in the window; -1 = fewer than two groups

    @property
    def no_crash(self) -> bool:
        """True when the window holds no tail co-move: there is no crash to explain."""
        return self.co_moves == 0

    def table(self) -> pd.DataFrame:
        """One row per narrative: score and counts of each verdict, best first."""
        rows = []
        for key, name in NARRATIVES.items():
            ev = [e for e in self.evidence if e.narrative == key]
            words = [verdict_word(e.verdict) for e in ev]
            rows.append(
                {
                    "narrative": name,
                    "score": self.scores[key],
                    **{
                        w: words.count(w)
                        for w in ("supports", "partly", "inconclusive", "contradicts", "untestable")
                    },
                }
            )
        return pd.DataFrame(rows).sort_values("score", ascending=False, kind="stable")


def _onset(panel: Panel, group: str, members: list[str], bar: pd.Timestamp, value: float) -> Onset:
    intervals = [panel.bar_interval(m, bar) for m in members]
    return Onset(group, bar, min(i[0] for i in intervals), max(i[1] for i in intervals), value)


def _first_tail(
    x: pd.Series, window: pd.Index, params: DetectParams, per_day: float
) -> pd.Timestamp | None:
    """First bar of `window` where x is in its lower tail (the co-crash rule)."""
    threshold = tail_threshold(
        x,
        min(params.tail_quantile, params.tail_quantile / per_day),
        params.tail_halflife_days * per_day,
        params.min_history,
        math.ceil(VOL_WARMUP_DAYS * per_day),
    )
    hits = window[(x.loc[window] <= threshold.loc[window]).to_numpy()]
    return hits[0] if len(hits) else None


def group_tail_bars(ind: Indicators, members: list[str]) -> pd.Series:
    """True on bars where any member of a group is in its own tail (the co-crash rule)."""
    hits = [in_tail(ind.cocrash, m, ind.returns[m]) for m in members]
    return pd.concat(hits, axis=1).any(axis=1)


def _change_pct(level: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> float:
    return float((level.loc[end] / level.loc[start] - 1.0) * 100.0)


class _Builder:
    """Collects evidence while reading measurements from the panel and indicators."""

    def __init__(self, panel: Panel, ind: Indicators, window, params: DetectParams):
        self.panel, self.ind, self.params = panel, ind, params
        r = ind.returns
        self.bars = r.index[(r.index >= window[0]) & (r.index <= window[1])]
        self.groups = groups_of(panel)
        self.evidence: list[Evidence] = []
        one_bar = pd.DataFrame(
            {g: r[m].mean(axis=1, skipna=False) for g, m in self.groups.items()}, index=r.index
        )
        # The crash is the peak-to-trough of an equal-weight basket of the groups (of every
        # asset when no group is given).
        basket = (one_bar if self.groups else r).mean(axis=1).loc[self.bars]
        level = pd.concat([pd.Series([0.0]), basket.cumsum().reset_index(drop=True)])
        trough = int(level.to_numpy().argmin())
        peak = int(level.to_numpy()[: trough + 1].argmax())
        prices_index = panel.prices.index  # one bar longer than the returns, at the start
        self.peak_bar = prices_index[prices_index.get_loc(self.bars[0]) - 1 + peak]
        self.trough_bar = self.bars[trough - 1] if trough > 0 else self.bars[-1]
        self.crash_return = float(level.iloc[trough] - level.iloc[peak])
        self.crash_bars = r.index[(r.index > self.peak_bar) & (r.index <= self.trough_bar)]
        if len(self.crash_bars) == 0:
            self.crash_bars = self.bars
        self.onsets = {}
        self.tails = {}
        if ind.cocrash is not None:
            for g, members in self.groups.items():
                self.tails[g] = group_tail_bars(ind, members)
                hits = self.crash_bars[self.tails[g].loc[self.crash_bars].to_numpy()]
                if len(hits):
                    worst = float(r.loc[hits[0], members].min())
                    self.onsets[g] = _onset(panel, g, members, hits[0], worst)
        vol = {
            g: expanding_rms(one_bar[g], params.min_history).loc[self.crash_bars[0]]
            for g in self.groups
        }
        moved = one_bar.loc[self.crash_bars].sum()
        self.group_moves = pd.DataFrame(
            {
                "return": moved,
                "vol_units": moved
                / (pd.Series(vol).where(lambda v: v > 0) * np.sqrt(len(self.crash_bars))),
            }
        )

    def add(self, narrative, code, claim, observed, unit, detail, verdict):
        self.evidence.append(
            Evidence(narrative, code, claim, float(observed), unit, detail, float(verdict))
        )

    def untestable(self, narrative, code, claim, why):
        self.add(narrative, code, claim, np.nan, "", why, np.nan)

    # ------------------------------------------------------------------ shared checks

    def leads(self, narrative: str, group: str) -> None:
        name = GROUP_LABELS[group]
        claim = f"{name} break first (first tail loss in the crash, ordered in UTC)"
        if group not in self.groups:
            return self.untestable(narrative, "leads", claim, f"no {name} assets")
        mine = self.onsets.get(group)
        if mine is None:
            return self.add(
                narrative, "leads", claim, np.nan, "", f"no {name} tail loss in the crash", -1.0
            )
        others = [o for g, o in self.onsets.items() if g != group]
        earlier = [GROUP_LABELS[o.group] for o in others if o.precedes(mine)]
        when = (
            f"{name} first at bar {stamp(mine.bar)} ({mine.start_utc:%d %b %H:%M}–"
            f"{mine.end_utc:%d %b %H:%M} UTC)"
        )
        if earlier:
            verdict, how = -1.0, f"; {', '.join(earlier)} broke earlier"
        elif all(mine.precedes(o) for o in others):
            verdict, how = 1.0, "; before every other group"
        else:
            tied = [GROUP_LABELS[o.group] for o in others if not mine.precedes(o)]
            verdict, how = 0.5, f"; overlaps {', '.join(tied)} (tie at this resolution)"
        self.add(narrative, "leads", claim, mine.value * 100, "% one-bar", when + how, verdict)

    def largest_loss(self, narrative: str, group: str) -> None:
        name = GROUP_LABELS[group]
        claim = f"{name} have the largest crash loss in units of their own volatility"
        if group not in self.groups:
            return self.untestable(narrative, "largest_loss", claim, f"no {name} assets")
        units = self.group_moves["vol_units"].dropna()
        if group not in units.index:
            why = f"{name} did not move before the crash (no volatility to scale by)"
            return self.untestable(narrative, "largest_loss", claim, why)
        worst = units.idxmin()
        detail = ", ".join(f"{GROUP_LABELS[g]} {u:+.1f}σ" for g, u in units.items())
        self.add(
            narrative,
            "largest_loss",
            claim,
            units[group],
            "σ",
            detail,
            1.0 if worst == group else -1.0,
        )

    def transmits(self, narrative: str, group: str) -> None:
        name = GROUP_LABELS[group]
        claim = f"{name} are the main net transmitter of spillovers (Diebold–Yilmaz)"
        if group not in self.groups:
            return self.untestable(narrative, "transmits", claim, f"no {name} assets")
        spill = self.ind.spillover.loc[self.bars]
        net = {
            g: spill[[f"net_{m}" for m in ms]].sum(axis=1, skipna=False).mean()
            for g, ms in self.groups.items()
        }
        if any(np.isnan(v) for v in net.values()):
            return self.untestable(
                narrative, "transmits", claim, "window shorter than the spillover estimation window"
            )
        best = max(net, key=net.get)
        detail = (
            ", ".join(f"{GROUP_LABELS[g]} {v:+.1f}" for g, v in net.items())
            + " (% net, window mean)"
        )
        self.add(
            narrative,
            "transmits",
            claim,
            net[group],
            "% net",
            detail,
            1.0 if best == group and net[group] > 0 else -1.0,
        )

    def level_move(self, narrative, code, claim, ident, sign) -> None:
        """USDJPY / DXY change over the crash window; verdict by the predicted sign."""
        if ident not in self.panel.assets:
            return self.untestable(narrative, code, claim, f"no {ident} series")
        level = self.panel.prices[ident]
        pct = _change_pct(level, self.peak_bar, self.trough_bar)
        detail = (
            f"{ident} {level.loc[self.peak_bar]:.4g} → {level.loc[self.trough_bar]:.4g} "
            f"({pct:+.1f}%) from {stamp(self.peak_bar)} to {stamp(self.trough_bar)}"
        )
        self.add(narrative, code, claim, pct, "%", detail, 1.0 if pct * sign > 0 else -1.0)


def _carry(b: _Builder) -> None:
    n = "carry_unwind"
    b.level_move(n, "yen_up", "the yen strengthens over the crash (USDJPY falls)", "USDJPY", -1)
    claim = "a yen rally comes before the first tail loss of tech or crypto in the crash"
    if "USDJPY" not in b.panel.assets:
        b.untestable(n, "yen_first", claim, "no USDJPY series")
    else:
        lead_in = b.bars[b.bars <= b.trough_bar]
        seen = b.panel.observed()["USDJPY"]
        per_day = 1.0 if b.panel.daily else bars_per_day(seen.iloc[: b.params.min_history])
        bar = _first_tail(b.ind.returns["USDJPY"].where(seen), lead_in, b.params, per_day)
        risk = [o for g, o in b.onsets.items() if g in ("tech", "speculative")]
        if bar is None:
            b.add(n, "yen_first", claim, np.nan, "", "no yen tail rally in the window", -1.0)
        elif not risk:
            b.add(n, "yen_first", claim, np.nan, "", "no risk-asset tail loss", 0.0)
        else:
            yen = _onset(b.panel, "yen", ["USDJPY"], bar, b.ind.returns["USDJPY"].loc[bar])
            first = min(risk, key=lambda o: o.end_utc)
            verdict = 1.0 if yen.precedes(first) else (-1.0 if first.precedes(yen) else 0.0)
            b.add(
                n,
                "yen_first",
                claim,
                yen.value * 100,
                "% one-bar",
                f"yen rally at bar {stamp(bar)}, first tail loss of "
                f"{GROUP_LABELS[first.group]} at bar {stamp(first.bar)}",
                verdict,
            )
    claim = "the yen rises when risk assets fall (negative correlation in the window)"
    risk_r = risk_return(b.ind.returns, b.panel)
    if "USDJPY" not in b.panel.assets or risk_r is None:
        b.untestable(n, "yen_risk_corr", claim, "needs USDJPY and tech/speculative assets")
    else:
        corr = float((-b.ind.returns["USDJPY"].loc[b.bars]).corr(risk_r.loc[b.bars]))
        bound = 2.0 / np.sqrt(len(b.bars))  # ~95% band for a correlation of n bars
        verdict = -1.0 if corr > bound else (1.0 if corr < -bound else 0.0)
        b.add(
            n,
            "yen_risk_corr",
            claim,
            corr,
            "corr",
            f"corr(yen, risk) = {corr:+.2f} over {len(b.bars)} bars (±{bound:.2f} is noise)",
            verdict,
        )
    claim = "the carry-unwind indicator (yen up with risk down) fires in the crash"
    if b.ind.carry is None:
        b.untestable(n, "carry_regime", claim, "needs USDJPY and risk assets")
    else:
        regime = b.ind.carry["regime"].loc[b.crash_bars]
        carry_bars, fiscal_bars = int((regime == 1).sum()), int((regime == -1).sum())
        b.add(
            n,
            "carry_regime",
            claim,
            carry_bars,
            "bars",
            f"{carry_bars} carry-unwind bars, {fiscal_bars} fiscal-shock bars in the crash",
            1.0 if carry_bars else -1.0,
        )


def _dollar(b: _Builder) -> None:
    n = "dollar_policy_shock"
    b.level_move(n, "dollar_up", "the dollar rises over the crash", "DXY", +1)
    b.level_move(n, "yen_down", "the yen weakens with the dollar (USDJPY rises)", "USDJPY", +1)
    b.leads(n, "safe_haven")
    claim = "the dollar's largest one-bar rise in the window comes at the crash start (±1 bar)"
    if "DXY" not in b.panel.assets:
        b.untestable(n, "dollar_jump", claim, "no DXY series")
    else:
        dxy = b.ind.returns["DXY"].loc[b.bars]
        jump = dxy.idxmax()
        idx = b.ind.returns.index
        gap = abs(idx.get_loc(jump) - idx.get_loc(b.crash_bars[0]))
        b.add(
            n,
            "dollar_jump",
            claim,
            dxy.max() * 100,
            "% one-bar",
            f"largest DXY rise at bar {stamp(jump)}, crash starts at bar {stamp(b.crash_bars[0])}",
            1.0 if gap <= 1 else -1.0,
        )


def _metals(b: _Builder) -> None:
    n = "margin_spiral_metals"
    b.leads(n, "safe_haven")
    b.largest_loss(n, "safe_haven")
    claim = "metals fall in repeated legs (tail losses on ≥ 2 UTC days of the crash)"
    if "safe_haven" not in b.groups:
        b.untestable(n, "repeated_legs", claim, "no safe_haven (metals) assets")
    else:
        # Margin calls are settled daily, so a leg is a UTC day with a metals tail loss.
        tails = b.tails.get("safe_haven", pd.Series(False, index=b.ind.returns.index))
        hits = tails.loc[b.crash_bars]
        days = sorted({t.date() for t in hits[hits].index})
        b.add(
            n,
            "repeated_legs",
            claim,
            len(days),
            "days",
            f"tail losses on {len(days)} day(s): {', '.join(map(str, days)) or 'none'}",
            1.0 if len(days) >= 2 else -1.0,
        )
    b.transmits(n, "safe_haven")


def _tech(b: _Builder) -> None:
    n = "tech_earnings_repricing"
    b.leads(n, "tech")
    b.largest_loss(n, "tech")
    claim = "semiconductors fall more than the broad tech index (SOX below NDX)"
    broad = next((i for i in ("NDX", "IXIC") if i in b.panel.assets), None)
    if "SOX" not in b.panel.assets or broad is None:
        b.untestable(n, "semis_worse", claim, "needs SOX and NDX (or IXIC)")
    else:
        moves = b.ind.returns[["SOX", broad]].loc[b.crash_bars].sum() * 100
        gap = float(moves["SOX"] - moves[broad])
        b.add(
            n,
            "semis_worse",
            claim,
            gap,
            "pp",
            f"SOX {moves['SOX']:+.1f}%, {broad} {moves[broad]:+.1f}% (log) over the crash",
            1.0 if gap < 0 else -1.0,
        )
    b.transmits(n, "tech")


def _crypto(b: _Builder) -> None:
    n = "crypto_native_deleveraging"
    b.leads(n, "speculative")
    b.largest_loss(n, "speculative")
    b.transmits(n, "speculative")
    claim = "crypto falls while other markets are shut (over half its loss in such bars)"
    members = b.groups.get("speculative", [])
    others = [i for i in b.panel.assets if i not in members]
    if not members or not others:
        b.untestable(n, "closed_hours", claim, "needs crypto and other assets")
    elif b.panel.daily:
        b.untestable(
            n,
            "closed_hours",
            claim,
            "daily weekday bars fold weekend moves into Monday; needs intraday data",
        )
    else:
        # "Shut" = no other asset has a new price in the bar, and none is inside a data
        # gap: a stale price carried over a hole in the data is missing, not a closure.
        crash = b.crash_bars
        fresh = b.panel.fresh.loc[crash, others]
        missing = b.panel.gaps().loc[crash, others].any(axis=1)
        shut = ~fresh.any(axis=1) & ~missing
        loss = b.ind.returns.loc[crash, members].mean(axis=1)
        falling = loss < 0
        total = float(loss[falling].sum())
        share = float(loss[shut & falling].sum() / total) if total < 0 else np.nan
        unknown = float(loss[missing & falling].sum() / total) if total < 0 else 0.0
        detail = f"{share:.0%} of crypto's falling-bar loss came while others were shut"
        if unknown > 0:
            detail += f"; {unknown:.0%} came while another market's data were missing"
        verdict = np.nan if np.isnan(share) else (1.0 if share > 0.5 else -1.0)
        if verdict == -1.0 and share + unknown > 0.5:
            verdict = np.nan  # the missing bars could decide it
        b.add(n, "closed_hours", claim, share * 100, "%", detail, verdict)


def _co_moves(b: _Builder) -> int:
    """Co-crash bars in the window: every group in its tail within the tolerance."""
    if b.ind.cocrash is None:
        return -1
    return int((b.ind.cocrash["flag"].loc[b.bars] == 1.0).sum())


def _bounds(evidence, key: str) -> tuple[float, float]:
    """A narrative's score if every untestable prediction had gone against / for it."""
    verdicts = np.array([e.verdict for e in evidence if e.narrative == key])
    return (
        float(np.nan_to_num(verdicts, nan=-1.0).mean()),
        float(np.nan_to_num(verdicts, nan=1.0).mean()),
    )


def _strength(evidence, favoured: str, runner: str | None) -> str:
    """How firmly the leader beats the runner-up, with untestable evidence as missing.

    The lead is the leader's worst case minus the runner-up's best case (missing
    evidence could go either way): strong ≥ 0.5, moderate ≥ 0.25, weak > 0; a lead
    that missing evidence could erase is "weak" if the testable scores differ, else
    "tied".
    """
    low, _ = _bounds(evidence, favoured)
    lead_now = _mean_testable([e.verdict for e in evidence if e.narrative == favoured])
    if runner is None:
        return "strong" if low - (-1.0) >= 0.5 else "weak"
    _, high = _bounds(evidence, runner)
    gap = low - high
    if gap >= 0.5:
        return "strong"
    if gap >= 0.25:
        return "moderate"
    runner_now = _mean_testable([e.verdict for e in evidence if e.narrative == runner])
    return "weak" if gap > 0 or lead_now > runner_now else "tied"


def _mean_testable(verdicts: list[float]) -> float:
    testable = [v for v in verdicts if not np.isnan(v)]
    return float(np.mean(testable)) if testable else np.nan


def score_narratives(
    panel: Panel,
    ind: Indicators,
    window: tuple[pd.Timestamp, pd.Timestamp],
    params: DetectParams,
) -> NarrativeReport:
    """Evidence for and against each narrative over `window` (UTC bars, inclusive)."""
    b = _Builder(panel, ind, window, params)
    for build in (_carry, _dollar, _metals, _tech, _crypto):
        build(b)
    scores = pd.Series(
        {k: _mean_testable([e.verdict for e in b.evidence if e.narrative == k]) for k in NARRATIVES}
    )
    ranked = scores.dropna().sort_values(ascending=False)
    co_moves = _co_moves(b)
    favoured, strength = None, "none of the narratives is supported"
    if co_moves == 0:
        strength = "no crash in this window"
    elif len(ranked) and ranked.iloc[0] > 0:
        favoured = str(ranked.index[0])
        runner = str(ranked.index[1]) if len(ranked) > 1 else None
        strength = _strength(b.evidence, favoured, runner)
    return NarrativeReport(
        window,
        (b.peak_bar, b.trough_bar),
        b.crash_return,
        b.onsets,
        b.group_moves,
        tuple(b.evidence),
        scores,
        favoured,
        strength,
        co_moves,
    )

"""Cross-impact (issue 13, item 4; `market.cross_impact`): a net flow in one asset moves the
price of another, so a forced-selling wave in one market reaches a correlated one through
trading, not only through the populations that hold both.

Trades move prices of other instruments: a multivariate propagator model accounts for a
significant part of the covariance of stock returns (Benzaquen, Mastromatteo, Eisler &
Bouchaud 2017, "Dissecting cross-impact on stock markets"); impact is concave in size for
cross-impact too, so the square-root law extends to it, with asymmetric coefficients set by
relative liquidity (Hey, Neuman & Tuschmann 2025, "Nonparametric estimation of self- and
cross-impact"); absence of dynamic arbitrage asks that cross-impact be odd in the flow and,
for linear impact with one decay kernel, symmetric (Schneider & Lillo 2016, "Cross-impact
and no-dynamic-arbitrage"; Tomas, Mastromatteo & Benzaquen 2022 build cross-impact models
from such consistency criteria).

The form used here: a round's net flow in asset i moves i's latent book by Δy_i — the
square-root law, Y·σ_i·sqrt(Q/ADV) on a fresh book and concave in the cumulative flow after
(`market.book`). Measured in units of i's daily volatility, that move is passed to asset j
with the scenario's coefficient c_ij and j's own volatility:

    Δlog p_j = c_ij · σ_j · Δy_i / σ_i

so c_ij = 1 moves j as many of its own σ as i moved in its σ: a dimensionless coefficient
like a correlation, odd in the flow, concave in its size, and symmetric in σ units when
c_ij = c_ji. The move re-centres j's book (its desks re-quote; j's depth is not consumed) and
relaxes like j's own impact: each open step the share of j's book that resolves is resolved,
its `permanent_fraction` staying in the price. A move toward a closed venue waits for the
open as a jump of its permanent part, like news; an asset replaying an observed driver does
not take it. Cross moves transmit nothing further: only traded flow does.

Lanes (issue 9): `CrossImpact.stack` joins the objects of L paths on a leading lane axis;
each lane's vector–matrix product is the one its own object computes alone (bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deleverage.market.lanes import stacked_lanes
from deleverage.scenario.schema import Scenario


def _moves(latent: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(..., A) latent moves times each lane's (A, A) links: one `(A,) @ (A, A)` product a
    lane, so a lane's bits do not depend on the others (a batched product may sum in
    another order)."""
    rows, n = latent.reshape(-1, latent.shape[-1]), latent.shape[-1]
    products = [row @ links for row, links in zip(rows, scale.reshape(-1, n, n), strict=True)]
    return np.stack(products).reshape(latent.shape)


@dataclass
class CrossImpact:
    """Arrays as below for one path; with a leading lane axis (L, ...) when stacked."""

    scale: np.ndarray  # (A, A): c_ij · σ_j / σ_i, from row i to column j (diagonal 0)
    resolved: np.ndarray  # (A,) share of a transient move resolved per open step
    permanent: np.ndarray  # (A,) share of what resolves that stays in the price
    transient: np.ndarray  # (A,) cross moves received and not yet resolved, log units

    @classmethod
    def build(
        cls, scenario: Scenario, resolved: np.ndarray, permanent: np.ndarray
    ) -> CrossImpact | None:
        """None without `market.cross_impact` (the engine skips it: runs are unchanged)."""
        links = scenario.market.cross_impact
        if not links:
            return None
        index = scenario.asset_index()
        vol = np.array([a.daily_vol for a in scenario.assets])
        scale = np.zeros((len(vol), len(vol)))
        for source, target, coefficient in links:
            i, j = index[source], index[target]
            scale[i, j] = coefficient * vol[j] / vol[i]
        return cls(scale, resolved, permanent, np.zeros(len(vol)))

    @classmethod
    def stack(cls, objects: list[CrossImpact]) -> CrossImpact:
        """One object for L lanes (each built by `build` from its lane's scenario draw)."""
        names = ("scale", "resolved", "permanent", "transient")
        return cls(*(stacked_lanes([getattr(x, name) for x in objects], name) for name in names))

    def relax(self, state, is_open: np.ndarray) -> None:
        """Resilience at the start of a step, as `book.refill` for an asset's own impact."""
        change = np.where(is_open, self.resolved, 0.0) * self.transient
        self.transient = self.transient - change
        state.log_reference = state.log_reference - (1.0 - self.permanent) * change

    def transmit(self, state, latent_before: np.ndarray, is_open, free, limits=None) -> None:
        """Pass the round's latent moves (displacement now − `latent_before`) to the linked
        assets: open and `free` (not driven) ones move now; closed ones get the permanent
        part when they open. With price limits, a move beyond a band waits like news.
        A lane whose round moved no linked asset is left exactly as it was."""
        move = _moves(state.displacement - latent_before, self.scale)
        moved = move.any(axis=-1, keepdims=True)  # (..., 1)
        if not moved.any():
            return
        now = is_open & free
        log_reference = state.log_reference + np.where(now, move, 0.0)
        transient = self.transient + np.where(now, move, 0.0)
        pending_jump = state.pending_jump + np.where(~is_open & free, self.permanent * move, 0.0)
        state.log_reference = np.where(moved, log_reference, state.log_reference)
        state.pending_jump = np.where(moved, pending_jump, state.pending_jump)
        if limits is not None:
            held = state.log_reference
            limits.clamp(state, free, moved)  # rebinds the state's arrays
            transient = transient + (state.log_reference - held)
        self.transient = np.where(moved, transient, self.transient)

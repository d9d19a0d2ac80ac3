"""Latent order book with linear depth profile (Tóth et al. 2011) — vectorized over assets.

Liquidity density at log-distance x beyond an empty gap g is Λ·(|x| − g) units per unit of
log price, with Λ set so that a fresh book absorbs a metaorder of Q USD with a move of
Y·σ_daily·sqrt(Q/ADV) — the square-root law (facts 3.1.5) follows from integrating a linear
profile, it is not imposed:  N(x) = Λ/2·(|x| − g)²  ⇒  |x| = g + sqrt(2N/Λ).

The state of each book is the displacement x of the price from the reference (the price the
book is centred on). Executing q units moves x along N⁻¹; the fill price is the exact
volume-weighted price along that path. Between steps the book refills: a share of x is
resolved, part of it absorbed into the reference (permanent impact) and the rest reverting.
"""

from __future__ import annotations

import numpy as np


def base_depth_units(
    adv_usd: np.ndarray, daily_vol: np.ndarray, impact_y: np.ndarray, unit_usd: np.ndarray
) -> np.ndarray:
    """Λ in units per (log price)²: 2·ADV / (Y²·σ²) USD, converted at `unit_usd`, the USD
    value of one unit (the price of a USD-quoted asset; 1 for a USD/xxx pair)."""
    return 2.0 * adv_usd / (impact_y**2 * daily_vol**2) / unit_usd


def _slope(x: np.ndarray, lam_bid: np.ndarray, lam_ask: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, lam_ask, lam_bid)


def units_to(x: np.ndarray, lam_bid, lam_ask, gap) -> np.ndarray:
    """Signed units absorbed moving the price from the centre to displacement x."""
    depth = np.maximum(np.abs(x) - gap, 0.0)
    return np.sign(x) * 0.5 * _slope(x, lam_bid, lam_ask) * depth**2


def displacement_for(units: np.ndarray, lam_bid, lam_ask, gap) -> np.ndarray:
    """Inverse of `units_to` (for units ≠ 0 the price jumps across an empty gap)."""
    lam = np.where(units >= 0, lam_ask, lam_bid)
    return np.sign(units) * (gap + np.sqrt(2.0 * np.abs(units) / lam))


def _ask_money(u: np.ndarray) -> np.ndarray:
    """e^u(u − 1) + 1, accurate for small u."""
    return np.where(u < 1e-4, u * u / 2 + u**3 / 3, np.exp(u) * (u - 1.0) + 1.0)


def _bid_money(v: np.ndarray) -> np.ndarray:
    """1 − e^{−v}(1 + v), accurate for small v."""
    return np.where(v < 1e-4, v * v / 2 - v**3 / 3, 1.0 - np.exp(-v) * (1.0 + v))


def money_to(x: np.ndarray, lam_bid, lam_ask, gap) -> np.ndarray:
    """∫₀ˣ e^u dN(u): cash (in units of the reference price) exchanged from centre to x."""
    ask = lam_ask * np.exp(gap) * _ask_money(np.maximum(x - gap, 0.0))
    bid = -lam_bid * np.exp(-gap) * _bid_money(np.maximum(-x - gap, 0.0))
    return np.where(x >= 0, ask, bid)


def execute(
    x0: np.ndarray,
    quantity: np.ndarray,
    reference_price: np.ndarray,
    lam_bid: np.ndarray,
    lam_ask: np.ndarray,
    gap: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Walk each book by the net signed `quantity` (units; + buys from the asks).

    Returns the new displacement and the average execution price (= the current price
    where quantity is 0, so crossing buyers and sellers trade at mid)."""
    trading = quantity != 0
    units1 = units_to(x0, lam_bid, lam_ask, gap) + quantity
    x1 = np.where(trading, displacement_for(units1, lam_bid, lam_ask, gap), x0)
    cash = money_to(x1, lam_bid, lam_ask, gap) - money_to(x0, lam_bid, lam_ask, gap)
    with np.errstate(divide="ignore", invalid="ignore"):
        average = np.where(trading, reference_price * cash / quantity, reference_price * np.exp(x0))
    # Guard against rounding only: the exact average lies between the start and end prices.
    low = reference_price * np.exp(np.minimum(x0, x1))
    high = reference_price * np.exp(np.maximum(x0, x1))
    return x1, np.clip(average, low, high)


def refill(
    x: np.ndarray, log_reference: np.ndarray, resolved: np.ndarray, permanent_fraction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Resilience between steps: a share `resolved` of the displacement is resolved; the
    `permanent_fraction` of it moves the reference, the rest reverts the price."""
    change = resolved * x
    return x - change, log_reference + permanent_fraction * change


# ----------------------------------------------------------------- two horizons (SPEC §3.2)
#
# With a visible book the price is reference·e^(y + z): y is the displacement of the latent
# book (calibrated to the daily square-root law, as above) and z that of the visible book
# near mid. Every unit traded walks both at once, so a sweep within minutes moves the price
# by the visible amount while a metaorder spread over hours, whose visible deficit refills
# between steps, pays the latent square-root cost (Donier, Bonart, Mastromatteo & Bouchaud
# 2015). Unlike the latent profile, resting depth is concentrated near mid: the cumulative
# depth within distance x grows as x^β with β ≈ 0.5-0.67 on BTC books (Amberdata, Binance
# BTC/FDUSD 2025: $3.5M within 10 bp, $16.5M within 100 bp; CoinDesk Research Nov 2025:
# $10M within 0.5%, $14M within 1%; docs/scenarios/feb-2026.md §2.5), so small orders barely
# move the price and large ones go through the book — convex impact.


def visible_units_to(z, within_bid, within_ask, gap, band, shape):
    """Signed units absorbed moving the visible book from mid to displacement z. Each side
    holds `within_*` units within log-distance `band` of its edge (beyond an empty `gap`):
    the cumulative depth grows as (x/band)^shape inside the band and as (x/band)² beyond it
    (facts 3.2.6-3.2.7: BTC depth within 2% is 3-5× the depth within 1%)."""
    r = np.maximum(np.abs(z) - gap, 0.0) / band
    within = np.where(z >= 0, within_ask, within_bid)
    return np.sign(z) * within * np.where(r <= 1.0, r ** np.where(r <= 1.0, shape, 1.0), r * r)


def visible_displacement_for(units, within_bid, within_ask, gap, band, shape):
    """Inverse of `visible_units_to` (for units ≠ 0 the price jumps across the gap)."""
    within = np.where(units >= 0, within_ask, within_bid)
    n = np.abs(units) / within
    r = np.where(n <= 1.0, np.minimum(n, 1.0) ** (1.0 / shape), np.sqrt(np.maximum(n, 1.0)))
    return np.sign(units) * (gap + band * r)


def _segments(quantity: np.ndarray, *breaks: np.ndarray) -> np.ndarray:
    """Break points of each walk [0, q] in traded units: 0, q, and each of `breaks` (units
    after which the integrand has a kink or a square-root end) that falls inside, ordered
    from 0 to q (all lie on [0, q]: sorted by value, descending when q < 0). Points are the
    last axis: (..., A, 2 + breaks)."""
    at = np.stack(breaks, axis=-1)  # (..., A, breaks)
    q = quantity[..., None]
    points = np.zeros((*quantity.shape, 2 + len(breaks)))
    points[..., 1] = quantity
    points[..., 2:] = np.where(at * (q - at) > 0, at, q)
    toward = np.where(quantity < 0, -1.0, 1.0)[..., None]  # × ±1 is exact
    return np.sort(points * toward, axis=-1) * toward


def _latent_units(x: np.ndarray, lam_bid, lam_ask) -> np.ndarray:
    """`units_to` without a gap (the same numbers: |x| − 0 floored at 0 is |x|)."""
    return np.sign(x) * 0.5 * np.where(x >= 0, lam_ask, lam_bid) * (x * x)


def _latent_displacement(units: np.ndarray, lam_bid, lam_ask) -> np.ndarray:
    """`displacement_for` without a gap."""
    lam = np.where(units >= 0, lam_ask, lam_bid)
    return np.sign(units) * (0.0 + np.sqrt(2.0 * np.abs(units) / lam))


# the ufunc that np.clip calls, without np.clip's argument handling (the same numbers)
clip = (np._core if hasattr(np, "_core") else np.core).umath.clip


def execute_layers(
    y0: np.ndarray,
    z0: np.ndarray,
    quantity: np.ndarray,
    reference_price: np.ndarray,
    latent_bid: np.ndarray,
    latent_ask: np.ndarray,
    within_bid: np.ndarray,
    within_ask: np.ndarray,
    gap: np.ndarray,
    band: np.ndarray,
    shape: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walk the latent and visible books together by the net signed `quantity` (units).

    `within_*` are the visible units within `band` of each side's edge; the empty `gap`
    (market makers' retreat) is in the visible book. Returns the new latent and visible
    displacements and the average execution price, the volume-weighted price along the
    walk ∫ e^(y(u)+z(u)) du / q: 16-point Gauss–Legendre on each piece between the points
    where a layer crosses mid or the visible walk leaves its band, with
    u = a + (b − a)(3t² − 2t³), smooth through the square-root ends of each piece."""
    latent0 = _latent_units(y0, latent_bid, latent_ask)
    visible = (within_bid, within_ask, gap, band, shape)
    visible0 = visible_units_to(z0, *visible)
    trading = quantity != 0
    y1 = np.where(trading, _latent_displacement(latent0 + quantity, latent_bid, latent_ask), y0)
    z1 = np.where(trading, visible_displacement_for(visible0 + quantity, *visible), z0)
    # pieces end where a layer crosses mid and where the visible walk leaves its band
    points = _segments(quantity, -latent0, -visible0, within_ask - visible0, -within_bid - visible0)
    # pieces of zero width (a break equal to q, and every piece after the walk reached q:
    # the points are ordered toward q) add exactly 0: only the pieces up to the last one
    # that some walk still needs are integrated
    pieces = int(np.count_nonzero(points != quantity[..., None], axis=-1).max())
    # every piece at once (elementwise, the same numbers as piece by piece), laid out
    # (pieces, ..., A, nodes) so that each piece's (..., A, nodes) block is contiguous
    ends = np.moveaxis(points[..., : pieces + 1], -1, 0)[..., None]
    a, b = ends[:-1], ends[1:]
    u = a + (b - a) * _SMOOTH
    path = _latent_displacement(
        latent0[..., None] + u, latent_bid[..., None], latent_ask[..., None]
    )
    columns = [v[..., None] for v in visible]
    growth = np.exp(path + visible_displacement_for(visible0[..., None] + u, *columns))
    width = (b - a)[..., 0]
    total = np.zeros_like(quantity)
    for k in range(len(growth)):  # the quadrature sums piece by piece, as ever
        # with lanes, matmul runs one (A, nodes) product per lane: each lane gets the bits
        # it gets alone (a single (L·A, nodes) product would not: BLAS blocks the rows)
        total += width[k] * (growth[k] @ _SMOOTH_W)
    relative = np.divide(total, quantity, out=np.zeros_like(total), where=trading)
    start, end = y0 + z0, y1 + z1
    low = reference_price * np.exp(np.minimum(start, end))
    high = reference_price * np.exp(np.maximum(start, end))
    average = np.where(trading, reference_price * relative, reference_price * np.exp(start))
    return y1, z1, clip(average, low, high)


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)
_T = 0.5 * (_NODES + 1.0)  # Gauss–Legendre on [0, 1]
_SMOOTH = 3 * _T**2 - 2 * _T**3  # u(t) with du/dt = 0 at both ends
_SMOOTH_W = 0.5 * _WEIGHTS * 6 * _T * (1 - _T)  # weights × du/dt

"""Funds that trade toward a target portfolio: arrays of funds × assets.

Subclasses say what they want to hold (`target_units`). This base samples prices once a
step (`observe`: realized volatility per asset, for the subclasses whose rule reads it,
`reads_vol`), asks for a target when a rebalance is due
(every `rebalance_every`) or when a subclass must act at once (forced sales), trades the
difference on open venues, and keeps the target of a closed venue until it opens.

The starting state is a state that exists (SPEC §4): where an asset has a `history`, the
volatility estimate starts from the same EWMA run over that history (one update per open
step of the asset's venue, as in the run), and `start_at` puts funds at the holdings their
own rule gives at the start — existing units, counted in the conservation baseline, not
bought on the first step. Where an asset has no history, the estimate starts at its input
`daily_vol` and funds start in cash in it (they buy at their first rebalance).

Currencies (docs/scenarios/language.md, "Currencies"): funds account in USD. Trades settle in the
asset's quote currency, so cash is kept per currency (`cash_usd`, and `cash_local` for each
other quote currency of the scenario); equity is valued in USD at the same prices' FX rate
(`market/fx.py`). A fund that starts holding an asset quoted in yen bought it with dollars
converted before the run (an unhedged foreign holding: its USD value moves with the yen); a
fund that starts in a USD/xxx pair (long USDJPY: long dollars, short yen) funded it in yen.
During the run a purchase is paid, and a sale received, in the quote currency and kept
there: yen proceeds stay in yen, a yen purchase is a yen overdraft. Repatriation (an FX
trade that squares the yen balance) is not modelled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta
from itertools import pairwise

import numpy as np
import pandas as pd

from deleverage.market.calendar import trading_mask
from deleverage.populations.base import (
    BuildContext,
    MarketView,
    Orders,
    pooled_leverage,
    pooled_leverage_lanes,
)
from deleverage.populations.lanes import same_shapes, stack_rows
from deleverage.results.events import EventLog


def history_on_clock(ctx: BuildContext, asset: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The asset's history as log prices and, for each interval between them, the number of
    open steps of its venue (steps of the clock's length): the history on the run's own time
    scale. Points followed only by closed time are folded into the next. None: no history."""
    asset_spec = ctx.scenario.assets[asset]
    seen = ctx.history(asset_spec.id)
    if seen is None:
        return None
    times = seen.index
    grid = pd.date_range(times[0], times[-1], freq=pd.Timedelta(ctx.scenario.clock.step))
    venue = ctx.scenario.venues[ctx.scenario.venue_index()[asset_spec.venue]]
    opened = np.concatenate([[0], np.cumsum(trading_mask(venue.session, grid))])
    opened_at = opened[grid.searchsorted(times, side="left")]
    keep = np.r_[np.diff(opened_at) > 0, True]
    return np.log(seen.to_numpy(dtype=float)[keep]), np.diff(opened_at[keep])


def ewma_end(initial: float, values: np.ndarray, open_steps: np.ndarray, decay: float) -> float:
    """Last value of an EWMA that starts at `initial` and, over an interval of n open steps,
    moves toward values[i] by 1 − decay**n (one update of weight 1 − decay per open step)."""
    after = np.cumsum(open_steps[::-1])[::-1] - open_steps  # open steps after interval i
    weights = (1.0 - decay**open_steps) * decay**after
    return float(decay ** open_steps.sum() * initial + weights @ values)


_NOT_CAPPED = np.zeros(0, dtype=bool)
_EVERY = slice(None)  # a slot's arrays at every lane (a view, not a copy)
_REACHED = "reached"  # `orders_toward`: a lane's pending targets on open venues are held


def orders_toward(
    pending: np.ndarray,
    units: np.ndarray,
    is_open: np.ndarray,
    unit_usd: np.ndarray,
    volume_cap_usd: np.ndarray | None,
) -> list:
    """Each of K lanes' orders toward its pending target units (`pending`, NaN where
    reached) on open venues: arrays (K, F, A) of targets and units, (K, A) of open assets
    and unit values. Per lane: None if nothing is pending on an open venue; `_REACHED` if
    all of that is already held (marked reached in `pending`, in place, as is any asset
    already at its target); else its orders, one per (fund, asset) in that order, and
    which of them are capped (worked further: `volume_cap_usd`, (K, A) USD a
    step; None: never). One pass for all lanes: every operation is per element, and each sum
    over funds adds a lane's own rows in their order, as one lane alone."""
    lanes = len(pending)
    wanted = is_open[:, None, :] & ~np.isnan(pending)
    if not wanted.any():
        return [None] * lanes
    trade = np.where(wanted, pending - units, 0.0)
    pending[wanted & (trade == 0.0)] = np.nan  # already there
    any_wanted = wanted.reshape(lanes, -1).any(axis=1).tolist()
    trading = trade.reshape(lanes, -1).any(axis=1).tolist()
    if volume_cap_usd is None:
        capped = None
    else:  # at most the participation rate of normal volume (pro rata over funds)
        gross = np.abs(trade).sum(axis=1) * unit_usd
        over = gross > volume_cap_usd  # the cap ÷ gross there, 1 elsewhere
        scale = np.divide(volume_cap_usd, gross, out=np.ones_like(gross), where=over)
        capped = (scale < 1.0)[:, None, :] & (trade != 0.0)
        trade = np.where(capped, trade * scale[:, None, :], trade)
    lane, funds, assets = np.nonzero(trade)  # lane by lane, each in (fund, asset) order
    quantity = trade[lane, funds, assets]
    capped = np.zeros(len(lane), dtype=bool) if capped is None else capped[lane, funds, assets]
    sent: list = []
    start = 0
    for wanted_here, trading_here, count in zip(
        any_wanted, trading, np.bincount(lane, minlength=lanes).tolist(), strict=True
    ):
        if not trading_here:  # no orders (count is 0)
            sent.append(_REACHED if wanted_here else None)
            continue
        at = slice(start, start + count)
        start += count
        sent.append((Orders(assets[at], quantity[at], funds[at]), capped[at]))
    return sent


class TargetPortfolio(ABC):
    kind = "target_portfolio"
    trade_event = "rebalance"
    worked = False  # rebalances worked as a percent-of-volume order (`orders_toward`)
    reads_vol = False  # the rule reads `realized_vol`: it is updated every step

    def __init__(
        self,
        name: str,
        n_funds: int,
        ctx: BuildContext,
        vol_half_life_hours: float,
        rebalance_every: timedelta | None = None,
    ):
        self.name = name
        self.enabled = ctx.enabled
        self.asset_ids = [a.id for a in ctx.scenario.assets]
        n_assets = len(self.asset_ids)
        self.units = np.zeros((n_funds, n_assets))
        self.cash_usd = np.zeros(n_funds)
        self.fx = ctx.fx
        self.cash_local = np.zeros((n_funds, len(self.fx.currencies) - 1))  # other currencies
        self._mark_price = ctx.price0.copy()  # prices of the last mark (FX rates of fills)
        self._abs_units: np.ndarray | None = None  # |units|, None once units moved
        # usd_per(price)[1:] as one indexing and power: the other currencies' USD value
        self._other_pairs, self._other_powers = self.fx.pair[1:], self.fx.power[1:]
        # fx pairs are currency positions funded in their quote currency
        self.is_pair = np.array([a.asset_class == "fx" for a in ctx.scenario.assets])
        self.variance = np.array([a.daily_vol**2 for a in ctx.scenario.assets])
        self._steps_per_day = ctx.steps_per_day  # per asset: its venue's trading day
        self._vol_decay = 0.5 ** (ctx.step_hours / vol_half_life_hours)
        self.histories = {a: h for a in range(n_assets) if (h := history_on_clock(ctx, a))}
        for a, (log_price, open_steps) in self.histories.items():
            daily = np.diff(log_price) ** 2 * self._steps_per_day[a] / open_steps
            self.variance[a] = ewma_end(self.variance[a], daily, open_steps, self._vol_decay)
        self.has_history = np.isin(np.arange(n_assets), list(self.histories))
        hours = rebalance_every.total_seconds() / 3600 if rebalance_every else ctx.step_hours
        self.rebalance_steps = max(1, round(hours / ctx.step_hours))
        self._last_price = ctx.price0.copy()
        # the step of the last mark and of the last rebalance: one-element arrays, so that a
        # slot holds every lane's in one array (`TargetPortfolioLanes`)
        self._marked = np.array([-1])
        self._rebalanced = np.array([-self.rebalance_steps])
        self._pending = np.full((n_funds, n_assets), np.nan)  # target units, NaN: reached
        self._waiting = np.zeros(n_assets, dtype=bool)  # assets with a target left (or more)
        self._orders = Orders.empty()
        self._capped = _NOT_CAPPED  # per order: worked over more steps
        self._usd_only = bool((self.fx.quote == 0).all())  # every asset quoted in USD
        # percent-of-volume execution: units a step is ADV·rate/steps a day ÷ unit value
        adv = np.array([a.adv_usd for a in ctx.scenario.assets])
        self._volume_cap_usd = ctx.scenario.market.participation_rate * adv / ctx.steps_per_day

    @classmethod
    def stack(cls, populations: list[TargetPortfolio]) -> TargetPortfolioLanes | None:
        """The lanes' funds as one slot (`populations.lanes`), or None if their arrays
        differ in shape or their currencies differ."""
        first = populations[0]
        names = ("units", "cash_usd", "cash_local", "_mark_price", "variance", "_last_price")
        fx = ("quote", "pair", "power", "usd_base")
        if not same_shapes(populations, names) or any(
            not np.array_equal(getattr(p.fx, name), getattr(first.fx, name))
            for p in populations
            for name in fx
        ):
            return None
        return cls.slot(populations)

    @classmethod
    def slot(cls, populations: list[TargetPortfolio]) -> TargetPortfolioLanes | None:
        """The slot of this type (a subclass with its own screen gives its own)."""
        return TargetPortfolioLanes(populations)

    @property
    def realized_vol(self) -> np.ndarray:
        """Daily realized volatility per asset (EWMA of one squared log return per step),
        kept only by rules that read it (`reads_vol`): for the others it is not updated,
        so reading it is an error rather than a stale number (not an AttributeError, which
        `getattr` with a default would swallow)."""
        if not self.reads_vol:
            raise RuntimeError(f"{type(self).__name__} does not track realized volatility")
        return np.sqrt(self.variance)

    def equity(self, price: np.ndarray, unit_usd: np.ndarray | None = None) -> np.ndarray:
        """USD equity per fund: cash in each currency and holdings, at `price`'s FX rates
        (`unit_usd`: their unit values, when the caller has them)."""
        local = self.cash_local @ price[self._other_pairs] ** self._other_powers
        unit_usd = self.fx.unit_usd(price) if unit_usd is None else unit_usd
        return self.cash_usd + local + self.units @ unit_usd

    def gross_leverage(self, price: np.ndarray) -> float:
        """Gross exposure (|units| at `price`, in USD) ÷ equity, pooled over the funds."""
        unit_usd = self.fx.unit_usd(price)
        if self._abs_units is None:
            self._abs_units = np.abs(self.units)
        return pooled_leverage(self._abs_units @ unit_usd, self.equity(price, unit_usd))

    def start_at(self, units: np.ndarray, price: np.ndarray) -> None:
        """Hold `units` at the start in assets with a history (equity unchanged); assets
        without one start in cash. Holdings are paid in USD at `price`'s FX rates (foreign
        assets bought with converted dollars), fx pairs in their quote currency (a long
        USDJPY is dollars funded in yen)."""
        self.units = np.where(self.has_history, units, 0.0)
        self._abs_units = None
        paid_in = self.fx.quote * self.is_pair  # pairs: their quote currency; others: USD
        self.cash_usd = self.cash_usd - self.units @ np.where(
            paid_in == 0, self.fx.unit_usd(price), 0.0
        )
        for c in range(1, len(self.fx.currencies)):
            self.cash_local[:, c - 1] -= self.units @ np.where(paid_in == c, price, 0.0)

    @abstractmethod
    def target_units(
        self, view: MarketView, rebalance: bool, log: EventLog, screen=None
    ) -> np.ndarray | None:
        """Units each fund wants to hold, or None for no new target. `rebalance` is True on
        the first round of a step when a scheduled rebalance is due; `screen`: this lane's
        row of what its slot computed for every lane (`TargetPortfolioLanes.screen`)."""

    def observe(self, view: MarketView) -> None:
        """Once per step, before any order: update realized volatility (if read)."""
        if not self.reads_vol:
            return
        moved = view.is_open & (view.price != self._last_price)
        r2 = np.log(view.price / self._last_price) ** 2 * self._steps_per_day
        updated = self._vol_decay * self.variance + (1 - self._vol_decay) * r2
        self.variance[:] = np.where(moved, updated, self.variance)  # in place: lane rows
        self._last_price[:] = view.price

    def mark(self, view: MarketView, log: EventLog) -> None:
        first_round = view.step != self._marked[0]
        if first_round:
            self._marked[0] = view.step
            self.observe(view)
        self._mark_price[:] = view.price
        self._orders, self._capped = Orders.empty(), _NOT_CAPPED
        if self.enabled:
            self._decide(view, first_round, self._due(view.step, first_round), log)

    def _due(self, step: int, first_round: bool) -> bool:
        """Whether a scheduled rebalance falls on this round (the first of a step), and
        if so, that it is taken."""
        due = first_round and step - self._rebalanced[0] >= self.rebalance_steps
        if due:
            self._rebalanced[0] = step
        return due

    def _decide(
        self, view: MarketView, first_round: bool, due: bool, log: EventLog, screen=None
    ) -> None:
        """The mark after the prices are taken: a new target, then the orders toward what
        is pending on open venues (`screen`: what a slot computed of `target_units` for
        this lane, `TargetPortfolioLanes`)."""
        target = self.target_units(view, due, log, screen)
        if target is not None:
            target[target == self.units] = np.nan  # already there, whatever the venue
            self._pending[:] = target
            self._waiting[:] = ~np.isnan(target).all(axis=0)
        elif not first_round:
            return  # what was pending on open venues traded in an earlier round of this step
        self._send(view)

    def _send(self, view: MarketView) -> None:
        """Orders toward what is pending on open venues (`orders_toward`, for this lane)."""
        (sent,) = orders_toward(
            self._pending[None],
            self.units[None],
            view.is_open[None],
            view.unit_usd[None],
            self._volume_cap_usd[None] if self.worked else None,
        )
        if sent is None:
            return
        if sent is _REACHED:  # venues closed or targets reached: no order
            self._waiting[:] = ~np.isnan(self._pending).all(axis=0)
            return
        self._orders, self._capped = sent

    def orders(self) -> Orders:
        return self._orders

    def apply_fills(self, orders: Orders, filled: np.ndarray, price: np.ndarray, log: EventLog):
        funds, assets, quantity, fill_price, capped = (
            orders.owner,
            orders.asset,
            orders.quantity,
            price,
            self._capped,
        )
        if not filled.all():  # blocked orders wait (most rounds fill every order)
            funds, assets, quantity = funds[filled], assets[filled], quantity[filled]
            fill_price, capped = fill_price[filled], capped[filled]
        self.units[funds, assets] += quantity  # one order per (fund, asset): see `mark`
        self._abs_units = None
        paid = -(quantity * fill_price)
        if self._usd_only:
            np.add.at(self.cash_usd, funds, paid)
        else:
            quote = self.fx.quote[assets]
            usd = quote == 0
            np.add.at(self.cash_usd, funds[usd], paid[usd])
            if not usd.all():
                np.add.at(self.cash_local, (funds[~usd], quote[~usd] - 1), paid[~usd])
        reached = ~capped
        self._orders = Orders.empty()
        self._pending[funds[reached], assets[reached]] = np.nan
        self._waiting[:] = ~np.isnan(self._pending).all(axis=0)
        if not len(assets):
            return
        # one event per asset, its orders in their order: a stable sort makes each asset's
        # orders one contiguous run (the same numbers in the same order as a mask gives,
        # so the same sums)
        by_asset = np.argsort(assets, kind="stable")
        assets, quantity, fill_price = assets[by_asset], quantity[by_asset], fill_price[by_asset]
        runs = [0, len(assets)]  # one asset
        if assets[0] != assets[-1]:
            runs[1:1] = (np.flatnonzero(assets[1:] != assets[:-1]) + 1).tolist()
        usd_per_quote = self.fx.usd_per(self._mark_price)[self.fx.quote]
        for start, end in pairwise(runs):
            a = assets[start]
            q = float(quantity[start:end].sum())
            p = float(fill_price[start])
            log.add(
                self.trade_event,
                population=self.name,
                asset=self.asset_ids[a],
                count=end - start,
                quantity=q,
                notional_usd=abs(q) * p * usd_per_quote[a],
                price=p,
            )

    def holdings(self, n_assets: int) -> np.ndarray:
        return self.units.sum(axis=0)

    def cash(self) -> float:
        return float(self.cash_usd.sum() + self.cash_local.sum())

    def cash_by_currency(self) -> dict[str, float]:
        local = dict(zip(self.fx.currencies[1:], self.cash_local.sum(axis=0), strict=True))
        return {"USD": float(self.cash_usd.sum()), **{c: float(v) for c, v in local.items()}}


class TargetPortfolioLanes:
    """Target-portfolio funds of several lanes as one slot (`populations.lanes`): the
    round's prices, the step's volatility sample and the scheduled rebalances of every
    active lane in one pass; each lane's own `_decide` where the screen finds a target to
    set, and the orders toward what is pending of every other lane in one pass
    (`orders_toward`). Arrays (L, A) and (L, F, A); each lane's population works on its
    row. A subclass with work every round (value funds' caps) does it for all lanes in
    its `screen`. The gross leverage the engine records after each step is one
    computation for every lane (`gross_leverage_lanes`)."""

    quiet_later = True  # a later round of a step (not its first) only takes the prices

    def __init__(self, populations: list[TargetPortfolio]):
        self.lanes = populations
        self.enabled = np.array([p.enabled for p in populations])
        names = ("_mark_price", "_waiting", "_pending", "units", "cash_usd", "cash_local")
        own = stack_rows(populations, (*names, "_marked", "_rebalanced"))
        self.mark_price, self.waiting = own["_mark_price"], own["_waiting"]
        self.pending, self.units, self.cash_usd = own["_pending"], own["units"], own["cash_usd"]
        self.cash_local = own["cash_local"]
        self.marked, self.rebalanced = own["_marked"][:, 0], own["_rebalanced"][:, 0]
        self.rebalance_steps = np.array([p.rebalance_steps for p in populations])
        self.sent: set[int] = set()  # lanes whose orders may be set
        self.all_marked = -1  # a step in whose first round every lane was marked
        first = populations[0]
        self.fx, self.pairs, self.powers = first.fx, first._other_pairs, first._other_powers
        self.worked = first.worked
        self.volume_cap_usd = np.stack([p._volume_cap_usd for p in populations])  # (L, A)
        self.reads_vol = populations[0].reads_vol
        if self.reads_vol:
            own = stack_rows(populations, ("variance", "_last_price"))
            self.variance, self.last_price = own["variance"], own["_last_price"]
            self.vol_decay = np.array([[p._vol_decay] for p in populations])
            self.steps_per_day = np.stack([p._steps_per_day for p in populations])

    def mark_lanes(self, view: MarketView, rows: np.ndarray, logs) -> None:
        step = view.step
        # the slot's arrays at `rows`: all of them as they are (no copy) when every lane is
        # active, as in the first round of a step
        lanes = _EVERY if len(rows) == len(self.lanes) else rows
        if step == self.all_marked:  # a later round of the step, for every lane
            first, starts = None, False
        else:
            first = self.marked[lanes] != step
            starts = first.any()  # in the engine, every lane's first round of the step
            if lanes is _EVERY and first.all():
                self.all_marked = step
        self._clear(rows, lanes)
        if len(rows) == 1 and (starts or not self.quiet_later):  # its own mark, on its rows
            self.lanes[rows[0]].mark(view.row(0), logs[0])
            self.sent.add(int(rows[0]))
            return
        self.mark_price[lanes] = view.price
        if not starts and self.quiet_later:
            return  # a later round takes the prices and nothing else
        enabled = self.enabled[lanes]
        due = np.zeros(len(rows), dtype=bool)
        if first is None:
            first = due  # no lane's first round (read only)
        if starts:  # `TargetPortfolio._due` of each lane
            self.marked[rows[first]] = step
            due = first & enabled
            due &= step - self.rebalanced[lanes] >= self.rebalance_steps[lanes]
            self.rebalanced[rows[due]] = step
            if first.all():
                self.observe(view, lanes)
            else:
                self.observe(view.row(np.flatnonzero(first)), rows[first])
        need, screen = self.screen(view, lanes, due)
        need = need & enabled
        if starts and need.any():  # targets the slot sets itself, for all lanes at once
            need = need & ~self._set_targets(view, rows, need, due, screen)
        for n in np.flatnonzero(need):
            row = None if screen is None else tuple(x[n] for x in screen)
            self.lanes[rows[n]]._decide(view.row(n), bool(first[n]), bool(due[n]), logs[n], row)
        self.sent.update(rows[need].tolist())
        if starts:  # the others' pending targets are sent where a venue of them is open
            waiting = (view.is_open & self.waiting[lanes]).any(axis=1)
            self._send(view, rows, first & ~need & enabled & waiting)

    def _set_targets(self, view: MarketView, rows: np.ndarray, need, due, screen) -> np.ndarray:
        """`TargetPortfolio._decide`'s new targets, up to the orders, of the lanes whose
        targets `targets` computes (their orders go with the other lanes' in `_send`).
        Returns which lanes it set."""
        computed = self.targets(view, rows, need, due, screen)
        if computed is None:
            return np.zeros(len(rows), dtype=bool)
        which, target = computed
        at = rows[which]
        target[target == self.units[at]] = np.nan  # already there, whatever the venue
        self.pending[at] = target
        self.waiting[at] = ~np.isnan(target).all(axis=1)
        return which

    def targets(self, view: MarketView, rows: np.ndarray, need, due, screen):
        """In a step's first round, the new targets (k, F, A) the slot computes for the
        lanes `rows[which]` among those its screen flags (`need`; `due`: a scheduled
        rebalance, `screen`: what the screen computed), as each lane's own `target_units`
        would, and `which`; None: none (each lane's own `_decide`)."""
        return None

    def _clear(self, rows: np.ndarray, lanes) -> None:
        """No orders for lanes `rows` until their mark sets some (those of the earlier
        round are filled or void): only lanes that may have some (`sent`) are touched."""
        if not self.sent:
            return
        clear = self.sent if lanes is _EVERY else self.sent.intersection(rows.tolist())
        for j in clear:
            lane = self.lanes[j]
            lane._orders, lane._capped = Orders.empty(), _NOT_CAPPED
        self.sent = self.sent - clear

    def _send(self, view: MarketView, rows: np.ndarray, send: np.ndarray) -> None:
        """`TargetPortfolio._send` of the lanes `rows[send]`, in one pass."""
        if not send.any():
            return
        at = rows[send]
        cap = self.volume_cap_usd[at] if self.worked else None
        pending = self.pending[at]
        sent = orders_toward(pending, self.units[at], view.is_open[send], view.unit_usd[send], cap)
        self.pending[at] = pending
        for j, lane_sent, lane_pending in zip(at.tolist(), sent, pending, strict=True):
            if lane_sent is _REACHED:
                self.waiting[j] = ~np.isnan(lane_pending).all(axis=0)
            elif lane_sent is not None:
                lane = self.lanes[j]
                lane._orders, lane._capped = lane_sent
                self.sent.add(j)

    def observe(self, view: MarketView, at) -> None:
        """`TargetPortfolio.observe` of the lanes `at` (indices, or `_EVERY`), in their
        first round; `view`: their rows."""
        if not self.reads_vol:
            return
        price, last, decay, variance = (
            view.price,
            self.last_price[at],
            self.vol_decay[at],
            self.variance[at],
        )
        moved = view.is_open & (price != last)
        r2 = np.log(price / last) ** 2 * self.steps_per_day[at]
        updated = decay * variance + (1 - decay) * r2
        self.variance[at] = np.where(moved, updated, variance)
        self.last_price[at] = price

    def screen(self, view: MarketView, lanes, due: np.ndarray) -> tuple:
        """Which of the lanes `lanes` (indices, or `_EVERY`; `view`: their rows) may get
        a new target this round (a subclass narrows this and may give each lane its row
        of what it computed for all: `target_units`' `screen`)."""
        return due, None

    def gross_leverage_lanes(self, price: np.ndarray) -> np.ndarray:
        """Every lane's `TargetPortfolio.gross_leverage` at its row of `price` (L, A): one
        product per lane, as each lane's own."""
        unit_usd = self.fx.unit_usd(price)[:, :, None]
        gross = (np.abs(self.units) @ unit_usd)[..., 0]
        local = (self.cash_local @ (price[:, self.pairs] ** self.powers)[:, :, None])[..., 0]
        equity = self.cash_usd + local + (self.units @ unit_usd)[..., 0]
        return pooled_leverage_lanes(gross, equity)

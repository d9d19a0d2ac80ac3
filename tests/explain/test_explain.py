"""`explain` on a small simulated crash: the Shapley axioms hold on real runs, coalitions
share their random numbers, and the epicenter is the shock that started the cascade."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import build
from tests.explain.conftest import TARGET, crash_raw

from deleverage import simulate
from deleverage.explain import explain
from deleverage.explain.games import (
    channel_game,
    channels_in_play,
    evaluator,
    liquidations_usd,
    outcomes,
)
from deleverage.scenario.schema import Channels


def _sum_and_total(result, game):
    totals = result.totals[result.totals.game == game].set_index("entity")
    return totals.sum_of_values, totals["all"] - totals["none"]


def test_values_add_up_to_the_total_effect_and_the_full_coalition_is_the_run(explained):
    run, result = explained
    for game in ("channels", "shocks"):
        summed, total = _sum_and_total(result, game)
        assert np.allclose(summed, total, rtol=0.01, atol=1e-6)
    channels = result.totals[result.totals.game == "channels"].set_index("entity")
    # the coalition of every channel is the explained run itself: same draws, same path
    window = tuple(pd.Timestamp(t) for t in TARGET["window"])
    assert channels.at["BTC", "all"] == pytest.approx(run.modelled("worst_24h", "BTC", window)[0])
    assert channels.at["liquidations", "all"] == pytest.approx(liquidations_usd(run))
    assert channels.at["liquidations", "none"] == 0.0  # no liquidation without the channel
    perps = result.attribution.query("game == 'channels' and entity == 'liquidations'")
    assert perps.set_index("player").value.idxmax() == "perp_liquidations"


def test_sampled_orders_stay_efficient_and_report_standard_errors(crash):
    result = explain(crash, seed=1, games=["channels"], exact_limit=2, permutations=4)
    summed, total = _sum_and_total(result, "channels")
    assert np.allclose(summed, total, rtol=0.01, atol=1e-6)
    assert not result.totals.exact.any() and (result.totals.permutations == 4).all()
    assert (result.attribution.std_error > 0).any()
    assert "4 sampled orders" in result.summary()


def test_a_channel_nothing_reads_changes_nothing_and_gets_zero(crash):
    in_play = channels_in_play(crash)
    assert set(in_play) == {"perp_liquidations", "insurance_adl", "mm_retreat", "stop_loss"}
    base = simulate(crash, seed=2)
    for name in set(Channels.model_fields) - set(in_play):
        off = crash.model_copy(update={"channels": crash.channels.model_copy(update={name: False})})
        other = simulate(off, seed=2)
        assert np.array_equal(other.market["price"], base.market["price"]), name
    result = explain(crash, seed=2, games=["channels"], channels=["stop_loss", "etf_flows"])
    etf = result.attribution[result.attribution.player == "etf_flows"]
    assert len(etf) == 2 and np.allclose(etf.value, 0.0)
    stops = result.attribution[result.attribution.player == "stop_loss"]
    assert (stops.value.abs() > 0).any()


def test_the_order_players_are_given_in_does_not_change_their_values(crash):
    one = explain(crash, seed=3, games=["channels"], channels=["stop_loss", "mm_retreat"])
    two = explain(crash, seed=3, games=["channels"], channels=["mm_retreat", "stop_loss"])
    key = ["player", "entity"]
    a = one.attribution.set_index(key).value.sort_index()
    b = two.attribution.set_index(key).value.sort_index()
    pd.testing.assert_series_equal(a, b)


def test_without_noise_the_shock_alone_explains_the_move(quiet_explained):
    result = quiet_explained
    totals = result.totals.set_index("entity")
    assert abs(totals.at["BTC", "none"]) < 0.1  # without shocks the price barely moves
    drop = result.attribution.query("player == 'drop' and entity == 'BTC'").value.iloc[0]
    retreat = result.attribution.query("player == 'desks pull back' and entity == 'BTC'")
    assert drop < -5.0 and abs(retreat.value.iloc[0]) < abs(drop)


def test_the_epicenter_is_the_drop_and_the_first_seller_follows_it(quiet_explained):
    result = quiet_explained
    epicenter = result.epicenter.set_index("what")
    assert epicenter.at["shock that started it", "detail"] == "drop"
    first = epicenter.loc["first forced seller"]
    assert first.time >= pd.Timestamp("2026-01-05T12:00:00Z")
    assert first.kind in ("stop_triggered", "perp_liquidation")
    timeline = result.timeline.set_index("what")
    run = simulate(result.scenario, result.seed)
    liquidations = run.events[run.events.kind == "perp_liquidation"]
    assert timeline.at["first_liquidation", "asset"] == "BTC"
    assert timeline.at["first_liquidation", "time"] == run.times[liquidations.step.min() + 1]


def test_shocks_can_be_players_by_type_and_amplification_needs_no_channel_game():
    two_drops = crash_raw()
    two_drops["shocks"].append(
        {**two_drops["shocks"][0], "time": "2026-01-05T20:00:00Z", "label": "again"}
    )
    result = explain(build(two_drops), games=["shocks"], shocks_by="type")
    assert list(dict.fromkeys(result.attribution.player)) == ["news", "mm_retreat"]
    amplification = result.amplification.set_index("asset")
    assert amplification.at["BTC", "amplification"] == pytest.approx(
        amplification.at["BTC", "move_pct"] / amplification.at["BTC", "move_channels_off_pct"]
    )


def test_one_table_feeds_every_view(explained):
    result = explained[1]
    tidy = result.to_frame()
    assert {"window_start", "window_end", "game", "player", "std_error", "basis"} <= set(tidy)
    assert (tidy.basis == "modelled").all()
    shapley = tidy[tidy.metric == "shapley"]
    assert len(shapley) == len(result.attribution)
    btc = tidy[(tidy.entity == "BTC") & (tidy.metric == "amplification")]
    assert btc.window_start.iloc[0] == pd.Timestamp(TARGET["window"][0])
    text = repr(result)
    assert "\n" not in text and len(text) < 200
    assert "Shapley attribution over channels" in result.summary()
    assert "<table>" in result._repr_html_()


def test_channel_game_coalitions_switch_only_their_players(crash):
    game = channel_game(crash, 0, 0)
    none = game.scenario(0).channels
    assert not any(getattr(none, name) for name in game.players)
    assert none.etf_flows == crash.channels.etf_flows  # not a player: left as it was


def test_coalitions_run_as_lanes_are_each_coalition_run_alone(crash):
    # the evaluator runs coalitions as lanes of one simulation (other channels in each
    # lane): every outcome equals that coalition's own run, exactly
    game = channel_game(crash, seed=2, path=1)
    masks = [0, 2 ** len(game.players) - 1, 1, 2]
    laned = evaluator(game)(masks)
    alone = np.array([outcomes(game.run(mask), game.measures) for mask in masks])
    np.testing.assert_array_equal(laned, alone)
    assert len({tuple(row) for row in alone}) > 2  # the coalitions really differ

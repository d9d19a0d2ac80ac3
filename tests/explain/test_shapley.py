"""Shapley values on games given as tables: the axioms, known closed forms, and the sampled
estimator against the exact one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.explain.shapley import shapley, shapley_exact, shapley_sampled


def table_game(table: np.ndarray):
    """evaluate(masks) reading a (2ⁿ, outcomes) table, counting the coalitions asked for."""
    asked = []

    def evaluate(masks):
        asked.extend(masks)
        return table[np.asarray(masks)]

    return evaluate, asked


def relabel(table: np.ndarray, n: int, i: int, j: int) -> np.ndarray:
    """The same game with players i and j swapping names."""
    masks = np.arange(2**n)
    bit_i, bit_j = (masks >> i) & 1, (masks >> j) & 1
    swapped = masks & ~((1 << i) | (1 << j)) | (bit_i << j) | (bit_j << i)
    return table[swapped]


games = st.integers(1, 6).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2**n * 2, max_size=2**n * 2).map(
            lambda v: np.array(v).reshape(2**n, 2)
        ),
    )
)


@settings(max_examples=30, deadline=None)
@given(games)
def test_exact_values_add_up_to_the_total_effect(game):
    n, table = game
    result = shapley_exact(n, table_game(table)[0])
    total = table[-1] - table[0]
    assert np.allclose(result.values.sum(axis=0), total, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(games, st.data())
def test_a_player_that_changes_nothing_gets_zero(game, data):
    n, table = game
    null = data.draw(st.integers(0, n - 1))
    masks = np.arange(2**n)
    table = table[masks & ~(1 << null)]  # v(S) = v(S without the null player)
    result = shapley_exact(n, table_game(table)[0])
    assert result.values[null] == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(games, st.data())
def test_swapping_two_players_swaps_their_values(game, data):
    n, table = game
    if n < 2:
        return
    i, j = data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
    before = shapley_exact(n, table_game(table)[0]).values
    after = shapley_exact(n, table_game(relabel(table, n, i, j))[0]).values
    assert after[i] == pytest.approx(before[j], abs=1e-9)
    assert after[j] == pytest.approx(before[i], abs=1e-9)
    others = [k for k in range(n) if k not in (i, j)]
    assert after[others] == pytest.approx(before[others], abs=1e-9)


def test_symmetric_players_get_equal_values_and_an_interaction_is_split_evenly():
    # v(S) = 2·[0∈S] + 5·[1∈S] + 4·[0∈S and 2∈S]: players 0 and 2 share the interaction.
    n = 3
    masks = np.arange(2**n)
    has = lambda k: (masks >> k) & 1  # noqa: E731
    table = (2.0 * has(0) + 5.0 * has(1) + 4.0 * has(0) * has(2))[:, None]
    values = shapley_exact(n, table_game(table)[0]).values[:, 0]
    assert values == pytest.approx([2.0 + 2.0, 5.0, 2.0])


def test_sampled_values_are_efficient_on_every_order_and_close_to_exact():
    rng = np.random.default_rng(7)
    n = 7
    table = rng.normal(size=(2**n, 3)) * 10
    table[:, 1] = np.arange(2**n) % 5  # a structured outcome beside the random ones
    exact = shapley_exact(n, table_game(table)[0])
    evaluate, asked = table_game(table)
    sampled = shapley_sampled(n, evaluate, permutations=400, rng=np.random.default_rng(1))
    assert sampled.values.sum(axis=0) == pytest.approx(exact.total, abs=1e-9)
    assert len(asked) == len(set(asked)) == sampled.evaluations  # each coalition once
    assert np.all(sampled.std_errors > 0)
    z = np.abs(sampled.values - exact.values) / sampled.std_errors
    assert np.mean(z < 2.0) > 0.85 and np.all(z < 5.0)


def test_an_additive_game_is_recovered_exactly_by_sampling_with_zero_error():
    n, weights = 12, np.arange(1.0, 13.0)
    masks = np.arange(2**n)
    table = (((masks[:, None] >> np.arange(n)) & 1) @ weights)[:, None]
    result = shapley(n, table_game(table)[0], permutations=5, rng=np.random.default_rng(0))
    assert not result.exact and result.permutations == 5
    assert result.values[:, 0] == pytest.approx(weights)
    assert result.std_errors == pytest.approx(0.0)


def test_the_exact_limit_chooses_between_all_coalitions_and_sampled_orders():
    table = np.arange(16.0)[:, None]
    evaluate, asked = table_game(table)
    assert shapley(4, evaluate, exact_limit=4).exact and len(asked) == 16
    assert not shapley(4, evaluate, exact_limit=3, permutations=3).exact
    with pytest.raises(ValueError, match="permutations"):
        shapley_sampled(4, evaluate, permutations=1, rng=np.random.default_rng(0))

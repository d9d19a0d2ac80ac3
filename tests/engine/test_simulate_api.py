"""`simulate` from Python: names and files as well as Scenario objects; a run without a
seed is still repeatable; bad arguments are one clear error, not an AttributeError."""

import numpy as np
import pytest
import yaml
from tests.conftest import base_raw

from deleverage import simulate


@pytest.fixture
def scenario_file(tmp_path):
    raw = base_raw(clock={"start": "2026-01-05T00:00:00Z", "end": "2026-01-05T06:00:00Z"})
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_scenario_file_path_or_its_name_as_text_runs(scenario_file):
    by_path = simulate(scenario_file, seed=3)
    by_text = simulate(str(scenario_file), seed=3)
    np.testing.assert_array_equal(by_path.prices().to_numpy(), by_text.prices().to_numpy())


def test_without_a_seed_the_run_records_the_seed_that_repeats_it(scenario_file):
    first = simulate(scenario_file, seed=None)
    assert isinstance(first.seed, int) and 0 <= first.seed < 2**63
    again = simulate(scenario_file, seed=first.seed)
    np.testing.assert_array_equal(first.prices().to_numpy(), again.prices().to_numpy())
    assert simulate(scenario_file, seed=None).seed != first.seed  # 1 in 2^63 to collide


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "7", True])
def test_a_seed_outside_its_range_is_one_clear_error(scenario_file, seed):
    with pytest.raises(ValueError, match=r"expected a seed in \[0, 2\^63\)"):
        simulate(scenario_file, seed=seed)


def test_something_that_is_not_a_scenario_is_one_clear_error():
    with pytest.raises(TypeError, match="expected a Scenario, a preset name or a scenario file"):
        simulate(42)

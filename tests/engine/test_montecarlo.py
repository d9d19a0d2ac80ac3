import matplotlib
import numpy as np
import pandas as pd
import pytest
from tests.conftest import base_raw, build

from deleverage import simulate, simulate_paths
from deleverage.engine.montecarlo import ALL_CHANNELS_OFF

CRASH = [{"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.06}}]
WINDOW = ["2026-01-05T06:00:00Z", "2026-01-06T06:00:00Z"]
STOPS = {
    "type": "stop_loss",
    "name": "stops",
    "asset": "BTC",
    "accounts": 200,
    "notional_usd": 4e9,
    "stop_distance": {"dist": "uniform", "low": 0.01, "high": 0.05},
}
VOL_PRIOR = {
    "path": "assets.BTC.daily_vol",
    "prior": {"dist": "uniform", "low": 0.02, "high": 0.05},
}


def targets(worst_24h=-9.0, low=90_000.0):
    return [
        {"metric": "worst_24h", "asset": "BTC", "value": worst_24h, "unit": "%", "window": WINDOW},
        {"metric": "low", "asset": "BTC", "value": low, "unit": "USD"},
        {"metric": "mystery", "value": 1.0, "unit": "count"},
    ]


def scenario(**changes):
    raw = {"shocks": CRASH, "populations": [STOPS], "uncertain": [VOL_PRIOR], "targets": targets()}
    return build(base_raw(**{**raw, **changes}))


def test_one_seed_gives_identical_bands_with_one_and_two_workers():
    one = simulate_paths(scenario(), seed=3, paths=4, workers=1)
    two = simulate_paths(scenario(), seed=3, paths=4, workers=2)
    pd.testing.assert_frame_equal(one.path_targets, two.path_targets)
    pd.testing.assert_frame_equal(one.path_amplification, two.path_amplification)
    pd.testing.assert_frame_equal(one.bands_table(), two.bands_table())
    assert one.path_targets.modelled.nunique() > 3  # the paths really differ


def test_path_i_is_simulate_with_path_i_and_the_same_target_definitions():
    mc = simulate_paths(scenario(), seed=3, paths=3, amplification=False, keep_paths=True)
    for i in range(3):
        alone = simulate(scenario(), seed=3, path=i)
        assert mc.path_results[i].scenario == alone.scenario  # `uncertain` drawn per path
        expected = alone.targets_table()
        got = mc.path_targets[mc.path_targets.path == i].reset_index(drop=True)
        pd.testing.assert_series_equal(got.modelled, expected.modelled)
    vols = {r.scenario.assets[0].daily_vol for r in mc.path_results}
    assert len(vols) == 3


def test_bands_are_the_10_50_90_percentiles_of_the_paths_and_hit_means_inside():
    mc = simulate_paths(scenario(), seed=1, paths=5, amplification=False)
    bands = mc.bands_table().set_index("target")
    low = mc.path_targets[mc.path_targets.target == "low BTC"].modelled.to_numpy()
    row = bands.loc["low BTC"]
    assert [row.p10, row["median"], row.p90] == pytest.approx(np.percentile(low, [10, 50, 90]))
    assert row.band_width == pytest.approx(row.p90 - row.p10)
    assert row.hit == (row.p10 <= row.observed <= row.p90)
    assert pd.isna(bands.loc["mystery", "hit"])  # no modelled value: neither hit nor miss


def test_changing_a_target_value_changes_no_simulated_number():
    base = simulate_paths(scenario(), seed=2, paths=3, workers=1)
    bands = base.bands_table().set_index("target")
    inside = bands.loc["low BTC", "median"]
    moved = simulate_paths(scenario(targets=targets(-50.0, inside)), seed=2, paths=3)
    pd.testing.assert_series_equal(base.path_targets.modelled, moved.path_targets.modelled)
    pd.testing.assert_frame_equal(base.path_amplification, moved.path_amplification)
    other = moved.bands_table().set_index("target")
    simulated = ["p10", "median", "p90", "band_width"]
    pd.testing.assert_frame_equal(bands[simulated], other[simulated])
    assert other.loc["worst_24h BTC", "observed"] == -50.0
    assert bool(other.loc["low BTC", "hit"])  # only observed and hit follow the target


def test_amplification_is_one_without_populations():
    mc = simulate_paths(scenario(populations=[]), seed=0, paths=3)
    assert (mc.path_amplification.amplification == 1.0).all()
    assert mc.amplification_table().amplification.tolist() == [1.0]


def test_amplification_compares_with_the_same_path_with_all_channels_off():
    # stops 4-8% below the high: the crash triggers them, the noise before it rarely does
    # (stops fired by noise before the window would sell outside the measured move)
    stops = {**STOPS, "stop_distance": {"dist": "uniform", "low": 0.04, "high": 0.08}}
    mc = simulate_paths(scenario(populations=[stops]), seed=0, paths=3)
    off = scenario(populations=[stops]).model_copy(update={"channels": ALL_CHANNELS_OFF})
    for i in range(3):
        expected = simulate(off, seed=0, path=i).targets_table().modelled.iloc[0]
        row = mc.path_amplification[mc.path_amplification.path == i].iloc[0]
        assert row.measure == "worst_24h 2026-01-05 06:00–01-06 06:00"  # the target's window
        assert row.move_channels_off_pct == expected
        assert row.amplification == pytest.approx(row.move_pct / row.move_channels_off_pct)
    assert mc.amplification_table().amplification.iloc[0] > 1.0  # stop-losses deepen the fall


def test_without_a_worst_24h_target_amplification_is_measured_on_the_max_drawdown():
    mc = simulate_paths(scenario(targets=[]), seed=0, paths=2)
    assert set(mc.path_amplification.measure) == {"max_drawdown"}
    assert mc.bands_table().empty and "amplification" in mc.summary()


def test_every_number_of_the_summary_is_a_cell_of_the_tidy_frame():
    mc = simulate_paths(scenario(), seed=0, paths=3)
    tidy = mc.to_frame()
    assert list(tidy.columns) == [
        "run_id",
        "seed",
        "scenario",
        "time",
        "entity",
        "metric",
        "value",
        "unit",
        "basis",
        "window_start",
        "window_end",
    ]
    assert set(tidy.basis) == {"observed", "modelled"}
    observed = tidy[tidy.basis == "observed"]
    assert observed.metric.tolist() == ["worst_24h BTC", "low BTC", "mystery"]  # no window
    for row in mc.bands_table().itertuples():
        assert mc.value("targets", row.target) == row.observed
        for key in ("p10", "median", "p90", "band_width"):
            value = mc.value("targets", f"{row.target}:{key}")
            assert value == getattr(row, key) or (np.isnan(value) and pd.isna(getattr(row, key)))
    amplification = mc.amplification_table().iloc[0]
    assert mc.value("BTC", "amplification") == amplification.amplification
    assert f"{amplification.amplification:.3g}" in mc.summary()
    assert mc.value("run", "paths") == 3


def test_target_windows_and_basis_are_columns_not_parts_of_the_metric_name():
    mc = simulate_paths(scenario(), seed=0, paths=2, amplification=False)
    start, end = (pd.Timestamp(t) for t in WINDOW)
    bands = mc.bands_table()
    assert bands.target.tolist() == ["worst_24h BTC", "low BTC", "mystery"]
    assert bands.window_start.tolist()[0] == start and bands.window_end.tolist()[0] == end
    assert bands.window_start.isna().tolist() == [False, True, True]  # windowless targets
    tidy = mc.to_frame()
    cells = tidy[tidy.entity == "targets"]
    assert not cells.metric.str.contains("2026|observed|modelled").any()
    first = cells[cells.metric.str.startswith("worst_24h BTC")]
    assert (first.window_start == start).all() and (first.window_end == end).all()
    assert first.basis.tolist() == ["observed"] + ["modelled"] * 5
    # two targets that differ only by their window stay two rows
    later = ["2026-01-05T18:00:00Z", "2026-01-06T06:00:00Z"]
    twice = [*targets(), {**targets()[0], "value": -3.0, "window": later}]
    mc = simulate_paths(scenario(targets=twice), seed=0, paths=2, amplification=False)
    rows = mc.bands_table()
    assert rows.target.tolist().count("worst_24h BTC") == 2
    assert mc.value("targets", "worst_24h BTC", "2026-01-05T18:00:00Z") == -3.0
    one = simulate(scenario(targets=twice), seed=0).targets_table()
    assert one.observed.tolist() == rows.observed.tolist()
    assert one.window_start.isna().tolist() == rows.window_start.isna().tolist()


def test_bad_path_or_worker_counts_are_refused():
    with pytest.raises(ValueError, match="paths"):
        simulate_paths(scenario(), paths=0)
    with pytest.raises(ValueError, match="workers"):
        simulate_paths(scenario(), paths=2, workers=0)


def test_plot_leaves_the_users_backend_and_figures_alone(tmp_path):
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    mc = simulate_paths(scenario(), seed=0, paths=2)
    fig = mc.plot()
    assert fig.axes and matplotlib.get_backend() == backend and plt.get_fignums() == figures
    page = mc.report(tmp_path / "mc.html").read_text()
    assert "<svg" in page and "low BTC" in page and "amplification" in page
    assert "http" not in page.replace("http-equiv", "")


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_counts_finished_paths(workers):
    calls = []
    simulate_paths(
        scenario(),
        paths=3,
        workers=workers,
        amplification=False,
        progress=lambda *a: calls.append(a),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_the_channels_off_twins_report_their_own_diagnostics():
    mc = simulate_paths(scenario(), paths=2, check_invariants=True)
    n_steps = scenario().clock.n_steps
    assert mc.diagnostics["invariant_checks"] == 2 * n_steps
    assert mc.diagnostics["channels_off_invariant_checks"] == 2 * n_steps
    assert mc.diagnostics["channels_off_max_unit_drift"] < 1e-9

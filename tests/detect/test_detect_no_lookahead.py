"""No look-ahead: appending later data never changes an earlier value."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from detect_helpers import SMALL, synthetic_prices

from deleverage.detect import detect
from deleverage.detect.indicators import Indicators, compute_all
from deleverage.detect.indicators.stylized import stylized_facts
from deleverage.detect.loaders import load_panel
from deleverage.detect.narratives import score_narratives

N_FULL, N_PREFIX = 360, 250
WINDOW = (pd.Timestamp("2021-09-01", tz="UTC"), pd.Timestamp("2021-10-15", tz="UTC"))


@pytest.fixture(scope="module")
def panels():
    full = load_panel([synthetic_prices(N_FULL, seed=11)])
    return full.head(N_PREFIX), full


@pytest.fixture(scope="module")
def computed(panels):
    prefix, full = panels
    return compute_all(prefix, SMALL), compute_all(full, SMALL)


@pytest.mark.parametrize("name", [f.name for f in fields(Indicators) if f.name != "notes"])
def test_indicator_values_do_not_change_when_later_bars_are_appended(computed, name):
    short, long = (ind.series()[name] for ind in computed)
    if isinstance(short, np.ndarray):
        assert len(short) < len(long)
        np.testing.assert_array_equal(short, long[: len(short)])
        assert not np.isnan(short).all()
        return
    assert len(short) < len(long)
    earlier = long.loc[short.index]
    pd.testing.assert_frame_equal(pd.DataFrame(short), pd.DataFrame(earlier), check_exact=True)
    assert pd.DataFrame(short).notna().to_numpy().any()


def test_every_indicator_is_covered(computed):
    names = set(computed[0].series())
    assert names == {f.name for f in fields(Indicators)} - {"notes"}


def test_narratives_for_a_window_ignore_later_bars(panels, computed):
    (prefix, full), (short, long) = panels, computed
    a = score_narratives(prefix, short, WINDOW, SMALL)
    b = score_narratives(full, long, WINDOW, SMALL)
    assert a.crash == b.crash
    assert [(e.code, e.detail, e.verdict) for e in a.evidence] == [
        (e.code, e.detail, e.verdict) for e in b.evidence
    ]
    pd.testing.assert_series_equal(a.scores, b.scores)


def test_stylized_facts_up_to_a_bar_ignore_later_bars(computed):
    short, long = computed
    end = short.returns.index[-1]
    pd.testing.assert_frame_equal(
        stylized_facts(short.returns), stylized_facts(long.returns.loc[:end])
    )


def test_every_earlier_row_of_the_tidy_table_is_unchanged(panels):
    prefix, full = panels
    a = detect(prefix, WINDOW, params=SMALL).to_frame()
    b = detect(full, WINDOW, params=SMALL).to_frame()
    cutoff = prefix.prices.index[-1]
    keys = ["time", "entity", "metric"]
    earlier = b[b["time"] <= cutoff]
    merged = earlier.merge(
        a, on=keys, how="left", suffixes=("_full", "_prefix"), validate="one_to_one", indicator=True
    )
    assert len(merged) > 10_000
    assert (merged["_merge"] == "both").all()
    np.testing.assert_array_equal(merged["value_full"], merged["value_prefix"])

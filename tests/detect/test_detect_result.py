"""DetectResult views: one tidy table behind the summary, JSON, figure and HTML."""

from __future__ import annotations

import json

import pytest
from detect_helpers import SMALL, synthetic_prices

from deleverage.detect import Provenance, detect
from deleverage.detect.result import FRAME_COLUMNS

WINDOW = "2021-09-01:2021-10-15"


@pytest.fixture(scope="module")
def result():
    return detect(synthetic_prices(360, seed=3), WINDOW, params=SMALL)


def test_to_frame_is_tidy_with_the_shared_columns(result):
    frame = result.to_frame()
    assert list(frame.columns) == FRAME_COLUMNS
    assert frame["run_id"].isna().all() and frame["scenario"].isna().all()
    assert str(frame["time"].dt.tz) == "UTC"
    metrics = set(frame["metric"])
    for metric in (
        "ciss",
        "co_movement_share",
        "stress_subindex",
        "turbulence",
        "turbulence_contribution",
        "absorption_ratio",
        "co_crash_flag",
        "co_crash_severity",
        "spillover_total",
        "spillover_net",
        "net_spillover_pairwise",
        "lead_score",
        "lead_lag",
        "carry_unwind",
        "fiscal_shock",
        "regime",
        "excess_kurtosis",
        "autocorr_abs_r",
        "corr_down",
        "narrative_score",
        "evidence_verdict",
    ):
        assert metric in metrics, metric
    assert frame["unit"].notna().all() and (frame["unit"] != "").any()


def test_summary_numbers_are_cells_of_the_frame(result):
    text = result.summary()
    score = result.value("carry_unwind", "narrative_score")
    assert f"{score:.2f}" in text
    ciss = result.series("all", "ciss")
    inside = ciss.loc[result.window[0] : result.window[1]]
    assert f"{inside.max():.2f}" in text
    assert "observed" in text


def test_json_holds_narratives_evidence_and_window_rows(result):
    payload = json.loads(result.to_json())
    assert payload["label"] == "observed"
    assert set(payload["scores"]) == {
        "carry_unwind",
        "dollar_policy_shock",
        "margin_spiral_metals",
        "tech_earnings_repricing",
        "crypto_native_deleveraging",
    }
    assert {e["verdict"] for e in payload["evidence"]} <= {
        "supports",
        "partly",
        "inconclusive",
        "contradicts",
        "untestable",
    }
    times = {row["time"][:10] for row in payload["rows"]}
    assert min(times) >= "2021-09-01" and max(times) <= "2021-10-15"


def test_plot_says_observed_or_modelled(result):
    fig = result.plot()
    texts = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
    assert "observed" in fig.get_suptitle()
    assert sum("(observed)" in t for t in texts) >= 4
    modelled = detect(
        result.panel, WINDOW, params=SMALL, provenance=Provenance("modelled", "r1", 7, "feb-2026")
    )
    assert "modelled" in modelled.plot().get_suptitle()
    assert set(modelled.to_frame()["run_id"]) == {"r1"}


def test_html_report_is_self_contained(result, tmp_path):
    path = result.report(tmp_path / "detect.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    for needle in ("<script", "<link", 'src="http', 'href="http', "cdn"):
        assert needle not in page.lower()
    for heading in (
        "Composite stress index",
        "co-movement",
        "Co-crash",
        "Net spillovers",
        "Rival explanations",
    ):
        assert heading in page
    assert "observed" in page

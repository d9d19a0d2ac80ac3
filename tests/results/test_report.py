"""Reports and figures: offline, formatted, every chart present, and the user's matplotlib
state left alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from tests.conftest import base_raw, build

from deleverage import simulate, simulate_paths
from deleverage.explain import explain
from deleverage.results.html import number

PERPS = {
    "type": "perp_book",
    "name": "perps",
    "asset": "BTC",
    "margin_rules": "binance-like",
    "accounts": 1_000,
    "open_interest_usd": 2e8,
    "long_share": 0.6,
    "leverage": {"dist": "uniform", "low": 10, "high": 40},
}
DROP = {"type": "news", "time": "2026-01-05T12:00:00Z", "returns": {"BTC": -0.06}, "label": "drop"}
CLOCK = {"start": "2026-01-05T06:00:00Z", "end": "2026-01-06T06:00:00Z", "step": "10min"}
TARGET = {
    "metric": "low",
    "asset": "BTC",
    "value": 91_000.0,
    "unit": "USD",
    "window": ["2026-01-05T06:00:00Z", "2026-01-06T06:00:00Z"],
}
EXTERNAL = re.compile(r"""(src|href)\s*=\s*['"]?\s*(https?:)?//""", re.IGNORECASE)


def crash():
    return build(base_raw(clock=CLOCK, populations=[PERPS], shocks=[DROP], targets=[TARGET]))


def test_numbers_are_readable_with_units():
    assert number(2.6123e9, "USD") == "2.612bn USD"
    assert number(-31.349, "%") == "−31.35 %"
    assert number(60_074.2, "USD") == "60,074 USD"
    assert number(float("nan")) == "—"


CHARTS = ("prices", "liquidations", "depth", "waterfall-shocks")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A run report with an observed series and an explanation; pyplot state before it."""
    before = matplotlib.get_backend(), plt.get_fignums()
    run = simulate(crash(), seed=0)
    observed = {"BTC": pd.Series([95_000.0, 92_000.0], index=pd.to_datetime(
        ["2026-01-05T12:00:00Z", "2026-01-06T00:00:00Z"]))}  # fmt: skip
    explained = explain(run, games=["shocks"])
    path = run.report(tmp_path_factory.mktemp("report") / "r.html", observed, explained.to_frame())
    return path, run, explained, before


def test_the_run_report_is_offline_formatted_and_has_every_chart(report):
    page = report[0].read_text()
    for chart in CHARTS:
        assert f"id='chart-{chart}'" in page
    assert page.count("<svg") == len(CHARTS)
    assert "<script" not in page and not EXTERNAL.search(page)
    assert "e+0" not in page.split("<svg")[0] and "Targets: observed vs modelled" in page
    assert "91,000 USD" in page and "drop" in page  # the target and the shock table


def test_plots_and_reports_leave_the_backend_and_pyplot_figures_alone(report, tmp_path):
    _, run, explained, (backend, figures) = report
    mc = simulate_paths(crash(), seed=0, paths=2)
    for result in (run, mc, explained):
        figure = result.plot()
        assert figure.axes and figure.canvas.figure is figure
    assert "<svg" in mc.report(tmp_path / "mc.html").read_text()
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == figures


def chromium(page: Path) -> tuple[str, list[str]]:
    """The page as headless Chromium renders it (DOM) and the console messages it logged."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:  # `make test` installs it in CI (CI=true, root); elsewhere it is optional
        needed = "the report test needs Debian's `chromium` package (apt-get install chromium)"
        pytest.fail(needed) if os.environ.get("CI") else pytest.skip(needed)
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--log-level=0", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic",
         f"--user-data-dir={page.parent / 'chromium-profile'}",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_the_report_opens_in_headless_chromium_without_console_errors(report, tmp_path):
    dom, console = chromium(report[0])
    assert console == []
    for chart in CHARTS:
        figure = re.search(f'<figure id="chart-{chart}"[^>]*>\\s*<svg', dom)
        assert figure, f"chart {chart} missing from the rendered page"
    # the check can fail: a page that logs to the console is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><title>x</title><script>console.error('boom')</script>")
    assert any("boom" in line for line in chromium(bad)[1])

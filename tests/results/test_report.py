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
VOL = {
    "type": "vol_target",
    "name": "vol funds",
    "funds": 4,
    "capital_usd": 3e9,
    "target_vol": 0.02,
    "weights": {"BTC": 1.0},
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
    raw = base_raw(clock=CLOCK, populations=[PERPS, VOL], shocks=[DROP], targets=[TARGET])
    return build(raw)


def test_numbers_are_readable_with_units():
    assert number(2.6123e9, "USD") == "2.612bn USD"
    assert number(-31.349, "%") == "−31.35 %"
    assert number(60_074.2, "USD") == "60,074 USD"
    assert number(float("nan")) == "—"


CHARTS = ("prices", "liquidations", "depth", "leverage", "waterfall-shocks")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A run report with an observed series and an explanation; pyplot state before it."""
    before = matplotlib.get_backend(), plt.get_fignums()
    run = simulate(crash(), seed=0)
    observed = {"BTC": pd.Series([95_000.0, 92_000.0], index=pd.to_datetime(
        ["2026-01-05T12:00:00Z", "2026-01-06T00:00:00Z"]))}  # fmt: skip
    explained = explain(run, games=["shocks"])
    folder = tmp_path_factory.mktemp("report")
    path = run.report(folder / "r.html", observed, explained.to_frame(), png_dir=folder / "png")
    return path, run, explained, before


def test_the_run_report_is_offline_formatted_and_has_every_chart(report):
    page = report[0].read_text()
    for chart in CHARTS:
        assert f"id='chart-{chart}'" in page
    assert page.count("<svg") == len(CHARTS)
    assert "<script" not in page and not EXTERNAL.search(page)
    assert "e+0" not in page.split("<svg")[0] and "Targets: observed vs modelled" in page
    assert "91,000 USD" in page and "drop" in page  # the target and the shock table


def valid_png(path: Path) -> tuple[int, int]:
    """Height and width of a PNG file matplotlib can read back."""
    from matplotlib import image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.std() > 0  # not a blank canvas
    return pixels.shape[:2]


def test_every_chart_is_also_written_as_one_png(report):
    page, run = report[0], report[1]
    pngs = sorted((page.parent / "png").iterdir())
    assert [p.stem for p in pngs] == sorted(CHARTS)
    for png in pngs:
        height, width = valid_png(png)
        assert height > 200 and width > 400
    # the fund leverage chart draws the recorded series of the vol-target funds
    assert run.leverage().columns.tolist() == ["vol funds"]
    assert run.leverage()["vol funds"].max() > 0.0


def test_a_monte_carlo_report_writes_its_bands_chart_as_png(tmp_path):
    mc = simulate_paths(crash(), seed=0, paths=2, amplification=False)
    page = mc.report(tmp_path / "mc.html", png_dir=tmp_path / "png")
    assert page.read_text().count("<figure ") == 1
    assert [p.name for p in (tmp_path / "png").iterdir()] == ["bands.png"]
    valid_png(tmp_path / "png" / "bands.png")


def test_plots_and_reports_leave_the_backend_and_pyplot_figures_alone(report, tmp_path):
    _, run, explained, (backend, figures) = report
    mc = simulate_paths(crash(), seed=0, paths=2)
    for result in (run, mc, explained):
        figure = result.plot()
        assert figure.axes and figure.canvas.figure is figure
    assert "fund leverage ×" in [ax.get_ylabel() for ax in run.plot().axes]
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

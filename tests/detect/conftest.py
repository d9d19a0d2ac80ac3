"""Fixtures for detect: the real daily data in ../shared/data (skipped only if absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from detect_helpers import DATA, FEB_2026, REAL_FILES


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def real_panel(data_dir):
    from deleverage.detect.loaders import load_panel

    return load_panel([str(data_dir / f) for f in REAL_FILES]).span("2015-01-01")


@pytest.fixture(scope="session")
def real_result(real_panel):
    from deleverage.detect import detect

    return detect(real_panel, FEB_2026)

"""Forensics on market data: how stressed, when liquidity vanished, who led, and why.

`detect(files_or_frames, window)` returns a `DetectResult` with `.summary()`,
`.to_frame()`, `.plot()` and `.report(path)`; bad input raises `DataError`.
"""

from deleverage.detect.api import detect, parse_window
from deleverage.detect.assets import AssetSpec
from deleverage.detect.errors import DataError, Problem
from deleverage.detect.indicators import DetectParams
from deleverage.detect.result import DetectResult, Provenance

__all__ = [
    "AssetSpec",
    "DataError",
    "DetectParams",
    "DetectResult",
    "Problem",
    "Provenance",
    "detect",
    "parse_window",
]

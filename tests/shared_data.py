"""Where the shared real-price data lives, and a skip marker for when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SP500_PARQUET = SHARED_DATA / "sp500_daily.parquet"
RAW_SAMPLES = SHARED_DATA / "raw_samples"

needs_parquet = pytest.mark.skipif(
    not SP500_PARQUET.is_file(), reason=f"shared S&P 500 data not found at {SP500_PARQUET}"
)
needs_raw_samples = pytest.mark.skipif(
    not RAW_SAMPLES.is_dir(), reason=f"shared raw samples not found at {RAW_SAMPLES}"
)

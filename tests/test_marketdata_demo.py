"""The built-in synthetic universe: deterministic, realistic enough.

How fast it loads is measured by benchmarks/marketdata_load.py, not asserted here.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketdata import DataError, demo_sectors, load
from marketdata.calendar import nyse_sessions

ROOT = Path(__file__).resolve().parents[1]
DIGEST_SNIPPET = (
    "import hashlib; from marketdata import load; d = load('demo'); h = hashlib.sha256()\n"
    "for s in d.symbols:\n"
    "    f = d.bars[s]; h.update(s.encode()); h.update(f.index.asi8.tobytes())\n"
    "    h.update(f.to_numpy().tobytes())\n"
    "print(h.hexdigest())"
)


@pytest.fixture(scope="module")
def demo():
    return load("demo")


def _digest(data) -> str:
    h = hashlib.sha256()
    for s in data.symbols:
        frame = data.bars[s]
        h.update(s.encode())
        h.update(frame.index.asi8.tobytes())
        h.update(frame.to_numpy().tobytes())
    return h.hexdigest()


def test_demo_is_identical_across_loads_and_processes(demo):
    again = load("demo")
    assert demo.symbols == again.symbols
    for sym in demo.symbols:
        pd.testing.assert_frame_equal(demo.bars[sym], again.bars[sym])
    other = subprocess.run(
        [sys.executable, "-c", DIGEST_SNIPPET], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == _digest(demo)


def test_demo_universe_shape(demo):
    assert demo.synthetic is True
    assert demo.source == "demo (synthetic)"
    assert demo.problems == {}
    assert len(demo.symbols) >= 100
    assert all(s.startswith("SYN") for s in demo.symbols)
    assert demo.symbols == sorted(demo.symbols)
    sessions = nyse_sessions("2012-01-03", "2024-12-31")
    for frame in demo.bars.values():
        assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
        assert (frame.dtypes == "float64").all()
        assert frame.index.equals(sessions)
        assert frame.index.name == "date"
    span = demo.bars["SYN000"].index
    assert (span[-1] - span[0]).days >= 10 * 365


def test_demo_ohlcv_is_consistent(demo):
    wide = {
        f: pd.concat({s: b[f] for s, b in demo.bars.items()}, axis=1) for f in demo.bars["SYN000"]
    }
    assert (wide["low"] <= wide["open"]).all().all()
    assert (wide["low"] <= wide["close"]).all().all()
    assert (wide["high"] >= wide["open"]).all().all()
    assert (wide["high"] >= wide["close"]).all().all()
    assert (wide["low"] > 0).all().all()
    assert (wide["volume"] > 0).all().all()
    assert not any(w.isna().any().any() for w in wide.values())


def test_demo_returns_are_realistic_and_sector_correlated(demo):
    closes = pd.concat({s: b["close"] for s, b in demo.bars.items()}, axis=1)
    rets = np.log(closes).diff().dropna()
    vol = rets.std() * np.sqrt(252)
    assert vol.between(0.13, 0.50).all(), vol.describe()
    years = len(rets) / 252
    growth = np.log(closes.iloc[-1] / closes.iloc[0]) / years
    assert 0.0 < growth.median() < 0.15
    assert (rets.abs() > 0.10).any().any(), "expected occasional jumps"

    sectors = demo_sectors()
    assert set(sectors) == set(demo.symbols)
    assert len(set(sectors.values())) == 10
    labels = np.array([sectors[s] for s in closes.columns])
    corr = rets.corr().to_numpy()
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(len(labels), dtype=bool)
    within, across = corr[same & off_diag].mean(), corr[~same].mean()
    assert within > across + 0.1, (within, across)
    assert across > 0.1  # a common market factor


def test_demo_subset_window_and_unknown_symbol(demo):
    part = load("demo", ["SYN005", "syn001", "NOPE"], start="2020-01-01", end="2020-12-31")
    assert part.symbols == ["SYN001", "SYN005"]
    assert part.problems == {"NOPE": "NOPE: not found in demo (synthetic)"}
    frame = part.bars["SYN005"]
    assert frame.index[0] == pd.Timestamp("2020-01-02")
    assert frame.index[-1] == pd.Timestamp("2020-12-31")
    pd.testing.assert_frame_equal(frame, demo.bars["SYN005"].loc["2020-01-01":"2020-12-31"])


def test_demo_nothing_matches_raises():
    with pytest.raises(DataError, match="nothing loaded from demo.*AAPL: not found"):
        load("demo", ["AAPL"])

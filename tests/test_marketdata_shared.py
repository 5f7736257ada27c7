"""Loading the real S&P 500 data in ../shared/data (skipped when that folder is absent).

Load time is measured by benchmarks/marketdata_load.py, not asserted here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketdata import load
from marketdata.calendar import nyse_sessions

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PARQUET = SHARED / "sp500_daily.parquet"
RAW = SHARED / "raw_samples"

pytestmark = pytest.mark.skipif(
    not (PARQUET.is_file() and RAW.is_dir()),
    reason=f"shared market data not found at {SHARED} (only present on dev/CI machines)",
)


@pytest.fixture(scope="module")
def raw_samples():
    return load(f"csv:{RAW}")


def _assert_contract_frame(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert (frame.dtypes == "float64").all()
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "date" and frame.index.tz is None
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert (frame.index == frame.index.normalize()).all()
    assert frame.index.isin(nyse_sessions(frame.index[0], frame.index[-1])).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()


def test_bf_b_error_body_is_reported_by_file_name_others_load(raw_samples):
    assert raw_samples.symbols == ["AAPL", "KO", "TSLA", "XOM"]
    assert list(raw_samples.problems) == ["BF.B"]
    assert "DA-BF.B-T-2021-04-21.csv is not a price CSV" in raw_samples.problems["BF.B"]
    assert raw_samples.source == f"csv:{RAW.resolve()}"
    assert raw_samples.synthetic is False
    for frame in raw_samples.bars.values():
        _assert_contract_frame(frame)


def test_aapl_split_2000_06_21_is_adjusted_away(raw_samples):
    raw = pd.read_csv(RAW / "DA-AAPL-T-2021-04-21.csv", index_col="timestamp")
    assert raw.loc["2000-06-20", "close"] == 101.25 and raw.loc["2000-06-21", "close"] == 55.63
    adj = raw_samples.bars["AAPL"]
    ratio = adj.loc["2000-06-21", "close"] / adj.loc["2000-06-20", "close"]
    # The raw 101.25 -> 55.63 (-45 %) is a 2:1 split; the real move was 55.63 / 50.625.
    assert ratio == pytest.approx(55.63 / (101.25 / 2), rel=1e-6)
    # open/high/low are scaled by the same per-row factor as close.
    day = adj.loc["2000-06-20"]
    assert day["open"] / day["close"] == pytest.approx(98.5 / 101.25, rel=1e-9)
    # Volume is split-adjusted (2 * 2 * 7 * 4 since 2000-06-20), not dividend-adjusted.
    assert adj.loc["2000-06-20", "volume"] == pytest.approx(
        raw.loc["2000-06-20", "volume"] * 112, rel=1e-5
    )
    assert adj.loc["2021-04-21", "close"] == raw.loc["2021-04-21", "adjusted_close"]


def test_tsla_split_2020_08_31_is_adjusted_away(raw_samples):
    raw = pd.read_csv(RAW / "DA-TSLA-T-2021-04-21.csv", index_col="timestamp")
    before, after = raw.loc["2020-08-28", "close"], raw.loc["2020-08-31", "close"]
    assert after / before < 0.3  # the raw 5:1 split jump
    adj = raw_samples.bars["TSLA"]["close"]
    assert adj["2020-08-31"] / adj["2020-08-28"] == pytest.approx(after / (before / 5), rel=1e-6)
    assert np.abs(np.log(adj).diff().dropna()).max() < 0.3


def test_parquet_loads_100_plus_symbols_and_matches_csv(raw_samples):
    import pyarrow.parquet as pq

    all_symbols = sorted(set(pq.read_table(PARQUET, columns=["symbol"]).column(0).to_pylist()))
    wanted = all_symbols[:120] + ["AAPL", "TSLA"]
    data = load(f"parquet:{PARQUET}", wanted, start="2005-01-01", end="2020-12-31")
    assert len(data.symbols) == len(set(wanted)) >= 100
    assert data.problems == {}
    for frame in data.bars.values():
        _assert_contract_frame(frame)
        assert frame.index[0] >= pd.Timestamp("2005-01-01")
        assert frame.index[-1] <= pd.Timestamp("2020-12-31")
    assert data.bars["AAPL"].index[0] == pd.Timestamp("2005-01-03")  # inclusive window
    assert data.bars["AAPL"].index[-1] == pd.Timestamp("2020-12-31")
    csv_aapl = raw_samples.bars["AAPL"].loc["2005-01-01":"2020-12-31"]
    pd.testing.assert_frame_equal(data.bars["AAPL"], csv_aapl)


def test_parquet_volume_zero_rows_are_legal_and_unknown_symbols_reported():
    import pyarrow.parquet as pq

    zero = pq.read_table(PARQUET, columns=["symbol"], filters=[("volume", "==", 0)])
    symbols = sorted(set(zero.column(0).to_pylist()))[:10]
    assert symbols, "the shared data is documented to hold volume-0 rows"
    data = load(f"parquet:{PARQUET}", [*symbols, "NOSUCH"])
    assert data.symbols == symbols
    assert data.problems == {"NOSUCH": f"NOSUCH: not found in parquet:{PARQUET.resolve()}"}
    assert any((data.bars[s]["volume"] == 0).any() for s in symbols)

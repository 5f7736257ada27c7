"""The load() contract: source strings, arguments, MarketData, and the Parquet layout."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest

import marketdata
from marketdata import DataError, MarketData, load, parse_source


def test_public_names():
    for name in ("DataError", "load", "MarketData", "parse_source"):
        assert hasattr(marketdata, name)
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize(
    ("text", "kind", "location"),
    [
        ("demo", "demo", None),
        (" DEMO ", "demo", None),
        ("yfinance", "yfinance", None),
        ("parquet:/data/x.parquet", "parquet", "/data/x.parquet"),
        ("csv:../shared/data/raw_samples", "csv", "../shared/data/raw_samples"),
    ],
)
def test_parse_source(text, kind, location):
    spec = parse_source(text)
    assert (spec.kind, spec.location) == (kind, location)
    k, loc = spec  # a plain (kind, location) tuple too
    assert (k, loc) == (kind, location)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty data source"),
        ("yahoo", "unknown data source 'yahoo'; use 'demo', 'parquet:PATH'"),
        ("parquet:", "needs a path after 'parquet:'"),
        ("csv", "unknown data source 'csv'"),
    ],
)
def test_parse_source_errors(text, message):
    with pytest.raises(DataError, match=message):
        parse_source(text)


def test_missing_paths_are_clear(tmp_path):
    with pytest.raises(DataError, match="Parquet source file not found: .*nope.parquet"):
        load(f"parquet:{tmp_path / 'nope.parquet'}")
    with pytest.raises(DataError, match="CSV source folder not found: .*nodir"):
        load(f"csv:{tmp_path / 'nodir'}")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2020-03-02", "2020-03-06"),
        (dt.date(2020, 3, 2), dt.date(2020, 3, 6)),
        (dt.datetime(2020, 3, 2, 9, 30), dt.datetime(2020, 3, 6, 16, 0)),
        (pd.Timestamp("2020-03-02"), pd.Timestamp("2020-03-06")),
    ],
)
def test_window_is_inclusive_for_every_date_type(start, end):
    data = load("demo", ["SYN000"], start, end)
    index = data.bars["SYN000"].index
    assert (index[0], index[-1], len(index)) == (
        pd.Timestamp("2020-03-02"),
        pd.Timestamp("2020-03-06"),
        5,
    )


def test_bad_arguments():
    with pytest.raises(DataError, match="start 2020-02-01 is after end 2020-01-01"):
        load("demo", None, "2020-02-01", "2020-01-01")
    with pytest.raises(DataError, match="start='tomorrow' is not a date"):
        load("demo", None, "tomorrow")
    with pytest.raises(DataError, match="empty symbol list"):
        load("demo", [])


def test_window_outside_data_reports_each_symbol():
    with pytest.raises(DataError, match="SYN000: no bars between 2030-01-01 and 2030-12-31"):
        load("demo", ["SYN000"], "2030-01-01", "2030-12-31")


def test_market_data_is_frozen_and_summarised():
    data = load("demo", ["SYN001", "SYN000"], "2024-01-01")
    assert isinstance(data, MarketData)
    assert list(data.bars) == ["SYN000", "SYN001"] == data.symbols
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.source = "x"  # type: ignore[misc]
    assert repr(data) == (
        "MarketData(source='demo (synthetic)', symbols=2, 2024-01-02..2024-12-31, "
        "problems=0, synthetic=True)"
    )


def _long_table(rows):
    return pd.DataFrame(
        rows,
        columns=[
            "symbol",
            "date",
            "open",
            "high",
            "low",
            "close",
            "adjusted_close",
            "volume",
            "dividend_amount",
            "split_coefficient",
        ],
    ).assign(date=lambda d: pd.to_datetime(d["date"]))


def test_parquet_source_validates_and_adjusts(tmp_path):
    path = tmp_path / "prices.parquet"
    _long_table(
        [
            ("GOOD", "2020-03-03", 10.0, 11.0, 9.0, 10.0, 5.0, 100, 0.0, 1.0),
            ("GOOD", "2020-03-02", 20.0, 21.0, 19.0, 20.0, 10.0, 50, 0.0, 1.0),  # unsorted
            ("GOOD", "2020-03-04", 10.0, 11.0, 9.0, 10.5, 10.5, 300, 0.0, 2.0),  # 2:1 split
            ("BAD", "2020-03-02", 10.0, 9.0, 11.0, 10.0, 10.0, 100, 0.0, 1.0),
        ]
    ).to_parquet(path)
    data = load(f"parquet:{path}")
    assert data.symbols == ["GOOD"]
    assert "BAD 2020-03-02: high 9.0 < low 11.0 (in prices.parquet)" in data.problems["BAD"]
    assert (
        "GOOD: repaired (in prices.parquet): dates not in ascending order"
        in (data.problems["GOOD"])
    )
    good = data.bars["GOOD"]
    assert good["close"].tolist() == [10.0, 5.0, 10.5]
    assert good["open"].tolist() == [10.0, 5.0, 10.0]
    assert good["volume"].tolist() == [100.0, 200.0, 300.0]


def test_parquet_with_wrong_columns_is_rejected(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"symbol": ["A"], "date": [pd.Timestamp("2020-01-02")], "px": [1.0]}).to_parquet(
        path
    )
    with pytest.raises(DataError, match="lacks column\\(s\\) open, high, low, close"):
        load(f"parquet:{path}")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read Parquet file .*broken.parquet"):
        load(f"parquet:{broken}")

"""Validation through the CSV source: each bad input is rejected or repaired with a clear message.

Small CSVs are written to tmp_path; a good symbol sits next to each bad one to
show that one rejected symbol never takes the others down.
"""

from __future__ import annotations

import pandas as pd
import pytest

from marketdata import DataError, load
from marketdata.validate import validate_bars

YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
VENDOR_HEADER = (
    "timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient"
)
GOOD_ROWS = [
    "2020-03-02,10.0,11.0,9.5,10.5,10.5,1000",
    "2020-03-03,10.5,11.5,10.0,11.0,11.0,1200",
    "2020-03-04,11.0,12.0,10.5,11.5,11.5,0",
    "2020-03-05,11.5,12.5,11.0,12.0,12.0,900",
]


def _write(folder, name, lines):
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _load_with_good(tmp_path, name, lines):
    _write(tmp_path, "GOOD.csv", [YAHOO_HEADER, *GOOD_ROWS])
    _write(tmp_path, name, lines)
    return load(f"csv:{tmp_path}")


def test_good_file_loads_with_volume_zero_row(tmp_path):
    data = load(f"csv:{_write(tmp_path, 'GOOD.csv', [YAHOO_HEADER, *GOOD_ROWS]).parent}")
    assert data.symbols == ["GOOD"]
    assert data.problems == {}
    frame = data.bars["GOOD"]
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.loc["2020-03-04", "volume"] == 0.0  # volume 0 is legal


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2020-03-03,10.5,11.5,10.0,,11.0,1200", "BAD 2020-03-03: NaN in close"),
        ("2020-03-03,10.5,11.5,10.0,0,11.0,1200", "BAD 2020-03-03: non-positive close 0.0"),
        ("2020-03-03,-1.0,11.5,10.0,11.0,11.0,1200", "BAD 2020-03-03: non-positive open -1.0"),
        ("2020-03-03,10.5,11.5,10.0,11.0,11.0,-5", "BAD 2020-03-03: negative volume -5.0"),
        ("2020-03-03,10.5,10.0,11.0,10.5,10.5,1200", "BAD 2020-03-03: high 10.0 < low 11.0"),
        ("2020-03-03,10.5,11.5,10.0,abc,11.0,1200", "BAD 2020-03-03: non-numeric close 'abc'"),
        ("03/2020/99,10.5,11.5,10.0,11.0,11.0,1200", "BAD: unparseable date '03/2020/99'"),
    ],
    ids=["nan", "zero", "negative", "negative-volume", "high<low", "non-numeric", "bad-date"],
)
def test_bad_values_reject_the_symbol_only(tmp_path, row, message):
    lines = [YAHOO_HEADER, GOOD_ROWS[0], row, GOOD_ROWS[2]]
    data = _load_with_good(tmp_path, "BAD.csv", lines)
    assert data.symbols == ["GOOD"]
    assert message in data.problems["BAD"]
    assert "(in BAD.csv)" in data.problems["BAD"]


def test_high_below_low_message_matches_contract():
    frame = pd.DataFrame(
        {"open": [10.5], "high": [10.0], "low": [11.0], "close": [10.5], "volume": [1.0]},
        index=["2020-03-02"],
    )
    with pytest.raises(DataError) as err:
        validate_bars("AAPL", frame)
    assert str(err.value) == "AAPL 2020-03-02: high 10.0 < low 11.0"
    assert err.value.symbols == ("AAPL",)


def test_unsorted_dates_are_sorted_with_a_note(tmp_path):
    lines = [YAHOO_HEADER, GOOD_ROWS[2], GOOD_ROWS[0], GOOD_ROWS[1]]
    data = _load_with_good(tmp_path, "UNS.csv", lines)
    frame = data.bars["UNS"]
    assert frame.index.is_monotonic_increasing
    assert list(frame.index.strftime("%Y-%m-%d")) == ["2020-03-02", "2020-03-03", "2020-03-04"]
    assert "UNS: repaired" in data.problems["UNS"]
    assert "dates not in ascending order (first at 2020-03-02); sorted" in data.problems["UNS"]


def test_exact_duplicates_are_dropped_with_a_note(tmp_path):
    lines = [YAHOO_HEADER, GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1]]
    data = _load_with_good(tmp_path, "DUP.csv", lines)
    assert len(data.bars["DUP"]) == 2
    assert "dropped 1 exact duplicate row(s) (first 2020-03-03)" in data.problems["DUP"]


def test_conflicting_duplicates_reject_the_symbol(tmp_path):
    other = "2020-03-03,10.5,11.5,10.0,11.1,11.1,1200"
    data = _load_with_good(tmp_path, "DUP.csv", [YAHOO_HEADER, GOOD_ROWS[0], GOOD_ROWS[1], other])
    assert "DUP" not in data.bars
    assert "DUP 2020-03-03: duplicate date with different values" in data.problems["DUP"]


def test_all_null_rows_are_dropped_but_partial_nan_rejects(tmp_path):
    # Yahoo downloads sometimes carry rows of "null"s: nothing to keep, nothing to trust.
    lines = [YAHOO_HEADER, GOOD_ROWS[0], "2020-03-03,null,null,null,null,null,null", GOOD_ROWS[2]]
    data = _load_with_good(tmp_path, "NUL.csv", lines)
    assert len(data.bars["NUL"]) == 2
    assert "dropped 1 row(s) with every value missing (first 2020-03-03)" in data.problems["NUL"]


def test_open_outside_range_is_widened(tmp_path):
    lines = [YAHOO_HEADER, "2020-03-02,12.0,11.0,9.5,10.5,10.5,1000", GOOD_ROWS[1]]
    data = _load_with_good(tmp_path, "WID.csv", lines)
    assert data.bars["WID"].loc["2020-03-02", "high"] == 12.0
    assert "open/close outside [low, high] (first 2020-03-02)" in data.problems["WID"]


def test_non_session_dates_are_dropped(tmp_path):
    saturday = "2020-03-07,11.5,12.5,11.0,12.0,12.0,900"
    data = _load_with_good(tmp_path, "SAT.csv", [YAHOO_HEADER, *GOOD_ROWS, saturday])
    assert data.bars["SAT"].index[-1] == pd.Timestamp("2020-03-05")
    assert "not NYSE sessions (first 2020-03-07, a Saturday)" in data.problems["SAT"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{\nError Message\n}\n", "ERR: ERR.csv is not a price CSV (first line '{')"),
        (b"", "ERR: ERR.csv is empty"),
        (b"\xff\xfe\x00\x81garbage\x00\x9c", "ERR: ERR.csv is unreadable: not UTF-8 text"),
        (
            (YAHOO_HEADER + "\n2020-03-02,1,2,1,1,1,5,6,7,8\n").encode(),
            "ERR: ERR.csv is malformed",
        ),
        (b"when,what\n2020-03-02,1\n", "ERR: ERR.csv is not a price CSV"),
    ],
    ids=["error-body", "empty", "binary", "ragged", "other-csv"],
)
def test_unreadable_files_are_reported_by_file_name(tmp_path, content, message):
    (tmp_path / "ERR.csv").write_bytes(content)
    _write(tmp_path, "GOOD.csv", [YAHOO_HEADER, *GOOD_ROWS])
    data = load(f"csv:{tmp_path}")
    assert data.symbols == ["GOOD"]
    assert message in data.problems["ERR"]


def test_vendor_layout_symbol_from_file_name_and_split_adjusted(tmp_path):
    lines = [
        VENDOR_HEADER,
        "2020-08-27,2000.0,2100.0,1990.0,2100.0,420.0,1000,0.0,1.0",
        "2020-08-28,2100.0,2250.0,2090.0,2200.0,440.0,2000,0.0,1.0",
        "2020-08-31,450.0,460.0,440.0,455.0,455.0,9000,0.0,5.0",
    ]
    _write(tmp_path, "DA-BRK.B-T-2021-04-21.csv", lines)
    data = load(f"csv:{tmp_path}")
    frame = data.bars["BRK.B"]
    assert frame["close"].tolist() == [420.0, 440.0, 455.0]
    assert frame.loc["2020-08-28", "open"] == pytest.approx(420.0)
    assert frame["volume"].tolist() == [5000.0, 10000.0, 9000.0]  # split-adjusted volume


def test_newest_snapshot_wins_when_a_symbol_has_two_files(tmp_path):
    _write(tmp_path, "DA-X-T-2021-01-01.csv", [VENDOR_HEADER, "2020-03-02,1,2,1,1,1,5,0,1"])
    _write(tmp_path, "DA-X-T-2021-04-21.csv", [VENDOR_HEADER, "2020-03-02,3,4,3,3,3,5,0,1"])
    data = load(f"csv:{tmp_path}")
    assert data.bars["X"]["close"].tolist() == [3.0]
    assert "used DA-X-T-2021-04-21.csv, ignored DA-X-T-2021-01-01.csv" in data.problems["X"]


def test_nothing_loadable_raises_with_every_reason(tmp_path):
    _write(tmp_path, "A.csv", [YAHOO_HEADER, "2020-03-02,10.0,10.0,11.0,10.5,10.5,1"])
    (tmp_path / "B.csv").write_text("{\nError Message\n}\n")
    with pytest.raises(DataError) as err:
        load(f"csv:{tmp_path}")
    text = str(err.value)
    assert text.startswith("nothing loaded from csv:")
    assert "A 2020-03-02: high 10.0 < low 11.0" in text
    assert "B: B.csv is not a price CSV" in text


def test_tz_aware_and_intraday_stamped_index_is_normalized():
    idx = pd.DatetimeIndex(["2020-03-02 14:30", "2020-03-03 14:30"], tz="UTC")
    frame = pd.DataFrame(
        {
            "open": [1.0, 1.0],
            "high": [2.0, 2.0],
            "low": [1.0, 1.0],
            "close": [1.5, 1.5],
            "volume": [1.0, 1.0],
        },
        index=idx,
    )
    clean, note = validate_bars("TZ", frame)
    assert list(clean.index) == [pd.Timestamp("2020-03-02"), pd.Timestamp("2020-03-03")]
    assert clean.index.tz is None
    assert "times of day dropped" in note


def test_missing_column_rejected():
    frame = pd.DataFrame({"open": [1.0], "close": [1.0]}, index=["2020-03-02"])
    with pytest.raises(DataError, match="MC: missing column\\(s\\) high, low, volume"):
        validate_bars("MC", frame)

"""The data side of the point-in-time universe (marketdata.universe).

Facts checked on the shared S&P file come from its README (427 of 504 members on
2018-01-02; 2005 about half and 2018 about 15% of member-sessions without prices) and
from the index's history (MKTX joined 2019-07-01, TSLA 2020-12-21).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from shared_data import SHARED_DATA, SP500_PARQUET

from marketdata import (
    DataError,
    coverage,
    coverage_sentence,
    load_membership,
    nyse_sessions,
    parse_universe,
)

MEMBERSHIP = SHARED_DATA / "sp500_membership.csv"
needs_membership = pytest.mark.skipif(
    not (MEMBERSHIP.is_file() and SP500_PARQUET.is_file()),
    reason=f"shared S&P 500 membership or prices not found in {SHARED_DATA}",
)
PARQUET_SOURCE = f"parquet:{SP500_PARQUET}"


def _write(tmp_path: Path, body: str, name: str = "members.csv") -> Path:
    path = tmp_path / name
    path.write_text("ticker,start_date,end_date\n" + body)
    return path


def _parquet_symbols() -> list[str]:
    import pyarrow.parquet as pq

    column = pq.read_table(SP500_PARQUET, columns=["symbol"]).column("symbol")
    return sorted(set(column.to_pylist()))


# --- the shared file ---------------------------------------------------------------


@needs_membership
def test_join_dates_are_inclusive_and_later_joiners_are_out() -> None:
    membership = parse_universe(None, PARQUET_SOURCE).load()
    sessions = pd.DatetimeIndex(["2019-06-28", "2019-07-01", "2020-12-18", "2020-12-21"])
    grid = membership.matrix(sessions, ["TSLA", "MKTX", "AAPL"])
    assert grid["MKTX"].tolist() == [False, True, True, True]
    assert grid["TSLA"].tolist() == [False, False, False, True]
    assert grid["AAPL"].all()
    assert grid.dtypes.eq(bool).all()
    for day in ("2019-06-28", "2019-07-01"):
        assert "TSLA" not in membership.members_on(day)
    assert "MKTX" not in membership.members_on("2019-06-28")
    assert "MKTX" in membership.members_on("2019-07-01")


@needs_membership
def test_members_of_the_price_file_on_2018_01_02() -> None:
    membership = load_membership(MEMBERSHIP)
    symbols = _parquet_symbols()
    assert len(symbols) == 504
    members = membership.matrix(pd.DatetimeIndex(["2018-01-02"]), symbols).iloc[0]
    assert int(members.sum()) == 427
    assert len(membership.members_on("2005-01-03")) == 495


@needs_membership
def test_an_end_date_is_the_first_session_out() -> None:
    # HRS became LHX on 2019-06-01: exactly one of them is a member on each side.
    membership = load_membership(MEMBERSHIP)
    grid = membership.matrix(nyse_sessions("2019-05-30", "2019-06-04"), ["HRS", "LHX"])
    assert grid.sum(axis=1).eq(1).all()
    assert grid["HRS"].tolist() == [True, True, False, False]


@needs_membership
def test_coverage_matches_the_readme() -> None:
    membership = load_membership(MEMBERSHIP)
    symbols = _parquet_symbols()
    report = coverage(membership, nyse_sessions("2005-01-03", "2018-12-31"), symbols)
    assert 0.45 <= report["by_year"][2005] <= 0.55
    assert 0.10 <= report["by_year"][2018] <= 0.20
    assert report["missing_share"] == pytest.approx(
        report["missing_sessions"] / report["member_sessions"]
    )
    assert "AET" in report["missing_symbols"]  # left the index in 2018, no prices here
    assert "AAPL" not in report["missing_symbols"]
    first_day = membership.matrix(pd.DatetimeIndex(["2005-01-03"]), membership.tickers).iloc[0]
    assert int(first_day.sum()) == 495
    assert "2005: 49%" in coverage_sentence(report)


@needs_membership
def test_current_members_warn_past_the_files_last_date() -> None:
    membership = load_membership(MEMBERSHIP)
    assert membership.last_date == pd.Timestamp("2025-07-09")
    assert membership.current_warning("2025-07-09") is None
    warning = membership.current_warning(pd.Timestamp("2026-01-05 15:00", tz="UTC"))
    assert warning is not None and "2025-07-09" in warning and "2026-01-05" in warning
    assert membership.current("2026-01-05") == membership.members_on("2025-07-09")
    assert "TSLA" in membership.current("2026-01-05")


# --- coverage on a small file --------------------------------------------------------


def test_coverage_counts_sessions_without_bars(tmp_path: Path) -> None:
    membership = load_membership(_write(tmp_path, "AAA,2020-01-02,\nBBB,2020-01-02,2020-01-06\n"))
    sessions = nyse_sessions("2020-01-02", "2020-01-07")  # 2, 3, 6, 7 January
    everywhere = coverage(membership, sessions, ["AAA"])
    assert everywhere["member_sessions"] == 4 + 2
    assert everywhere["missing_sessions"] == 2
    assert everywhere["missing_symbols"] == ["BBB"]
    partial = coverage(
        membership, sessions, {"AAA": pd.DatetimeIndex(["2020-01-06", "2020-01-07"]), "BBB": []}
    )
    assert partial["missing_sessions"] == 2 + 2
    assert partial["by_year"] == {2020: pytest.approx(4 / 6)}
    assert partial["missing_symbols"] == ["BBB"]


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("AAA,2010-01-04,2015-01-02\nAAA,2014-06-02,\n", "AAA: stay from 2014-06-02 overlaps"),
        ("AAA,2010-01-04,\nAAA,2014-06-02,2016-01-04\n", "2010-01-04..open"),
        ("AAA,2010-13-04,\n", "line 2 (AAA): start_date '2010-13-04' is not a YYYY-MM-DD"),
        ("AAA,2010-01-04,2012-02-30\n", "end_date '2012-02-30' is not a YYYY-MM-DD"),
        ("AAA,,2012-01-03\n", "start_date '' is not"),
        ("BBB,2010-01-04,\nAAA,2012-01-03,2011-01-03\n", "line 3 (AAA): end_date 2011-01-03 is"),
        ("AAA,2012-01-03,2012-01-03\n", "not after start_date 2012-01-03"),
        (",2012-01-03,\n", "line 2: empty ticker"),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(DataError, match="membership file members.csv is invalid") as info:
        load_membership(_write(tmp_path, body))
    assert expected in str(info.value)


def test_bad_files_are_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("symbol,start,end\nAAA,2010-01-04,\n")
    with pytest.raises(DataError, match="lacks column"):
        load_membership(wrong)
    with pytest.raises(DataError, match="has no rows"):
        load_membership(_write(tmp_path, ""))
    with pytest.raises(DataError, match="cannot read membership file"):
        load_membership(tmp_path / "absent.csv")


def test_adjacent_and_reused_stays_are_valid(tmp_path: Path) -> None:
    path = _write(
        tmp_path, " aaa ,2010-01-04,2012-01-03\nAAA,2012-01-03,2013-01-02\nAAA,2020-01-02,\n"
    )
    membership = load_membership(path)
    grid = membership.matrix(pd.DatetimeIndex(["2012-01-03", "2015-01-02", "2020-01-02"]), ["AAA"])
    assert grid["AAA"].tolist() == [True, False, True]
    assert membership.tickers == ["AAA"]


def test_membership_is_cached_by_content(tmp_path: Path) -> None:
    first = load_membership(_write(tmp_path, "AAA,2010-01-04,\n", "one.csv"))
    same = load_membership(_write(tmp_path, "AAA,2010-01-04,\n", "two.csv"))
    other = load_membership(_write(tmp_path, "AAA,2011-01-03,\n", "three.csv"))
    assert first.digest == same.digest != other.digest
    assert same.stays is first.stays  # parsed once for one content
    assert same.spec.path is not None and same.spec.path.name == "two.csv"
    assert other.members_on("2010-06-01") == []


# --- parse_universe ------------------------------------------------------------------


def test_default_is_point_in_time_next_to_the_membership_file(tmp_path: Path) -> None:
    (tmp_path / "prices.parquet").write_bytes(b"")
    source = f"parquet:{tmp_path / 'prices.parquet'}"
    assert parse_universe(None, source).kind == "all"
    _write(tmp_path, "AAA,2010-01-04,\n", "sp500_membership.csv")
    spec = parse_universe(None, source)
    assert spec.kind == "membership" and spec.point_in_time
    assert spec.path == (tmp_path / "sp500_membership.csv").resolve()
    assert parse_universe(spec.rule, "demo") == spec
    assert parse_universe(None, source, ["aaa", "BBB"]).symbols == ("AAA", "BBB")
    assert parse_universe("all", source).kind == "all"
    assert parse_universe(None, "demo").kind == "all"
    assert parse_universe(None, "csv:" + str(tmp_path)).kind == "all"


def test_lists_and_all_answer_like_a_membership() -> None:
    sessions = nyse_sessions("2001-01-02", "2001-01-05")
    listed = parse_universe("symbols: aaa,BBB ,aaa", "demo")
    assert listed.symbols == ("AAA", "BBB") and listed.rule == "symbols:AAA,BBB"
    grid = listed.load().matrix(sessions, ["AAA", "CCC", "BBB"])
    assert grid["AAA"].all() and grid["BBB"].all() and not grid["CCC"].any()
    twice = listed.load().matrix(sessions, ["AAA", "AAA"])
    assert list(twice.columns) == ["AAA", "AAA"] and twice.to_numpy().all()
    assert listed.load().members_on("1990-01-02") == ["AAA", "BBB"]
    everything = parse_universe("all", "demo").load(["X", "Y"])
    assert everything.matrix(sessions, ["Y", "Z"]).sum().tolist() == [4, 0]
    assert everything.current_warning("2099-01-02") is None
    with pytest.raises(DataError, match="needs the symbols of the data source"):
        parse_universe("all", "demo").load()


def test_every_rule_has_a_one_sentence_description(tmp_path: Path) -> None:
    path = _write(tmp_path, "AAA,2010-01-04,\n")
    texts = {
        "membership": parse_universe(f"membership:{path}", "demo").describe(),
        "symbols": parse_universe("symbols:A,B", "demo").describe(),
        "all": parse_universe("all", "demo").describe(),
    }
    assert "point-in-time" in texts["membership"] and "members.csv" in texts["membership"]
    assert "(A, B)" in texts["symbols"]
    assert texts["all"].startswith("Universe: every symbol") and "not point-in-time" in texts["all"]
    assert all(t.count(". ") == 0 and t.endswith(".") for t in texts.values())
    assert load_membership(path).describe() == texts["membership"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("everything", "unknown universe 'everything'"),
        ("symbols:", "lists no symbols"),
        ("membership:", "needs a file path"),
        ("membership:/no/such/file.csv", "membership file not found: /no/such/file.csv"),
    ],
)
def test_bad_universe_texts(text: str, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        parse_universe(text, "demo")

"""The loaded-data cache (marketdata/cache.py): same bars, never stale, bounded, clearable."""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from shared_data import RAW_SAMPLES, SP500_PARQUET, needs_parquet, needs_raw_samples

from marketdata import load
from marketdata.cache import DataCache, cache_root

load_module = importlib.import_module("marketdata.load")  # the package's `load` is the function


def _same(first, second) -> None:
    assert first.symbols == second.symbols
    assert first.problems == second.problems
    assert (first.source, first.synthetic) == (second.source, second.synthetic)
    for symbol in first.symbols:
        pd.testing.assert_frame_equal(
            first.bars[symbol], second.bars[symbol], check_exact=True, check_freq=True
        )


def _reads(monkeypatch) -> list[str]:
    """Record every real read (the function `load` caches) without changing it."""
    calls: list[str] = []
    original = load_module._read_checked

    def counted(spec, *args, **kwargs):
        calls.append(spec.kind)
        return original(spec, *args, **kwargs)

    monkeypatch.setattr(load_module, "_read_checked", counted)
    return calls


def test_a_second_load_is_served_from_the_cache_with_the_same_bars(tmp_path, monkeypatch):
    cache = DataCache(tmp_path / "data")
    reads = _reads(monkeypatch)
    first = load("demo", ["SYN001", "SYN007"], "2020-01-02", "2020-06-30", cache=cache)
    second = load("demo", ["SYN001", "SYN007"], "2020-01-02", "2020-06-30", cache=cache)
    assert reads == ["demo"]
    _same(first, second)
    _same(first, load("demo", ["SYN001", "SYN007"], "2020-01-02", "2020-06-30"))
    assert cache.info()["entries"] == 1


def test_symbols_and_range_are_part_of_the_key(tmp_path, monkeypatch):
    cache = DataCache(tmp_path / "data")
    reads = _reads(monkeypatch)
    load("demo", ["SYN001"], "2020-01-02", "2020-06-30", cache=cache)
    load("demo", ["SYN002"], "2020-01-02", "2020-06-30", cache=cache)
    load("demo", ["SYN001"], "2020-01-02", "2020-07-31", cache=cache)
    load("demo", ["syn001 "], "2020-01-02", "2020-06-30", cache=cache)  # same symbol, normalized
    assert len(reads) == 3 and cache.info()["entries"] == 3


def _csv_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir()
    for name in ("AAPL", "KO"):
        shutil.copy(RAW_SAMPLES / f"DA-{name}-T-2021-04-21.csv", folder / f"{name}.csv")
    return folder


@needs_raw_samples
def test_changing_a_source_file_is_a_miss_and_the_new_bars_load(tmp_path, monkeypatch):
    folder = _csv_folder(tmp_path)
    cache = DataCache(tmp_path / "data")
    reads = _reads(monkeypatch)
    before = load(f"csv:{folder}", ["AAPL", "KO"], "2019-01-02", "2019-03-29", cache=cache)
    path = folder / "KO.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = next(i for i, line in enumerate(lines) if line.startswith("2019-02-01"))
    cells = lines[row].split(",")
    cells[header.index("volume")] = str(int(float(cells[header.index("volume")])) + 1)
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    after = load(f"csv:{folder}", ["AAPL", "KO"], "2019-01-02", "2019-03-29", cache=cache)
    assert len(reads) == 2
    day = pd.Timestamp("2019-02-01")
    assert after.bars["KO"].loc[day, "volume"] == before.bars["KO"].loc[day, "volume"] + 1


@needs_parquet
def test_parquet_loads_round_trip_exactly(tmp_path, monkeypatch):
    cache = DataCache(tmp_path / "data")
    reads = _reads(monkeypatch)
    symbols = ["AAPL", "TSLA", "KO", "NOPE"]
    first = load(f"parquet:{SP500_PARQUET}", symbols, "2020-06-01", "2020-09-30", cache=cache)
    second = load(f"parquet:{SP500_PARQUET}", symbols, "2020-06-01", "2020-09-30", cache=cache)
    assert reads == ["parquet"] and "NOPE" in second.problems
    _same(first, second)


def test_yfinance_loads_are_not_cached(tmp_path):
    cache = DataCache(tmp_path / "data")
    assert cache.key("yfinance", None, ["AAPL"], None, None) is None
    assert cache.key("demo", None, ["AAPL"], None, None) is not None


def test_a_damaged_entry_is_a_miss_and_is_written_again(tmp_path, monkeypatch):
    cache = DataCache(tmp_path / "data")
    reads = _reads(monkeypatch)
    load("demo", ["SYN003"], "2021-01-04", "2021-02-26", cache=cache)
    (entry,) = (tmp_path / "data").glob("*.parquet")
    entry.write_bytes(b"not parquet")
    again = load("demo", ["SYN003"], "2021-01-04", "2021-02-26", cache=cache)
    assert len(reads) == 2 and again.symbols == ["SYN003"]
    assert load("demo", ["SYN003"], "2021-01-04", "2021-02-26", cache=cache).symbols == ["SYN003"]
    assert len(reads) == 2


def test_the_cache_stays_under_its_bound_dropping_the_least_recent(tmp_path):
    probe = DataCache(tmp_path / "probe")
    load("demo", ["SYN001"], "2020-01-02", "2020-12-31", cache=probe)
    one = probe.info()["bytes"]
    cache = DataCache(tmp_path / "data", max_bytes=int(one * 2.5))
    for number, year in enumerate((2018, 2019, 2020, 2021)):
        load("demo", ["SYN001"], f"{year}-01-02", f"{year}-12-31", cache=cache)
        for path in (tmp_path / "data").glob("*.parquet"):  # make the write order visible
            os.utime(path, ns=(path.stat().st_mtime_ns - 10**9 * number,) * 2)
    info = cache.info()
    assert info["bytes"] <= cache.max_bytes and info["entries"] == 2
    assert cache.clear() == 2 and cache.info()["entries"] == 0


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADESHIP_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    assert DataCache.default().root == tmp_path / "mine" / "data"
    monkeypatch.delenv("TRADESHIP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "tradeship"


def test_tradeship_cache_info_and_clear_show_both_caches(tmp_path, monkeypatch, capsys):
    from tradeship.cli import main

    monkeypatch.setenv("TRADESHIP_CACHE_DIR", str(tmp_path))
    load("demo", ["SYN001"], "2020-01-02", "2020-03-31", cache=DataCache.default())
    assert main(["cache", "info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["data"]["entries"] == 1 and info["data"]["path"] == str(tmp_path / "data")
    assert info["forecasts"]["path"] == str(tmp_path / "forecasts")
    assert main(["cache", "clear"]) == 0
    assert "removed 1 cached data loads" in capsys.readouterr().out
    assert DataCache.default().info()["entries"] == 0


@pytest.mark.parametrize("bad", [0, -5])
def test_a_bound_must_be_positive(tmp_path, bad):
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        DataCache(tmp_path, max_bytes=bad)

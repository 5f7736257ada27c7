"""The forecast cache and the parallel forecaster change how fast decisions come, never which.

prophet_momentum on a small demo universe must write the same decisions.csv with the cache
cold, warm (no fit at all), disabled, and with 1 or 2 worker processes; the cache must
survive concurrent writers, stay within its size bound and key on exactly the inputs that
determine a forecast.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtests.forecast_cache as forecast_cache
from backtests.forecast_cache import ForecastCache, default_cache_dir, forecast_key
from backtests.forecasting import FastForecaster, resolve_workers
from backtests.runner import BacktestConfig, run_backtest
from marketdata import load
from strategies.forecast import (
    ForecastRequest,
    ProphetForecaster,
    ProphetSettings,
    prophet_forecast,
)

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = [f"SYN{i:03d}" for i in range(12)]
PARAMS = {
    "top_n": 3,
    "prophet_window": 60,
    "momentum_lookback": 20,
    "rebalance_every": 5,
    "refit_every": 5,
}
CONFIG = BacktestConfig(
    strategy="prophet_momentum",
    params=PARAMS,
    source="demo",
    symbols=SYMBOLS,
    start="2023-03-01",
    end="2023-06-30",
)


def decisions_csv(result) -> bytes:
    return result.decisions.to_csv(index=False, float_format="%.17g").encode()


@pytest.fixture(scope="module")
def market_data():
    start = pd.Timestamp(CONFIG.start) - pd.Timedelta(days=200)
    return load("demo", SYMBOLS, start, pd.Timestamp(CONFIG.end))


@pytest.fixture(scope="module")
def reference(market_data):
    """The serial, uncached reference run, and how many forecasts it asked for."""

    class Counting(ProphetForecaster):
        requests = 0

        def forecast_many(self, requests):
            Counting.requests += len(requests)
            return super().forecast_many(requests)

    result = run_backtest(CONFIG, forecaster=Counting(), market_data=market_data)
    assert Counting.requests > 20, "the config must exercise the forecaster"
    assert (result.decisions["target_weight"] > 0).any()
    return result, Counting.requests


def assert_same_decisions(result, reference_result) -> None:
    pd.testing.assert_frame_equal(result.decisions, reference_result.decisions, check_exact=True)
    assert decisions_csv(result) == decisions_csv(reference_result)


def window(seed: int = 3, bars: int = 60, start: str = "2023-01-02") -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range(start, periods=bars)
    return pd.Series(50 * np.exp(np.cumsum(rng.normal(0.001, 0.02, bars))), index=index)


def request(seed: int = 3, **changes) -> ForecastRequest:
    series = changes.pop("window", None)
    series = window(seed) if series is None else series
    base = {
        "symbol": "SYN000",
        "window": series,
        "target": series.index[-1] + pd.offsets.BDay(5),
        "settings": ProphetSettings(),
    }
    base.update(changes)
    return ForecastRequest(**base)


# decisions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_cold_then_warm_cache_gives_reference_decisions(tmp_path, market_data, reference, workers):
    expected, asked = reference
    cache = ForecastCache(tmp_path / "forecasts")
    with FastForecaster(cache=cache, workers=workers) as cold:
        first = run_backtest(CONFIG, forecaster=cold, market_data=market_data)
    assert_same_decisions(first, expected)
    assert cold.stats["requests"] == asked
    assert cold.stats["fits"] + cold.stats["hits"] == asked
    assert cold.stats["fits"] == cache.info()["entries"] > 0

    with FastForecaster(cache=ForecastCache(tmp_path / "forecasts"), workers=workers) as warm:
        second = run_backtest(CONFIG, forecaster=warm, market_data=market_data)
    assert_same_decisions(second, expected)
    assert warm.stats["fits"] == 0
    assert warm.stats["hits"] == warm.stats["requests"] == asked
    assert warm._pool is None, "a run without misses must not start worker processes"


def test_disabled_cache_gives_reference_decisions(market_data, reference):
    expected, asked = reference
    with FastForecaster(cache=None, workers=2) as forecaster:
        result = run_backtest(CONFIG, forecaster=forecaster, market_data=market_data)
    assert_same_decisions(result, expected)
    assert forecaster.stats["fits"] == asked
    assert forecaster.stats["hits"] == 0


def test_parallel_forecasts_are_bit_identical_to_prophet_forecast(tmp_path):
    requests = [request(seed) for seed in range(4)]
    requests.append(requests[1])  # a repeat inside one call is fitted once
    expected = [prophet_forecast(r.window, r.target, r.settings) for r in requests]

    class Bar:
        n = 0

        def update(self, n=1):
            self.n += n

    bar = Bar()
    cache = ForecastCache(tmp_path)
    with FastForecaster(cache=cache, workers=2, progress=bar) as forecaster:
        got = forecaster.forecast_many(requests)
        assert forecaster.forecast_many([]) == []
    assert [v.hex() for v in got] == [v.hex() for v in expected]
    assert forecaster.stats == {
        "requests": 5,
        "hits": 1,
        "fits": 4,
        "fit_seconds": forecaster.stats["fit_seconds"],
    }
    assert bar.n == 4
    assert [cache.get(r).hex() for r in requests] == [v.hex() for v in expected]


def test_worker_errors_reach_the_caller():
    bad = request(window=window().iloc[:1])  # one bar: prophet_forecast refuses
    with FastForecaster(cache=None, workers=2) as forecaster:
        with pytest.raises(ValueError, match="cannot fit"):
            forecaster.forecast_many([request(), bad])
    with pytest.raises(ValueError, match="cannot fit"):
        FastForecaster(cache=None, workers=1).forecast_many([bad])


def test_resolve_workers():
    assert resolve_workers(None) == resolve_workers(0) == max(1, os.cpu_count() or 1)
    assert resolve_workers(3) == 3
    with pytest.raises(ValueError):
        resolve_workers(-1)


# storage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [0.1 + 0.2, -0.0, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, 123.456789012345],
)
def test_values_are_stored_bit_exactly(tmp_path, value):
    cache = ForecastCache(tmp_path)
    cache.put(request(), value)
    assert cache.get(request()).hex() == value.hex()


def test_nan_round_trips(tmp_path):
    cache = ForecastCache(tmp_path)
    cache.put(request(), math.nan)
    assert math.isnan(cache.get(request()))


def test_missing_partial_and_foreign_files_are_misses(tmp_path):
    cache = ForecastCache(tmp_path)
    assert cache.get(request()) is None  # no folder yet
    assert cache.info() == {
        "path": str(tmp_path),
        "entries": 0,
        "bytes": 0,
        "max_bytes": 200 * 2**20,
    }
    key = cache.put(request(), 1.5)
    path = cache.path(key)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # a torn write
    assert cache.get(request()) is None
    path.write_text(text.replace(key, "0" * 64))  # another key's entry
    assert cache.get(request()) is None
    path.write_text("")
    assert cache.get(request()) is None
    cache.put(request(), 2.5)  # a miss is rewritten
    assert cache.get(request()) == 2.5
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]


def test_clear_and_info(tmp_path):
    cache = ForecastCache(tmp_path / "c", max_bytes=10**9)
    for seed in range(5):
        cache.put(request(seed), float(seed))
    info = cache.info()
    assert info["entries"] == 5 and info["bytes"] > 0 and info["max_bytes"] == 10**9
    assert info["path"] == str(tmp_path / "c")
    assert cache.clear() == 5
    assert cache.info()["entries"] == 0
    assert cache.get(request(1)) is None
    cache.put(request(1), 1.0)  # usable again after a clear
    assert cache.get(request(1)) == 1.0


def test_default_cache_dir_follows_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADESHIP_CACHE_DIR", str(tmp_path / "somewhere"))
    assert default_cache_dir() == tmp_path / "somewhere" / "forecasts"


def test_size_bound_evicts_least_recently_used(tmp_path):
    probe = ForecastCache(tmp_path / "probe")
    probe.put(request(0), 0.0)
    entry_bytes = probe.info()["bytes"]

    room = 10 * entry_bytes + entry_bytes // 2  # ten entries, not eleven
    cache = ForecastCache(tmp_path / "c", max_bytes=room, check_every=1000)
    keys = [cache.put(request(seed), float(seed)) for seed in range(10)]
    assert cache.info()["entries"] == 10
    base = 1_600_000_000 * 10**9
    for i, key in enumerate(keys):  # a clear order of use: seed 0 oldest ... seed 9 newest
        os.utime(cache.path(key), ns=(base + i * 10**9, base + i * 10**9))
    assert cache.get(request(0)) == 0.0  # a hit makes seed 0 the most recently used
    for seed in range(10, 13):
        cache.put(request(seed), float(seed))
        assert cache.info()["bytes"] <= cache.max_bytes
    info = cache.info()
    assert info["entries"] < 10
    assert cache.get(request(0)) == 0.0, "a recently read entry was evicted"
    assert cache.get(request(12)) == 12.0
    assert cache.get(request(1)) is None, "the least recently used entry survived"


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import numpy as np, pandas as pd
    from backtests.forecast_cache import ForecastCache
    from strategies.forecast import ForecastRequest, ProphetSettings

    root, max_bytes, keys, me = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    bounded = max_bytes < 10**9
    cache = ForecastCache(root / "cache", max_bytes=max_bytes, check_every=7)
    index = pd.bdate_range("2023-01-02", periods=30)
    requests = [
        ForecastRequest("S", pd.Series(np.arange(30.0) + k, index=index), index[-1],
                        ProphetSettings())
        for k in range(keys)
    ]
    (root / f"ready-{me}").touch()
    while len(list(root.glob("ready-*"))) < 2:  # start together
        time.sleep(0.001)
    deadline = time.monotonic() + 1.0
    rounds = 0
    while time.monotonic() < deadline or rounds < 3:
        rounds += 1
        for k, r in enumerate(requests):
            cache.put(r, k + 0.1)
            got = cache.get(r)
            if got is None and not bounded:  # replaced atomically: never a torn entry
                sys.exit(f"a written entry read as a miss: {k}")
            if got is not None and got != k + 0.1:
                sys.exit(f"read {got!r} for {k}")
    """
)


def _writer_request(k: int) -> ForecastRequest:
    index = pd.bdate_range("2023-01-02", periods=30)
    return ForecastRequest(
        "S", pd.Series(np.arange(30.0) + k, index=index), index[-1], ProphetSettings()
    )


def _entry_bytes(root: Path) -> int:
    probe = ForecastCache(root)
    probe.put(_writer_request(0), 0.1)
    size = probe.info()["bytes"]
    probe.clear()
    return size


@pytest.mark.parametrize("bounded", [False, True], ids=["unbounded", "bounded"])
def test_concurrent_writers_leave_a_readable_cache(tmp_path, bounded):
    # unbounded: both hammer the same 3 keys, and must never read a torn or missing entry;
    # bounded: room for 20 of 40 keys, so each writer evicts while the other writes
    max_bytes = 20 * _entry_bytes(tmp_path / "probe") if bounded else 10**9
    keys = 40 if bounded else 3
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(max_bytes), str(keys), str(n)],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    cache = ForecastCache(tmp_path / "cache", max_bytes=max_bytes)
    found = 0
    for k in range(keys):
        r = _writer_request(k)
        got = cache.get(r)
        assert got is None or got == k + 0.1
        found += got is not None
    if not bounded:
        assert found == keys
    else:
        assert 0 < found < 40
        assert cache.info()["bytes"] <= 2 * max_bytes
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]


# keys --------------------------------------------------------------------------------------


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2
    if isinstance(value, str):
        return value + "x" if value != "additive" else "multiplicative"
    raise TypeError(type(value))


def test_key_depends_on_every_input_and_nothing_else(monkeypatch):
    base = request()
    key = forecast_key(base)
    assert len(key) == 64 and ForecastCache("unused").key(base) == key

    # the same forecast built differently: same key
    same = base.window.copy()
    same.name = "close"
    assert forecast_key(dataclasses.replace(base, window=same)) == key
    reindexed = pd.Series(base.window.to_numpy().copy(), index=base.window.index.as_unit("s"))
    assert forecast_key(dataclasses.replace(base, window=reindexed)) == key
    no_freq = pd.Series(base.window.to_numpy(), index=pd.DatetimeIndex(list(base.window.index)))
    assert forecast_key(dataclasses.replace(base, window=no_freq)) == key
    assert forecast_key(dataclasses.replace(base, target=base.target.to_pydatetime())) == key
    assert forecast_key(dataclasses.replace(base, settings=ProphetSettings())) == key

    # any determining input changed: a new key
    changed = {}
    values = base.window.copy()
    values.iloc[17] = np.nextafter(values.iloc[17], np.inf)  # one ulp
    changed["value"] = dataclasses.replace(base, window=values)
    dates = base.window.copy()
    dates.index = dates.index[:-1].append(
        pd.DatetimeIndex([dates.index[-1] + pd.Timedelta(days=1)])
    )
    changed["date"] = dataclasses.replace(base, window=dates)
    changed["shorter window"] = dataclasses.replace(base, window=base.window.iloc[1:])
    changed["target"] = dataclasses.replace(base, target=base.target + pd.offsets.BDay(1))
    changed["symbol"] = dataclasses.replace(base, symbol="SYN001")
    for item in dataclasses.fields(ProphetSettings):
        settings = dataclasses.replace(
            base.settings, **{item.name: _changed(getattr(base.settings, item.name))}
        )
        changed[f"settings.{item.name}"] = dataclasses.replace(base, settings=settings)
    changed["weekly_seasonality=1"] = dataclasses.replace(
        base, settings=dataclasses.replace(base.settings, weekly_seasonality=1)
    )
    keys = {name: forecast_key(r) for name, r in changed.items()}
    assert all(k != key for k in keys.values()), [n for n, k in keys.items() if k == key]
    assert len(set(keys.values())) == len(keys)

    # and a new Prophet or cmdstanpy version
    versions = forecast_cache.library_versions()
    for i, (name, version) in enumerate(versions):
        bumped = list(versions)
        bumped[i] = (name, version + ".post1")
        assert forecast_key(base, tuple(bumped)) != key, name
    assert forecast_key(base, versions) == key

"""yfinance source: batching, cache extension, retries, and refusing incomplete answers.

No test reaches the network. yfinance is faked at its function boundary:
``yfinance.download`` is monkeypatched (or a fake is passed as ``download=``) with
``FakeYahoo``, which builds answers shaped like yfinance 1.x ``download(...,
auto_adjust=True, multi_level_index=False, group_by="ticker")``: flat
Open/High/Low/Close/Volume columns for one ticker, (Ticker, Price) MultiIndex
columns for several, a "Date" index, ``end`` exclusive, all-NaN columns for
tickers it failed on, and an empty frame when everything failed. Sleeps are
injected so retry tests run instantly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yfinance
from yfinance.exceptions import YFRateLimitError

from marketdata import DataError, load
from marketdata.calendar import nyse_sessions
from marketdata.yahoo import fetch_yahoo, yahoo_cache_path, yahoo_final_through

HISTORY_START, HISTORY_END = "2023-01-03", "2024-12-31"


def _history(seed: int) -> pd.DataFrame:
    """A full, consistent daily history for one fake ticker (adjusted, like auto_adjust)."""
    rng = np.random.default_rng(seed)
    index = nyse_sessions(HISTORY_START, HISTORY_END)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
    opn = close * np.exp(rng.normal(0, 0.003, len(index)))
    return pd.DataFrame(
        {
            "Open": opn,
            "High": np.maximum(opn, close) * 1.01,
            "Low": np.minimum(opn, close) * 0.99,
            "Close": close,
            "Volume": rng.integers(1_000, 10_000, len(index)).astype("int64"),
        },
        index=pd.DatetimeIndex(index, name="Date"),
    )


class FakeYahoo:
    """Stands in for ``yfinance.download``; records every call's tickers and range."""

    def __init__(self, histories, *, failures=None, missing=(), last_day=None):
        self.histories = {k.upper(): v for k, v in histories.items()}
        self.failures = list(failures or [])  # exceptions to raise on the first calls
        self.missing = set(missing)  # tickers answered with nothing (as yfinance does)
        self.last_day = last_day  # emulate Yahoo lagging: no bars after this day
        self.calls: list[dict] = []

    def __call__(self, tickers, start=None, end=None, **kwargs):
        tickers = [tickers] if isinstance(tickers, str) else list(tickers)
        self.calls.append({"tickers": sorted(tickers), "start": start, "end": end, **kwargs})
        if self.failures:
            raise self.failures.pop(0)
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)  # yfinance: end is exclusive
        if self.last_day is not None:
            hi = min(hi, pd.Timestamp(self.last_day) + pd.Timedelta(days=1))
        frames = {}
        for t in sorted({t.upper() for t in tickers}):
            hist = self.histories.get(t)
            if hist is None or t in self.missing:
                frames[t] = pd.DataFrame(
                    columns=["Open", "High", "Low", "Close", "Volume"], dtype="float64"
                )
            else:
                frames[t] = hist.loc[(hist.index >= lo) & (hist.index < hi)]
        index = pd.DatetimeIndex(sorted(set().union(*(f.index for f in frames.values()))))
        if len(index) == 0:
            return pd.DataFrame()
        index.name = "Date"
        data = pd.concat(
            {t: f.reindex(index) for t, f in frames.items()}, axis=1, names=["Ticker", "Price"]
        )
        if len(tickers) == 1 and kwargs.get("multi_level_index") is False:
            data = data.droplevel(0, axis=1).rename_axis(None, axis=1)
        return data


@pytest.fixture
def histories():
    return {"AAA": _history(1), "BBB": _history(2), "CCC": _history(3)}


@pytest.fixture
def fake(monkeypatch, histories):
    fake = FakeYahoo(histories)
    monkeypatch.setattr(yfinance, "download", fake)
    return fake


def test_first_load_is_one_batched_call_with_explicit_options(fake, histories, tmp_path):
    data = load("yfinance", ["AAA", "bbb"], "2024-01-02", "2024-03-28", cache_dir=tmp_path)
    assert data.symbols == ["AAA", "BBB"]
    assert data.source == "yfinance" and data.synthetic is False and data.problems == {}
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert call["tickers"] == ["AAA", "BBB"]
    assert call["auto_adjust"] is True and call["multi_level_index"] is False
    assert call["group_by"] == "ticker"
    assert (call["start"], call["end"]) == ("2024-01-02", "2024-03-29")  # end exclusive
    frame = data.bars["AAA"]
    assert frame.index[0] == pd.Timestamp("2024-01-02")
    assert frame.index[-1] == pd.Timestamp("2024-03-28")
    expected = histories["AAA"].loc["2024-01-02":"2024-03-28"]
    np.testing.assert_allclose(frame["close"], expected["Close"])
    assert frame.dtypes.eq("float64").all() and frame.index.name == "date"
    assert yahoo_cache_path(tmp_path, "AAA").is_file()


def test_single_ticker_flat_answer_is_understood(fake, tmp_path):
    data = load("yfinance", "CCC", "2024-06-03", "2024-06-28", cache_dir=tmp_path)
    assert fake.calls[0]["tickers"] == ["CCC"]
    assert data.symbols == ["CCC"]
    assert len(data.bars["CCC"]) == 19  # June 2024 sessions (Juneteenth is a holiday)


def test_second_run_downloads_only_the_missing_tail(fake, histories, tmp_path):
    load("yfinance", ["AAA", "BBB"], "2024-01-02", "2024-03-28", cache_dir=tmp_path)
    fake.calls.clear()

    data = load("yfinance", ["AAA", "BBB"], "2024-01-02", "2024-06-28", cache_dir=tmp_path)
    # One call, starting at the last cached bar (a one-bar overlap that detects a
    # changed adjustment), ending at the new end (+1 day: yfinance's end is exclusive).
    assert [(c["tickers"], c["start"], c["end"]) for c in fake.calls] == [
        (["AAA", "BBB"], "2024-03-28", "2024-06-29")
    ]
    for sym in ("AAA", "BBB"):
        expected = histories[sym].loc["2024-01-02":"2024-06-28"]
        np.testing.assert_allclose(data.bars[sym]["close"], expected["Close"])
        assert data.bars[sym].index.is_unique

    fake.calls.clear()
    again = load("yfinance", ["AAA", "BBB"], "2024-02-01", "2024-06-28", cache_dir=tmp_path)
    assert fake.calls == []  # fully cached: no download at all
    assert again.bars["AAA"].index[0] == pd.Timestamp("2024-02-01")


def test_changed_adjustment_triggers_full_redownload(fake, histories, tmp_path):
    load("yfinance", ["AAA"], "2024-01-02", "2024-03-28", cache_dir=tmp_path)
    # A dividend after the cached range: Yahoo rescales the whole adjusted history.
    for col in ("Open", "High", "Low", "Close"):
        histories["AAA"][col] *= 0.98
    fake.histories["AAA"] = histories["AAA"]
    fake.calls.clear()
    data = load("yfinance", ["AAA"], "2024-01-02", "2024-06-28", cache_dir=tmp_path)
    assert [(c["start"], c["end"]) for c in fake.calls] == [
        ("2024-03-28", "2024-06-29"),  # tail: overlap bar disagrees with the cache
        ("2024-01-02", "2024-06-29"),  # so the whole range again
    ]
    np.testing.assert_allclose(
        data.bars["AAA"]["close"], histories["AAA"].loc["2024-01-02":"2024-06-28", "Close"]
    )


def test_earlier_start_than_cached_redownloads(fake, tmp_path):
    load("yfinance", ["AAA"], "2024-03-01", "2024-03-28", cache_dir=tmp_path)
    fake.calls.clear()
    data = load("yfinance", ["AAA"], "2024-01-02", "2024-03-28", cache_dir=tmp_path)
    assert [(c["start"], c["end"]) for c in fake.calls] == [("2024-01-02", "2024-03-29")]
    assert data.bars["AAA"].index[0] == pd.Timestamp("2024-01-02")


def test_symbols_are_required():
    with pytest.raises(DataError, match="yfinance needs symbols"):
        load("yfinance")


def test_empty_answer_raises_naming_symbols_after_retries(histories, tmp_path):
    fake = FakeYahoo(histories, missing={"AAA", "BBB"})
    sleeps: list[float] = []
    with pytest.raises(DataError) as err:
        fetch_yahoo(
            ["AAA", "BBB"],
            "2024-01-02",
            "2024-03-28",
            cache_dir=tmp_path,
            download=fake,
            sleep=sleeps.append,
        )
    assert "yfinance answer incomplete for AAA, BBB" in str(err.value)
    assert "AAA: no data from yfinance for 2024-01-02..2024-03-28 after 4 attempt(s)" in str(
        err.value
    )
    assert err.value.symbols == ("AAA", "BBB")
    assert sleeps == [1.0, 2.0, 4.0]  # bounded exponential backoff
    assert len(fake.calls) == 4


def test_partial_answer_names_only_the_missing_symbol_and_keeps_the_rest(histories, tmp_path):
    fake = FakeYahoo(histories, missing={"BBB"})
    with pytest.raises(DataError) as err:
        fetch_yahoo(
            ["AAA", "BBB", "CCC"],
            "2024-01-02",
            "2024-03-28",
            cache_dir=tmp_path,
            download=fake,
            sleep=lambda s: None,
        )
    assert err.value.symbols == ("BBB",)
    assert "yfinance answer incomplete for BBB --" in str(err.value)
    # Retries asked only for the missing ticker; the others were cached.
    assert [c["tickers"] for c in fake.calls] == [["AAA", "BBB", "CCC"]] + [["BBB"]] * 3
    assert yahoo_cache_path(tmp_path, "AAA").is_file()
    assert not yahoo_cache_path(tmp_path, "BBB").exists()


def test_partial_answer_through_load_raises(monkeypatch, histories, tmp_path):
    fake = FakeYahoo(histories, missing={"CCC"})
    monkeypatch.setattr(yfinance, "download", fake)
    monkeypatch.setattr("marketdata.yahoo.time.sleep", lambda s: None)
    with pytest.raises(DataError, match="yfinance answer incomplete for CCC"):
        load("yfinance", ["AAA", "CCC"], "2024-01-02", "2024-03-28", cache_dir=tmp_path)


def test_stale_answer_raises_and_tail_is_asked_again_next_time(histories, tmp_path):
    lagging = FakeYahoo(histories, last_day="2024-03-20")
    with pytest.raises(DataError) as err:
        fetch_yahoo(
            ["AAA"],
            "2024-01-02",
            "2024-03-28",
            cache_dir=tmp_path,
            download=lagging,
            sleep=lambda s: None,
        )
    assert "AAA: stale data from yfinance: last bar 2024-03-20, expected at least 2024-03-27" in (
        str(err.value)
    )
    healthy = FakeYahoo(histories)
    bars = fetch_yahoo(
        ["AAA"],
        "2024-01-02",
        "2024-03-28",
        cache_dir=tmp_path,
        download=healthy,
        sleep=lambda s: None,
    )
    assert [(c["start"], c["end"]) for c in healthy.calls] == [("2024-03-20", "2024-03-29")]
    assert bars["AAA"].index[-1] == pd.Timestamp("2024-03-28")


def test_one_session_behind_is_not_stale(histories, tmp_path):
    fake = FakeYahoo(histories, last_day="2024-03-27")
    bars = fetch_yahoo(
        ["AAA"],
        "2024-01-02",
        "2024-03-28",
        cache_dir=tmp_path,
        download=fake,
        sleep=lambda s: None,
    )
    assert bars["AAA"].index[-1] == pd.Timestamp("2024-03-27")


def test_rate_limit_is_retried_with_backoff(histories, tmp_path):
    fake = FakeYahoo(histories, failures=[YFRateLimitError(), ConnectionError("reset")])
    sleeps: list[float] = []
    bars = fetch_yahoo(
        ["AAA", "BBB"],
        "2024-01-02",
        "2024-03-28",
        cache_dir=tmp_path,
        download=fake,
        sleep=sleeps.append,
    )
    assert sleeps == [1.0, 2.0]
    assert len(fake.calls) == 3
    assert set(bars) == {"AAA", "BBB"}


def test_persistent_rate_limit_gives_up_with_the_reason(histories, tmp_path):
    fake = FakeYahoo(histories, failures=[YFRateLimitError()] * 10)
    sleeps: list[float] = []
    with pytest.raises(DataError, match="AAA: no data .* YFRateLimitError"):
        fetch_yahoo(
            ["AAA"],
            "2024-01-02",
            "2024-03-28",
            cache_dir=tmp_path,
            download=fake,
            sleep=sleeps.append,
            attempts=3,
            base_delay=0.5,
        )
    assert sleeps == [0.5, 1.0]


def test_only_final_bars_are_used(histories, tmp_path):
    # 2024-03-28 11:00 New York: that day's bar is still moving, so it is not asked for.
    now = pd.Timestamp("2024-03-28 15:00", tz="UTC")
    assert yahoo_final_through(now) == pd.Timestamp("2024-03-27")
    assert yahoo_final_through(pd.Timestamp("2024-03-28 21:00", tz="UTC")) == pd.Timestamp(
        "2024-03-28"
    )
    fake = FakeYahoo(histories)
    bars = fetch_yahoo(
        ["AAA"],
        "2024-03-01",
        None,
        cache_dir=tmp_path,
        download=fake,
        now=now,
        sleep=lambda s: None,
    )
    assert fake.calls[0]["end"] == "2024-03-28"  # exclusive: last day asked is 03-27
    assert bars["AAA"].index[-1] == pd.Timestamp("2024-03-27")


def test_bad_bars_from_yfinance_go_through_validation(fake, histories, tmp_path):
    histories["BBB"].loc["2024-01-05", "Close"] = np.nan
    data = load("yfinance", ["AAA", "BBB"], "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    assert data.symbols == ["AAA"]
    assert data.problems == {"BBB": "BBB 2024-01-05: NaN in close (in yfinance)"}

"""Backtrader strategies brought unchanged: tradeship backtests them as plain Cerebro does,
exports them, and proves the export decides what the backtest decided (shared S&P data)."""

from __future__ import annotations

import backtrader as bt
import pandas as pd
import pytest
from shared_data import SP500_PARQUET, needs_parquet

from backtests.runner import BacktestConfig, run_backtest
from exporters.export import build_export, write_export
from exporters.parity import check_lookahead, verify_parity
from exporters.warmup import find_warmup
from marketdata import load
from strategies.history import to_history

SOURCE = f"parquet:{SP500_PARQUET}"
RSI_SYMBOLS = ["AAPL", "JPM", "KO", "MSFT", "XOM"]


def plain_cerebro_value(strategy: type[bt.Strategy], symbols, start, end, cash) -> float:
    """Final value of plain Cerebro on the same adjusted prices tradeship feeds."""
    history = to_history(load(SOURCE, symbols, start, end).bars)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(cash)
    for symbol in symbols:
        frame = history.xs(symbol, axis=1, level="symbol")
        cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=symbol)
    cerebro.addstrategy(strategy)
    cerebro.run()
    return float(cerebro.broker.getvalue())


@needs_parquet
@pytest.mark.parametrize(
    "name, symbols",
    [
        ("examples.sma_quickstart:SmaQuickstart", ["AAPL"]),
        ("examples.rsi_swing:RsiSwing", RSI_SYMBOLS),
    ],
)
def test_plain_backtrader_strategy_backtests_as_plain_cerebro(name, symbols):
    from examples.rsi_swing import RsiSwing
    from examples.sma_quickstart import SmaQuickstart

    cls = {"SmaQuickstart": SmaQuickstart, "RsiSwing": RsiSwing}[name.rpartition(":")[2]]
    cash = 1_000.0 if cls is SmaQuickstart else 100_000.0
    config = BacktestConfig(
        strategy=name, source=SOURCE, symbols=symbols, start=None, end="2020-12-31", cash=cash
    )
    config.start = None
    result = run_backtest(config, forecaster=None)
    expected = plain_cerebro_value(cls, symbols, None, "2020-12-31", cash)
    final = float(result.equity.iloc[-1])
    assert len(result.orders) > 10, "the strategy barely traded: a weak comparison"
    assert abs(final / expected - 1) < 0.005, (final, expected)
    assert not result.decisions.empty
    assert list(result.decisions.columns) == ["date", "symbol", "target_size"]


@needs_parquet
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, symbols",
    [
        ("examples.sma_quickstart:SmaQuickstart", ["AAPL"]),
        ("examples.rsi_swing:RsiSwing", RSI_SYMBOLS),
    ],
)
def test_export_of_a_plain_backtrader_strategy_passes_parity(tmp_path, name, symbols):
    measure = run_backtest(
        BacktestConfig(
            strategy=name, source=SOURCE, symbols=symbols, start="2018-01-02", end="2018-12-31"
        ),
        market_data=load(SOURCE, symbols, None, "2018-12-31"),  # all the past, as export does
    )
    warmup = find_warmup(measure.strategy, measure, say=lambda line: None)
    assert warmup >= measure.strategy.warmup_bars(symbols)
    spec, compiled = build_export(name, {}, symbols, "yfinance", sources=["parquet"], warmup=warmup)
    module, _ = write_export(compiled, tmp_path / "strategy.py")
    report, result = verify_parity(module, SOURCE, symbols, "2019-01-02", "2020-12-31")
    assert report.rebalances > 5
    assert report.mismatches == [], report.lines()[:10]


@pytest.mark.slow
def test_check_lookahead_catches_a_module_level_memo_of_full_series():
    config = BacktestConfig(
        strategy="examples.lookahead:PeekingMomentum",
        source="demo",
        symbols=[f"SYN{i:03d}" for i in range(8)],
        start="2024-01-02",
        end="2024-03-28",
    )
    report, _ = check_lookahead(config, workers=2)
    assert report.mismatches, "the peeking strategy passed the lookahead check"
    honest = BacktestConfig(**{**config.__dict__, "strategy": "examples.rsi_swing:RsiSwing"})
    report, _ = check_lookahead(honest, workers=2)
    assert report.mismatches == [], report.lines()[:10]


@needs_parquet
def test_point_in_time_candidates_around_an_index_join():
    """TSLA (joined 2020-12-21) and MKTX (joined 2019-07-01) are no candidates on
    2019-06-28; on 2019-07-01 MKTX can be."""
    from marketdata.universe import parse_universe
    from strategies.prophet_momentum import ProphetMomentum
    from strategies.replay import replay_decision

    symbols = ["AAPL", "MKTX", "MSFT", "TSLA"]
    history = to_history(load(SOURCE, symbols, "2018-01-02", "2019-07-03").bars)
    universe = parse_universe(None, SOURCE, None)
    assert universe.point_in_time
    membership = universe.load(symbols)

    class Asked:
        def __init__(self):
            self.symbols = set()

        def forecast_many(self, requests):
            self.symbols |= {r.symbol for r in requests}
            return [float(r.window.iloc[-1]) for r in requests]

    candidates = {}
    for day in ("2019-06-28", "2019-07-01"):
        session = pd.Timestamp(day)
        before = history[history.index < session]
        index = before.index.append(pd.DatetimeIndex([session]))
        asked = Asked()
        replay_decision(
            ProphetMomentum,
            {"top_n": 10, "rebalance_every": 1},
            before,
            {"$CASH": 100_000.0},
            session,
            forecaster=asked,
            members=membership.matrix(index, symbols),
        )
        candidates[day] = asked.symbols
    assert "TSLA" not in candidates["2019-06-28"] | candidates["2019-07-01"]
    assert "MKTX" not in candidates["2019-06-28"]
    assert "MKTX" in candidates["2019-07-01"]
    assert {"AAPL", "MSFT"} <= candidates["2019-06-28"]


@needs_parquet
@pytest.mark.slow
def test_export_carries_the_point_in_time_universe_and_passes_parity(tmp_path):
    """MKTX joins the S&P 500 on 2019-07-01, inside the verified range: the module reads
    membership from its own record and decides as the backtest did."""
    from marketdata.universe import current_symbols, load_membership, universe_record

    membership = load_membership(SP500_PARQUET.parent / "sp500_membership.csv")
    record = universe_record(membership, membership.tickers)
    assert current_symbols(record, [], "2019-06-28").count("MKTX") == 0
    assert "MKTX" in current_symbols(record, [], "2019-07-01")
    symbols = ["AAPL", "JPM", "MKTX", "MSFT", "TSLA"]
    _, compiled = build_export(
        "prophet_momentum",
        {},
        symbols,
        "yfinance",
        sources=["parquet"],
        warmup=327,
        universe=record,
    )
    module, _ = write_export(compiled, tmp_path / "strategy.py")
    report, result = verify_parity(module, SOURCE, symbols, "2019-06-03", "2019-08-30")
    assert result.members is not None and result.universe.startswith("membership:")
    assert report.rebalances >= 12
    assert report.mismatches == [], report.lines()[:10]
    held = {s for session, book in result.holdings.items() for s in book}
    assert "TSLA" not in held  # not a member before 2020-12-21

"""prophet_momentum and buy_and_hold as Backtrader classes decide exactly what the
pre-rewrite strategies decided: decisions.csv (and prophet_momentum's orders.csv) byte for
byte against outputs recorded before the rewrite (tests/fixtures/before_rewrite).

The pre-rewrite engine ran a cash account; the margin account that now is the default
(gaps at the open borrow instead of refusing a buy) changes fills by design, so these runs
use `account="cash"` to isolate the rewrite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_data import SP500_PARQUET, needs_parquet

from backtests.runner import BacktestConfig, run_backtest, write_outputs

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "before_rewrite"


def run(tmp_path: Path, strategy: str, source: str, start: str, end: str, symbols=None) -> Path:
    config = BacktestConfig(
        strategy=strategy, source=source, start=start, end=end, symbols=symbols, account="cash"
    )
    out = tmp_path / strategy
    write_outputs(run_backtest(config), out)
    return out


def test_buy_and_hold_decisions_unchanged_on_demo(tmp_path):
    out = run(tmp_path, "buy_and_hold", "demo", "2022-01-03", "2024-12-31")
    expected = FIXTURES / "buy_and_hold_demo_2022_2024_decisions.csv"
    assert (out / "decisions.csv").read_bytes() == expected.read_bytes()


@pytest.mark.slow
def test_prophet_momentum_decisions_and_orders_unchanged_on_demo(tmp_path):
    out = run(tmp_path, "prophet_momentum", "demo", "2022-01-03", "2024-12-31")
    stem = FIXTURES / "prophet_momentum_demo_2022_2024"
    assert (out / "decisions.csv").read_bytes() == Path(f"{stem}_decisions.csv").read_bytes()
    assert (out / "orders.csv").read_bytes() == Path(f"{stem}_orders.csv").read_bytes()


@needs_parquet
@pytest.mark.slow
def test_prophet_momentum_decisions_unchanged_on_50_sp500_symbols(tmp_path):
    symbols = (FIXTURES / "sp50_symbols.txt").read_text().strip().split(",")
    out = run(
        tmp_path,
        "prophet_momentum",
        f"parquet:{SP500_PARQUET}",
        "2015-01-02",
        "2020-12-31",
        symbols,
    )
    stem = FIXTURES / "prophet_momentum_sp50_2015_2020"
    assert (out / "decisions.csv").read_bytes() == Path(f"{stem}_decisions.csv").read_bytes()
    assert (out / "orders.csv").read_bytes() == Path(f"{stem}_orders.csv").read_bytes()

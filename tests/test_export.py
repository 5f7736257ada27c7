"""The exporter: one standalone file, byte-identical, secret-free, deciding as the backtest did."""

from __future__ import annotations

import re

import pytest
from shared_data import SP500_PARQUET, needs_parquet
from test_export_embed import replayed_here, run_isolated

from exporters.compiler import ExportError, current_contract
from exporters.export import build_export, write_export
from live.runtime import load_history
from marketdata import load
from tradeship.cli import main

DEMO_SYMBOLS = [f"SYN{i:03d}" for i in range(12)]
SMALL = {"top_n": 3, "prophet_window": 60, "momentum_lookback": 20}
PEEKING = "examples.lookahead:PeekingMomentum"
DAY = "2024-06-03"


def export(
    tmp_path, name="strategy.py", strategy="prophet_momentum", params=None, symbols=None, **options
):
    options.setdefault("default_source", "demo")
    _, compiled = build_export(
        strategy, params if params is not None else SMALL, symbols or DEMO_SYMBOLS, **options
    )
    path, _ = write_export(compiled, tmp_path / name)
    return path


def test_export_is_byte_identical_and_pins_requirements(tmp_path):
    first = export(tmp_path / "a", default_source="yfinance")
    second = export(tmp_path / "b", default_source="yfinance")
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a/requirements.txt").read_bytes() == (
        tmp_path / "b/requirements.txt"
    ).read_bytes()
    requirements = (tmp_path / "a/requirements.txt").read_text().split()
    names = {r.split("==")[0].lower() for r in requirements}
    assert {"pandas", "numpy", "prophet", "alpaca-py", "yfinance", "backtrader"} <= names
    assert all("==" in r for r in requirements)
    header = first.read_text()[:6000]
    assert "# strategy:       prophet_momentum" in header and "source sha256:" in header
    assert '"top_n": 3' in header
    assert "#  - strategies.prophet_momentum " in header and "#  - live.runtime " in header
    assert "marketdata.demo" in header.split("# left out:", 1)[1].splitlines()[0]


def test_exported_prophet_momentum_decides_alone_as_tradeship_does(tmp_path):
    _, compiled = build_export("prophet_momentum", SMALL, DEMO_SYMBOLS, default_source="demo")
    path, _ = write_export(compiled, tmp_path / "strategy.py")
    out = run_isolated(path, tmp_path, [DAY], first="2023-01-01", last="2024-05-31")
    spec, _ = build_export("prophet_momentum", SMALL, DEMO_SYMBOLS, default_source="demo")
    history = load_history("demo", DEMO_SYMBOLS, "2023-01-01", "2024-05-31")
    expected = replayed_here(spec, history, [DAY])
    assert expected[0], "the decision should buy something that day"
    assert out["decisions"] == expected


def test_exported_run_trades_alone_in_a_dry_run(tmp_path):
    if not current_contract().decide_runner:
        pytest.skip("live.runtime.run_strategy does not take the export's decide yet")
    path = export(tmp_path)
    run = {"now": f"{DAY}T08:00", "dry_run": True, "source": "demo"}
    out = run_isolated(path, tmp_path, [DAY], first="2023-01-01", last="2024-05-31", run=run)
    bought = {o["symbol"] for o in out["orders"] if o["side"] == "buy"}
    assert bought == set(out["decisions"][0])


def test_export_refuses_anything_that_looks_like_a_secret(tmp_path):
    with pytest.raises(ExportError, match="looks like a secret") as caught:
        build_export("prophet_momentum", {"top_n": "PKABCDEFGHIJKLMNOPQRST"}, DEMO_SYMBOLS)
    assert "PKABCDEFGHIJKLMNOPQRST" not in str(caught.value)
    with pytest.raises(ExportError, match="looks like a secret"):
        build_export(
            "prophet_momentum", {}, DEMO_SYMBOLS, default_source="csv:/data?token=abcdefghijklmnop"
        )
    with pytest.raises(ExportError, match="universe: the value looks like a credential"):
        build_export(
            "prophet_momentum", {}, DEMO_SYMBOLS, universe={"rule": "AccountKey=" + "A" * 24}
        )


def test_verify_parity_on_demo_reports_zero_mismatches(tmp_path, capsys):
    path = export(tmp_path)
    code = main(
        [
            "verify-parity",
            "--module",
            str(path),
            "--source",
            "demo",
            "--start",
            "2024-01-02",
            "--end",
            "2024-04-30",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    first = out.splitlines()[0]
    rebalances = int(first.split()[0].split("=")[1])
    assert rebalances >= 15 and first.endswith("mismatches=0")


@needs_parquet
def test_verify_parity_on_50_real_symbols(tmp_path, capsys):
    source = f"parquet:{SP500_PARQUET}"
    symbols = load(source, start="2019-01-02", end="2019-01-10").symbols[100:150]
    path = export(tmp_path, params={}, symbols=symbols, sources=("parquet",))  # default params
    code = main(
        [
            "verify-parity",
            "--module",
            str(path),
            "--source",
            source,
            "--start",
            "2019-06-03",
            "--end",
            "2019-08-30",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0].endswith("mismatches=0")
    assert int(out.split()[0].split("=")[1]) >= 10


def test_a_deliberate_lookahead_is_caught_by_both_checks(tmp_path, capsys):
    window = ["--source", "demo", "--start", "2024-01-02", "--end", "2024-02-29", "--quiet"]
    assert main(["check", "lookahead", "--strategy", PEEKING, *window]) == 1
    captured = capsys.readouterr()
    assert "looks ahead" in captured.err
    assert int(captured.out.split()[1].split("=")[1]) > 0

    path = export(tmp_path, strategy=PEEKING, params={})
    assert main(["verify-parity", "--module", str(path), *window]) == 1
    captured = capsys.readouterr()
    assert "decides differently" in captured.err
    # the backtest bought what it peeked at; the module, without the future, does not
    assert re.search(r"SYN\d+: backtest=[1-9]\d*\.0+ module=no-decision", captured.out)


def test_prophet_momentum_passes_the_lookahead_check(capsys):
    code = main(
        [
            "check",
            "lookahead",
            "--strategy",
            "prophet_momentum",
            "--source",
            "demo",
            "--symbols",
            ",".join(DEMO_SYMBOLS),
            "--start",
            "2024-01-02",
            "--end",
            "2024-03-28",
            "--quiet",
            *[f"--param={k}={v}" for k, v in SMALL.items()],
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[0].endswith("mismatches=0")

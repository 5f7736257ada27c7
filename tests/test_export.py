"""The exporter: one standalone file, byte-identical, secret-free, deciding as the backtest did."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap

import pytest
from shared_data import SP500_PARQUET, needs_parquet

from exporters.compiler import PROJECT_PACKAGES, ExportError
from exporters.export import build_export, write_export
from marketdata import load
from strategies.history import to_history
from strategies.prophet_momentum import ProphetMomentum
from tradeship.cli import main

DEMO_SYMBOLS = [f"SYN{i:03d}" for i in range(12)]
SMALL = {"top_n": 3, "prophet_window": 60, "momentum_lookback": 20}
PEEKING = "strategies.examples.lookahead:PeekingMomentum"


def export(tmp_path, name="strategy.py", strategy="prophet_momentum", params=None, symbols=None):
    _, compiled = build_export(
        strategy, params if params is not None else SMALL, symbols or DEMO_SYMBOLS
    )
    path, _ = write_export(compiled, tmp_path / name)
    return path


def test_export_is_byte_identical_and_pins_requirements(tmp_path):
    first = export(tmp_path / "a")
    second = export(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a/requirements.txt").read_bytes() == (
        tmp_path / "b/requirements.txt"
    ).read_bytes()
    requirements = (tmp_path / "a/requirements.txt").read_text().split()
    names = {r.split("==")[0].lower() for r in requirements}
    assert {"pandas", "numpy", "prophet", "alpaca-py", "yfinance"} <= names
    assert all("==" in r for r in requirements)
    header = first.read_text()[:3000]
    assert "# strategy:       prophet_momentum" in header and "source sha256:" in header
    assert '"top_n": 3' in header


def test_exported_module_imports_nothing_from_the_project(tmp_path):
    path = export(tmp_path)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & PROJECT_PACKAGES
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[0] not in PROJECT_PACKAGES, node.module
    # and it runs with every project package made unimportable
    script = textwrap.dedent(f"""
        import sys, importlib.util
        for name in {sorted(PROJECT_PACKAGES)!r}:
            sys.modules[name] = None
        spec = importlib.util.spec_from_file_location("exported", {str(path)!r})
        module = importlib.util.module_from_spec(spec)
        sys.modules["exported"] = module
        spec.loader.exec_module(module)
        orders = module.run(now="2024-06-03T15:00", dry_run=True, source="demo")
        print("ORDERS", len(orders))
        history = module.load_history("demo", module.SYMBOLS, "2023-01-01", "2024-05-31")
        print("DECISION", json.dumps(module.decide(history, {{}}, "2024-06-03")))
    """).replace("import sys, importlib.util", "import json, sys, importlib.util")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "ORDERS" in done.stdout and "not a rebalance" not in done.stdout
    history = to_history(load("demo", DEMO_SYMBOLS, "2023-01-01", "2024-05-31").bars)
    expected = ProphetMomentum(SMALL).decide(history, {}, "2024-06-03")
    decided = json.loads(done.stdout.split("DECISION", 1)[1])
    assert decided == expected and expected, "the decision should buy something that day"
    assert done.stdout.count("would buy") == len(expected)


def test_export_refuses_anything_that_looks_like_a_secret(tmp_path):
    with pytest.raises(ExportError, match="looks like a secret") as caught:
        build_export("prophet_momentum", {"top_n": "PKABCDEFGHIJKLMNOPQRST"}, DEMO_SYMBOLS)
    assert "PKABCDEFGHIJKLMNOPQRST" not in str(caught.value)
    with pytest.raises(ExportError, match="looks like a secret"):
        build_export(
            "prophet_momentum", {}, DEMO_SYMBOLS, default_source="csv:/data?token=abcdefghijklmnop"
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
    path = export(tmp_path, params={}, symbols=symbols)  # default parameters
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
    assert "backtest=0.333333 module=0.000000" in captured.out


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

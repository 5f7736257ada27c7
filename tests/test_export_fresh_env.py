"""The exported file in a fresh virtual environment with only its requirements.txt installed.

This is the real deployment condition: tradeship is not installed there, and the module runs
under `python -I` (no current folder, no PYTHONPATH, no user site): its embedded modules are
the only tradeship code. The test installs the pinned requirements from the package index
(slow: a few minutes) and compares the module's decisions with the backtest's.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import venv

import pytest

from backtests.runner import BacktestConfig, run_backtest
from exporters.export import build_export, write_export

SYMBOLS = [f"SYN{i:03d}" for i in range(10)]
PARAMS = {"top_n": 3, "prophet_window": 60, "momentum_lookback": 20}


@pytest.mark.slow
def test_exported_module_decides_the_same_in_a_fresh_venv(tmp_path):
    # as deployed (yfinance by default), plus the demo reader this offline test reads
    _, compiled = build_export("prophet_momentum", PARAMS, SYMBOLS, sources=("demo",))
    module, requirements = write_export(compiled, tmp_path / "export" / "strategy.py")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run(
        [str(python), "-I", "-c", "import strategies"], capture_output=True, cwd=tmp_path
    )
    assert probe.returncode != 0, "tradeship must not be importable in the fresh venv"

    result = run_backtest(
        BacktestConfig(
            strategy="prophet_momentum",
            params=PARAMS,
            symbols=SYMBOLS,
            start="2024-01-02",
            end="2024-03-28",
        )
    )
    cases = [
        {"session": s.date().isoformat(), "holdings": result.holdings[s], "targets": t}
        for s, t in sorted(result.decided.items())
    ]
    assert any(c["targets"] for c in cases)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = textwrap.dedent(f"""
        import importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("exported", {str(module)!r})
        m = importlib.util.module_from_spec(spec)
        sys.modules["exported"] = m
        spec.loader.exec_module(m)
        history = m.load_history("demo", m.SYMBOLS, "2023-01-01", "2024-03-28")
        out = []
        for case in json.load(open({str(tmp_path / "cases.json")!r})):
            before = history.loc[history.index < case["session"]]
            out.append(m.decide(before, case["holdings"], case["session"]))
        tradeship = sorted(
            n for n, mod in sys.modules.items()
            if n.split(".")[0] in ("strategies", "live", "marketdata")
            and not str(getattr(mod, "__file__", "")).startswith({str(module)!r} + "/")
        )
        print(json.dumps({{"decisions": out, "not_embedded": tradeship}}))
    """)
    done = subprocess.run(
        [str(python), "-I", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    replayed = json.loads(done.stdout.strip().splitlines()[-1])
    assert replayed["not_embedded"] == []
    assert replayed["decisions"] == [c["targets"] for c in cases]

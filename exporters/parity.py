"""Proving an export decides what the backtest decided, and a strategy never looks ahead.

Both checks replay every session of a backtest's trading period: the decision for session t
is recomputed from data cut at t (bars before t only) with the backtest's book at t, and
compared with what the backtest's `next()` asked for while it held the whole range: the
same target positions on every session it ordered, nothing on every other one.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pandas as pd

from backtests.runner import BacktestConfig, BacktestResult, run_backtest
from strategies.history import history_until

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Mismatch:
    date: str
    symbol: str
    backtest: float | None
    replay: float | None


@dataclass
class ParityReport:
    rebalances: int
    mismatches: list[Mismatch] = field(default_factory=list)
    label: str = "module"

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def lines(self) -> list[str]:
        out = [f"rebalances={self.rebalances} mismatches={len(self.mismatches)}"]
        for m in self.mismatches:
            out.append(
                f"  {m.date} {m.symbol}: backtest={_fmt(m.backtest)} {self.label}={_fmt(m.replay)}"
            )
        return out


def _fmt(weight: float | None) -> str:
    return "no-decision" if weight is None else f"{weight:.6f}"


def compare(
    date: str, backtest: Mapping[str, float] | None, replay: Mapping[str, float] | None
) -> list[Mismatch]:
    """Per-symbol differences between two decisions (None: no decision at all)."""
    if backtest is None and replay is None:
        return []
    if backtest is None or replay is None:
        symbols = sorted(set(backtest or {}) | set(replay or {})) or ["*"]
        return [
            Mismatch(
                date,
                s,
                None if backtest is None else backtest.get(s, 0.0),
                None if replay is None else replay.get(s, 0.0),
            )
            for s in symbols
        ]
    found = []
    for symbol in sorted(set(backtest) | set(replay)):
        a, b = float(backtest.get(symbol, 0.0)), float(replay.get(symbol, 0.0))
        if abs(a - b) > TOLERANCE:
            found.append(Mismatch(date, symbol, a, b))
    return found


def replay_decisions(
    result: BacktestResult,
    history: pd.DataFrame,
    decide: Callable[[pd.DataFrame, dict[str, float], pd.Timestamp], dict[str, float] | None],
    label: str,
    tick: Callable[[], None] | None = None,
    sessions: Iterable[pd.Timestamp] | None = None,
) -> ParityReport:
    """Recompute every session's decision (None included) from history cut at it."""
    chosen = history.index[history.index >= result.trade_from] if sessions is None else sessions
    report = ParityReport(rebalances=0, label=label)
    for session in chosen:
        session = pd.Timestamp(session)
        before = history_until(history, session)
        if not len(before) or session not in result.holdings:
            continue
        expected = result.decided.get(session)
        report.rebalances += expected is not None
        replay = decide(before, dict(result.holdings[session]), session)
        report.mismatches.extend(compare(session.date().isoformat(), expected, replay))
        if tick is not None:
            tick()
    return report


def load_module(path: str | Path) -> ModuleType:
    """Import an exported file by path, without it being on sys.path.

    Only for reading its constants here: its decisions are proven in a fresh interpreter
    (`verify_parity`), where its embedded modules, not this checkout's, are the ones run.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no exported module at {path}")
    name = f"tradeship_export_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for required in ("decide", "load_history", "STRATEGY_NAME", "PARAMS", "SYMBOLS"):
        if not hasattr(module, required):
            raise ValueError(f"{path} is not a tradeship export: it has no {required}")
    return module


def module_constants(path: Path) -> SimpleNamespace:
    """The module's literal constants (STRATEGY_NAME, PARAMS, SYMBOLS, FILL, UNIVERSE ...),
    read without importing it: its embedded modules must not meet this checkout's here."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return SimpleNamespace(**found)


def module_config(module: Any, source: str, symbols, start, end) -> BacktestConfig:
    """The backtest an exported module must agree with: its strategy, parameters, fill mode
    and universe, on the given data."""
    universe = getattr(module, "UNIVERSE", None)
    return BacktestConfig(
        strategy=module.STRATEGY_NAME,
        params=dict(module.PARAMS),
        source=source,
        symbols=list(symbols or module.SYMBOLS),
        start=start,
        end=end,
        fill=getattr(module, "FILL", "open")
        if getattr(module, "FILL", "open") != "market"
        else "open",
        universe=universe.get("rule") if isinstance(universe, dict) else None,
        # the backtest has at least the module's replay window behind its first decision,
        # so later sessions show whether that window is long enough
        warmup=int(getattr(module, "WARMUP", 0) or 0),
    )


def verify_parity(
    module_path: str | Path,
    source: str,
    symbols: list[str] | None,
    start: str | None,
    end: str | None,
    *,
    forecaster: Any = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> tuple[ParityReport, BacktestResult]:
    """Backtest the module's strategy here, then replay every session through the module in
    a fresh interpreter (`python -I -S`, the module's folder and third-party packages only:
    its embedded modules are the code that runs, with its own Prophet fits)."""
    module = module_constants(Path(module_path))
    config = module_config(module, source, symbols, start, end)
    result = run_backtest(config, forecaster=forecaster, progress=progress)
    folder = Path(module_path).resolve().parent
    packages = [Path(p) for p in sys.path if p.endswith("site-packages")]
    _, report = replay_isolated(
        Path(sys.executable), [folder, *packages], Path(module_path).stem, result, "module"
    )
    return report, result


REPLAY_MARK = "TRADESHIP-REPLAY "
# Run by a Python with -I -S: the standard library, then only spec["paths"].
REPLAY_SCRIPT = r"""
import importlib, importlib.metadata, json, sys
spec = json.loads(sys.stdin.read())
sys.path[:0] = spec["paths"]
outside = [p for p in sys.path if "-packages" in p and p not in spec["paths"]]
if outside:
    raise SystemExit(f"the replay is not isolated: {outside}")
module = importlib.import_module(spec["module"])
import pandas as pd
from strategies.history import history_until
history = module.load_history(
    spec["source"], spec["symbols"], pd.Timestamp(spec["first"]), pd.Timestamp(spec["last"])
)
decisions = {}
for when, holdings in spec["calls"]:
    session = pd.Timestamp(when)
    decisions[when] = module.decide(history_until(history, session), holdings, session)
versions = {}
for name in spec["requirements"]:
    try:
        versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        versions[name] = None
answer = {
    "python": ".".join(map(str, sys.version_info[:3])),
    "isolated": bool(sys.flags.isolated),
    "no_site": bool(sys.flags.no_site),
    "versions": versions,
    "sessions": [str(history.index[0].date()), str(history.index[-1].date())],
    "decisions": decisions,
}
print("TRADESHIP-REPLAY " + json.dumps(answer, default=float))
"""


def absolute_source(source: str) -> str:
    """`source` with a file or folder location made absolute (parquet:, csv:)."""
    kind, sep, location = source.partition(":")
    if sep and kind in ("parquet", "csv") and location:
        return f"{kind}:{Path(location).expanduser().resolve()}"
    return source


class ReplayError(RuntimeError):
    """The isolated replay could not run; the message carries the child's last lines."""


def replay_isolated(
    python: Path,
    paths: list[Path],
    module: str,
    result: BacktestResult,
    label: str,
    requirements: Iterable[str] = (),
    timeout: float = 3600,
) -> tuple[dict[str, Any], ParityReport]:
    """Replay every session of `result` through `module` in a fresh `python -I -S` whose
    path holds only `paths`; returns (the child's answer, the parity report)."""
    calls: list[tuple[str, Any]] = []

    def record(_before, holdings, session):
        calls.append((pd.Timestamp(session).isoformat(), holdings))
        return None

    replay_decisions(result, result.history, record, label)  # which calls, in order
    spec = {
        "paths": [str(p) for p in paths],
        "module": module,
        "source": absolute_source(result.config.source),  # the child runs elsewhere
        "symbols": sorted(result.data.bars),
        "first": pd.Timestamp(result.history.index[0]).isoformat(),
        "last": pd.Timestamp(result.history.index[-1]).isoformat(),
        "calls": calls,
        "requirements": sorted(requirements),
    }
    with tempfile.TemporaryDirectory(prefix="tradeship-replay-") as scratch:
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": scratch,
            "TRADESHIP_CACHE_DIR": str(Path(scratch) / "cache"),
            "XDG_CACHE_HOME": str(Path(scratch) / "xdg"),
            "TRADESHIP_JOURNAL": f"sqlite:{Path(scratch) / 'journal.sqlite'}",
            "TZ": "UTC",
        }
        done = subprocess.run(
            [str(python), "-I", "-S", "-B", "-c", REPLAY_SCRIPT],
            input=json.dumps(spec, default=float),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=scratch,
            env=child_env,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith(REPLAY_MARK)]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr + done.stdout).splitlines()[-25:])
        raise ReplayError(f"the replay failed under {python} -I -S:\n{tail}")
    answer = json.loads(lines[-1][len(REPLAY_MARK) :])
    decided = answer["decisions"]

    def lookup(_before, _holdings, session):
        return decided[pd.Timestamp(session).isoformat()]

    return answer, replay_decisions(result, result.history, lookup, label)


def check_lookahead(
    config: BacktestConfig,
    *,
    forecaster: Any = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
    workers: int = 2,
) -> tuple[ParityReport, BacktestResult]:
    """freqtrade-style lookahead analysis: does a decision change when the future is cut?

    The backtest runs here; each session's decision is then recomputed from the history cut
    at it, each in a fresh interpreter (a forkserver child that serves one replay), so
    state a strategy keeps between calls (a module-level memo of full series) cannot carry
    the future into a replay.
    """
    result = run_backtest(config, forecaster=forecaster, progress=progress)
    spec = result.strategy
    sessions = [
        pd.Timestamp(s)
        for s in result.history.index[result.history.index >= result.trade_from]
        if pd.Timestamp(s) in result.holdings
    ]
    tick = progress(len(sessions)) if progress else None
    report = ParityReport(rebalances=0, label="cut")
    with tempfile.TemporaryDirectory(prefix="tradeship-lookahead-") as scratch:
        frames = Path(scratch)
        result.history.to_parquet(frames / "history.parquet")
        if result.members is not None:
            result.members.to_parquet(frames / "members.parquet")
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(
            max_workers=max(1, workers), mp_context=context, max_tasks_per_child=1
        ) as pool:
            futures = {
                session: pool.submit(
                    _cut_replay,
                    spec.name,
                    spec.params,
                    str(frames),
                    session,
                    dict(result.holdings[session]),
                    config.fill,
                    config.cash_buffer,
                    config.fractional,
                )
                for session in sessions
            }
            for session, future in futures.items():
                expected = result.decided.get(session)
                report.rebalances += expected is not None
                replay = future.result()
                report.mismatches.extend(compare(session.date().isoformat(), expected, replay))
                if tick is not None:
                    tick()
    return report, result


def _cut_replay(
    name: str,
    params: dict,
    folder: str,
    session: pd.Timestamp,
    book: dict[str, float],
    fill: str,
    cash_buffer: float,
    fractional: bool,
) -> dict[str, float] | None:
    """One truncated replay, run in a fresh child process: bars before `session` only."""
    from backtests.forecast_cache import ForecastCache
    from backtests.forecasting import FastForecaster
    from strategies.registry import strategy_class
    from strategies.replay import replay_decision

    frames = Path(folder)
    history = history_until(pd.read_parquet(frames / "history.parquet"), session)
    members = None
    if (frames / "members.parquet").is_file():
        members = pd.read_parquet(frames / "members.parquet")
    with FastForecaster(cache=ForecastCache.default(), workers=1) as forecaster:
        return replay_decision(
            strategy_class(name),
            params,
            history,
            book,
            session,
            forecaster=forecaster,
            fill=fill,
            cash_buffer=cash_buffer,
            fractional=fractional,
            members=members,
        )

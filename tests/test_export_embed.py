"""Exports carry code as embedded modules: a user's strategy spread over their own modules
and a package named like ours, only what the entry reaches, byte-identical, secrets refused.

The exported files run in a separate `python -I` process in which tradeship's packages and
the user's modules on disk are blocked, so only the embedded copies can serve them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import json
import os
import pkgutil
import py_compile
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

import strategies
from exporters.collect import PROJECT_PACKAGES, collect
from exporters.compiler import ExportError, current_contract
from exporters.embed import EmbeddedImporter, install_embedded
from exporters.export import build_export, write_export
from live.runtime import load_history
from strategies.registry import strategy_class
from strategies.replay import replay_decision

FIXTURES = Path(__file__).parent / "fixtures" / "user_strategies"
USER = "strategies.my_strategy:TopMomentum"
USER_MODULES = {"userlib", "userhelpers"}
SYMBOLS = [f"SYN{i:03d}" for i in range(6)]
SESSIONS = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]
REPO = Path(__file__).resolve().parents[1]

# Runs an exported file with tradeship and the fixtures unimportable from disk.
RUNNER = textwrap.dedent("""
    import importlib.abc, importlib.util, json, sys
    job = json.loads(sys.stdin.read())
    BLOCKED = set(job["blocked"])

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"{name} is blocked: only the export may serve it")

    sys.meta_path.insert(0, Block())
    spec = importlib.util.spec_from_file_location("exported", job["path"])
    m = importlib.util.module_from_spec(spec)
    sys.modules["exported"] = m
    spec.loader.exec_module(m)
    out = {"decisions": [], "files": {}}
    history = m.load_history("demo", m.SYMBOLS, job["first"], job["last"])
    for session in job["sessions"]:
        before = history.loc[history.index < session]
        out["decisions"].append(m.decide(before, job["book"], session))
    try:
        m.load_history("csv:.", m.SYMBOLS)
    except m.RunError as exc:
        out["csv_error"] = str(exc)
    if job.get("run"):
        out["orders"] = m.run(**job["run"])
    for name, module in sorted(sys.modules.items()):
        if name.split(".")[0] in BLOCKED and module is not None:
            out["files"][name] = getattr(module, "__file__", None)
    print("RESULT", json.dumps(out))
""")
BOOK = {"$CASH": 100000.0}


@pytest.fixture
def user_project(monkeypatch):
    """Put a user's project on sys.path, as their checkout is, merged into our `strategies`."""
    before = set(sys.modules)

    def use(root: Path) -> Path:
        monkeypatch.syspath_prepend(str(root))
        # what strategies/__init__.py's extend_path does when the folder is on sys.path first
        merged = pkgutil.extend_path(list(strategies.__path__), "strategies")
        monkeypatch.setattr(strategies, "__path__", merged)
        return root

    yield use
    for name in set(sys.modules) - before:
        origin = str(getattr(sys.modules[name], "__file__", "") or "")
        if origin.startswith((str(FIXTURES), "/tmp")) or name.split(".")[0] in USER_MODULES:
            del sys.modules[name]


def _embedded_sources(text: str) -> dict[str, str]:
    """name -> source as embedded, read from the export's text without running it."""
    found = {}
    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Subscript)
            and isinstance(node.targets[0].value, ast.Name)
            and node.targets[0].value.id == "_EMBEDDED"
        ):
            found[ast.literal_eval(node.targets[0].slice)] = ast.literal_eval(node.value)[1]
    return found


def run_isolated(
    path: Path,
    cwd: Path,
    sessions: list[str],
    first: str = "2023-06-01",
    last: str = "2024-03-08",
    run: dict | None = None,
) -> dict:
    """Decide on demo bars for `sessions` (and `run(**run)`) in a `python -I` process where
    tradeship and the fixtures' modules can only come from the export."""
    job = {
        "path": str(path),
        "blocked": sorted(PROJECT_PACKAGES | USER_MODULES),
        "sessions": sessions,
        "book": BOOK,
        "first": first,
        "last": last,
        "run": run,
    }
    done = subprocess.run(
        [sys.executable, "-I", "-c", RUNNER],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert all(f.startswith(str(path) + "/") for f in out["files"].values()), out["files"]
    return out


def replayed_here(spec, history, sessions: list[str]) -> list:
    """What this process's tradeship decides for the exported spec on the same bars."""
    options = {"warmup": spec.warmup, "fill": spec.fill, "fitter": spec.fitter}
    options["universe"] = spec.universe
    kwargs = {k: options[k] for k in current_contract().replay_kwargs}
    cls = strategy_class(spec.strategy_ref)
    return [
        replay_decision(cls, spec.params, history.loc[history.index < s], BOOK, s, **kwargs)
        for s in sessions
    ]


def test_a_user_strategy_over_their_modules_and_a_merged_package_runs_alone(tmp_path, user_project):
    root = user_project(FIXTURES / "merge")
    spec, compiled = build_export(USER, {"top_n": 2}, SYMBOLS, default_source="demo")
    embedded = set(compiled.modules)
    user = {
        "strategies.my_strategy",
        "userhelpers",
        "userlib",
        "userlib.calendar_rules",  # imported inside next() only
        "userlib.signals",
        "userlib.util",  # reached by `from . import util`
    }
    assert user <= embedded
    ours = {"strategies", "strategies.rebalance", "tradeship", "live.runtime", "marketdata.demo"}
    assert ours <= embedded and "tradeship.cli" not in embedded
    # readers of sources the export is not made for stay out, and so do their pins
    assert not {"marketdata.yahoo", "marketdata.csv_source", "marketdata.parquet_source"} & embedded
    assert not any(r.lower().startswith("yfinance==") for r in compiled.requirements)

    sources = _embedded_sources(compiled.text)
    assert sources["userlib.signals"] == (root / "userlib/signals.py").read_text()
    assert sources["strategies.my_strategy"] == (root / "strategies/my_strategy.py").read_text()
    assert sources["strategies.base"] == (REPO / "strategies/base.py").read_text()
    for module in compiled.modules:  # the header lists every module with its sha256
        digest = hashlib.sha256(sources[module].encode()).hexdigest()
        assert f"#  - {module} " in compiled.text and digest in compiled.text

    path, _ = write_export(compiled, tmp_path / "out" / "strategy.py")
    out = run_isolated(path, tmp_path, SESSIONS)
    assert "carries no reader for 'csv'" in out["csv_error"]
    expected = replayed_here(
        spec, load_history("demo", SYMBOLS, "2023-06-01", "2024-03-08"), SESSIONS
    )
    assert any(expected), "the fixture strategy should trade on some of these sessions"
    assert out["decisions"] == expected


def test_the_same_full_module_name_in_two_places_is_refused_by_name(user_project):
    root = user_project(FIXTURES / "clash")
    with pytest.raises(ExportError, match="two modules named strategies.base") as caught:
        build_export("strategies.clashing:Clashing", {}, SYMBOLS, default_source="demo")
    assert str(root / "strategies" / "base.py") in str(caught.value)
    assert str(REPO / "strategies" / "base.py") in str(caught.value)


def test_a_user_package_init_with_code_cannot_merge_into_ours(user_project):
    user_project(FIXTURES / "initclash")
    with pytest.raises(ExportError, match="two packages named strategies"):
        build_export("strategies.mine:Mine", {}, SYMBOLS, default_source="demo")


def test_a_key_in_a_user_module_is_refused_without_printing_it(tmp_path, user_project):
    key = "PK" + "ZYXWVUTSRQPONMLKJIHG"
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "leaky.py").write_text(
        f'import backtrader as bt\n\nKEY = "{key}"\n\n\nclass Leaky(bt.Strategy):\n    pass\n'
    )
    user_project(tmp_path)
    with pytest.raises(ExportError, match=r"strategies\.leaky, line 3") as caught:
        build_export("strategies.leaky:Leaky", {}, SYMBOLS, default_source="demo")
    assert key not in str(caught.value)


def test_what_cannot_be_embedded_is_refused_with_what_to_do(tmp_path, monkeypatch):
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / f"fastmath{suffix}").write_bytes(b"")
    (tmp_path / "usesext.py").write_text("import fastmath\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ExportError, match="compiled extension .* installable distribution"):
        collect(["usesext"])
    source = tmp_path / "compiled_only_src.py"
    source.write_text("VALUE = 1\n")
    py_compile.compile(str(source), cfile=str(tmp_path / "compiled_only.pyc"), doraise=True)
    source.unlink()
    (tmp_path / "uses_pyc.py").write_text("import compiled_only\n")
    with pytest.raises(ExportError, match="compiled_only has no Python source"):
        collect(["uses_pyc"])
    (tmp_path / "shadowing").mkdir()
    (tmp_path / "shadowing" / "colorsys.py").write_text("VALUE = 1\n")
    (tmp_path / "uses_shadow.py").write_text("import colorsys\n")
    monkeypatch.syspath_prepend(str(tmp_path / "shadowing"))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    with pytest.raises(ExportError, match="shadows the standard library's colorsys"):
        collect(["uses_shadow"])
    (tmp_path / "missing_dep.py").write_text("import not_installed_anywhere_xyz\n")
    with pytest.raises(ExportError, match="missing_dep:1: cannot find module"):
        collect(["missing_dep"])
    (tmp_path / "optional_dep.py").write_text(
        "try:\n    import not_installed_anywhere_xyz\nexcept ImportError:\n    pass\n"
    )
    assert [m.name for m in collect(["optional_dep"]).modules] == ["optional_dep"]


def test_the_export_is_byte_identical_across_processes_and_hash_seeds(tmp_path):
    script = textwrap.dedent("""
        import hashlib, sys
        from exporters.export import build_export
        _, c = build_export("prophet_momentum", {"top_n": 3}, ["SYN001", "SYN000"])
        text = c.text + "\\n".join(c.requirements)
        sys.stdout.write(hashlib.sha256(text.encode()).hexdigest())
    """)
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO
        )
        assert done.returncode == 0, done.stderr[-3000:]
        digests.add(done.stdout.strip())
    assert len(digests) == 1 and len(digests.pop()) == 64
    _, compiled = build_export("prophet_momentum", {"top_n": 3}, ["SYN000", "SYN001"])
    assert "yfinance" in {r.split("==")[0] for r in compiled.requirements}
    assert "marketdata.demo" not in compiled.modules  # a yfinance export carries no demo data


def test_the_importer_serves_packages_relative_imports_and_shows_source_in_tracebacks(
    monkeypatch,
):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    for name in ("_probe_pkg", "_probe_pkg.sub"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    modules = {
        "_probe_pkg": (True, "from .sub import fail\n"),
        "_probe_pkg.sub": (False, "def fail():\n    raise ValueError('from the embedded line')\n"),
    }
    importer = install_embedded(modules, "/x/strategy.py", {"_probe_gone": "left out: say so"})
    assert sys.meta_path[0] is importer and isinstance(importer, EmbeddedImporter)
    import _probe_pkg

    assert _probe_pkg.__file__ == "/x/strategy.py/_probe_pkg/__init__.py"
    with pytest.raises(ValueError) as caught:
        _probe_pkg.fail()
    shown = "".join(traceback.format_tb(caught.value.__traceback__))
    assert '/x/strategy.py/_probe_pkg/sub.py", line 2' in shown
    assert "raise ValueError('from the embedded line')" in shown
    with pytest.raises(ModuleNotFoundError, match="left out: say so"):
        __import__("_probe_gone")
    # a second export whose copy of an already-imported module differs is refused
    changed = {**modules, "_probe_pkg.sub": (False, "def fail():\n    return 1\n")}
    with pytest.raises(ImportError, match="differs from the copy embedded"):
        install_embedded(changed, "/y/other.py")
    for name in ("_probe_pkg", "_probe_pkg.sub"):
        sys.modules.pop(name, None)


def test_an_optional_module_is_left_out_only_when_just_a_function_imports_it(tmp_path, monkeypatch):
    (tmp_path / "lazy_user.py").write_text(
        "def later():\n    import optional_reader\n    import yfinance\n"
    )
    (tmp_path / "eager_user.py").write_text("import optional_reader\n")
    (tmp_path / "optional_reader.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    omit = {"optional_reader": "not carried", "yfinance": "not carried"}
    lazy = collect(["lazy_user"], omit=omit)
    assert [m.name for m in lazy.modules] == ["lazy_user"]
    assert lazy.omitted == {"optional_reader", "yfinance"} and "yfinance" not in lazy.third_party
    eager = collect(["eager_user", "lazy_user"], omit=omit)
    assert [m.name for m in eager.modules] == ["eager_user", "lazy_user", "optional_reader"]
    assert eager.omitted == {"yfinance"}


def test_a_module_on_disk_with_the_embedded_source_is_used_from_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "_probe_same.py").write_text("VALUE = 'disk'\n")
    (tmp_path / "_probe_other.py").write_text("VALUE = 'disk'\n")
    modules = {
        "_probe_same": (False, "VALUE = 'disk'\n"),
        "_probe_other": (False, "VALUE = 'embedded'\n"),
    }
    install_embedded(modules, "/x/strategy.py")
    try:
        import _probe_other
        import _probe_same

        assert _probe_same.__file__ == str(tmp_path / "_probe_same.py")
        assert (_probe_other.VALUE, _probe_other.__file__) == (
            "embedded",
            "/x/strategy.py/_probe_other.py",
        )
    finally:
        sys.modules.pop("_probe_same", None)
        sys.modules.pop("_probe_other", None)


def test_the_cli_finds_a_users_strategies_package_beside_ours(tmp_path):
    """From the user's folder, `--strategy strategies.my_strategy:X` backtests and exports."""
    root = FIXTURES / "merge"
    universe = ["--source", "demo", "--symbols", "SYN000,SYN001,SYN002"]
    backtest = subprocess.run(
        [sys.executable, "-m", "tradeship", "backtest", "--strategy", USER, *universe]
        + ["--start", "2024-01-02", "--end", "2024-02-29", "--out", str(tmp_path / "bt")]
        + ["--quiet"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
    )
    assert backtest.returncode == 0, backtest.stderr[-3000:]
    assert (tmp_path / "bt" / "decisions.csv").read_text().count("SYN") > 0
    out = tmp_path / "x.py"
    export = subprocess.run(
        [sys.executable, "-m", "tradeship", "export", "--strategy", USER, *universe]
        + ["--default-source", "demo", "--warmup", "6", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    embedded = set(_embedded_sources(out.read_text()))
    assert {"strategies.my_strategy", "strategies.rebalance", "userlib.signals"} <= embedded

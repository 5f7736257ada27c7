"""The parity certificate: the bundle's own interpreter replays the backtest's decisions.

`certify_bundle(out, source=..., start=..., end=...)` backtests the bundled module's strategy
on this machine (the research side), then replays every session of that backtest through
the bundle (the production side) and writes what it found into ``bundle.json``:

* the replay runs under the target's Python version (pyenv's 3.12 for python3.12, ...), as
  ``python -I -S`` (no site-packages, no PYTHON* variables), with nothing on ``sys.path``
  but the bundle's files: the unzipped function.zip (Lambda), the app folder and its
  ``.python_packages`` (Azure, installed here as ``func ... publish --no-build`` ships it),
  or the folder and a fresh venv of ``requirements.txt`` (container);
* it loads the same data through the module's own ``load_history`` and calls the module's
  own ``decide(history before the session, holdings, session)``; its forecasts are its own
  Prophet fits, with a private empty cache;
* holdings and decisions are opaque JSON-able dicts, compared session by session:
  ``exporters.parity.replay_isolated`` is the one replay, verify-parity's and this one's.

A certificate with mismatches refuses the bundle (its deployable files are removed, the
certificate stays) unless ``force``; ``force`` is recorded.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from exporters.bundle import packaging
from exporters.bundle.common import (
    MANIFEST,
    MODULE_NAME,
    BundleError,
    normalise,
    read_module,
    sha256_file,
)
from exporters.bundle.pythons import require_python
from exporters.parity import ReplayError, module_config, module_constants, replay_isolated

AZURE_PACKAGES = Path(".python_packages") / "lib" / "site-packages"
MISMATCH_LINES_KEPT = 20


@dataclass(frozen=True)
class VerifySpec:
    """The data the certificate replays: the backtest's own source and range."""

    source: str
    start: str | None = None
    end: str | None = None
    symbols: list[str] | None = None
    force: bool = False


@dataclass(frozen=True)
class Environment:
    """Where the replay runs: an interpreter and the only folders on its path."""

    python: Path
    paths: list[Path]
    described: list[str]  # the paths as bundle.json names them (no machine paths)


def _host_versions(names: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def backtest_module(module_path: Path, spec: VerifySpec, forecaster: Any = None, progress=None):
    """The research side: the module's own backtest (exporters.parity.module_config), here."""
    from backtests.runner import run_backtest

    module = module_constants(module_path)
    config = module_config(module, spec.source, spec.symbols, spec.start, spec.end)
    return run_backtest(config, forecaster=forecaster, progress=progress)


def replay_in(env: Environment, result: Any, requirements: list[str]) -> tuple[dict, Any]:
    """Every session of `result` replayed by the bundle (exporters.parity.replay_isolated);
    returns (the child's answer, the parity report)."""

    try:
        return replay_isolated(env.python, env.paths, MODULE_NAME, result, "bundle", requirements)
    except ReplayError as exc:
        raise BundleError(f"the bundle could not replay the backtest: {exc}") from None


# -- the target's environment ---------------------------------------------------------------


def lambda_environment(out: Path, python: str, scratch: Path) -> Environment:
    """function.zip unzipped as Lambda does (modes kept) into an empty folder."""
    archive = out / "function.zip"
    if not archive.is_file():
        raise BundleError(f"{out} has no function.zip to verify: bundle it again")
    task_root = packaging.extract_like_lambda(archive, scratch / "task")
    return Environment(require_python(python, "verifying"), [task_root], ["function.zip"])


def azure_environment(out: Path, python: str, log=print) -> Environment:
    """requirements.txt installed into the app's .python_packages, as a local build ships it
    (`func azure functionapp publish APP --no-build`) for the worker's Python."""
    executable = require_python(python, "verifying")
    target = out / AZURE_PACKAGES
    shutil.rmtree(out / ".python_packages", ignore_errors=True)
    pins = (out / "requirements.txt").read_text().splitlines()
    log(f"installing requirements.txt into {AZURE_PACKAGES} (Python {python}) ...")
    packaging.pip_install_for_lambda(
        [p.strip() for p in pins if p.strip() and not p.startswith("#")],
        target,
        python,
        platforms=packaging.platforms_for("azure", python),
    )
    return Environment(executable, [out, target], [".", str(AZURE_PACKAGES)])


def container_environment(out: Path, python: str, scratch: Path, log=print) -> Environment:
    """A fresh venv of the target's Python with requirements.txt installed, as the
    Dockerfile's `pip install -r requirements.txt` does on python:X-slim."""
    base = require_python(python, "verifying")
    venv = scratch / "venv"
    log(f"installing requirements.txt into a fresh Python {python} venv ...")
    for command in (
        [str(base), "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(out / "requirements.txt"),
        ],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-15:])
            raise BundleError(f"the container's requirements.txt does not install:\n{tail}")
    site = next((venv / "lib").glob("python*/site-packages"))
    return Environment(venv / "bin" / "python", [out, site], [".", "venv: requirements.txt"])


# -- the certificate ---------------------------------------------------------------------------

DEPLOYABLE_KEPT = {MANIFEST}


def refuse(out: Path) -> None:
    """Remove everything a deploy could pick up; the manifest (and its certificate) stays."""
    for path in out.iterdir():
        if path.name in DEPLOYABLE_KEPT:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def certify_bundle(
    out: str | Path,
    spec: VerifySpec,
    *,
    forecaster: Any = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
    log=print,
) -> dict[str, Any]:
    """Backtest, replay through the bundle in `out`, write the certificate into bundle.json.

    Raises BundleError (after removing the deployable files) when the replay decides
    differently and `spec.force` is not set."""
    out = Path(out)
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{out} holds no bundle ({MANIFEST}): build it with tradeship bundle")
    manifest = json.loads(manifest_path.read_text())
    target, python = manifest["target"], manifest["python"]
    # the module's own pins, and every other distribution the bundle lists (Lambda's
    # requirements.txt: all that the zip holds; Azure's adds azure-functions as a range)
    beside = out / "requirements.txt"
    lines = beside.read_text().splitlines() if beside.is_file() else []
    bundled = [line.strip() for line in lines if "==" in line]
    pins = manifest.get("pins") or bundled
    module = read_module(out / f"{MODULE_NAME}.py", requirements=tuple(pins))
    names = sorted({normalise(p.split("==")[0]) for p in pins if "==" in p})
    listed = sorted({normalise(r.split("==")[0]) for r in bundled} - set(names))
    with tempfile.TemporaryDirectory(prefix="tradeship-verify-") as scratch_name:
        scratch = Path(scratch_name)
        if target == "lambda":
            env = lambda_environment(out, python, scratch)
        elif target == "azure":
            env = azure_environment(out, python, log=log)
        else:
            env = container_environment(out, python, scratch, log=log)
        log(f"backtesting {module.strategy_name} on {spec.source} ({spec.start}..{spec.end})")
        result = backtest_module(module.path, spec, forecaster=forecaster, progress=progress)
        log(f"replaying {len(result.decided)} decisions under python{python} -I -S ...")
        answer, report = replay_in(env, result, names + listed)
    backtest_versions = _host_versions(names + listed)

    def differing(among: list[str]) -> dict[str, list[str | None]]:
        return {
            name: [backtest_versions[name], answer["versions"].get(name)]
            for name in among
            if answer["versions"].get(name) is not None
            and backtest_versions[name] is not None
            and answer["versions"].get(name) != backtest_versions[name]
        }

    lines = report.lines()
    certificate: dict[str, Any] = {
        "result": lines[0],
        "rebalances": report.rebalances,
        "mismatches": len(report.mismatches),
        "mismatch_lines": lines[1 : 1 + MISMATCH_LINES_KEPT],
        "accepted": report.ok or spec.force,
        "forced": spec.force,
        "python": answer["python"],
        "flags": "-I -S" if answer["isolated"] and answer["no_site"] else "not isolated",
        "sys_path": env.described,
        "versions": {k: answer["versions"][k] for k in names if answer["versions"].get(k)},
        "backtest_python": ".".join(map(str, sys.version_info[:3])),
        "backtest_versions": {k: backtest_versions[k] for k in names if backtest_versions[k]},
        "version_drift": differing(names),  # the pins: empty unless --allow-version-drift
        "unpinned_differences": differing(listed),  # dependencies the pins do not name
        "module_sha256": module.sha256,
        "fill": module.fill,
        "data": {
            "source": spec.source,
            "start": spec.start,
            "end": spec.end,
            "symbols": len(result.data.bars),
            "sessions": answer["sessions"],
            "trade_from": str(pd.Timestamp(result.trade_from).date()),
        },
    }
    if target == "lambda":
        certificate["zip_sha256"] = sha256_file(out / "function.zip")
    manifest["certificate"] = certificate
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log(f"certificate: {lines[0]} (python{answer['python']} {certificate['flags']})")
    for line in lines[1 : 1 + MISMATCH_LINES_KEPT]:
        log(line)
    if not report.ok and not spec.force:
        refuse(out)
        raise BundleError(
            f"the bundle decides differently from the backtest ({lines[0]}): refused, only "
            f"{MANIFEST} is left. Bundle the backtest's exact versions, or pass --force to "
            "ship it anyway (recorded in the certificate)"
        )
    return certificate

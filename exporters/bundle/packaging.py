"""Third-party packages for a Lambda zip: installed for the Lambda platform, trimmed to what a
run needs, measured, zipped, and smoke-tested.

The AWS Lambda limit is 250 MB *unzipped* (function and layers together). A plain install of
an exported module's requirements is ~550 MB. What goes, and why (each rule is measured and
printed by `tradeship bundle`):

- boto3/botocore/s3transfer/jmespath: the Lambda Python runtime provides them (the journal
  imports boto3 only for an ``s3://`` journal);
- matplotlib and its own dependencies (pillow, fonttools, kiwisolver, contourpy, cycler,
  pyparsing): only ``prophet.plot`` imports them, inside a try/except; a run never plots;
- lxml: yfinance reads HTML with it only for earnings dates (``pd.read_html``), not prices;
- tests, ``__pycache__``, type stubs (``.pyi``, ``*-stubs``), Cython/C sources and headers,
  console scripts (``bin/``) and man pages (``share/``);
- cmdstan's sources, build products and tools under ``prophet/stan_model/cmdstan-*``: Prophet
  runs its already compiled model ``prophet_model.bin`` (linked to ``prophet.libs/libtbb``);
  cmdstanpy only checks that the cmdstan folder holds its ``makefile`` (kept); the duplicate
  model binary ``stan_model/prophet`` goes too;
- pyarrow's Flight and Gandiva libraries (RPC, JIT), which reading and writing Parquet (and
  datasets with filters) never loads (Substrait stays: libarrow_python links it); a rule
  never removes a library that a kept one NEEDs;
- byte-identical copies of shared libraries that no library loads by that name (wheels
  store ``libx.so``, ``libx.so.N`` and ``libx.so.N.M`` as three files);
- debug sections and local symbols of shared libraries (``strip --strip-unneeded``; the
  dynamic symbol table stays), each library loaded before and after (``dlopen``) and put
  back as it was if stripping broke it (auditwheel's patchelf-edited libraries can be).

`smoke_check` then imports everything a run imports and fits a Prophet model with the
trimmed tree under ``python -I -S`` when this machine can run the target's wheels.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from exporters.bundle.common import AWS_RUNTIME_PROVIDED, BundleError, normalise
from exporters.bundle.pythons import require_python

LAMBDA_LIMIT_MB = 250
MB = 1_000_000  # AWS counts the 250 MB limit in bytes; MB here is 10^6 bytes
# Wheels a platform loads, by the glibc it has: Amazon Linux 2 (the python3.11 Lambda runtime
# and image) 2.26; Amazon Linux 2023 (python3.12/3.13) 2.34; Debian bookworm (Azure's Python
# workers, python:X-slim-bookworm) 2.36, installed with the 2.34 tags too.
GLIBC_2_26 = ("manylinux2014_x86_64", "manylinux_2_24_x86_64", "manylinux_2_26_x86_64")
GLIBC_2_34 = (
    *GLIBC_2_26,
    "manylinux_2_28_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_34_x86_64",
)
LAMBDA_PLATFORMS = {"3.11": GLIBC_2_26, "3.12": GLIBC_2_34, "3.13": GLIBC_2_34}
PLATFORM_NAMES = {GLIBC_2_26: "Amazon Linux 2, glibc 2.26", GLIBC_2_34: "glibc 2.34"}
# AUTO tries the newest Lambda runtime first and keeps the first whose platform has every pin.
AUTO_ORDER = ("3.13", "3.12")


def platforms_for(target: str, python: str) -> tuple[str, ...]:
    """The wheel platform tags the target's Python `python` loads."""
    return LAMBDA_PLATFORMS[python] if target == "lambda" else GLIBC_2_34


class MissingWheels(BundleError):
    """Some exact pin has no wheel for the platform: a newer runtime or version drift."""


DROP_DISTRIBUTIONS = {
    **{name: "provided by the AWS Lambda Python runtime" for name in AWS_RUNTIME_PROVIDED},
    **{
        name: "plotting only: prophet.plot imports it inside try/except; a run never plots"
        for name in (
            "matplotlib",
            "pillow",
            "fonttools",
            "kiwisolver",
            "contourpy",
            "cycler",
            "pyparsing",
        )
    },
    "lxml": "yfinance uses it only for earnings dates (pd.read_html), never for prices",
}
DROP_DIR_NAMES = {
    "__pycache__": "bytecode caches (Lambda's file system is read-only anyway)",
    "tests": "test suites",
    "test": "test suites",
}
DROP_SUFFIXES = {
    ".pyc": "bytecode caches (Lambda's file system is read-only anyway)",
    ".pyi": "type stubs",
    ".pyx": "Cython/C sources and headers",
    ".pxd": "Cython/C sources and headers",
    ".pxi": "Cython/C sources and headers",
    ".h": "Cython/C sources and headers",
    ".hpp": "Cython/C sources and headers",
    ".c": "Cython/C sources and headers",
    ".cc": "Cython/C sources and headers",
    ".cpp": "Cython/C sources and headers",
}
DROP_GLOBS = {
    "bin": "console scripts (they point at the build machine's Python)",
    "share": "man pages",
    "*-stubs": "type stubs",
    "numpy/_core/include": "C headers for building extensions",
    "numpy/f2py": "Fortran wrapper generator (a build tool)",
    "pyarrow/include": "C headers for building extensions",
    "pyarrow/src": "C headers for building extensions",
    "prophet/stan_model/cmdstan-*/stan": "cmdstan sources and build products",
    "prophet/stan_model/cmdstan-*/bin": "cmdstan tools (stanc, stansummary): not used to fit",
    "prophet/stan_model/prophet": "a duplicate of prophet_model.bin",
    "prophet/stan_model/*.stan": "the model's source (it is compiled already)",
    "pyarrow/*flight*": "pyarrow Flight (RPC): not used to read or write Parquet",
    "pyarrow/*gandiva*": "pyarrow Gandiva (JIT): not used to read or write Parquet",
    **{
        f"pyarrow/{pattern}": "pyarrow's cloud file systems: data is read from local files "
        "or yfinance, the journal writes S3 through boto3"
        for pattern in ("*s3*", "*gcsfs*", "*azurefs*", "*hdfs*")
    },
}
DUPLICATE_LIBS = "byte-identical copies of shared libraries nothing loads by that name"
STRIPPED = "debug sections and local symbols of shared libraries (strip --strip-unneeded)"
_SONAME = re.compile(r"\.so(\.\d+)*$")


@dataclass
class TrimReport:
    removed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    files: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, reason: str, size: int, files: int = 1) -> None:
        self.removed[reason] += size
        self.files[reason] += files

    def lines(self) -> list[str]:
        rows = sorted(self.removed.items(), key=lambda kv: -kv[1])
        return [
            f"  -{size / MB:7.1f} MB  {reason} ({self.files[reason]} files)"
            for reason, size in rows
        ]


# -- install -----------------------------------------------------------------------------------


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def _installed_versions(target: Path) -> dict[str, str]:
    versions = {}
    for info in target.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        versions[normalise(name)] = version
    return versions


_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def version_drift(pins: list[str], versions: dict[str, str]) -> list[dict[str, str | None]]:
    """Every pin installed at another version than the backtest's (or not at all)."""
    drift: list[dict[str, str | None]] = []
    for pin in pins:
        name, exact, wanted = pin.partition("==")
        if not exact:
            continue  # a range (azure-functions>=1.18,<2): whatever it resolves to is right
        got = versions.get(normalise(name))
        if got != wanted:
            drift.append({"package": name, "backtest": wanted, "bundled": got})
    return drift


def pip_install_for_lambda(
    pins: list[str],
    target: Path,
    python: str,
    *,
    allow_drift: bool = False,
    platforms: tuple[str, ...] | None = None,
) -> tuple[dict[str, str], list[dict[str, str | None]]]:
    """Install exactly `pins` as wheels for the deploy platform into `target`.

    Returns (installed versions, version drift). Exact pins are the default: a pin with no
    wheel for the platform (numpy >= 2.3 ships manylinux_2_28 wheels only, which Amazon
    Linux 2 cannot load) raises MissingWheels. Only with `allow_drift` do the pins become
    upper bounds (``name<=version``), pip picking the newest versions that have such
    wheels, and the drift is returned for the build to print and record.
    """
    platforms = platforms or LAMBDA_PLATFORMS[python]
    where = f"Python {python}, {PLATFORM_NAMES.get(platforms, platforms[-1])}"
    base = ["install", "--quiet", "--no-compile", "--only-binary=:all:", "--target", str(target)]
    base += ["--implementation", "cp", "--python-version", python]
    for tag in platforms:
        base += ["--platform", tag]
    target.parent.mkdir(parents=True, exist_ok=True)
    requirements = target.parent / "requirements.lambda-input.txt"
    requirements.write_text("\n".join(pins) + "\n")
    done = _pip([*base, "-r", str(requirements)])
    if done.returncode != 0:
        missing = _NO_MATCH.findall(done.stderr)
        if not missing and "Could not find a version" not in done.stderr:
            raise BundleError(
                f"pip could not install the module's requirements ({where}):\n{_tail(done.stderr)}"
            )
        if not allow_drift:
            raise MissingWheels(
                f"{', '.join(missing) or 'a pin'} has no wheel for {where}: the bundle would "
                "ship other versions than the backtest ran"
            )
        shutil.rmtree(target, ignore_errors=True)
        relaxed = [p.replace("==", "<=") for p in pins]
        requirements.write_text("\n".join(relaxed) + "\n")
        done = _pip([*base, "-r", str(requirements)])
        if done.returncode != 0:
            raise BundleError(
                f"pip could not install the module's requirements ({where}) even with the "
                f"pins as upper bounds:\n{_tail(done.stderr)}"
            )
    requirements.unlink()
    versions = _installed_versions(target)
    return versions, version_drift(pins, versions)


def drift_lines(drift: list[dict[str, str | None]]) -> list[str]:
    return [f"{d['package']} {d['backtest']} -> {d['bundled'] or 'missing'}" for d in drift]


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.splitlines() if "is ignored" not in line]
    return "\n".join(kept[-lines:])


# -- trim --------------------------------------------------------------------------------------


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def _count(path: Path) -> int:
    return 1 if not path.is_dir() else sum(1 for p in path.rglob("*") if not p.is_dir())


def _remove(path: Path, reason: str, report: TrimReport) -> None:
    if not path.exists() and not path.is_symlink():
        return
    report.add(reason, _size(path), _count(path))
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _record_paths(dist_info: Path) -> list[Path]:
    record = dist_info / "RECORD"
    if not record.is_file():
        return []
    root = dist_info.parent
    with record.open(newline="") as handle:
        return [(root / row[0]).resolve() for row in csv.reader(handle) if row]


def drop_distribution(target: Path, name: str, reason: str, report: TrimReport) -> bool:
    wanted = normalise(name)
    for info in target.glob("*.dist-info"):
        if normalise(info.name[: -len(".dist-info")].rpartition("-")[0]) != wanted:
            continue
        root = target.resolve()
        tops = set()
        for path in _record_paths(info):
            if root not in path.parents:
                continue  # e.g. ../../bin/script
            tops.add(path.relative_to(root).parts[0])
            if path.is_file():
                _remove(path, reason, report)
        for top in tops:  # empty package folders left behind
            folder = root / top
            if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
                shutil.rmtree(folder)
        if info.exists():
            _remove(info, reason, report)
        return True
    return False


def _elf_needed(path: Path) -> set[str]:
    readelf = shutil.which("readelf")
    if readelf is None:
        return set()
    done = subprocess.run([readelf, "-d", str(path)], capture_output=True, text=True)
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", done.stdout))


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def _elves(target: Path) -> list[Path]:
    return [p for p in target.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)]


def drop_duplicate_libraries(target: Path, report: TrimReport) -> None:
    """Remove `libx.so*` files identical to a sibling when nothing NEEDs them by that name."""
    if shutil.which("readelf") is None:
        return
    elves = _elves(target)
    needed: set[str] = set()
    for elf in elves:
        needed |= _elf_needed(elf)
    groups: dict[tuple[Path, int, str], list[Path]] = defaultdict(list)
    for elf in elves:
        if elf.name.startswith("lib") and _SONAME.search(elf.name):
            digest = hashlib.sha256(elf.read_bytes()).hexdigest()
            groups[(elf.parent, elf.stat().st_size, digest)].append(elf)
    for copies in groups.values():
        if len(copies) < 2:
            continue
        used = [p for p in copies if p.name in needed]
        if not used:
            continue
        for copy in copies:
            if copy not in used:
                _remove(copy, DUPLICATE_LIBS, report)


LOAD_CHECK = r"""
import ctypes, json, sys
ok = []
for path in json.loads(sys.stdin.read()):
    try:
        ctypes.CDLL(path)
    except OSError:
        continue
    ok.append(path)
print(json.dumps(ok))
"""


def loadable(paths: list[Path]) -> set[Path]:
    """The shared libraries of `paths` that dlopen accepts (in a separate process)."""
    if not paths:
        return set()
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", LOAD_CHECK],
        input=json.dumps([str(p) for p in paths]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        return set()
    return {Path(p) for p in json.loads(done.stdout)}


def strip_libraries(target: Path, report: TrimReport) -> bool:
    """strip --strip-unneeded every shared library that still loads afterwards."""
    strip = shutil.which("strip")
    if strip is None:
        return False
    candidates = sorted(p for p in target.rglob("*.so*") if p in set(_elves(target)))
    before_ok = loadable(candidates)
    backup = Path(tempfile.mkdtemp(prefix="tradeship-strip-"))
    try:
        stripped: dict[Path, tuple[Path, int]] = {}
        for index, path in enumerate(candidates):
            if path not in before_ok:
                continue
            size, mode = path.stat().st_size, stat.S_IMODE(path.stat().st_mode)
            saved = backup / str(index)
            shutil.copy2(path, saved)
            done = subprocess.run([strip, "--strip-unneeded", str(path)], capture_output=True)
            os.chmod(path, mode)
            if done.returncode != 0 or path.stat().st_size >= size:
                shutil.copy2(saved, path)
                continue
            stripped[path] = (saved, size)
        after_ok = loadable(list(stripped))
        for path, (saved, size) in stripped.items():
            if path in after_ok:
                report.add(STRIPPED, size - path.stat().st_size)
            else:
                shutil.copy2(saved, path)  # stripping broke it: put it back
    finally:
        shutil.rmtree(backup, ignore_errors=True)
    return True


def trim(target: Path) -> TrimReport:
    report = TrimReport()
    for name, reason in DROP_DISTRIBUTIONS.items():
        drop_distribution(target, name, reason, report)
    planned = [
        (path, reason)
        for pattern, reason in DROP_GLOBS.items()
        for path in sorted(target.glob(pattern))
    ]
    doomed = {f for path, _ in planned for f in ([path] if path.is_file() else path.rglob("*"))}
    needed = set()
    for elf in _elves(target):
        if elf not in doomed:
            needed |= _elf_needed(elf)
    for path, reason in planned:
        if path.is_file() and path.name in needed:
            continue  # a kept library links it
        _remove(path, reason, report)
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts)):
        if not path.exists() and not path.is_symlink():
            continue
        if path.is_dir() and path.name in DROP_DIR_NAMES and path.parent != target:
            _remove(path, DROP_DIR_NAMES[path.name], report)
        elif path.is_file() and path.suffix in DROP_SUFFIXES:
            _remove(path, DROP_SUFFIXES[path.suffix], report)
    drop_duplicate_libraries(target, report)
    strip_libraries(target, report)
    return report


# -- measure -----------------------------------------------------------------------------------


def sizes_by_package(target: Path) -> dict[str, int]:
    """Bytes per distribution (files its RECORD lists that are still there); files of no
    distribution (the bundle's own) under their top-level name."""
    root = target.resolve()
    owner: dict[Path, str] = {}
    for info in sorted(target.glob("*.dist-info")):
        name = info.name[: -len(".dist-info")].rpartition("-")[0]
        for path in _record_paths(info):
            owner[path] = normalise(name)
        for path in info.rglob("*"):
            owner[path.resolve()] = normalise(name)
    sizes: dict[str, int] = defaultdict(int)
    for path in target.rglob("*"):
        if path.is_file():
            resolved = path.resolve()
            name = owner.get(resolved) or resolved.relative_to(root).parts[0]
            sizes[name] += path.stat().st_size
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def size_table(sizes: dict[str, int], top: int = 15) -> list[str]:
    total = sum(sizes.values())
    lines = [f"  {size / MB:7.1f} MB  {name}" for name, size in list(sizes.items())[:top]]
    rest = list(sizes.values())[top:]
    if rest:
        lines.append(f"  {sum(rest) / MB:7.1f} MB  {len(rest)} more")
    lines.append(f"  {total / MB:7.1f} MB  total unzipped")
    return lines


# -- zip ---------------------------------------------------------------------------------------

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(source: Path, archive: Path) -> tuple[int, int]:
    """A deterministic zip of `source` (sorted, fixed times, 0644/0755 modes kept, which
    Lambda needs for the Prophet model binary). Returns (zipped bytes, unzipped bytes)."""
    unzipped = 0
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as out:
        for path in sorted(source.rglob("*")):
            if path.is_dir() or path.is_symlink():
                continue
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), ZIP_EPOCH)
            executable = path.stat().st_mode & 0o111
            info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            out.writestr(info, data, compresslevel=6)
    return archive.stat().st_size, unzipped


def unzipped_size(archive: Path) -> int:
    with zipfile.ZipFile(archive) as zipped:
        return sum(i.file_size for i in zipped.infolist())


def extract_like_lambda(archive: Path, dest: Path) -> Path:
    """Unzip keeping the Unix modes (zipfile.extractall drops them; Lambda keeps them)."""
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            path = Path(zipped.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)
    return dest


# -- smoke check -------------------------------------------------------------------------------

SMOKE = r"""
import sys
sys.path.insert(0, sys.argv[1])
import logging, tempfile, os
import bundle_runtime
strategy = bundle_runtime.load_strategy()
import importlib, importlib.util
import numpy as np, pandas as pd
for name in ("yfinance", "alpaca.trading.client", "exchange_calendars", "pydantic_settings",
             "cmdstanpy", "backtrader"):
    if importlib.util.find_spec(name.split(".")[0]) is not None:  # what the module pins
        importlib.import_module(name)
from prophet import Prophet
days = pd.bdate_range("2024-01-01", periods=80)
frame = pd.DataFrame({"ds": days, "y": np.linspace(10.0, 20.0, 80) + np.sin(np.arange(80))})
model = Prophet(weekly_seasonality=False, yearly_seasonality=False, daily_seasonality=False,
                uncertainty_samples=0)
model.fit(frame)
yhat = float(model.predict(pd.DataFrame({"ds": [days[-1] + pd.Timedelta(days=7)]}))["yhat"][0])
assert np.isfinite(yhat), yhat
if sys.argv[2] == "pyarrow":
    import pyarrow as pa, pyarrow.parquet as pq, pyarrow.dataset
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "t.parquet")
    pq.write_table(pa.table({"symbol": ["A", "B"], "close": [1.0, 2.0]}), path)
    assert pq.read_table(path, filters=[("symbol", "in", ["B"])]).num_rows == 1
schedule = strategy.Schedule.parse(strategy.SCHEDULE)
assert schedule.fire_times("2025-03-10", "2025-03-10")
print(f"smoke ok: prophet {sys.modules['prophet'].__version__} fit yhat={yhat:.3f}")
"""


def smoke_check(folder: Path, python: str, *, pyarrow: bool = True) -> str:
    """Import what a run imports and fit Prophet from `folder` alone, under the target's own
    Python (python -I -S); skipped, and said so, where this machine has no such Python."""
    try:
        executable = require_python(python, "the smoke check")
    except BundleError as exc:
        return f"smoke check skipped: {exc}"
    flag = "pyarrow" if pyarrow else "-"
    done = subprocess.run(
        [str(executable), "-I", "-S", "-B", "-c", SMOKE, str(folder), flag],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder.parent,
    )
    if done.returncode != 0:
        raise BundleError(
            "the trimmed Lambda package does not work (imports or a Prophet fit failed under "
            f"python{python} -I -S):\n{_tail(done.stderr + done.stdout, 25)}"
        )
    return done.stdout.strip().splitlines()[-1] + f" (python{python} -I -S)"

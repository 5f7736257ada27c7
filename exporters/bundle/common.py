"""What every bundle shares: reading the exported module, its requirements, the files every
target copies, the manifest, and the output folder."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from exporters.compiler import PROJECT_PACKAGES
from live.schedule import Schedule

MODULE_NAME = "exported_strategy"  # the module's file name inside every bundle
RUNTIME_NAME = "bundle_runtime"
MANIFEST = "bundle.json"
FILES_DIR = Path(__file__).resolve().parent / "files"
RUNTIME_SOURCE = Path(__file__).resolve().parent / "runtime.py"
# Python versions each target's platform runs. Lambda: python3.11 on Amazon Linux 2 (glibc
# 2.26), python3.12/3.13 on Amazon Linux 2023; Azure Functions Linux workers; python:X-slim.
TARGET_PYTHONS = {
    "lambda": ("3.11", "3.12", "3.13"),
    "azure": ("3.11", "3.12"),
    "container": ("3.11", "3.12", "3.13"),
}
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
# Azure and the container install the exact pins (pip fails rather than drift): the newest
# Python each runs that has wheels of every pin.
DEFAULT_PYTHON = {"azure": "3.12", "container": "3.12"}
# Lambda: the newest runtime whose platform loads every pinned wheel (tried in this order).
AUTO = "auto"
# Installed by the AWS Lambda Python runtime (and only there); an S3 journal imports boto3
# lazily, so Azure and the container install it from the pins.
AWS_RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
# marketdata's reader of `parquet:PATH` sources: the one pyarrow user a module whose source is
# not Parquet never calls. Any other pyarrow import (a Parquet cache) keeps pyarrow bundled.
PARQUET_SOURCE_READER = "read_parquet_source"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)\s*$")


class BundleError(ValueError):
    """The bundle cannot be built as asked; the message says what to change."""


@dataclass(frozen=True)
class ExportedModule:
    """An exported module, read without importing it (the bundler need not run it)."""

    path: Path
    text: str
    strategy_name: str
    strategy_id: str
    schedule: str
    default_source: str
    symbols: tuple[str, ...]
    requirements: tuple[str, ...]
    fill: str = "open"  # the module's FILL constant (when it has one): how its orders fill

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def requirement_names(self) -> set[str]:
        return {normalise(r.split("==")[0]) for r in self.requirements}

    def pyarrow_users(self) -> list[str]:
        """Functions of the module that import pyarrow (inlined or embedded source alike)."""
        users, current = [], "<module>"
        for line in self.text.splitlines():
            defined = _DEF.match(line)
            if defined:
                current = defined.group(1)
            elif _PYARROW_IMPORT.match(line) and current not in users:
                users.append(current)
        return users

    def needs_pyarrow(self) -> tuple[bool, str]:
        """Whether a run needs pyarrow, and why: its source is Parquet, or its code (a Parquet
        cache) imports it elsewhere than the Parquet source reader."""
        if self.default_source.startswith("parquet:"):
            return True, f"the module's source is {self.default_source}"
        others = [u for u in self.pyarrow_users() if u != PARQUET_SOURCE_READER]
        if others:
            return True, f"the module imports it in {', '.join(others)} (e.g. a Parquet cache)"
        return False, f"its source {self.default_source!r} and its caches do not read Parquet"

    def requirements_for(self, target: str) -> list[str]:
        """The pins a target installs: all of them, less what the Lambda runtime provides
        (Lambda only: Azure and containers have no boto3) and pyarrow when no run needs it."""
        drop = set(AWS_RUNTIME_PROVIDED) if target == "lambda" else set()
        if not self.needs_pyarrow()[0]:
            drop.add("pyarrow")
        return [p for p in self.requirements if normalise(p.split("==")[0]) not in drop]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)\s*\(")
_PYARROW_IMPORT = re.compile(r"^\s*(?:import\s+pyarrow|from\s+pyarrow[\s.])")


def _optional_constant(tree: ast.Module, name: str, default: str) -> str:
    try:
        return str(_constant(tree, name))
    except BundleError:
        return default


def _constant(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                break
    raise BundleError(f"the module defines no literal {name}: is it a `tradeship export` file?")


def _requirements_beside(path: Path, text: str) -> tuple[str, ...]:
    """requirements.txt beside the module, else the pins listed in the module's header."""
    beside = path.parent / "requirements.txt"
    lines = beside.read_text().splitlines() if beside.is_file() else []
    if not lines:
        header = text.split('"""', 2)[-1][:6000]
        lines = [line[1:].strip() for line in header.splitlines() if line.startswith("#   ")]
    pins = []
    for line in lines:
        if not line.strip() or line.strip().startswith("#"):
            continue
        if not _REQUIREMENT.match(line):
            raise BundleError(
                f"{beside}: every requirement must be pinned as name==version: {line!r}"
            )
        pins.append(line.strip())
    if not pins:
        raise BundleError(
            f"no requirements found for {path}: export it again with tradeship export"
        )
    return tuple(pins)


def project_imports(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in PROJECT_PACKAGES]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in PROJECT_PACKAGES:
                found.append(node.module)
    return found


def embedded_modules(tree: ast.Module) -> set[str]:
    """Module names an export carries itself (``_EMBEDDED['live.runtime'] = ...``)."""
    names = set()
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id == "_EMBEDDED"
                and isinstance(target.slice, ast.Constant)
            ):
                names.add(str(target.slice.value))
    return names


def read_module(path: str | Path, requirements: tuple[str, ...] | None = None) -> ExportedModule:
    """The module at `path`, its pins read beside it (or the given `requirements`)."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no exported module at {path}: write one with tradeship export")
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    embedded = embedded_modules(tree)
    imported = [name for name in project_imports(tree) if name not in embedded]
    if imported:
        raise BundleError(
            f"{path} imports {imported[0]} from the tradeship project: bundle the standalone "
            "file that `tradeship export` writes"
        )
    schedule = str(_constant(tree, "SCHEDULE"))
    try:
        Schedule.parse(schedule)
    except ValueError as exc:
        raise BundleError(f"{path}: SCHEDULE {exc}") from None
    for needed in ("run", "decide"):
        if not any(isinstance(n, ast.FunctionDef) and n.name == needed for n in tree.body):
            raise BundleError(f"{path} has no {needed}: export it again with tradeship export")
    return ExportedModule(
        path=path,
        text=text,
        strategy_name=str(_constant(tree, "STRATEGY_NAME")),
        strategy_id=str(_constant(tree, "STRATEGY_ID")),
        schedule=schedule,
        default_source=str(_constant(tree, "DEFAULT_SOURCE")),
        symbols=tuple(_constant(tree, "SYMBOLS")),
        requirements=requirements or _requirements_beside(path, text),
        fill=_optional_constant(tree, "FILL", "open"),
    )


def check_python(version: str | None, target: str = "lambda") -> str:
    """The target's Python: a version it runs, or AUTO (Lambda only: the newest runtime
    whose platform loads every pinned wheel, chosen while installing)."""
    if version is None or version == AUTO:
        return AUTO if target == "lambda" else DEFAULT_PYTHON[target]
    version = version.removeprefix("python")
    choices = TARGET_PYTHONS.get(target, SUPPORTED_PYTHONS)
    if version not in choices:
        raise BundleError(
            f"--python {version}: the {target} target runs {', '.join(choices)} "
            "(the exported module needs Python >= 3.11)"
        )
    return version


def prepare_out(out: str | Path) -> Path:
    """An empty output folder: new, empty, or a previous bundle (replaced whole)."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise BundleError(f"--out {out} is a file; name a folder")
        if any(out.iterdir()):
            if not (out / MANIFEST).is_file():
                raise BundleError(
                    f"--out {out} is not empty and holds no previous bundle ({MANIFEST}); "
                    "name a new or empty folder"
                )
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def copy_common(module: ExportedModule, dest: Path) -> list[Path]:
    """The exported module and the runtime, under the names the entry points import."""
    dest.mkdir(parents=True, exist_ok=True)
    written = [dest / f"{MODULE_NAME}.py", dest / f"{RUNTIME_NAME}.py"]
    written[0].write_bytes(module.text.encode("utf-8"))
    shutil.copyfile(RUNTIME_SOURCE, written[1])
    return written


def copy_entry(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copyfile(FILES_DIR / name, target)
    return target


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


@dataclass
class BundleResult:
    """What `build_bundle` made: the folder, its files, and figures worth printing."""

    target: str
    out: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    def write_manifest(self) -> Path:
        path = self.out / MANIFEST
        path.write_text(json.dumps(self.manifest, indent=2, sort_keys=True) + "\n")
        if path not in self.files:
            self.files.append(path)
        return path


def base_manifest(module: ExportedModule, target: str, python: str, rendered: dict) -> dict:
    from exporters.export import tradeship_version

    return {
        "target": target,
        "python": python,
        "strategy": module.strategy_name,
        "strategy_id": module.strategy_id,
        "module_sha256": module.sha256,
        "module_file": f"{MODULE_NAME}.py",
        "default_source": module.default_source,
        "schedule": rendered,
        "tradeship_version": tradeship_version(),
        "host_python": ".".join(map(str, sys.version_info[:3])),
    }

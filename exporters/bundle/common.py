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
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
# Installed by the AWS Lambda Python runtime; an S3 journal imports boto3 lazily.
AWS_RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
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

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def requirement_names(self) -> set[str]:
        return {normalise(r.split("==")[0]) for r in self.requirements}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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


def read_module(path: str | Path) -> ExportedModule:
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no exported module at {path}: write one with tradeship export")
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    imported = project_imports(tree)
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
    for needed in ("run", "decide", "RunError", "Schedule", "LiveSettings"):
        if not any(
            isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == needed for n in tree.body
        ):
            raise BundleError(f"{path} has no {needed}: export it again with tradeship export")
    return ExportedModule(
        path=path,
        text=text,
        strategy_name=str(_constant(tree, "STRATEGY_NAME")),
        strategy_id=str(_constant(tree, "STRATEGY_ID")),
        schedule=schedule,
        default_source=str(_constant(tree, "DEFAULT_SOURCE")),
        symbols=tuple(_constant(tree, "SYMBOLS")),
        requirements=_requirements_beside(path, text),
    )


def check_python(version: str) -> str:
    version = version.removeprefix("python")
    if version not in SUPPORTED_PYTHONS:
        raise BundleError(
            f"--python {version}: choose one of {', '.join(SUPPORTED_PYTHONS)} "
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

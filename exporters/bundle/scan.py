"""Checks every bundle passes before it is written: no secret, nothing of the project.

Secrets: every text file the bundle holds is matched against exporters/secrets.py's value
patterns, and every file (text or binary) is searched for the current values of
APCA_API_KEY_ID and APCA_API_SECRET_KEY when they are set. The files tradeship writes get
every pattern; third-party packages vendored into a Lambda zip get every pattern but the
``secret = ...``-style assignment one, which matches ordinary library code (``token =
next(tokens)``) in dozens of files of any scientific Python install.

Project: no ``strategies/``, ``marketdata/``, ``live/``, ``backtests/``, ``exporters/`` or
``tradeship/`` package (nor a same-named module or a tradeship dist-info) may be in a
bundle; the exported module, which inlines what it needs, is the only project code.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from exporters.compiler import PROJECT_PACKAGES
from exporters.secrets import SECRET_VALUE_PATTERNS

ASSIGNMENT_PATTERN = 3  # index of the `secret = value` pattern in SECRET_VALUE_PATTERNS
STRONG_PATTERNS = tuple(p for i, p in enumerate(SECRET_VALUE_PATTERNS) if i != ASSIGNMENT_PATTERN)
CREDENTIAL_ENV = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")
MIN_ENV_VALUE = 8  # shorter env values would match by chance
_DIST_INFO = re.compile(r"^tradeship-[^/]*\.(?:dist|egg)-info$", re.IGNORECASE)


@dataclass
class ScanReport:
    files: int = 0
    text_files: int = 0
    secrets: list[str] = field(default_factory=list)
    project: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.secrets and not self.project

    def problems(self) -> list[str]:
        return [f"secret? {s}" for s in self.secrets] + [f"project code: {p}" for p in self.project]


def env_credential_values(environ: dict | None = None) -> dict[str, bytes]:
    environ = os.environ if environ is None else environ
    values = {}
    for name in CREDENTIAL_ENV:
        value = (environ.get(name) or "").strip()
        if len(value) >= MIN_ENV_VALUE:
            values[name] = value.encode("utf-8")
    return values


def _as_text(data: bytes) -> str | None:
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _walk(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(root).as_posix()
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    for info in archive.infolist():
                        if not info.is_dir():
                            yield f"{rel}!{info.filename}", archive.read(info)
            else:
                yield rel, path.read_bytes()


def project_paths(names: Iterable[str]) -> list[str]:
    """Paths whose top-level entry (of the bundle, or of a zip in it, i.e. of sys.path) is a
    project package or module, or tradeship's dist-info. Third-party packages may well have
    submodules called `live` or `strategies` (yfinance.live): those are not ours."""
    found = set()
    for name in names:
        top = name.split("!", 1)[-1].split("/")[0]
        stem = top[:-3] if top.endswith(".py") else top
        if stem in PROJECT_PACKAGES or _DIST_INFO.match(top):
            found.add(name)
    return sorted(found)


def scan_bundle(
    root: str | Path,
    *,
    vendored: Iterable[str] = (),
    environ: dict | None = None,
) -> ScanReport:
    """Scan every file under `root` (and inside its zips).

    `vendored` names the top-level entries of third-party code (inside a zip: its member
    paths' first component) that get the strong patterns only.
    """
    vendored = set(vendored)
    env_values = env_credential_values(environ)
    report = ScanReport()
    names = []
    for name, data in _walk(Path(root)):
        report.files += 1
        names.append(name)
        for env_name, value in env_values.items():
            if value in data:
                report.secrets.append(f"{name}: contains the value of ${env_name}")
        text = _as_text(data)
        if text is None:
            continue
        report.text_files += 1
        top = name.split("!", 1)[1].split("/")[0] if "!" in name else ""
        patterns = STRONG_PATTERNS if top in vendored else SECRET_VALUE_PATTERNS
        for pattern in patterns:
            if pattern.search(text):
                report.secrets.append(f"{name}: matches a credential pattern ({pattern.pattern})")
                break
    report.project = project_paths(names)
    return report

"""Finding the interpreter of a deploy target's Python version on the build machine.

A bundle is smoke-tested and certified by the target's own Python (3.12 for an Amazon Linux
2023 Lambda runtime, say), not by the Python tradeship runs on. Development machines and CI
have the versions side by side through pyenv, so the search is: this interpreter if it is
that version, ``pythonX.Y`` on PATH, then ``$PYENV_ROOT/versions/X.Y.*`` (newest patch).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from exporters.bundle.common import BundleError

_PATCH = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_PRINT_VERSION = "import sys; print(*sys.version_info[:3], sep='.')"


def interpreter_version(executable: str | Path) -> str | None:
    """'X.Y.Z' of `executable`, or None if it does not run (a pyenv shim of another version)."""
    try:
        done = subprocess.run(
            [str(executable), "-I", "-S", "-c", _PRINT_VERSION],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _pyenv_candidates(version: str) -> list[Path]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for folder in root.glob(f"{version}.*"):
        match = _PATCH.match(folder.name)
        if match and (folder / "bin" / f"python{version}").is_file():
            found.append((int(match.group(3)), folder / "bin" / f"python{version}"))
    return [path for _, path in sorted(found, reverse=True)]


def find_python(version: str) -> Path | None:
    """An interpreter of Python `version` ('3.12') on this machine, or None."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return Path(sys.executable)
    candidates = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    candidates += _pyenv_candidates(version)
    for candidate in candidates:
        found = interpreter_version(candidate)
        if found and found.rsplit(".", 1)[0] == version:
            return candidate
    return None


def require_python(version: str, why: str) -> Path:
    """find_python, or a BundleError saying how to get that interpreter."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise BundleError(
            f"{why} needs linux/x86_64 (the deploy platform); this machine is "
            f"{sys.platform}/{platform.machine()}: run it in CI or a Linux container"
        )
    found = find_python(version)
    if found is None:
        raise BundleError(
            f"{why} needs Python {version} on this machine: install it (pyenv install {version}) "
            f"or put python{version} on PATH"
        )
    return found

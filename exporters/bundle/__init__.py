"""Deploy bundles of an exported strategy module: AWS Lambda, Azure Functions, a container.

    from exporters.bundle import build_bundle
    build_bundle("lambda", "build/strategy.py", "build/lambda")

Every bundle holds the exported module (as ``exported_strategy.py``), the scheduling runtime
(``bundle_runtime.py``, from exporters/bundle/runtime.py), the target's entry point and its
deployment files, all generated from the module's one ``SCHEDULE``. Nothing else of
tradeship goes in, and nothing that looks like a credential (see exporters/bundle/scan.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from exporters.bundle.common import (
    MANIFEST,
    BundleError,
    BundleResult,
    check_python,
    prepare_out,
    read_module,
)
from exporters.bundle.verify import VerifySpec

TARGETS = ("lambda", "azure", "container")

__all__ = ["TARGETS", "BundleError", "BundleResult", "VerifySpec", "build_bundle"]


def build_bundle(
    target: str,
    module_path: str | Path,
    out: str | Path,
    *,
    python: str | None = None,
    late_after: int = 600,
    verify: VerifySpec | None = None,
    forecaster: Any = None,
    log=print,
    **options,
) -> BundleResult:
    """Build the `target` bundle of the exported module at `module_path` into `out`, and with
    `verify` certify it (exporters/bundle/verify.py: the bundle's own interpreter replays the
    backtest; mismatches refuse the bundle unless `verify.force`).

    `python` None: Lambda's newest runtime loading every pinned wheel, Azure's and the
    container's DEFAULT_PYTHON. Options: lambda — max_unzipped_mb, memory, timeout,
    allow_version_drift, smoke; azure — clock ("new-york" or "utc").
    """
    if target not in TARGETS:
        raise BundleError(f"--target {target}: choose one of {', '.join(TARGETS)}")
    python = check_python(python, target)
    if late_after < 0:
        raise BundleError("--late-after must not be negative")
    module = read_module(module_path)
    out = prepare_out(out)
    if target == "lambda":
        from exporters.bundle.lambda_target import build_lambda as build
    elif target == "azure":
        from exporters.bundle.azure_target import build_azure as build
    else:
        from exporters.bundle.container_target import build_container as build
    try:
        result = build(module, out, python=python, late_after=late_after, log=log, **options)
    except BaseException:
        # leave no half-built bundle behind (it would pass for a finished one), except what
        # a builder finished on purpose and described in its manifest (a Lambda zip over
        # the limit leaves its container-image alternative)
        if not (out / MANIFEST).is_file():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True, exist_ok=True)
        raise
    if verify is not None:
        from exporters.bundle.verify import certify_bundle

        certificate = certify_bundle(out, verify, forecaster=forecaster, log=log)
        result.manifest = json.loads((out / MANIFEST).read_text())
        result.notes.append(f"certificate: {certificate['result']}")
        if certificate["forced"] and certificate["mismatches"]:
            result.notes.append("shipped with mismatches: --force is recorded in bundle.json")
    return result

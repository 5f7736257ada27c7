"""The parity certificate: a bundle built with the defaults ships the backtest's exact
versions, and its own interpreter (the Lambda runtime's Python, -I -S, only the unzipped
function.zip on the path) replays every backtest decision identically; a bundle whose
forecasts differ is caught, refused, and shipped only with --force, which is recorded.

Slow: each builds a real Lambda zip (pip from PyPI, once per run, shared with
test_bundle_deploy_runs) and replays years of decisions with real Prophet fits.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from shared_data import SP500_PARQUET, needs_parquet
from test_bundle_support import built_once, export_module, shared_root

from exporters.bundle import BundleError, VerifySpec, build_bundle
from exporters.bundle.common import normalise
from exporters.bundle.verify import certify_bundle
from exporters.export import build_export, write_export

pytestmark = pytest.mark.slow

# Prophet.predict shifted up 5%: what a Prophet version whose forecasts differ would do.
FORECAST_CHANGE = """

_tradeship_test_predict = Prophet.predict


def _shifted_predict(self, *args, **kwargs):
    frame = _tradeship_test_predict(self, *args, **kwargs)
    frame["yhat"] = frame["yhat"] * 1.05
    return frame


Prophet.predict = _shifted_predict
"""


# 20 large S&P 500 members throughout 2019-2021 (the shared data ends 2021-04-21)
SP20 = "AAPL CSCO CVX HD INTC JNJ JPM KO MA MRK MSFT ORCL PEP PG UNH V WMT XOM AMZN GOOGL".split()


def quiet(*_args) -> None:
    pass


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def module_path(tmp_path_factory):
    return export_module(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def lambda_bundle(tmp_path_factory, module_path) -> Path:
    """Built with the defaults, once per test run (test_bundle_deploy_runs shares it)."""

    def build(folder):
        build_bundle("lambda", module_path, folder / "bundle", log=quiet)

    return built_once(shared_root(tmp_path_factory), "lambda-bundle", build) / "bundle"


def copy_bundle(bundle: Path, dest: Path) -> Path:
    """A private copy: certifying rewrites bundle.json, refusing deletes files."""
    return Path(shutil.copytree(bundle, dest, ignore=shutil.ignore_patterns("DONE")))


def change_forecasts(bundle: Path) -> None:
    """Rewrite function.zip with prophet/__init__.py shifting every forecast."""
    archive = bundle / "function.zip"
    changed = archive.with_suffix(".new")
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(changed, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "prophet/__init__.py":
                data += FORECAST_CHANGE.encode()
            out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    changed.replace(archive)


def test_default_bundle_has_no_drift_and_a_clean_certificate(lambda_bundle, tmp_path):
    manifest = json.loads((lambda_bundle / "bundle.json").read_text())
    assert manifest["runtime"] in ("python3.12", "python3.13")  # Amazon Linux 2023
    assert manifest["version_drift"] == [] and manifest["allow_version_drift"] is False
    pinned = dict(p.split("==") for p in manifest["pins"])
    held = dict(r.split("==") for r in manifest["requirements"])
    assert pinned and all(held[normalise(name)] == v for name, v in pinned.items())

    bundle = copy_bundle(lambda_bundle, tmp_path / "bundle")
    spec = VerifySpec(source="demo", start="2024-01-02", end="2024-12-31")
    certificate = certify_bundle(bundle, spec, log=print)
    print(json.dumps({k: certificate[k] for k in ("result", "python", "flags", "data")}))
    assert certificate["mismatches"] == 0 and certificate["rebalances"] >= 45
    assert certificate["result"] == f"rebalances={certificate['rebalances']} mismatches=0"
    assert certificate["accepted"] is True and certificate["forced"] is False
    assert certificate["python"].startswith(manifest["python"] + ".")
    assert certificate["flags"] == "-I -S" and certificate["sys_path"] == ["function.zip"]
    assert certificate["version_drift"] == {}
    assert {k: certificate["versions"][k] for k in certificate["backtest_versions"]} == (
        certificate["backtest_versions"]
    )
    assert certificate["zip_sha256"] == sha256(bundle / "function.zip")
    assert certificate["module_sha256"] == sha256(bundle / "exported_strategy.py")
    assert certificate["fill"] == "open"
    assert certificate["data"]["source"] == "demo" and certificate["data"]["symbols"] == 20
    assert json.loads((bundle / "bundle.json").read_text())["certificate"] == certificate


def test_a_forecast_change_is_caught_and_refused_unless_forced(lambda_bundle, tmp_path):
    spec = VerifySpec(source="demo", start="2024-01-02", end="2024-03-28")
    bundle = copy_bundle(lambda_bundle, tmp_path / "changed")
    change_forecasts(bundle)
    with pytest.raises(BundleError, match=r"decides differently .*mismatches=[1-9]"):
        certify_bundle(bundle, spec, log=quiet)
    assert [p.name for p in bundle.iterdir()] == ["bundle.json"]  # nothing deployable left
    refused = json.loads((bundle / "bundle.json").read_text())["certificate"]
    assert refused["mismatches"] > 0 and refused["accepted"] is False
    assert refused["mismatch_lines"] and "bundle=" in refused["mismatch_lines"][0]

    forced = copy_bundle(lambda_bundle, tmp_path / "forced")
    change_forecasts(forced)
    certificate = certify_bundle(forced, VerifySpec(**{**spec.__dict__, "force": True}), log=quiet)
    assert certificate["forced"] is True and certificate["accepted"] is True
    assert certificate["mismatches"] == refused["mismatches"]
    assert certificate["zip_sha256"] == sha256(forced / "function.zip")
    assert certificate["zip_sha256"] != sha256(lambda_bundle / "function.zip")


@needs_parquet
def test_shared_sp500_two_years_certificate(tmp_path):
    """Real prices, the default strategy settings but a 20-symbol universe, two years."""
    source = f"parquet:{SP500_PARQUET}"
    _, compiled = build_export("prophet_momentum", {"top_n": 5}, SP20, default_source=source)
    module, _ = write_export(compiled, tmp_path / "export" / "strategy.py")
    result = build_bundle(
        "lambda",
        module,
        tmp_path / "bundle",
        verify=VerifySpec(source=source, start="2019-04-01", end="2021-03-31"),
        log=print,
    )
    certificate = result.manifest["certificate"]
    print(json.dumps({k: certificate[k] for k in ("result", "python", "flags", "data")}))
    assert result.manifest["version_drift"] == []
    assert certificate["mismatches"] == 0 and certificate["rebalances"] >= 90
    assert certificate["flags"] == "-I -S" and certificate["version_drift"] == {}
    assert result.manifest["pyarrow"]["bundled"] is True  # a Parquet source


@pytest.mark.parametrize("target", ["container", "azure"])
def test_container_and_azure_certificates(module_path, tmp_path, target):
    """The container's requirements.txt in a fresh venv of its Python; Azure's app folder with
    the .python_packages a --no-build publish ships."""
    spec = VerifySpec(source="demo", start="2024-01-02", end="2024-03-28")
    out = tmp_path / target
    result = build_bundle(target, module_path, out, verify=spec, log=quiet)
    certificate = result.manifest["certificate"]
    assert certificate["mismatches"] == 0 and certificate["rebalances"] >= 10
    assert certificate["python"].startswith("3.12.") and certificate["flags"] == "-I -S"
    assert certificate["version_drift"] == {}
    assert "zip_sha256" not in certificate
    if target == "azure":
        assert certificate["sys_path"] == [".", ".python_packages/lib/site-packages"]
        assert (out / ".python_packages/lib/site-packages/prophet").is_dir()
        assert (out / ".python_packages/lib/site-packages/boto3").is_dir()  # s3:// journal
    else:
        assert certificate["sys_path"] == [".", "venv: requirements.txt"]

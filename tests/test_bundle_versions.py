"""The bundle ships the backtest's exact versions: runtime choice, refused drift, recorded
drift, which requirements each target installs (boto3, pyarrow), and finding the target's
own interpreter.

The pip install itself is faked in the fast tests (it is the network edge); the slow test
asks PyPI for real whether numpy's pin has an Amazon Linux 2 wheel.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_bundle_support import PARAMS, SYMBOLS, export_module

from exporters.bundle import BundleError, build_bundle, packaging
from exporters.bundle.common import AUTO, check_python, normalise, read_module
from exporters.bundle.lambda_target import install_exact
from exporters.bundle.pythons import find_python, interpreter_version
from exporters.export import build_export, write_export


def quiet(*_args) -> None:
    pass


@pytest.fixture(scope="module")
def module_path(tmp_path_factory):
    return export_module(tmp_path_factory.mktemp("export"))


def fake_pip(available: dict[str, dict[str, str]]):
    """pip_install_for_lambda against an index where each Python has `available` versions:
    exact pins it lacks are MissingWheels, or with allow_drift the version it has."""
    calls: list[str] = []

    def install(pins, target, python, allow_drift=False, platforms=None):
        calls.append(python)
        have = available[python]
        missing = [p for p in pins if have.get(p.split("==")[0]) != p.split("==")[1]]
        if missing and not allow_drift:
            raise packaging.MissingWheels(f"{', '.join(missing)} has no wheel for {python}")
        target.mkdir(parents=True, exist_ok=True)
        versions = {normalise(p.split("==")[0]): have[p.split("==")[0]] for p in pins}
        return versions, packaging.version_drift(pins, versions)

    return install, calls


PINS = ["numpy==2.4.6", "prophet==1.5.0"]
INDEX = {
    "3.13": {"numpy": "2.4.6", "prophet": "1.4.0"},  # prophet 1.5.0 not yet built for 3.13
    "3.12": {"numpy": "2.4.6", "prophet": "1.5.0"},
    "3.11": {"numpy": "2.2.6", "prophet": "1.3.0"},  # Amazon Linux 2: glibc 2.26
}


def test_auto_takes_the_newest_runtime_with_every_exact_pin(tmp_path, monkeypatch):
    install, calls = fake_pip(INDEX)
    monkeypatch.setattr(packaging, "pip_install_for_lambda", install)
    python, versions, drift = install_exact(
        PINS, tmp_path / "p", AUTO, allow_drift=False, log=quiet
    )
    assert calls == ["3.13", "3.12"]
    assert python == "3.12" and versions == {"numpy": "2.4.6", "prophet": "1.5.0"}
    assert drift == []


def test_python_311_needs_allow_version_drift_and_records_it(tmp_path, monkeypatch):
    install, _ = fake_pip(INDEX)
    monkeypatch.setattr(packaging, "pip_install_for_lambda", install)
    with pytest.raises(BundleError, match=r"--allow-version-drift") as refused:
        install_exact(PINS, tmp_path / "p", "3.11", allow_drift=False, log=quiet)
    assert "python 3.12 or 3.13" in str(refused.value)
    python, _, drift = install_exact(PINS, tmp_path / "q", "3.11", allow_drift=True, log=quiet)
    assert python == "3.11"
    assert drift == [
        {"package": "numpy", "backtest": "2.4.6", "bundled": "2.2.6"},
        {"package": "prophet", "backtest": "1.5.0", "bundled": "1.3.0"},
    ]
    assert packaging.drift_lines(drift) == ["numpy 2.4.6 -> 2.2.6", "prophet 1.5.0 -> 1.3.0"]


def test_no_runtime_with_every_pin_is_refused(tmp_path, monkeypatch):
    install, calls = fake_pip({"3.13": INDEX["3.11"], "3.12": INDEX["3.11"]})
    monkeypatch.setattr(packaging, "pip_install_for_lambda", install)
    with pytest.raises(BundleError, match="export with versions that have wheels"):
        install_exact(PINS, tmp_path / "p", AUTO, allow_drift=False, log=quiet)
    assert calls == ["3.13", "3.12"]


def test_a_drifted_lambda_build_prints_and_records_each_difference(
    module_path, tmp_path, monkeypatch
):
    pins = read_module(module_path).requirements_for("lambda")
    old = {p.split("==")[0]: p.split("==")[1] for p in pins}
    index = {"3.11": {**old, "numpy": "2.2.6", "prophet": "1.3.0"}}
    install, _ = fake_pip(index)
    monkeypatch.setattr(packaging, "pip_install_for_lambda", install)
    lines: list[str] = []
    with pytest.raises(BundleError, match="allow-version-drift"):
        build_bundle("lambda", module_path, tmp_path / "refused", python="3.11", log=quiet)
    result = build_bundle(
        "lambda",
        module_path,
        tmp_path / "drifted",
        python="3.11",
        allow_version_drift=True,
        smoke=False,
        log=lines.append,
    )
    manifest = json.loads((tmp_path / "drifted/bundle.json").read_text())
    assert manifest["runtime"] == "python3.11" and manifest["allow_version_drift"] is True
    assert {d["package"]: d["bundled"] for d in manifest["version_drift"]} == {
        "numpy": "2.2.6",
        "prophet": "1.3.0",
    }
    assert f"VERSION DRIFT: numpy {old['numpy']} -> 2.2.6 (the backtest ran the first)" in lines
    assert result.manifest == manifest


def test_check_python_defaults_per_target():
    assert check_python(None, "lambda") == AUTO
    assert check_python(None, "azure") == "3.12"
    assert check_python(None, "container") == "3.12"
    assert check_python("python3.11", "lambda") == "3.11"
    with pytest.raises(BundleError, match="azure target runs 3.11, 3.12"):
        check_python("3.13", "azure")


YFINANCE_PARQUET_CACHE = """
def read_parquet_source(path):
    import pyarrow.parquet as pq
    return pq.read_table(path)

def _yahoo_read_cache(path):
    import pyarrow.parquet as pq
    return pq.read_table(path)
"""
PARQUET_READER_ONLY = """
def read_parquet_source(path):
    import pyarrow.parquet as pq
    return pq.read_table(path)

def _yahoo_read_cache(path):
    import json
    return json.loads(path.read_text())
"""


def test_pyarrow_is_bundled_only_when_a_source_or_cache_reads_parquet(module_path, tmp_path):
    module = read_module(module_path)
    pins = set(module.requirements)
    cases = [
        ("yfinance", YFINANCE_PARQUET_CACHE, True),
        ("yfinance", PARQUET_READER_ONLY, False),
        ("csv:/data", PARQUET_READER_ONLY, False),
        ("parquet:/data/sp.parquet", PARQUET_READER_ONLY, True),
    ]
    for source, text, needed in cases:
        variant = replace(module, default_source=source, text=text)
        assert variant.needs_pyarrow()[0] is needed, (source, text)
        for target in ("lambda", "azure", "container"):
            kept = set(variant.requirements_for(target))
            assert any(p.startswith("pyarrow==") for p in kept) is needed
            assert any(p.startswith("boto3==") for p in kept) is (target != "lambda")
            assert kept <= pins
    # real exports carry only their source's readers; yfinance keeps its Parquet cache, so
    # pyarrow stays, and the bundle says why
    _, compiled = build_export("prophet_momentum", PARAMS, SYMBOLS, default_source="yfinance")
    path, _ = write_export(compiled, tmp_path / "yfinance" / "strategy.py")
    needed, why = read_module(path).needs_pyarrow()
    assert needed and "_yahoo" in why


def test_version_drift_ignores_ranges():
    pins = ["numpy==2.4.6", "azure-functions>=1.18,<2", "pandas==3.1.1"]
    versions = {"numpy": "2.4.6", "azure-functions": "1.21.0"}
    assert packaging.version_drift(pins, versions) == [
        {"package": "pandas", "backtest": "3.1.1", "bundled": None}
    ]


def test_find_python_returns_an_interpreter_of_that_version():
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert find_python(here) == Path(sys.executable)
    for version in ("3.12", "3.13"):
        found = find_python(version)
        if found is None:
            continue  # not installed on this machine: require_python says how to get it
        assert interpreter_version(found).startswith(version + ".")
    assert find_python("2.0") is None


@pytest.mark.slow
def test_pypi_has_no_amazon_linux_2_wheel_of_the_pinned_numpy(module_path, tmp_path):
    """The real index: the backtest's numpy cannot be installed for python3.11's platform."""
    pin = next(p for p in read_module(module_path).requirements if p.startswith("numpy=="))
    with pytest.raises(packaging.MissingWheels, match="numpy=="):
        packaging.pip_install_for_lambda([pin], tmp_path / "target", "3.11")


def test_cli_refuses_force_without_verify_and_a_python_azure_lacks(module_path, tmp_path, capsys):
    import tradeship.cli as cli

    base = ["bundle", "--module", str(module_path), "--out", str(tmp_path / "out")]
    assert cli.main([*base, "--target", "container", "--force"]) == 2
    assert "--force only applies with --verify" in capsys.readouterr().err
    assert cli.main([*base, "--target", "azure", "--python", "3.13"]) == 2
    assert "the azure target runs 3.11, 3.12" in capsys.readouterr().err
    assert cli.main([*base, "--target", "container", "--allow-version-drift"]) == 0
    out = capsys.readouterr().out
    assert "--allow-version-drift changes nothing for --target container" in out

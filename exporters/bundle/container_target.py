"""`tradeship bundle --target container`: a Docker image that trades on the schedule.

Files written to --out (the build context):

    Dockerfile                python:<version>-slim, non-root, logs unbuffered to stdout
    entrypoint.py             the schedule loop (default) or one run (--once)
    requirements.txt          the module's pinned requirements
    kubernetes/cronjob.yaml   a CronJob per cron line (timeZone: America/New_York) running
                              `--once`, plus the journal's PersistentVolumeClaim
    exported_strategy.py, bundle_runtime.py, .dockerignore, bundle.json
"""

from __future__ import annotations

import re
from pathlib import Path

from exporters.bundle.common import (
    MODULE_NAME,
    RUNTIME_NAME,
    BundleError,
    BundleResult,
    ExportedModule,
    base_manifest,
    copy_common,
    copy_entry,
    write_text,
)
from exporters.bundle.scan import scan_bundle
from exporters.bundle.schedules import describe, render

UID = 10001


def image_name(module: ExportedModule) -> str:
    return "tradeship-" + re.sub(r"[^a-z0-9-]+", "-", module.strategy_name.lower()).strip("-")


def render_dockerfile(python: str) -> str:
    return f"""\
# tradeship strategy container: runs on its schedule (New York time) or once (--once).
FROM python:{python}-slim-bookworm

ENV PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    TRADESHIP_JOURNAL=sqlite:/data/journal.sqlite \\
    TRADESHIP_CACHE_DIR=/data/cache \\
    XDG_CACHE_HOME=/data/cache

WORKDIR /app
COPY requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir -r /app/requirements.txt \\
    && useradd --uid {UID} --create-home --shell /usr/sbin/nologin tradeship \\
    && mkdir -p /data \\
    && chown tradeship /data

COPY {MODULE_NAME}.py {RUNTIME_NAME}.py entrypoint.py /app/

USER {UID}
VOLUME ["/data"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "/app/entrypoint.py"]
"""


def render_cronjobs(module: ExportedModule, expressions: tuple[str, ...], late_after: int) -> str:
    name = image_name(module)
    docs = []
    for index, expression in enumerate(expressions):
        docs.append(
            f"""\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}-{index}
  labels:
    app.kubernetes.io/name: tradeship
    app.kubernetes.io/instance: {name}
spec:
  # {describe(module.schedule)}; NYSE holidays and early closes are skipped by the runtime
  schedule: "{expression}"
  timeZone: America/New_York
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: {late_after}
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 5
  jobTemplate:
    spec:
      backoffLimit: 1
      activeDeadlineSeconds: 1800
      template:
        metadata:
          labels:
            app.kubernetes.io/name: tradeship
            app.kubernetes.io/instance: {name}
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 120
          securityContext:
            runAsNonRoot: true
            runAsUser: {UID}
            fsGroup: {UID}
          containers:
            - name: tradeship
              image: REGISTRY/{name}:TAG
              args: ["--once"]
              envFrom:
                - secretRef:
                    name: tradeship-alpaca
              env:
                - name: APCA_API_BASE_URL
                  value: https://paper-api.alpaca.markets
                - name: TRADESHIP_SOURCE
                  value: "{module.default_source}"
                - name: TRADESHIP_LATE_AFTER_SECONDS
                  value: "{late_after}"
              resources:
                requests:
                  cpu: "1"
                  memory: 1Gi
                limits:
                  memory: 2Gi
              volumeMounts:
                - name: data
                  mountPath: /data
          volumes:
            - name: data
              persistentVolumeClaim:
                claimName: {name}-data
"""
        )
    docs.append(
        f"""\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}-data
  labels:
    app.kubernetes.io/name: tradeship
    app.kubernetes.io/instance: {name}
spec:
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 1Gi
"""
    )
    return "---\n".join(docs)


DOCKERIGNORE = """\
bundle.json
kubernetes/
**/__pycache__
"""


def build_container(
    module: ExportedModule,
    out: Path,
    *,
    python: str,
    late_after: int = 600,
    log=print,
) -> BundleResult:
    result = BundleResult("container", out)
    rendered = render(module.schedule)
    result.files += copy_common(module, out)
    result.files.append(copy_entry("entrypoint.py", out))
    pins = module.requirements_for("container")
    result.files.append(write_text(out / "requirements.txt", "\n".join(pins) + "\n"))
    result.files.append(write_text(out / "Dockerfile", render_dockerfile(python)))
    result.files.append(write_text(out / ".dockerignore", DOCKERIGNORE))
    result.files.append(
        write_text(
            out / "kubernetes" / "cronjob.yaml",
            render_cronjobs(module, rendered.kubernetes, late_after),
        )
    )
    scan = scan_bundle(out)
    if not scan.ok:
        raise BundleError("the bundle failed its checks:\n" + "\n".join(scan.problems()))
    result.manifest = {
        **base_manifest(module, "container", python, rendered.as_dict()),
        "image": image_name(module),
        "entrypoint": ["python", "/app/entrypoint.py"],
        "cronjob_schedules": list(rendered.kubernetes),
        "late_after_s": late_after,
        "requirements": pins,
        "pins": pins,
        "pyarrow": dict(zip(("bundled", "why"), module.needs_pyarrow(), strict=True)),
        "scanned_files": scan.files,
    }
    result.write_manifest()
    for expression in rendered.kubernetes:
        log(f"CronJob: {expression}  (timeZone: America/New_York)")
    return result

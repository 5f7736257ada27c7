"""Lambda zip sizes by package: the old default (python3.11 with version drift) against the
new default (the newest Amazon Linux 2023 runtime, exact pins), measured in one run.

    python benchmarks/bundle_sizes.py [--module build/strategy.py] [--out /tmp/bundle-sizes]

Without --module it exports prophet_momentum (default parameters) for 20 symbols on the
demo source. Prints the unzipped MB per package for both builds, the totals, the version
drift of each, and what pyarrow weighs (bundled only when a source or cache reads Parquet).
Needs PyPI (pip downloads the Lambda wheels).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from exporters.bundle import build_bundle
from exporters.export import build_export, write_export

MB = 1e6
SYMBOLS = [f"SYN{i:03d}" for i in range(20)]


def export(folder: Path) -> Path:
    _, compiled = build_export("prophet_momentum", {}, SYMBOLS, default_source="demo")
    return write_export(compiled, folder / "strategy.py")[0]


def build(module: Path, out: Path, **options) -> dict:
    build_bundle("lambda", module, out, log=lambda *_: None, **options)
    return json.loads((out / "bundle.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bundle-sizes-"))
    module = args.module or export(out / "export")
    runs = {
        "python3.11+drift (old default)": build(
            module, out / "py311", python="3.11", allow_version_drift=True
        ),
        "auto (new default)": build(module, out / "auto"),
    }
    sizes = {label: dict(m["sizes_by_package"]) for label, m in runs.items()}
    names = sorted(
        {n for s in sizes.values() for n in s},
        key=lambda n: -max(s.get(n, 0) for s in sizes.values()),
    )
    labels = list(runs)
    print(f"{'package':24s}" + "".join(f"{label:>34s}" for label in labels))
    for name in names[:12]:
        row = "".join(f"{sizes[label].get(name, 0) / MB:31.1f} MB" for label in labels)
        print(f"{name:24s}{row}")
    totals = {label: runs[label]["unzipped_bytes"] for label in labels}
    print(f"{'total unzipped':24s}" + "".join(f"{totals[lb] / MB:31.1f} MB" for lb in labels))
    for label in labels:
        manifest = runs[label]
        drift = [
            f"{d['package']} {d['backtest']}->{d['bundled']}" for d in manifest["version_drift"]
        ]
        print(f"{label}: runtime={manifest['runtime']} drift={drift or 'none'}")
    new = runs["auto (new default)"]
    pyarrow = dict(new["sizes_by_package"]).get("pyarrow", 0)
    print(
        f"pyarrow_bundled={new['pyarrow']['bundled']} ({new['pyarrow']['why']}); "
        f"auto_unzipped_mb={totals[labels[1]] / MB:.1f} "
        f"without_pyarrow_mb={(totals[labels[1]] - pyarrow) / MB:.1f} "
        f"ratio_auto_vs_py311={totals[labels[1]] / totals[labels[0]]:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

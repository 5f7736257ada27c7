"""Results on disk: one row per point, rewritten atomically, so a sweep resumes."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.sweep.worker import RUN_INFO_COLUMNS, SweepTask
from backtests.sweep_common import scalar

RESULTS_FILE = "results.parquet"
META_FILE = "sweep.json"


class ResultStore:
    """The rows of a results file, keyed by point, rewritten atomically on every change."""

    def __init__(self, path: Path, sort_columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.sort_columns = list(sort_columns)
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            frame = pd.read_parquet(self.path)
            for record in frame.to_dict("records"):
                row = {k: scalar(v) for k, v in record.items()}
                if row.get("error") is not None and not isinstance(row["error"], str):
                    row["error"] = None  # NaN read back from an all-null column
                self.rows[str(row["point"])] = row

    def finished(self, key: str, retry_errors: bool = False) -> bool:
        row = self.rows.get(key)
        if row is None:
            return False
        return not (retry_errors and isinstance(row.get("error"), str))

    def add(self, row: dict[str, Any]) -> None:
        self.rows[str(row["point"])] = row
        self.write()

    def frame(self, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """The rows (only those of `keys` when given), sorted, columns in a fixed order."""
        rows = list(self.rows.values()) if keys is None else [
            self.rows[k] for k in keys if k in self.rows
        ]  # fmt: skip
        return results_frame(rows, self.sort_columns)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.frame().to_parquet(tmp, index=False)
            os.replace(tmp, self.path)
        except BaseException:
            with suppress(OSError):
                tmp.unlink()
            raise


def results_frame(rows: Sequence[Mapping[str, Any]], sort_columns: Sequence[str]) -> pd.DataFrame:
    """Rows sorted by `sort_columns`; columns: point, those, metrics (sorted), bookkeeping."""
    sort_columns = list(sort_columns)
    ordered = sorted(rows, key=lambda r: tuple(scalar(r.get(c)) for c in sort_columns))
    present: set[str] = set()
    for row in ordered:
        present.update(row)
    lead = ["point", *sort_columns]
    tail = ["error", *RUN_INFO_COLUMNS]
    middle = sorted(present - set(lead) - set(tail))
    columns = lead + middle + tail
    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in ordered], columns=columns)
    for column in ("error", "run_id", "worker", "point"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


@dataclass
class RunOutcome:
    """What one `run_tasks` call did."""

    frame: pd.DataFrame  # the rows of the tasks asked for (finished ones), sorted
    ran: int  # points run by this call
    skipped: int  # points already in the results, not run again
    failed: int  # points of `frame` with an error
    total: int  # points asked for
    interrupted: bool
    seconds: float
    path: Path

    @property
    def missing(self) -> int:
        return self.total - len(self.frame)


def run_tasks(
    tasks: Sequence[SweepTask],
    path: str | Path,
    *,
    sort_columns: Sequence[str],
    runner: Any,
    progress: bool = False,
    retry_errors: bool = False,
    label: str = "sweep",
) -> RunOutcome:
    """Run the tasks not yet in the results file at `path`, recording each as it finishes."""
    started = time.perf_counter()
    store = ResultStore(Path(path), sort_columns)
    todo = [t for t in tasks if not store.finished(t.key, retry_errors)]
    ran = failed_now = 0
    interrupted = False
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=label, unit="point", file=sys.stderr, leave=False)
    try:
        for _, row in runner.run(todo):
            store.add(row)
            ran += 1
            failed_now += isinstance(row.get("error"), str)
            if bar is not None:
                bar.update(1)
                if failed_now:
                    bar.set_postfix_str(f"{failed_now} failed", refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    frame = store.frame([t.key for t in tasks])
    failed = int(frame["error"].notna().sum()) if len(frame) else 0
    return RunOutcome(
        frame=frame,
        ran=ran,
        skipped=len(tasks) - len(todo),
        failed=failed,
        total=len(tasks),
        interrupted=interrupted,
        seconds=time.perf_counter() - started,
        path=store.path,
    )


def check_meta(path: Path, identity: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Refuse to resume into a folder holding results of a different sweep; record ours."""
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8")).get("identity", {})
        except (OSError, ValueError):
            old = None
        if old is not None and old != json.loads(json.dumps(identity, default=str)):
            changed = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            raise ValueError(
                f"{path.parent} holds results of a different sweep ({', '.join(changed)} "
                "changed): use another --out, or delete the folder to start over"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"identity": identity, **record}, indent=2, sort_keys=True, default=str)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)

"""Reader for one long Parquet table (the layout of ../shared/data/sp500_daily.parquet).

Columns: ``symbol, date, open, high, low, close, adjusted_close, volume`` and
optionally ``split_coefficient`` (used to split-adjust volume) and
``dividend_amount`` (ignored: already in ``adjusted_close``). Only the needed
columns and symbols are read (pyarrow filters), so 100 symbols out of the
2.4M-row file load in well under a second.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from marketdata.errors import DataError

PARQUET_REQUIRED = ("symbol", "date", "open", "high", "low", "close", "adjusted_close", "volume")
PARQUET_RENAME = {"adjusted_close": "adj_close", "split_coefficient": "split"}


def read_parquet_source(
    path: Path, symbols: list[str] | None
) -> tuple[dict[str, tuple[pd.DataFrame, str]], dict[str, str]]:
    """Return (symbol -> (raw bars indexed by date, origin), problems).

    Raises ``DataError`` if the file itself is unusable (unreadable, wrong columns).
    Symbols not in the file are simply absent; the caller reports them.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read Parquet file {path}: {exc}") from exc
    missing = [c for c in PARQUET_REQUIRED if c not in schema.names]
    if missing:
        raise DataError(
            f"Parquet file {path} lacks column(s) {', '.join(missing)}; expected the layout "
            f"{', '.join(PARQUET_REQUIRED)}, split_coefficient"
        )
    columns = list(PARQUET_REQUIRED)
    if "split_coefficient" in schema.names:
        columns.append("split_coefficient")
    filters = [("symbol", "in", list(symbols))] if symbols is not None else None
    try:
        table = pq.read_table(path, columns=columns, filters=filters)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read Parquet file {path}: {exc}") from exc

    df = table.to_pandas().rename(columns=PARQUET_RENAME)
    problems: dict[str, str] = {}
    no_symbol = df["symbol"].isna()
    if no_symbol.any():
        problems[path.name] = f"{path.name}: {int(no_symbol.sum())} row(s) without a symbol ignored"
        df = df.loc[~no_symbol]
    value_cols = [c for c in df.columns if c not in ("symbol", "date")]
    out: dict[str, tuple[pd.DataFrame, str]] = {}
    for sym, group in df.groupby("symbol", sort=True):
        frame = group[value_cols]
        frame.index = pd.Index(group["date"].to_numpy())
        out[str(sym)] = (frame, path.name)
    return out, problems

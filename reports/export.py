"""`motiongrid export RUN_DIR --format csv|parquet`: the store's cells as one flat table.

One row per cell, columns as ``Store.dataframe()`` (metrics by name, ``time.<stage>``, params as
JSON) plus ``param.<name>`` columns so a sweep can be filtered without parsing JSON, and
``metric_errors`` as JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from motiongrid.reports.data import open_store
from motiongrid.reports.defaults import FORMATS


def export_frame(run_dir: str | Path) -> pd.DataFrame:
    with open_store(run_dir) as store:
        frame = store.dataframe()
        rows = store.rows()
    if frame.empty:
        return frame
    # Store.dataframe() and rows() share the ORDER BY, so rows line up with frame rows.
    names = sorted({k for r in rows for k in r["params"]})
    for name in names:
        values = [r["params"].get(name) for r in rows]
        frame[f"param.{name}"] = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in values]
    frame["metric_errors"] = [json.dumps(r["metric_errors"], sort_keys=True) for r in rows]
    return _uniform_columns(frame)


def _uniform_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: an object column mixing kinds (a param that is a
    number for one method and a string for another) becomes strings; int+float stays numeric."""
    for col in frame.columns:
        if frame[col].dtype != object:
            continue
        kinds = {type(v) for v in frame[col] if v is not None and not (isinstance(v, float) and v != v)}
        if kinds <= {int, float}:
            if kinds:
                frame[col] = pd.to_numeric(frame[col])
        elif len(kinds) > 1:
            frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    return frame


def export(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    frame = export_frame(run_dir)
    dest = Path(out) if out else Path(run_dir) / f"results.{fmt}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(dest, index=False)
    else:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError("--format parquet needs pyarrow: pip install 'motiongrid[parquet]'") from None
        frame.to_parquet(dest, index=False)
    return dest

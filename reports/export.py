"""`motiongrid export RUN_DIR`: the store's cells as one flat table (``--format csv|parquet``),
one self-describing JSON (``--to json``) or a Hugging Face dataset folder (``--to hf-dataset``).

One row per cell, columns as ``Store.dataframe()`` (metrics by name, ``time.<stage>``, params as
JSON) plus ``param.<name>`` columns so a sweep can be filtered without parsing JSON, and
``metric_errors`` as JSON. Every target carries the same rows; docs/exports.md describes them.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from motiongrid.bench.errors import UserError
from motiongrid.reports.data import RunDirError, load_run, open_store
from motiongrid.reports.defaults import FORMATS
from motiongrid.reports.formatting import md_code_block, template_env

JSON_SCHEMA = "motiongrid.run-export"
JSON_SCHEMA_VERSION = 1


class MissingExtra(UserError, ImportError):
    """An export target whose optional dependency is not installed; the message has the fix."""


def require(module: str, extra: str, target: str):
    """Import ``module`` or fail with the one command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"--to {target} needs {module.split('.')[0]}: pip install 'motiongrid[{extra}]'") from None


def store_digest(run_dir: str | Path) -> str:
    """Identity of the store's content (every cell and set-level row, not the file's bytes, which
    SQLite may rewrite): exporters tag with it so exporting the same run twice is a no-op."""
    with open_store(run_dir) as store:
        content = {"cells": store.rows(), "set": store.set_rows()}
    for r in content["cells"] + content["set"]:
        r.pop("finished_at", None)  # when a row was written is not what it holds
    text = json.dumps(content, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


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


def _json_value(v):
    """JSON has no NaN/Infinity: a missing value (NaN in the frame) is null, an infinite one (the
    PSNR of identical frames when uncapped) the string "Infinity" / "-Infinity"."""
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
    if hasattr(v, "item"):  # numpy scalars
        return _json_value(v.item())
    return v


def _column_kinds(frame: pd.DataFrame, data) -> dict[str, dict]:
    data_metrics = data.run.get("metrics") or {}
    kinds = {}
    for col in frame.columns:
        base = col.split(".", 1)[0]
        if col in data.diagnostic_keys:  # sample counts, "unstable" flags: describe, not score
            kinds[col] = {"kind": "diagnostic", "metric": base}
        elif col.startswith("param."):
            kinds[col] = {"kind": "param"}
        elif col.startswith("time.") or col == "peak_memory_mb":
            kinds[col] = {"kind": "resource", "unit": "s" if col.startswith("time.") else "MB",
                          "higher_is_better": False}
        elif col in data_metrics or base in data_metrics:
            m = data_metrics.get(col) or data_metrics[base]
            kinds[col] = {"kind": "metric", "metric": col if col in data_metrics else base,
                          "higher_is_better": m.get("higher_is_better")}
        else:
            kinds[col] = {"kind": "cell"}
    return kinds


def export_document(run_dir: str | Path) -> dict:
    """The JSON export: run.json, one record per cell (the parquet rows), set-level values."""
    data = load_run(run_dir)
    frame = export_frame(run_dir)
    rows = [{k: _json_value(v) for k, v in rec.items()} for rec in frame.to_dict(orient="records")]
    return {
        "schema": JSON_SCHEMA,
        "schema_version": JSON_SCHEMA_VERSION,
        "run_name": data.name,
        "store_digest": store_digest(run_dir),
        "columns": _column_kinds(frame, data),
        "rows": rows,
        "set_metrics": [{k: v for k, v in r.items() if k != "finished_at"} for r in data.set_rows],
        "run": data.run,
    }


def write_json(run_dir: str | Path, out: str | Path | None = None) -> Path:
    dest = Path(out) if out else Path(run_dir) / "results.json"
    doc = export_document(run_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(_finite(doc), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return dest


def _finite(value):
    """run.json and set results may hold inf/nan too: the same strings as the rows."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _json_value(value)
    return value


def write_hf_dataset(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """A folder ``datasets.load_dataset(DIR)`` loads: data/cells.parquet (the export rows) and a
    README.md dataset card whose YAML header declares the split, with the config, metric
    conventions and provenance in its text. ``huggingface-cli upload`` publishes it as-is."""
    require("pyarrow", "hf", "hf-dataset")

    data = load_run(run_dir)
    if not data.rows:
        raise RunDirError(f"{run_dir}: results.sqlite has no cells yet (nothing to export)")
    dest = Path(out) if out else Path(run_dir) / "hf-dataset"
    (dest / "data").mkdir(parents=True, exist_ok=True)
    frame = export_frame(run_dir)
    frame.to_parquet(dest / "data" / "cells.parquet", index=False)
    card = template_env(markdown=True).get_template("dataset_card.md.j2").render(**_card_context(data, frame, run_dir))
    (dest / "README.md").write_text(card, encoding="utf-8")
    return dest


def _card_context(data, frame: pd.DataFrame, run_dir) -> dict:
    run = data.run
    metrics = [{"name": n, "arrow": i.arrow, "description": i.description, "reference": i.reference or "",
                "available": i.available, "reason": i.reason or "",
                "preprocessing": json.dumps(i.preprocessing, sort_keys=True) if i.preprocessing else ""}
               for n, i in data.info.items()]
    return {
        "run_name": data.name,
        "n_rows": len(frame),
        "labels": data.labels,
        "metrics": metrics,
        "columns": list(frame.columns),
        "facts": [(k, str(run.get(k))) for k in ("motiongrid_version", "git_sha", "git_dirty", "started_at",
                                                  "finished_at", "device", "config_path") if run.get(k) is not None],
        "clip_set": (run.get("clip_set") or {}).get("name") or "",
        "config": md_code_block(json.dumps(run.get("config"), indent=2, sort_keys=True, default=str), "json")
        if run.get("config") else "",
        "pretty_name": Markup(json.dumps(f"motiongrid run {data.name}")),  # JSON is valid YAML
        "store_digest": store_digest(run_dir),
    }


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

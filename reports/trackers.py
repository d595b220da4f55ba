"""`motiongrid export RUN_DIR --to mlflow|tensorboard`: a run pushed into an experiment tracker.

Both read what every report reads (the store and run.json, through ``load_run``), use the
report's per-label means (``aggregate``), and tag what they write with the store's digest, so
exporting the same run twice writes nothing the second time. docs/exports.md shows the result.
"""
from __future__ import annotations

import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from motiongrid.bench.errors import UserError
from motiongrid.reports.aggregate import aggregate, cell_counts
from motiongrid.reports.data import RunData, RunDirError, load_run
from motiongrid.reports.export import export_frame, require, store_digest
from motiongrid.reports.previews import Tile, preview_gif

DIGEST_TAG = "motiongrid.store_digest"
LABEL_TAG = "motiongrid.label"
DEFAULT_VIDEOS = 3          # preview videos per label
MAX_TAG = 5000              # MLflow's limit on a tag value (characters)
TB_MARKER = "motiongrid-export.json"


@dataclass
class ExportSummary:
    where: str
    written: list[str] = field(default_factory=list)   # labels exported now
    skipped: list[str] = field(default_factory=list)   # labels already there with this digest
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.where}: {len(self.written)} label(s) written"
               + (f", {len(self.skipped)} already exported with this store digest (unchanged)" if self.skipped else "")]
        return out + [f"  note: {n}" for n in self.notes]


def _load(run_dir) -> RunData:
    data = load_run(run_dir)
    if not data.rows:
        raise RunDirError(f"{run_dir}: results.sqlite has no cells yet (nothing to export)")
    return data


def label_values(data: RunData) -> dict[str, dict[str, float]]:
    """{label: {name: value}}: the report's per-cell means, set-level values under ``set.``,
    and cell counts. Non-finite values (the inf PSNR of a copy) are left out: trackers reject them."""
    keys = data.metric_keys + data.resource_keys()
    out: dict[str, dict[str, float]] = {lb: {} for lb in data.labels}
    for r in aggregate(data.rows, keys).itertuples():
        if r.n and math.isfinite(r.mean):
            out[r.label][r.metric] = float(r.mean)
    for c in cell_counts(data.rows).itertuples():
        out[c.label].update({"cells.ok": float(c.ok), "cells.failed": float(c.failed)})
    for s in data.set_rows:
        if s["error"] is None:
            for k, v in s["result"].items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    out[s["label"]][f"set.{k}"] = float(v)
    return out


def _params(data: RunData, label: str) -> dict[str, str]:
    m = data.methods_by_label().get(label) or {}
    params = {"method": str(m.get("method", "")), "task": str(m.get("task", ""))}
    for k, v in (m.get("params") or {}).items():
        params[k] = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return params


def _tags(data: RunData, label: str, digest: str) -> dict[str, str]:
    run = data.run
    tags = {DIGEST_TAG: digest, LABEL_TAG: label, "motiongrid.run_name": data.name,
            "mlflow.runName": label,
            "git_sha": str(run.get("git_sha") or "unknown") + (" (dirty)" if run.get("git_dirty") else ""),
            "config": str(run.get("config_path") or (run.get("config") or {}).get("name") or ""),
            "device": str(run.get("device") or ""),
            "clip_set": str((run.get("clip_set") or {}).get("name") or "")}
    for name, info in data.info.items():
        if info.preprocessing:
            tags[f"preprocessing.{name}"] = json.dumps(info.preprocessing, sort_keys=True)
    return {k: v[:MAX_TAG] for k, v in tags.items()}


def _label_rows(data: RunData, label: str):
    frame = export_frame(data.path)
    return frame[frame["label"] == label].reset_index(drop=True)


def _videos(data: RunData, label: str, n: int) -> list[Path]:
    paths = []
    for r in data.rows:
        if r["label"] == label and r["status"] == "ok" and (p := data.artifact(r)) and p.exists():
            paths.append(p)
    return paths[:n]


# ---- MLflow -------------------------------------------------------------------------------

def to_mlflow(run_dir, tracking_uri: str | None = None, experiment: str | None = None,
              videos: int = DEFAULT_VIDEOS) -> ExportSummary:
    """One MLflow run per label: params = the label's method params, metrics = per-cell means,
    set-level values and cell counts, tags = provenance and the store digest; artifacts = the
    per-cell rows as an MLflow table (cells.json), the report (when written) and a few videos."""
    require("mlflow", "mlflow", "mlflow")
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    data = _load(run_dir)
    digest = store_digest(run_dir)
    client = MlflowClient(tracking_uri=tracking_uri)
    _check_reachable(client.tracking_uri)
    name = experiment or f"motiongrid/{data.name}"
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(name)
    done = {r.data.tags.get(LABEL_TAG) for r in client.search_runs(
        [exp_id], filter_string=f"tags.`{DIGEST_TAG}` = '{digest}'", max_results=10000)}
    summary = ExportSummary(f"MLflow experiment {name!r} at {client.tracking_uri}")
    values = label_values(data)
    report = data.path / "report"
    if not (report / "report.html").exists():
        summary.notes.append(f"no report to attach (write it with: motiongrid report {data.path})")
    now = int(time.time() * 1000)
    for label in data.labels:
        if label in done:
            summary.skipped.append(label)
            continue
        run = client.create_run(exp_id, run_name=label, tags=_tags(data, label, digest))
        rid = run.info.run_id
        client.log_batch(rid, metrics=[Metric(k, v, now, 0) for k, v in values[label].items()],
                         params=[Param(k, v[:6000]) for k, v in _params(data, label).items()],
                         tags=[RunTag("motiongrid.cells", str(sum(r["label"] == label for r in data.rows)))])
        client.log_table(rid, data=_label_rows(data, label), artifact_file="cells.json")
        if (report / "report.html").exists():
            client.log_artifacts(rid, str(report), artifact_path="report")
        for p in _videos(data, label, videos):
            client.log_artifact(rid, str(p), artifact_path="videos")
        client.set_terminated(rid)
        summary.written.append(label)
    return summary


def _check_reachable(uri: str) -> None:
    """MLflow retries an unreachable server for minutes; one quick probe fails at once instead."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10).close()
    except urllib.error.HTTPError:
        pass  # it answered: a proxy or an auth layer, MLflow's own errors say more
    except (urllib.error.URLError, OSError) as exc:
        raise TrackerError(f"--tracking-uri {uri}: no MLflow server answers there "
                           f"({getattr(exc, 'reason', exc)}); start one with: mlflow server --host 127.0.0.1") from None


class TrackerError(UserError, RuntimeError):
    """A tracker that cannot be reached or written; the message names it."""


# ---- TensorBoard --------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9=.,_-]+", "_", text).strip("_")[:80] or "label"


def _md_table(frame) -> str:
    """The label's cells as a Markdown table (TensorBoard's text plugin renders Markdown)."""
    cols = ["clip_id", "seed", "status", "reason"] + [c for c in frame.columns if c not in (
        "key", "method", "label", "params", "clip_id", "clip_hash", "seed", "status", "reason", "memory_kind",
        "artifact", "notes", "finished_at", "metric_errors") and not c.startswith("param.")]

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame[cols].itertuples(index=False)]
    return "\n".join(lines)


def to_tensorboard(run_dir, out: str | Path, videos: int = 1) -> ExportSummary:
    """A TensorBoard log dir with one run (sub-folder) per label: scalars (the values of
    ``label_values``, step 0), the cell table as text, and animated previews as images.
    ``add_video`` would need moviepy; it writes an animated-GIF image summary, which is what
    this writes from the report's own GIF encoder."""
    require("tensorboard", "tensorboard", "tensorboard")
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import SummaryWriter

    data = _load(run_dir)
    digest = store_digest(run_dir)
    out = Path(out)
    marker = out / TB_MARKER
    summary = ExportSummary(f"TensorBoard log dir {out}")
    if marker.exists():
        if json.loads(marker.read_text()).get(DIGEST_TAG) == digest:
            summary.skipped = list(data.labels)
            return summary
        raise RunDirError(f"{out}: holds an export of another store content; export into an empty folder")
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"{out}: not empty; export into a new folder so runs do not mix")
    values = label_values(data)
    slugs: dict[str, str] = {}
    for label in data.labels:
        slug = _slug(label)
        while slug in slugs.values():
            slug += "_"
        slugs[label] = slug
        with SummaryWriter(log_dir=str(out / slug)) as w:
            for k, v in values[label].items():
                w.add_scalar(k, v, 0)
            w.add_text("label", label, 0)
            w.add_text("params", "\n".join(f"- {k}: {v}" for k, v in _params(data, label).items()), 0)
            w.add_text("cells", _md_table(_label_rows(data, label)), 0)
            for i, p in enumerate(_videos(data, label, videos)):
                gif = preview_gif([Tile(label, p)])
                with Image.open(io.BytesIO(gif)) as im:
                    width, height = im.size
                img = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
                w.file_writer.add_summary(Summary(value=[Summary.Value(tag=f"preview/{i}", image=img)]), 0)
        summary.written.append(label)
    marker.write_text(json.dumps({DIGEST_TAG: digest, "run_name": data.name, "labels": slugs}, indent=1))
    return summary

"""The report's cell browser: every cell as data for the page's table, and the videos it plays.

The run's mp4s are lossless RGB H.264, which browsers do not decode, so each video the browser
shows is re-encoded once to a small VP9 WebM (upscaled by an integer factor, nearest-neighbour,
so tiny clips stay crisp). Videos are embedded as data URIs until ``budget_mb`` is spent (the
report stays one file); the rest are written to ``<report>/videos/`` and linked relatively.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from fractions import Fraction
from pathlib import Path

from markupsafe import Markup

from motiongrid.bench.video import VideoError, read_video, to_uint8
from motiongrid.reports.data import MEMORY_KEY, TIME_TOTAL, RunData, cell_value
from motiongrid.reports.defaults import DEFAULT_EMBED_MB

MIN_VIDEO_H = 128      # upscale smaller clips to at least this height
SCRIPT = Path(__file__).parent / "templates" / "cells.js"


def webm_bytes(path: Path) -> tuple[bytes, float, int]:
    """(VP9 WebM, fps, frame count) of a video file, for <video> in any current browser."""
    import av
    import numpy as np

    video = read_video(path)
    frames = to_uint8(video.frames).permute(0, 2, 3, 1).numpy()
    k = max(1, math.ceil(MIN_VIDEO_H / frames.shape[1]))
    frames = frames.repeat(k, axis=1).repeat(k, axis=2)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2  # 4:2:0 needs even sizes
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    fps = video.fps or 8.0
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue(), float(fps), len(frames)


class _Videos:
    """id -> {src, fps, frames} for the page; embeds until the budget is spent, then writes files."""

    def __init__(self, out_dir: Path, budget_mb: float):
        self.out_dir = out_dir
        self.left = budget_mb * 1e6
        self.entries: dict[str, dict] = {}
        self.embedded = self.linked = 0
        self.errors: list[str] = []

    def add(self, path: Path | None) -> str | None:
        if path is None or not path.exists():
            return None
        vid = hashlib.sha1(str(path).encode()).hexdigest()[:12]
        if vid in self.entries:
            return vid
        try:
            data, fps, n = webm_bytes(path)
        except (VideoError, OSError, ValueError) as exc:
            self.errors.append(f"{path.name}: {exc}")
            return None
        uri_len = 4 * len(data) // 3 + 32
        if uri_len <= self.left:
            self.left -= uri_len
            src = "data:video/webm;base64," + base64.b64encode(data).decode("ascii")
            self.embedded += 1
        else:
            target = self.out_dir / "videos" / f"{vid}.webm"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            src = f"videos/{vid}.webm"
            self.linked += 1
        self.entries[vid] = {"src": src, "fps": fps, "frames": n}
        return vid


def _number(v: float | None):
    if v is None or math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"  # JSON has no Infinity; the page parses these back
    return v


def browser_data(data: RunData, out_dir: Path, columns: list, baseline: str | None,
                 budget_mb: float = DEFAULT_EMBED_MB) -> dict:
    """Context for the Cells section: the page's JSON (escaped for a <script> block), and what
    the report says about where its videos are."""
    keys = [c.key for c in columns] + [k for k in (TIME_TOTAL, MEMORY_KEY) if k not in [c.key for c in columns]]
    titles = {TIME_TOTAL: ("time / cell (s)", "↓", False), MEMORY_KEY: ("peak memory (MB)", "↓", False)}
    titles.update({c.key: (c.title, c.arrow, data.metric_info(c.key).higher_is_better) for c in columns})
    cols = [dict(zip(("key", "title", "arrow", "hib"), (k, *titles[k]))) for k in keys]

    videos = _Videos(out_dir, budget_mb)
    method_of = {lb: m.get("method") for lb, m in data.methods_by_label().items() if isinstance(m, dict)}
    source_label = next((lb for lb, m in method_of.items() if m == "source"), None)
    by_pair = {(r["label"], r["clip_id"], r["seed"]): r for r in data.rows}
    edit_clips = {c["id"] for c in (data.run.get("clip_set") or {}).get("clips") or []
                  if isinstance(c, dict) and c.get("edit")}

    def artifact(r: dict | None) -> str | None:
        return videos.add(data.artifact(r)) if r and r["status"] == "ok" and r.get("artifact") else None

    rows = []
    for i, r in enumerate(data.rows):
        values = {k: _number(cell_value(r, k)) for k in keys}
        diffs = {}
        base = by_pair.get((baseline, r["clip_id"], r["seed"])) if baseline else None
        if base is not None and r["status"] == "ok" and base["status"] == "ok":
            for k in keys:
                a, b = cell_value(r, k), cell_value(base, k)
                if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                    diffs[k] = a - b
        ref_title = "ground truth (edited)" if r["clip_id"] in edit_clips else "reference"
        panel = [[ref_title, videos.add(data.reference_video(r["clip_id"]))]]
        if source_label and r["label"] != source_label and r["clip_id"] in edit_clips:
            panel.append([f"source ({source_label})", artifact(by_pair.get((source_label, r["clip_id"], r["seed"])))])
        if base is not None and r["label"] != baseline:
            panel.append([f"baseline: {baseline}", artifact(base)])
        panel.append([r["label"], artifact(r)])
        rows.append({"i": i, "label": r["label"], "clip": r["clip_id"], "seed": r["seed"], "status": r["status"],
                     "reason": r.get("reason") or "", "errors": r.get("metric_errors") or {},
                     "v": values, "d": diffs, "videos": panel})
    doc = {"columns": cols, "rows": rows, "videos": videos.entries, "baseline": baseline,
           "labels": data.labels, "clips": sorted({r["clip_id"] for r in data.rows})}
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    # inside <script type="application/json">: no '<' may start a tag (a clip id named "</script>")
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return {"json": Markup(text), "embedded": videos.embedded, "linked": videos.linked,
            "budget_mb": budget_mb, "errors": videos.errors}


def script() -> tuple[Markup, str]:
    """The page's JavaScript and its CSP hash (the policy allows this script and no other)."""
    js = SCRIPT.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return Markup(js), f"'sha256-{digest}'"

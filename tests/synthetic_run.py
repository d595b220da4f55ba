"""A small synthetic run directory for report/compare/export tests: written through the real
Store and write_video, with a run.json shaped like the runner's. No model, no metric code."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch

from motiongrid.bench.store import CellResult, Store
from motiongrid.bench.video import Video, write_video

XSS = "<script>alert(1)</script>"
CLIPS = [
    ("square_right", "a red square slides right over a striped floor"),
    ("circle_down", "a blue disc drops down"),
    (f"evil{XSS}", f"a prompt with {XSS} & *markdown* | pipes"),
]
SEEDS = [0, 1]
METRICS = {
    "psnr": {"higher_is_better": True, "available": True, "reason": None,
             "preprocessing": {"range": "[0,1]", "data_range": 1.0}, "description": "PSNR (torchmetrics)"},
    "motion_fidelity": {"higher_is_better": True, "available": True, "reason": None,
                        "preprocessing": {"tracker": "gt"}, "description": "DMT motion fidelity"},
    "clip_text": {"higher_is_better": True, "available": True, "reason": None, "preprocessing": {},
                  "description": "CLIP text alignment"},
    "fid": {"higher_is_better": False, "available": True, "reason": None, "preprocessing": {},
            "description": "clean-fid"},
    "lpips": {"higher_is_better": False, "available": False,
              "reason": "unavailable: AlexNet weights missing; run `motiongrid weights fetch lpips-alexnet`",
              "preprocessing": {}, "description": "LPIPS"},
}


def _h(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def labels(unguided: bool = False) -> list[tuple[str, str, dict]]:
    out = [("reference", "reference", {}), ("static", "static", {})]
    if unguided:
        out.append(("unguided", "unguided", {}))
    for k in (1, 2, 4):
        for w in (1000.0, 2000.0):
            out.append((f"motionclone(k={k},guidance_weight={w:g})", "motionclone",
                        {"k": k, "guidance_weight": w, "mask": "primary"}))
    return out


def _clip_video(i: int, shift: float = 0.0, static: bool = False, size: int = 32, frames: int = 8) -> Video:
    t = torch.zeros(frames, 3, size, size)
    t[:, i % 3] = 0.15
    t[:, :, ::4, :] += 0.1  # stripes, so motion is visible
    for f in range(frames):
        p = 0 if static else f
        x = int(2 + p * 2 + shift) % (size - 8)
        y = int(4 + (p * 2 if i == 1 else 0)) % (size - 8)
        t[f, :, y:y + 8, x:x + 8] = torch.tensor([0.9, 0.2 + 0.3 * i, 0.2]).view(3, 1, 1)
    return Video(t.clamp(0, 1), fps=8)


def metric_values(label: str, params: dict, clip_idx: int, seed: int) -> dict:
    rng = np.random.default_rng(int(_h(label, clip_idx, seed), 16) % 2**32)
    diag = {"motion_fidelity.n_generated": 64.0, "fid.unstable": 1.0}  # diagnostics, not scores
    if label == "reference":
        return {**diag, "psnr": math.inf, "motion_fidelity.symmetric": 1.0, "motion_fidelity.one_directional": 1.0,
                "clip_text": 26.0 + clip_idx, "fid": 0.0, "lpips": None}
    if label == "static":
        return {**diag, "psnr": 18.0 + rng.normal(0, 0.5), "motion_fidelity.symmetric": 0.0,
                "motion_fidelity.one_directional": 0.0, "clip_text": 25.0 + rng.normal(0, 0.3),
                "fid": 80.0 + rng.normal(0, 2), "lpips": None}
    if label == "unguided":  # moves, but not like the reference
        return {**diag, "psnr": 19.0 + rng.normal(0, 0.5), "motion_fidelity.symmetric": 0.3 + rng.normal(0, 0.05),
                "motion_fidelity.one_directional": 0.33, "clip_text": 28.0 + rng.normal(0, 0.3),
                "fid": 70.0 + rng.normal(0, 2), "lpips": None}
    k, w = params["k"], params["guidance_weight"]
    mf = 0.55 + 0.08 * k / 4 + 0.1 * (w / 2000) + rng.normal(0, 0.02)
    return {**diag, "psnr": 20 + k + rng.normal(0, 0.4), "motion_fidelity.symmetric": mf,
            "motion_fidelity.one_directional": mf + 0.03,
            "clip_text": 27.5 - 1.5 * (w / 2000) - 0.2 * k + rng.normal(0, 0.2),
            "fid": 60 - 5 * k + rng.normal(0, 1.5), "lpips": None}


def make_run(run_dir: Path, fail: set[tuple[str, str, int]] = frozenset(), videos: bool = True,
             tweak=None, unavailable: dict[str, str] | None = None, skip=frozenset(),
             unguided: bool = False) -> Path:
    """Write results.sqlite, run.json and (optionally) tiny mp4s. ``fail`` lists
    (label, clip_id, seed) stored as failed and ``skip`` ones not stored at all;
    ``tweak(label, clip_id, seed, metrics)`` edits values; ``unavailable`` {metric: reason}
    marks metrics unavailable (their values become None); ``unguided`` adds an "unguided" label
    (the report's default baseline)."""
    metric_info = {k: dict(v) for k, v in METRICS.items()}
    for name, reason in (unavailable or {}).items():
        metric_info[name].update(available=False, reason=reason)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    refs = {}
    for i, (cid, _) in enumerate(CLIPS):
        rel = f"references/ref{i}.mp4"
        if videos:
            write_video(_clip_video(i), run_dir / rel)
        refs[cid] = rel
    methods = {}
    with Store(run_dir / "results.sqlite") as store:
        for label, method, params in labels(unguided):
            methods[label] = {"method": method, "params": params, "task": "t2v-motion", "fingerprint": {},
                              "oracle": method in ("reference", "static")}
            for i, (cid, _) in enumerate(CLIPS):
                for seed in SEEDS:
                    if (label, cid, seed) in skip:
                        continue
                    key = _h(label, cid, seed)
                    if (label, cid, seed) in fail:
                        store.put(CellResult(key, method, label, params, cid, f"h{i}", seed, status="failed",
                                             reason=f"CUDA out of memory {XSS}", timings={"generate": 0.1}))
                        continue
                    metrics = metric_values(label, params, i, seed)
                    for name in unavailable or {}:
                        metrics[name] = None
                    if tweak:
                        tweak(label, cid, seed, metrics)
                    artifact = f"videos/{key}.mp4"
                    if videos and seed == SEEDS[0]:
                        shift = 0 if method == "reference" else (params.get("k", 0) * 0.7 + seed)
                        write_video(_clip_video(i, shift=shift, static=method == "static"), run_dir / artifact)
                    store.put(CellResult(
                        key, method, label, params, cid, f"h{i}", seed, metrics=metrics,
                        metric_errors={n: i["reason"] for n, i in metric_info.items() if not i["available"]},
                        timings={"load": 0.01, "generate": 0.5 + 0.1 * len(params), "score": 0.2},
                        peak_memory_mb=500 + 10 * len(label), memory_kind="cpu_peak_rss", artifact=artifact))
    total = len(labels(unguided)) * len(CLIPS) * len(SEEDS)
    run = {
        "motiongrid_version": "0.1.0", "git_sha": "0123456789abcdef", "git_dirty": False,
        "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:05:00Z",
        "config": {"clips": {"set": "shapes"}, "seeds": SEEDS, "note": XSS}, "config_path": "configs/x.toml",
        "seeds": SEEDS, "device": "cpu", "torch": torch.__version__,
        "versions": {"torch": torch.__version__, "numpy": np.__version__}, "platform": "linux",
        "clip_set": {"name": "shapes", "options": {"size": 32},
                     "clips": [{"id": cid, "hash": f"h{i}", "prompt": p} for i, (cid, p) in enumerate(CLIPS)]},
        "reference_videos": refs,
        "metrics": metric_info,
        "methods": methods,
        "cells": {"total": total, "ok": total - len(fail), "failed": len(fail)},
    }
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    return run_dir

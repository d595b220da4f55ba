"""How well the toy MotionFollower edits, measured on held-apart toy editing cases through the
adapter's own code path (``motiongrid toy check-edit``), and its sample strip
(``motiongrid toy sample-edit``).

Acceptance (guidance off): the object lands within 1.5 px of the ground truth's centroid on
average, and keeps its colour in >= 90 % of cells; the reconstruction branch's PSNR against the
source is reported beside them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from motiongrid.bench.registry import datasets
from motiongrid.methods.toy.sample import foreground, object_centres, quality, save_strip

HELD_APART_SEED = 1000     # the toy benchmarks' clips; training draws from its own (seed, step) streams


def centre_error(video: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean per-frame distance (px) between the edit's and the ground truth's object centroids;
    a frame where the edit has no object counts as the frame diagonal."""
    diag = float(np.hypot(*video.shape[-2:]))
    errs = []
    for a, b in zip(object_centres(foreground(video))[0], object_centres(foreground(truth))[0]):
        errs.append(diag if a is None or b is None else float(np.hypot(a[0] - b[0], a[1] - b[1])))
    return float(np.mean(errs))


def _method(backbone):
    from motiongrid.methods.motionfollower.adapter import MotionFollower

    method = MotionFollower()
    method.use_backbone("toy-motionfollower", backbone)
    return method


def acceptance(backbone, count: int = 16, seeds=(0, 1), energy_scale: float = 0.0) -> dict:
    """Per cell: centroid error vs the ground truth, colour kept, reconstruction PSNR."""
    from motiongrid.methods.motionfollower.params import MotionFollowerParams

    method = _method(backbone)
    params = MotionFollowerParams(model="toy-motionfollower", energy_scale=energy_scale)
    cells = []
    for clip in datasets.get("shapes")(preset="edit", seed=HELD_APART_SEED, count=count).load():
        truth = clip.scoring_reference().frames
        colour = clip.meta["spec"]["colour"]
        for seed in seeds:
            video = method.generate(clip, params, seed).frames
            cells.append({"clip": clip.id, "seed": seed, "centre_error_px": round(centre_error(video, truth), 3),
                          "colour_ok": bool(quality(video, colour)["colour_ok"]),
                          "reconstruction_psnr": method.cell_notes["reconstruction_psnr"]})
    summary = {
        "cells": len(cells), "energy_scale": energy_scale, "clips": f"shapes edit preset, seed {HELD_APART_SEED}, count {count}",
        "mean_centre_error_px": round(float(np.mean([c["centre_error_px"] for c in cells])), 3),
        "colour_kept": round(float(np.mean([c["colour_ok"] for c in cells])), 3),
        "mean_reconstruction_psnr": round(float(np.mean([c["reconstruction_psnr"] for c in cells])), 2),
    }
    summary["passes"] = summary["mean_centre_error_px"] <= 1.5 and summary["colour_kept"] >= 0.9
    return {"summary": summary, "cells": cells}


def write_acceptance(backbone, out: str | os.PathLike, **kwargs) -> dict:
    report = acceptance(backbone, **kwargs)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report["summary"]


def edit_strip(backbone, out_png: str | os.PathLike, clips: int = 3, seed: int = 0, scale: int = 4) -> Path:
    """A PNG per case: source, target pose, ground truth, the edit without and with score
    guidance, and the reconstruction branch."""
    from motiongrid.methods.motionfollower.params import MotionFollowerParams

    method = _method(backbone)
    images, labels = [], []
    for clip in datasets.get("shapes")(preset="edit", seed=HELD_APART_SEED, count=clips).load():
        inputs = clip.edit.inputs(clip)
        rows = {"source — " + clip.prompt: clip.frames, "target pose": inputs.target_poses,
                "ground truth": clip.scoring_reference().frames}
        for label, energy in (("edit, no guidance", 0.0), ("edit, score guidance", 4.0)):
            rows[label] = method.generate(clip, MotionFollowerParams(model="toy-motionfollower", energy_scale=energy), seed).frames
        rows["reconstruction branch"] = method.last_reconstruction
        for label, video in rows.items():
            images.append(torch.cat(list(video.clamp(0, 1)), dim=2).permute(1, 2, 0).numpy())
            labels.append(label)
    return save_strip(images, labels, out_png, scale)

"""run.json: everything needed to reproduce or question a run's numbers."""
from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from motiongrid.bench import __version__
from motiongrid.bench.atomic import atomic_write_text

log = logging.getLogger(__name__)

TRACKED_PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "torchmetrics", "lpips",
                    "clean-fid", "open_clip_torch", "av", "opencv-python-headless", "numpy", "scipy")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> tuple[str | None, bool | None]:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha, dirty if sha else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def device_info(device: torch.device) -> dict:
    info = {"device": str(device), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        info["cpu_count"] = os.cpu_count()
    return info


def _key_info(metric) -> dict:
    """A dict metric's headline key, per-key directions and descriptions (only those it declares)."""
    info = {"headline": metric.headline, "directions": metric.directions, "key_descriptions": metric.key_descriptions}
    return {k: v for k, v in info.items() if v}


def write_run_json(out: Path, *, config, source, device, clips, variants, metrics, unavailable,
                   finished: bool, cells: dict | None, reference_videos: dict,
                   cell_keys: list[str], fingerprints: dict, method_info: dict,
                   references: dict | None = None, executor: dict | None = None) -> Path:
    path = Path(out) / "run.json"
    previous = _previous_run_json(path)
    sha, dirty = git_state()
    invocations = previous.get("invocations", [])
    if not finished:
        # the executor per invocation: a run may start locally and resume on a cluster
        invocations.append({"started_at": _now(), "git_sha": sha, "git_dirty": dirty,
                            "executor": (executor or {}).get("name", "local")})
    metric_info = {}
    for m in metrics:
        metric_info[m.name] = {"higher_is_better": m.higher_is_better, "available": True, "reason": None,
                               "preprocessing": m.preprocessing(), "options": m.options,
                               "description": m.description, "set_level": m.set_level,
                               **_key_info(m)}
    from motiongrid.bench.registry import metrics as registry

    for name, reason in unavailable.items():
        cls = registry.get(name)
        metric_info[name] = {"higher_is_better": cls.higher_is_better, "available": False,
                             "reason": reason, "description": cls.description, "set_level": cls.set_level,
                             **_key_info(cls)}
    for name, info in metric_info.items():
        info["reference"] = (references or {}).get(name)   # what the metric compared with
    data = {
        "motiongrid_version": __version__,
        "git_sha": sha,
        "git_dirty": dirty,
        "started_at": previous.get("started_at") or _now(),
        "finished_at": _now() if finished else None,
        "invocations": invocations,
        "config_path": source,
        "config": config.model_dump(mode="json"),
        "seeds": config.seeds,
        **device_info(device),
        "executor": executor or {"name": "local"},   # this invocation's (Ray: cluster resources, workers)
        "versions": package_versions(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "clip_set": {"name": config.clips.set, "options": config.clips.options,
                     "clips": [{"id": c.id, "hash": c.content_hash, "prompt": c.prompt, "edit": c.is_edit} for c in clips]},
        "reference_videos": reference_videos,
        "metrics": metric_info,
        "methods": {v.label: {"method": v.method, "params": v.params.model_dump(mode="json"),
                              "task": v.method_cls.task, "oracle": v.method_cls.oracle, "fingerprint": fingerprints.get(v.label),
                              **method_info.get(v.method, {})} for v in variants},
        "cells": cells,
        "cell_keys": cell_keys,  # the current grid's cells (a reused run dir may hold others)
    }
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str))


def _previous_run_json(path: Path) -> dict:
    """The run.json being updated, or {} when absent or damaged (cut short by a full disk, say):
    the store holds the results, so a resume rewrites run.json from it and the config."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        log.warning("%s is damaged (%s); rewriting it from the store and the config "
                    "(earlier invocations' start times are lost)", path, exc)
        return {}
    return data if isinstance(data, dict) else {}

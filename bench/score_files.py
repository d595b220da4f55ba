"""Scoring videos on disk against references on disk (the library behind ``motiongrid score``).

    motiongrid score --reference PATH --generated PATH [--prompts FILE] [--metrics psnr,ssim,...]
                     [--tracker gt|lk|cotracker|auto] [--option METRIC.KEY=VALUE ...]
                     [--resample MODE] [--json OUT]

PATH is a video file, a folder of image frames (one video), or a folder of videos / frame
folders. Pairs are matched by file stem; with a single file on each side they pair whatever
their names. Reference ground-truth tracks (for ``--tracker gt``) are read from
``<stem>.tracks.npz`` (or ``<stem>.npz``) beside the reference: ``tracks`` (T, N, 2) as (x, y)
pixels and optional ``visibility`` (T, N) — what ``motiongrid clips make`` writes. Prompts come
from ``--prompts`` (JSON/YAML mapping stem -> prompt, a CSV/YAML manifest with id + prompt, or a
.txt holding the one prompt of a single pair), else from a ``manifest.yaml``/``manifest.csv`` in
the reference folder.

``--json`` writes ``{"per_clip": [{"clip", "reference", "generated", "<metric>": value, ...,
"errors": {...}}], "mean": {...}, "set": {...}, "unavailable": {"<metric>": "<reason>"},
"preprocessing": {...}}``. Metrics returning several numbers appear as ``<metric>.<key>``.
Non-finite numbers (PSNR of identical frames) are the strings "inf"/"-inf"/"nan". ``set``
holds set-level values over all pairs (FID over the pooled frames of every clip — the FID to
compare methods with; per-clip FIDs are flagged unstable).

Frame-count or size mismatches stop the command with both file names unless ``--resample``
says how to align them.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from motiongrid.bench.errors import UserError
from motiongrid.bench.files import read_text
from motiongrid.bench.registry import UnknownName
from motiongrid.bench.registry import metrics as metric_registry

if TYPE_CHECKING:
    import torch

    from motiongrid.bench.clip import Clip

# torch and the modules that import it are imported inside the functions that use them, so the
# CLI can read RESAMPLE_MODES and this docstring to build its parser without importing torch.

log = logging.getLogger(__name__)

RESAMPLE_MODES = ("none", "reference-to-generated", "generated-to-reference")


class ScoreError(UserError, ValueError):
    """A problem with the inputs of ``motiongrid score``; the message names the files."""


# ---- inputs ----------------------------------------------------------------------------------

def _is_frame_folder(path: Path) -> bool:
    from motiongrid.bench.video import IMAGE_SUFFIXES

    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file())


def discover(path: Path, side: str) -> dict[str, Path]:
    """stem -> video path (file or frame folder) under ``path``."""
    from motiongrid.bench.video import VIDEO_SUFFIXES

    if not path.exists():
        raise ScoreError(f"--{side} {path}: not found")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ScoreError(f"--{side} {path}: not a video ({', '.join(VIDEO_SUFFIXES)})")
        return {path.stem: path}
    videos = {p.stem: p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES}
    folders = {p.name: p for p in sorted(path.iterdir()) if _is_frame_folder(p)}
    if not videos and not folders and _is_frame_folder(path):
        return {path.name: path}  # the folder itself is one video's frames
    clash = sorted(set(videos) & set(folders))
    if clash:
        raise ScoreError(f"--{side} {path}: {clash} exist both as a video file and a frame folder")
    found = {**videos, **folders}
    if not found:
        raise ScoreError(f"--{side} {path}: no videos ({', '.join(VIDEO_SUFFIXES)}) or frame folders")
    return found


def pair_up(reference: dict[str, Path], generated: dict[str, Path]) -> list[tuple[str, Path, Path]]:
    if len(reference) == 1 and len(generated) == 1:
        (stem, ref), (_, gen) = next(iter(reference.items())), next(iter(generated.items()))
        return [(stem, ref, gen)]
    common = sorted(set(reference) & set(generated))
    if not common:
        raise ScoreError(f"no file stems in common between reference ({sorted(reference)[:5]}…) "
                         f"and generated ({sorted(generated)[:5]}…)")
    for side, names in (("reference", set(reference) - set(common)), ("generated", set(generated) - set(common))):
        if names:
            log.warning("%d %s videos have no partner and are skipped: %s", len(names), side, sorted(names)[:10])
    return [(stem, reference[stem], generated[stem]) for stem in common]


def load_prompts(path: Path | None, reference_root: Path, pairs) -> dict[str, str]:
    if path is None:
        folder = reference_root if reference_root.is_dir() else reference_root.parent
        for name in ("manifest.yaml", "manifest.yml", "manifest.csv"):
            if (folder / name).is_file():
                path = folder / name
                break
        else:
            return {}
    if not path.is_file():
        raise ScoreError(f"--prompts {path}: not found")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        if len(pairs) != 1:
            raise ScoreError(f"--prompts {path}: a .txt holds one prompt, but there are {len(pairs)} pairs; "
                             f"use a JSON/YAML mapping stem -> prompt")
        return {pairs[0][0]: read_text(path).strip()}
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(read_text(path))))
    elif suffix in (".json", ".yaml", ".yml"):
        data = json.loads(read_text(path)) if suffix == ".json" else yaml.safe_load(read_text(path))
        if isinstance(data, dict) and "clips" in data:
            data = data["clips"]
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
        rows = data
    else:
        raise ScoreError(f"--prompts {path}: expected .json, .yaml, .csv or .txt")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "prompt" in r for r in rows):
        raise ScoreError(f"--prompts {path}: expected a mapping stem -> prompt, or rows with 'id' and 'prompt'")
    out = {}
    for r in rows:
        key = r.get("id") or r.get("clip") or (Path(str(r["path"])).stem if r.get("path") else None)
        if key is None:
            raise ScoreError(f"--prompts {path}: row {r} has no 'id'")
        out[str(key)] = str(r["prompt"])
    return out


def load_tracks_beside(video: Path) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    from motiongrid.bench.clip import load_tracks

    base = video if video.is_dir() else video.with_suffix("")
    for cand in (base.parent / f"{base.name}.tracks.npz", base.parent / f"{base.name}.npz"):
        if cand.is_file():
            return load_tracks(cand)
    return None, None


def reference_clip(stem: str, path: Path, prompt: str) -> Clip:
    from motiongrid.bench.clip import Clip, file_digest
    from motiongrid.bench.video import read_video

    tracks, vis = load_tracks_beside(path)
    return Clip(id=stem, prompt=prompt, loader=lambda p=path: read_video(p), source_hash=file_digest(path),
                tracks=tracks, visibility=vis, meta={"path": str(path)})


# ---- scoring -------------------------------------------------------------------------------

def run_score(reference: Path, generated: Path, metric_names: list[str] | None = None,
              prompts: Path | None = None, tracker: str = "auto", resample: str | None = None,
              device: str = "cpu", cache_dir: str | None = None, cache: bool = True,
              options: dict[str, dict] | None = None) -> dict:
    """Score every matched pair; returns the JSON-ready result (see module doc). ``options``:
    per-metric options, as a config's ``[metric_options]`` (validated by the same types)."""
    from motiongrid.bench.api import AlignmentError
    from motiongrid.bench.scoring import (
        DeviceError,
        build_metrics,
        mean_values,
        prepare_metrics,
        resolve_device,
        score_video,
    )
    from motiongrid.bench.video import VideoError, read_video

    pairs = pair_up(discover(Path(reference), "reference"), discover(Path(generated), "generated"))
    prompt_map = load_prompts(Path(prompts) if prompts else None, Path(reference), pairs)
    names = metric_names or metric_registry.names()
    common = {"resample": None if resample in (None, "none") else resample, "tracker": tracker,
              "cache_dir": cache_dir, "cache": cache}
    try:
        ready, unavailable = build_metrics(names, options, common=common)
    except UnknownName as exc:
        raise ScoreError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ScoreError(f"metric options: {exc}") from None
    if not any(prompt_map.get(stem) for stem, _, _ in pairs):
        for m in [m for m in ready if "prompt" in m.needs]:
            unavailable[m.name] = (f"{m.name}: no prompts for any pair; pass --prompts FILE "
                                   f"(JSON mapping stem -> prompt) or put a manifest.yaml beside the references")
            ready.remove(m)
    try:
        dev = resolve_device(device)
    except DeviceError as exc:
        raise ScoreError(str(exc)) from None
    ready = prepare_metrics(ready, dev, unavailable)

    rows, clips = [], []
    for stem, ref_path, gen_path in pairs:
        clip = reference_clip(stem, ref_path, prompt_map.get(stem, ""))
        try:
            video = read_video(gen_path)
        except VideoError as exc:
            raise ScoreError(str(exc)) from None
        try:
            values, errors = score_video(ready, video, clip, reraise=(AlignmentError, VideoError))
        except AlignmentError as exc:
            raise ScoreError(f"generated {gen_path} vs reference {ref_path}: {exc}") from None
        except VideoError as exc:
            raise ScoreError(str(exc)) from None
        row = {"clip": stem, "reference": str(ref_path), "generated": str(gen_path), **values}
        if errors:
            row["errors"] = errors
        rows.append(row)
        clips.append((gen_path, clip))
        clip.release()

    set_level = {}
    for m in ready:
        if m.set_level and len(pairs) > 0:   # only metrics defined over a set have a set-level value
            try:
                set_level[m.name] = m.score_set((read_video(g), c) for g, c in clips)
            except Exception as exc:
                set_level[m.name] = {"error": f"{type(exc).__name__}: {exc}"}
    metric_keys = [{k: v for k, v in r.items() if k not in ("clip", "reference", "generated", "errors")} for r in rows]
    return {
        "per_clip": rows,
        "mean": mean_values(metric_keys),
        "set": set_level,
        "unavailable": unavailable,
        "preprocessing": {m.name: m.preprocessing() for m in ready},
        "settings": {"reference": str(reference), "generated": str(generated), "metrics": names,
                     "tracker": tracker, "resample": resample or "none", "device": str(dev),
                     "options": options or {}},
    }

"""``folder`` and ``davis``: clips from files on disk, described by a manifest.

Manifest (CSV with a header, or YAML list of mappings): ``id``, ``path``, ``prompt``, optional
``target_prompt`` and ``tracks`` (an .npz with ``tracks`` (T, N, 2) as (x, y) pixels and
optional ``visibility`` (T, N)). Paths are relative to the dataset root and may never leave it.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
import yaml

from motiongrid.api import ClipSet
from motiongrid.datasets.clip import Clip, file_digest
from motiongrid.datasets.video import VIDEO_SUFFIXES, read_video
from motiongrid.registry import datasets


class ManifestError(ValueError):
    pass


def read_manifest(path: Path) -> list[dict]:
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    elif path.suffix.lower() in (".yaml", ".yml"):
        rows = yaml.safe_load(path.read_text()) or []
        if isinstance(rows, dict) and "clips" in rows:
            rows = rows["clips"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ManifestError(f"{path}: expected a YAML list of mappings (or a mapping with 'clips')")
    else:
        raise ManifestError(f"{path}: manifest must be .csv, .yaml or .yml")
    for n, row in enumerate(rows, start=1):
        for key in ("id", "prompt"):
            if not str(row.get(key) or "").strip():
                raise ManifestError(f"{path}: row {n} has no {key!r}")
    ids = [str(r["id"]) for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ManifestError(f"{path}: duplicate clip ids {dupes}")
    return rows


def safe_path(root: Path, relative: str, what: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and anything escaping root."""
    rel = Path(str(relative))
    if rel.is_absolute():
        raise ManifestError(f"{what}: path {relative!r} is absolute; manifest paths must be relative to {root}")
    full = (root / rel).resolve()
    if not full.is_relative_to(root.resolve()):
        raise ManifestError(f"{what}: path {relative!r} leaves the dataset root {root}")
    return full


def load_tracks(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(path) as data:
        if "tracks" not in data:
            raise ManifestError(f"{path}: tracks file has no 'tracks' array")
        tracks = torch.tensor(data["tracks"], dtype=torch.float32)
        vis = torch.tensor(data["visibility"], dtype=torch.bool) if "visibility" in data \
            else torch.ones(tracks.shape[:2], dtype=torch.bool)
    if tracks.ndim != 3 or tracks.shape[-1] != 2 or vis.shape != tracks.shape[:2]:
        raise ManifestError(f"{path}: expected tracks (T, N, 2) and visibility (T, N), "
                            f"got {tuple(tracks.shape)} and {tuple(vis.shape)}")
    return tracks, vis


@datasets.register("folder")
class FolderClipSet(ClipSet):
    description = "videos (mp4/webm/gif) or frame folders under root, listed in a CSV/YAML manifest"
    default_path = None  # DAVIS fills a path from the id

    def load(self) -> list[Clip]:
        if "root" not in self.options:
            raise ManifestError(f"clip set {self.name!r} needs option 'root' (the dataset folder)")
        root = Path(self.options["root"]).expanduser()
        if not root.is_dir():
            raise ManifestError(f"clip set {self.name!r}: root {root} is not a folder")
        manifest = root / self.options.get("manifest", "manifest.csv")
        clips = []
        for row in read_manifest(manifest):
            cid = str(row["id"])
            rel = row.get("path") or (self.default_path.format(id=cid) if self.default_path else None)
            if not rel:
                raise ManifestError(f"{manifest}: clip {cid!r} has no 'path'")
            path = safe_path(root, rel, f"{manifest}: clip {cid!r}")
            if not path.exists():
                raise ManifestError(f"{manifest}: clip {cid!r}: {path} not found")
            if path.is_file() and path.suffix.lower() not in VIDEO_SUFFIXES:
                raise ManifestError(f"{manifest}: clip {cid!r}: {path.name} is not a video ({', '.join(VIDEO_SUFFIXES)}) or frame folder")
            tracks = vis = None
            if row.get("tracks"):
                tracks, vis = load_tracks(safe_path(root, row["tracks"], f"{manifest}: clip {cid!r} tracks"))
            clips.append(Clip(
                id=cid, prompt=str(row["prompt"]), loader=(lambda p=path: read_video(p)),
                source_hash=file_digest(path), target_prompt=row.get("target_prompt") or None,
                tracks=tracks, visibility=vis, meta={"path": str(path)},
            ))
        return clips


@datasets.register("davis")
class DavisClipSet(FolderClipSet):
    description = "DAVIS-2017 JPEG frame folders from a local root; prompts from a manifest"
    default_path = "JPEGImages/480p/{id}"

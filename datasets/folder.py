"""``folder`` and ``davis``: clips from files on disk, described by a manifest.

Manifest (CSV with a header, or YAML list of mappings): ``id``, ``path``, ``prompt``, optional
``target_prompt`` and ``tracks`` (an .npz with ``tracks`` (T, N, 2) as (x, y) pixels and
optional ``visibility`` (T, N)). Paths are relative to the dataset root and may never leave it. Without the ``manifest``
option the manifest is found by name: manifest.yaml, manifest.yml, then manifest.csv.

Clips with an alpha channel (RGBA PNG frames, transparent GIF/WebM/MOV) are composited over
the clip set option ``alpha_background`` ("black", "white" or [r, g, b] in 0..255); without it
a clip that is actually transparent is refused with that fix, never silently flattened.

Editing cases: a row with ``case`` (a folder) instead of ``path``. The folder is laid out as
the released MotionFollower demo cases are (frames ``frame_<i>.<ext>``, numbered from 0):

    source_images/         the source video's frames (jpg or png)
    source_poses/          pose image per source frame (RGB skeleton on black)
    target_aligned_poses/  target pose per frame, aligned to the source subject
    source_masks/          S: the source subject's silhouette (a mask image per frame, see below)
    predicted_masks/       T: the source subject's silhouette in the target pose
    ground_truth/          optional (motiongrid's addition): the true edited video
    ground_truth_tracks.npz  optional: point tracks of the ground truth (as ``tracks``)

Masks are read by one rule (``bench/clip.py`` MASK_RULE): a pixel is inside when it is not
black (0/1 and 0/255 alike, any colour on black), palette PNGs by index != 0, fully
transparent pixels outside. A mask the rule cannot read unambiguously (soft or anti-aliased
edges, JPEG noise, partial transparency) and a mask folder that is empty in every frame are
refused naming the file. Frames in every folder are numbered (``bench/video.py`` frame_files);
a file that does not fit the numbering is refused naming it. The ground truth and its tracks
must match the source video's frame count and size, like every other input.

The released folders ``target_images``, ``target_poses`` and ``target_masks`` (the video the
target motion was taken from) are not inputs of the edit and are ignored.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import Field

from motiongrid.bench.api import ClipSet, ClipSetOptions
from motiongrid.bench.clip import Clip, EditCase, file_digest, load_tracks, read_mask_folder
from motiongrid.bench.errors import UserError
from motiongrid.bench.files import file_stem, read_text
from motiongrid.bench.registry import datasets
from motiongrid.bench.video import VIDEO_SUFFIXES, alpha_background, read_video, to_uint8_hwc, write_video

log = logging.getLogger(__name__)

# Editing-case subfolders: (role in EditCase, folder name as in the released demo cases).
EDIT_FOLDERS = (("source_poses", "source_poses"), ("target_poses", "target_aligned_poses"),
                ("source_masks", "source_masks"), ("target_masks", "predicted_masks"))
EDIT_SOURCE = "source_images"
EDIT_GROUND_TRUTH = "ground_truth"
EDIT_GROUND_TRUTH_TRACKS = "ground_truth_tracks.npz"


class ManifestError(UserError, ValueError):
    pass


def read_manifest(path: Path) -> list[dict]:
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    if path.suffix.lower() == ".csv":
        rows = _parse_csv(path)
    elif path.suffix.lower() in (".yaml", ".yml"):
        rows = _parse_yaml(path)
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


def _parse_yaml(path: Path):
    try:
        return yaml.safe_load(read_text(path)) or []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ManifestError(f"{where}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML ({exc})") from None


def _parse_csv(path: Path) -> list[dict]:
    reader = csv.DictReader(io.StringIO(read_text(path)))
    try:
        return list(reader)
    except csv.Error as exc:
        raise ManifestError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


MANIFEST_NAMES = ("manifest.yaml", "manifest.yml", "manifest.csv")


def find_manifest(root: Path, name: str | None) -> Path:
    """``root/name`` when the option names one; else the first of MANIFEST_NAMES present
    (``clips make`` writes manifest.yaml), with a warning naming it when several exist."""
    if name:
        return root / name
    found = [root / n for n in MANIFEST_NAMES if (root / n).is_file()]
    if not found:
        raise ManifestError(f"{root}: no manifest ({', '.join(MANIFEST_NAMES)}); write one, or name it "
                            f"with the clip set option manifest = \"FILE\"")
    if len(found) > 1:
        log.warning("%s: using %s (also present: %s; set the clip set option 'manifest' to choose)",
                    root, found[0].name, ", ".join(p.name for p in found[1:]))
    return found[0]


def safe_path(root: Path, relative: str, what: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and anything escaping root."""
    rel = Path(str(relative))
    if rel.is_absolute():
        raise ManifestError(f"{what}: path {relative!r} is absolute; manifest paths must be relative to {root}")
    full = (root / rel).resolve()
    if not full.is_relative_to(root.resolve()):
        raise ManifestError(f"{what}: path {relative!r} leaves the dataset root {root}")
    return full


@datasets.register("folder")
class FolderClipSet(ClipSet):
    description = "videos (mp4/webm/gif) or frame folders under root, listed in a CSV/YAML manifest"
    default_path = None  # DAVIS fills a path from the id

    class Options(ClipSetOptions):
        root: str | None = Field(None, description="the dataset folder (required)")
        manifest: str | None = Field(None, description="manifest file under root (default: found by name)")
        alpha_background: Any = Field(None, description='"black", "white" or [r, g, b] in 0..255 for RGBA clips')

    def load(self) -> list[Clip]:
        if "root" not in self.options:
            raise ManifestError(f"clip set {self.name!r} needs option 'root' (the dataset folder)")
        root = Path(self.options["root"]).expanduser()
        if not root.is_dir():
            raise ManifestError(f"clip set {self.name!r}: root {root} is not a folder")
        manifest = find_manifest(root, self.options.get("manifest"))
        background = alpha_background(self.options.get("alpha_background"), self.name)
        clips = []
        for row in read_manifest(manifest):
            cid = str(row["id"])
            if row.get("case"):
                clips.append(read_edit_case(root, manifest, row))
                continue
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
                id=cid, prompt=str(row["prompt"]), loader=(lambda p=path: read_video(p, alpha_background=background)),
                source_hash=file_digest(path), target_prompt=row.get("target_prompt") or None,
                tracks=tracks, visibility=vis, meta={"path": str(path)},
            ))
        return clips


def read_edit_case(root: Path, manifest: Path, row: dict) -> Clip:
    """One editing case folder (see the module doc) as a Clip with ``edit`` inputs."""
    cid = str(row["id"])
    where = f"{manifest}: clip {cid!r}"
    case = safe_path(root, row["case"], where)
    if not case.is_dir():
        raise ManifestError(f"{where}: case folder {case} not found")
    needed = [EDIT_SOURCE] + [name for _, name in EDIT_FOLDERS]
    missing = [n for n in needed if not (case / n).is_dir()]
    if missing:
        raise ManifestError(f"{where}: case folder {case} lacks {missing}; an editing case holds "
                            f"{needed} (+ optional {EDIT_GROUND_TRUTH}/ and {EDIT_GROUND_TRUTH_TRACKS})")
    folders = {role: case / name for role, name in EDIT_FOLDERS}
    loaders = {role: (lambda p=path: read_video(p)) if role.endswith("poses") else (lambda p=path: read_mask_folder(p))
               for role, path in folders.items()}
    gt = case / EDIT_GROUND_TRUTH
    gt_tracks = gt_vis = None
    if (case / EDIT_GROUND_TRUTH_TRACKS).exists():
        gt_tracks, gt_vis = load_tracks(case / EDIT_GROUND_TRUTH_TRACKS)
    parts = [file_digest(p) for p in folders.values()] + ([file_digest(gt)] if gt.is_dir() else [])
    edit = EditCase(**loaders, digest=hashlib.sha256("/".join(parts).encode()).hexdigest()[:16],
                    ground_truth=(lambda: read_video(gt)) if gt.is_dir() else None,
                    ground_truth_tracks=gt_tracks, ground_truth_visibility=gt_vis)
    source = case / EDIT_SOURCE
    return Clip(id=cid, prompt=str(row["prompt"]), loader=lambda: read_video(source),
                source_hash=file_digest(source), target_prompt=row.get("target_prompt") or None,
                edit=edit, meta={"path": str(case)})


@datasets.register("davis")
class DavisClipSet(FolderClipSet):
    description = "DAVIS-2017 JPEG frame folders from a local root; prompts from a manifest"
    default_path = "JPEGImages/480p/{id}"


# ---- writing: any clip set in this layout (`motiongrid clips make`) ------------------------

def _write_frames(frames: torch.Tensor, folder: Path) -> None:
    """Frames as lossless PNGs named as the released cases name them (frame_0.png, ...)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(to_uint8_hwc(frames)):
        if not cv2.imwrite(str(folder / f"frame_{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{folder / f'frame_{i}.png'}: could not write")


def export_edit_case(clip: Clip, case: Path) -> None:
    """Write an editing case in the layout ``read_edit_case`` reads (the released one)."""
    inputs = clip.edit.inputs(clip)
    _write_frames(clip.frames, case / EDIT_SOURCE)
    for role, name in EDIT_FOLDERS:
        value = getattr(inputs, role)
        _write_frames(value if role.endswith("poses") else value[:, None].float().expand(-1, 3, -1, -1), case / name)
    if clip.edit.ground_truth is not None:
        _write_frames(clip.scoring_reference().frames, case / EDIT_GROUND_TRUTH)
    if clip.edit.ground_truth_tracks is not None:
        np.savez_compressed(case / EDIT_GROUND_TRUTH_TRACKS, tracks=clip.edit.ground_truth_tracks.numpy(),
                            visibility=clip.edit.ground_truth_visibility.numpy())


def export_clips(clips: list[Clip], out: Path) -> Path:
    """Write ``clips`` as mp4 files + manifest.yaml (+ tracks .npz) that ``folder`` reads back;
    editing cases as case folders in the released layout."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in clips:
        stem = file_stem(clip.id)   # ids that differ only in case or non-ASCII stay apart
        if clip.is_edit:
            export_edit_case(clip, out / stem)
            rows.append({"id": clip.id, "case": stem, "prompt": clip.prompt,
                         **({"target_prompt": clip.target_prompt} if clip.target_prompt else {})})
            clip.release()
            continue
        row = {"id": clip.id, "path": f"{stem}.mp4", "prompt": clip.prompt}
        write_video(clip.video, out / row["path"])
        if clip.target_prompt:
            row["target_prompt"] = clip.target_prompt
        if clip.tracks is not None:
            row["tracks"] = f"{stem}.tracks.npz"
            np.savez_compressed(out / row["tracks"], tracks=clip.tracks.numpy(),
                                visibility=clip.visibility.numpy())
        rows.append(row)
        clip.release()
    manifest = out / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"clips": rows}, sort_keys=False))
    return manifest

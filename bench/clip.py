"""A clip: the unit every method and metric works on (a motion reference, or an editing case)."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from motiongrid.bench.errors import UserError
from motiongrid.bench.hashing import update_file
from motiongrid.bench.video import Video, VideoError


@dataclass
class Clip:
    """One benchmark case. Frames load lazily (and once) through ``loader``.

    tracks: (T, N, 2) float (x, y) in pixels of the clip's own resolution; visibility (T, N)
    bool. ``source_hash`` identifies the pixels without decoding them (a file digest, or the
    generator's parameters); ``content_hash`` adds everything else that changes a result.
    """
    id: str
    prompt: str
    loader: Callable[[], Video]
    source_hash: str
    target_prompt: str | None = None
    tracks: torch.Tensor | None = None
    visibility: torch.Tensor | None = None
    target_video: Callable[[], Video] | None = None
    edit: EditCase | None = None
    meta: dict = field(default_factory=dict)
    _video: Video | None = field(default=None, init=False, repr=False)
    _scoring: Clip | None = field(default=None, init=False, repr=False)

    @property
    def video(self) -> Video:
        if self._video is None:
            video = self.loader()
            if not isinstance(video, Video):
                raise VideoError(f"clip {self.id!r}: loader returned {type(video).__name__}, expected Video")
            self._video = video
        return self._video

    @property
    def frames(self) -> torch.Tensor:
        return self.video.frames

    def release(self) -> None:
        """Drop decoded frames (they are reloaded on next access)."""
        self._video = None
        if self.edit is not None:
            self.edit.release()

    @property
    def is_edit(self) -> bool:
        return self.edit is not None

    def scoring_reference(self) -> Clip:
        """What reference metrics compare a cell's output with. A motion reference scores
        against itself; an editing case against its ground-truth edit (frames and tracks),
        never its source. An editing case without ground truth gets a reference whose frames
        raise a clear error, so reference metrics fail with that reason and prompt-only
        metrics still score."""
        if self.edit is None:
            return self
        if self._scoring is None:
            self._scoring = self.edit.ground_truth_clip(self)
        return self._scoring

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.source_hash, self.prompt, self.target_prompt or ""):
            h.update(part.encode())
            h.update(b"\0")
        if self.tracks is not None:
            h.update(np.ascontiguousarray(self.tracks.numpy(), dtype=np.float32).tobytes())
        if self.edit is not None:
            h.update(b"edit\0" + self.edit.digest.encode())
        return h.hexdigest()[:16]


# What each kind of reference is called in run.json and reports.
REFERENCE_SOURCE = "the clip itself (motion reference)"
REFERENCE_GROUND_TRUTH = "the ground-truth edited video (not the source)"


class MissingGroundTruth(VideoError):
    """An editing case has no ground-truth edit, so a reference metric is undefined for it."""


@dataclass
class EditCase:
    """The inputs of a motion-editing case besides its source video (``Clip.video``), as the
    released MotionFollower demo cases hold them: per-frame source poses, target poses
    (aligned to the source subject), source masks S (the subject's silhouette) and target
    masks T (the source subject's silhouette in the target pose), plus, when it exists, the
    ground-truth edited video and its tracks.

    Everything loads lazily and once. Poses are RGB videos; masks are (T, H, W) bool.
    ``digest`` identifies all of it (file digests, or the generator's parameters).
    """
    source_poses: Callable[[], Video]
    target_poses: Callable[[], Video]
    source_masks: Callable[[], torch.Tensor]
    target_masks: Callable[[], torch.Tensor]
    digest: str
    ground_truth: Callable[[], Video] | None = None
    ground_truth_tracks: torch.Tensor | None = None
    ground_truth_visibility: torch.Tensor | None = None
    _loaded: dict = field(default_factory=dict, init=False, repr=False)

    def _get(self, name: str):
        if name not in self._loaded:
            self._loaded[name] = getattr(self, name)()
        return self._loaded[name]

    def release(self) -> None:
        self._loaded.clear()

    def inputs(self, clip: Clip) -> EditInputs:
        """Load and check every input against the source video: same frame count and size."""
        src = clip.video
        t, _, h, w = src.frames.shape
        out = EditInputs(self._get("source_poses").frames, self._get("target_poses").frames,
                         self._get("source_masks"), self._get("target_masks"))
        for name in ("source_poses", "target_poses", "source_masks", "target_masks"):
            value = getattr(out, name)
            want = (t, 3, h, w) if name.endswith("poses") else (t, h, w)
            if tuple(value.shape) != want:
                raise VideoError(f"clip {clip.id!r}: {name} has shape {tuple(value.shape)}, expected {want} "
                                 f"(the source video is {t} frames of {w}x{h})")
        return out

    def ground_truth_clip(self, clip: Clip) -> Clip:
        """The clip metrics score an edit against (see ``Clip.scoring_reference``)."""
        if self.ground_truth is None:
            def missing() -> Video:
                raise MissingGroundTruth(f"clip {clip.id!r} is an editing case without a ground-truth edit; "
                                         "metrics that compare with a reference are undefined for it")
            loader, digest = missing, "no-ground-truth"
        else:
            loader, digest = (lambda: self._get("ground_truth")), self.digest
        return Clip(id=clip.id, prompt=clip.target_prompt or clip.prompt, loader=loader,
                    source_hash=f"edit-gt:{digest}", tracks=self.ground_truth_tracks,
                    visibility=self.ground_truth_visibility, meta={**clip.meta, "reference": "ground_truth"})


@dataclass
class EditInputs:
    """An editing case's inputs as tensors, checked against the source video."""
    source_poses: torch.Tensor   # (T, 3, H, W) in [0, 1]
    target_poses: torch.Tensor   # (T, 3, H, W) in [0, 1]
    source_masks: torch.Tensor   # (T, H, W) bool
    target_masks: torch.Tensor   # (T, H, W) bool


class TracksError(UserError, ValueError):
    """A tracks file that cannot be used; the message names it."""


def load_tracks(path) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth tracks from an .npz: ``tracks`` (T, N, 2) as (x, y) pixels and optional
    ``visibility`` (T, N) — the file ``motiongrid clips make`` writes beside each clip."""
    with np.load(path) as data:
        if "tracks" not in data:
            raise TracksError(f"{path}: tracks file has no 'tracks' array")
        tracks = torch.tensor(data["tracks"], dtype=torch.float32)
        vis = torch.tensor(data["visibility"], dtype=torch.bool) if "visibility" in data \
            else torch.ones(tracks.shape[:2], dtype=torch.bool)
    if tracks.ndim != 3 or tracks.shape[-1] != 2 or vis.shape != tracks.shape[:2]:
        raise TracksError(f"{path}: expected tracks (T, N, 2) and visibility (T, N), "
                            f"got {tuple(tracks.shape)} and {tuple(vis.shape)}")
    return tracks, vis


def file_digest(path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (or of every file in a frame folder, in name order)."""
    from pathlib import Path

    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.name.encode())
        update_file(h, f)
    return h.hexdigest()[:16]

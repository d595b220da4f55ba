"""A clip: the unit every method and metric works on."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from motiongrid.bench.errors import UserError
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
    meta: dict = field(default_factory=dict)
    _video: Video | None = field(default=None, init=False, repr=False)

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

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.source_hash, self.prompt, self.target_prompt or ""):
            h.update(part.encode())
            h.update(b"\0")
        if self.tracks is not None:
            h.update(np.ascontiguousarray(self.tracks.numpy(), dtype=np.float32).tobytes())
        return h.hexdigest()[:16]


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
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()[:16]

"""What every built-in metric shares: option checking, lazy preparation, the feature cache, and
the ONE helper that aligns a generated video with its reference (``align``).

Alignment rule: a reference metric compares frame t of the generated video with frame t of
the reference, at the same size. When frame counts or sizes differ it is an error naming both,
unless the ``resample`` option says which side to change:

- ``"reference-to-generated"``: the reference is resampled to the generated video's frame
  count (nearest frame index, spread uniformly) and size (``resize_frames``: bilinear,
  antialiased); its ground-truth tracks are mapped the same way.
- ``"generated-to-reference"``: the generated video is changed to match the reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from motiongrid.bench.api import AlignmentError, Metric, MetricUnavailable
from motiongrid.bench.cache import FeatureCache
from motiongrid.bench.clip import Clip
from motiongrid.bench.video import Video, resample_frames, resize_frames, sample_frame_indices
from motiongrid.metrics.options import RESAMPLE_CHOICES, BuiltinOptions


class BaseMetric(Metric):
    """A built-in metric. ``Options`` (a subclass of ``BuiltinOptions``, metrics/options.py)
    types its options; unknown keys and bad values are an ``OptionsError`` (the runner turns it
    into a config error). Models load on first use (or in ``prepare``), after ``available()``
    said they can."""
    Options = BuiltinOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.cache = FeatureCache(self.opts.cache_dir, enabled=self.opts.cache)
        self._prepared = False
        self.check_options()

    def check_options(self) -> None:
        """What a type cannot say (options that depend on each other); raise ValueError."""

    def prepare(self, device: torch.device) -> None:
        reason = self.available()
        if reason:
            raise MetricUnavailable(reason)
        self.device = torch.device(device)
        self.load()
        self._prepared = True

    def load(self) -> None:
        """Load models onto ``self.device``; only called once ``available()`` is None."""

    def ensure_prepared(self) -> None:
        if not self._prepared:
            self.prepare(self.device)

    def batches(self, n: int):
        step = self.opts.batch_size
        for start in range(0, n, step):
            yield slice(start, min(n, start + step))


@dataclass
class Aligned:
    generated: torch.Tensor            # (T, 3, H, W) in [0, 1]
    reference: torch.Tensor            # same shape
    ref_tracks: torch.Tensor | None    # (T, N, 2) at the aligned size, or None
    ref_visibility: torch.Tensor | None
    resampled: str | None              # which side was changed, if any
    reference_changed: bool            # True when reference frames differ from the clip's own


def _describe(frames: torch.Tensor) -> str:
    return f"{frames.shape[0]} frames of {frames.shape[3]}x{frames.shape[2]} (WxH)"


def scale_tracks(tracks: torch.Tensor, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> torch.Tensor:
    """Map (x, y) pixel positions between resolutions, pixel centres to pixel centres."""
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    scale = torch.tensor([sx, sy], dtype=tracks.dtype)
    return (tracks + 0.5) * scale - 0.5


def align(metric: str, generated: Video, clip: Clip, resample: str | None,
          with_tracks: bool = False) -> Aligned:
    """The one place reference metrics reconcile frame count and size (see module doc)."""
    gen = generated.frames
    ref = clip.frames
    tracks, vis = (clip.tracks, clip.visibility) if with_tracks else (None, None)
    if tracks is not None and vis is None:
        vis = torch.ones(tracks.shape[:2], dtype=torch.bool)
    same = gen.shape[0] == ref.shape[0] and gen.shape[2:] == ref.shape[2:]
    if same:
        return Aligned(gen, ref, tracks, vis, None, False)
    if resample is None:
        where = f" ({clip.meta['path']})" if clip.meta.get("path") else ""
        raise AlignmentError(
            f"{metric}: generated video has {_describe(gen)} but reference clip {clip.id!r}{where} has "
            f"{_describe(ref)}; set resample='reference-to-generated' or 'generated-to-reference' "
            f"(CLI: --resample) to align them")
    if resample == "reference-to-generated":
        count, size = gen.shape[0], tuple(gen.shape[2:])
        if tracks is not None:
            idx = sample_frame_indices(int(ref.shape[0]), int(count))
            tracks, vis = scale_tracks(tracks[idx], tuple(ref.shape[2:]), size), vis[idx]
        ref = resize_frames(resample_frames(ref, count), size)
        return Aligned(gen, ref, tracks, vis, resample, True)
    if resample == "generated-to-reference":
        gen = resize_frames(resample_frames(gen, ref.shape[0]), tuple(ref.shape[2:]))
        return Aligned(gen, ref, tracks, vis, resample, False)
    raise ValueError(f"{metric}: resample={resample!r}; expected one of {list(RESAMPLE_CHOICES)} or None")


def reference_settings(aligned: Aligned) -> dict:
    """What about the reference side changes cached features (its aligned shape and how)."""
    return {"shape": list(aligned.reference.shape), "resampled": aligned.resampled if aligned.reference_changed else None}


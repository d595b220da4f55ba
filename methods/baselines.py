"""Baselines that need no model: the motion-fidelity ceiling and floor."""
from __future__ import annotations

from motiongrid.bench.api import Method
from motiongrid.bench.registry import methods
from motiongrid.bench.video import Video


@methods.register("reference")
class ReferenceBaseline(Method):
    """Returns the reference clip itself: every reference metric's best possible value."""
    task = "baseline"
    description = "returns the reference clip (motion-fidelity ceiling)"
    oracle = True

    def generate(self, clip, params, seed) -> Video:
        return Video(clip.frames.clone(), clip.video.fps)


@methods.register("static")
class StaticBaseline(Method):
    """Repeats the first reference frame: right appearance, zero motion."""
    task = "baseline"
    description = "repeats the first reference frame (zero motion)"
    oracle = True   # its first frame is the reference's

    def generate(self, clip, params, seed) -> Video:
        frames = clip.frames
        return Video(frames[:1].expand_as(frames).clone(), clip.video.fps)

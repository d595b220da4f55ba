"""Baselines that need no model: the ceilings and floors other methods are read against.

``reference`` and ``static`` run on motion references and on editing cases; ``source`` only on
editing cases (on a motion reference it would equal ``reference``)."""
from __future__ import annotations

from motiongrid.bench.api import Method
from motiongrid.bench.registry import methods
from motiongrid.bench.video import Video


@methods.register("reference")
class ReferenceBaseline(Method):
    """Returns what the metrics compare with (the clip itself, or an editing case's ground
    truth): every reference metric's best possible value."""
    oracle = True
    resources = {"gpus": 0, "cpus": 1, "memory_gb": None}   # copies frames: no GPU on a cluster

    def generate(self, clip, params, seed) -> Video:
        reference = clip.scoring_reference().video
        return Video(reference.frames.clone(), reference.fps)


@methods.register("static")
class StaticBaseline(Method):
    """Repeats the first reference frame: right appearance, zero motion."""
    oracle = True   # its first frame is the reference's
    resources = {"gpus": 0, "cpus": 1, "memory_gb": None}

    def generate(self, clip, params, seed) -> Video:
        frames = clip.frames
        return Video(frames[:1].expand_as(frames).clone(), clip.video.fps)


@methods.register("source")
class SourceBaseline(Method):
    """An editing case's source video unchanged: the appearance ceiling and the motion floor
    of an edit (it keeps every pixel of the subject and background, and none of the new motion)."""
    resources = {"gpus": 0, "cpus": 1, "memory_gb": None}

    def generate(self, clip, params, seed) -> Video:
        return Video(clip.frames.clone(), clip.video.fps)

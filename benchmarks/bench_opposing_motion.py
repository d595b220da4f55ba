"""motion_fidelity's variants on the `opposing` shapes preset (docs/metrics.md, "Which variant
to read"): the same video, its first frame frozen and the video played backwards, scored
against the clip; mean over the preset's clips. Run:
`python benchmarks/bench_opposing_motion.py [--tracker lk|gt] [--points all|moving]`.
"""
from __future__ import annotations

import argparse

import torch

from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import ShapesClipSet
from motiongrid.metrics.motion import MotionFidelity

KEYS = ("symmetric", "dmt_one_way", "paired", "endpoint_error")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker", default="lk", choices=("lk", "gt"))
    parser.add_argument("--points", default="all", choices=("all", "moving"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    clips = ShapesClipSet(preset="opposing").load()
    metric = MotionFidelity(tracker=args.tracker, points=args.points, cache=False)
    variants = {"same": lambda f: f.clone(), "frozen": lambda f: f[:1].expand_as(f).contiguous(),
                "backwards": lambda f: f.flip(0).contiguous()}
    print(f"opposing preset, {len(clips)} clips, tracker {args.tracker}, points {args.points}")
    print("| generated | " + " | ".join(KEYS) + " |\n|---|" + "---|" * len(KEYS))
    for name, make in variants.items():
        rows = [metric.score(Video(make(c.frames)), c) for c in clips]
        means = [sum(r[k] for r in rows) / len(rows) for k in KEYS]
        print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


if __name__ == "__main__":
    main()

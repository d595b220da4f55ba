"""Cost of one toy editing cell against an unguided toy sample of the same size, side by side.

Rows (same 8 frames × 24², same 25 DDIM steps, one CPU thread unless --threads):
- unguided toy sample (CFG, as the `unguided` method samples),
- motionfollower, energy 0: reconstruction + editing branch, no score guidance, no replays,
- motionfollower as released (energy 4): + 15 guided steps, 4 replayed steps (23 guidance calls),
  estimator "released" (the base UNet) and "shared" (R taken from the reconstruction pass).
Ratios are to the unguided sample. Run: `python benchmarks/bench_edit.py [--repeats 3]`.
"""
from __future__ import annotations

import argparse

import torch
from bench_metrics import median_time  # the sibling script's timer (run from benchmarks/ or its parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from motiongrid.datasets.shapes import ShapesClipSet
    from motiongrid.methods.motionfollower.adapter import MotionFollower
    from motiongrid.methods.motionfollower.params import MotionFollowerParams
    from motiongrid.methods.toy.model import load_toy_backbone, sample_unguided

    clip = ShapesClipSet(preset="edit", seed=1000, count=1).load()[0]
    toy = load_toy_backbone()
    method = MotionFollower()
    method.load(MotionFollowerParams(model="toy-motionfollower"))
    rows = {"unguided toy sample": lambda: sample_unguided(toy, [clip.prompt], seed=0, steps=25)}
    for label, params in (("motionfollower, energy 0", {"energy_scale": 0.0}),
                          ("motionfollower, released (estimator released)", {}),
                          ("motionfollower, released (estimator shared)", {"estimator": "shared"})):
        p = MotionFollowerParams(model="toy-motionfollower", **params)
        rows[label] = lambda p=p: method.generate(clip, p, 0)
    for fn in rows.values():   # warm-up: first calls allocate
        fn()
    times = {label: median_time(fn, args.repeats) for label, fn in rows.items()}
    base = times["unguided toy sample"]
    print(f"| row | seconds (median of {args.repeats}, {args.threads} thread) | × unguided |")
    print("|---|---:|---:|")
    for label, t in times.items():
        print(f"| {label} | {t:.2f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()

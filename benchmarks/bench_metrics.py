"""Per-video cost of each metric that runs without downloaded weights, and what the reference
feature cache saves, measured side by side in one run.

    python benchmarks/bench_metrics.py [--repeats 5]

Clip: one `shapes` clip, 16 frames of 64x64 (the default clip set's size). Prints median
seconds per scored video and ratios; a warm cache reuses the reference tracks.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from motiongrid.bench.cache import FeatureCache
from motiongrid.bench.scoring import build_metrics
from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import ShapesOptions, generate_clips


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    clip = generate_clips(ShapesOptions(count=1, size=64, frames=16))[0]
    video = Video(clip.frames.flip(0).contiguous(), clip.video.fps)   # a different video, same size
    rows = []
    for name, opts in [("psnr", {}), ("ssim", {}), ("l1", {}),
                       ("motion_fidelity", {"tracker": "lk"}), ("motion_fidelity", {"tracker": "gt"})]:
        with tempfile.TemporaryDirectory() as tmp:
            (metric,), _ = build_metrics([name], {name: {**opts, "cache_dir": tmp}})
            metric.prepare(torch.device("cpu"))
            metric.score(video, clip)  # load once

            def cold(metric=metric):
                if hasattr(metric, "cache"):
                    metric.cache = FeatureCache(tempfile.mkdtemp(dir=tmp))
                metric.score(video, clip)

            t_cold = median_time(cold, args.repeats)
            if hasattr(metric, "cache"):
                metric.cache = FeatureCache(tmp)
                metric.score(video, clip)
            t_warm = median_time(lambda metric=metric: metric.score(video, clip), args.repeats)
        rows.append((f"{name} {opts.get('tracker', '')}".strip(), t_cold, t_warm))
    print(f"torch threads: {torch.get_num_threads()}; clip 16x3x64x64; median of {args.repeats}")
    print(f"{'metric':28s} {'cold cache s':>12s} {'warm cache s':>12s} {'cold/warm':>10s}")
    for name, cold, warm in rows:
        print(f"{name:28s} {cold:12.4f} {warm:12.4f} {cold / warm:10.2f}")


if __name__ == "__main__":
    main()

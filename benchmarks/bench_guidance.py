"""Guided vs unguided DDIM step time on the same model, measured side by side.

    python benchmarks/bench_guidance.py [--repeats 15] [--device cpu] [--threads N]

For each model (a tiny random AnimateDiff built in a temporary folder and loaded through the
real loader; the toy model when its checkpoint ships) it times one unguided step (uncond + cond
in one batched pass) and one guided step (uncond pass without grad, cond pass with autograd up
to the last guided map, gradient w.r.t. the latent, corrected step), alternating them so both
see the same machine load, and prints the medians and their ratio. Target: ratio <= 2.2.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from motiongrid.methods.backbone import load_backbone
from motiongrid.methods.motionclone import guidance as mc
from motiongrid.methods.toy import toy_checkpoint_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_models import save_tiny_animatediff  # noqa: E402  (a test-model builder, not package code)

TARGET = 2.2


def _reference_frames(bb, frames=24) -> torch.Tensor:
    """A square moving right across the frame (any motion will do for timing)."""
    video = torch.full((frames, 3, bb.height, bb.width), 0.1)
    side = max(2, bb.height // 4)
    for t in range(frames):
        x = round(t * (bb.width - side) / (frames - 1))
        video[t, 0, bb.height // 3:bb.height // 3 + side, x:x + side] = 0.9
    return video


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(bb, repeats: int, steps: int = 25, cfg: float = 7.5, blocks: str = "up_blocks.1",
               weight: float = 1e3) -> dict:
    reference = mc.extract_motion_representation(bb, _reference_frames(bb), blocks=blocks, k=1)
    bb.scheduler.set_timesteps(steps, device=bb.device)
    t, prev = int(bb.scheduler.timesteps[0]), int(bb.scheduler.timesteps[1])
    x = mc.initial_noise(bb, seed=0)
    cond, uncond = bb.encode_prompt(["a red circle"]), bb.encode_prompt([""])

    def run(guided: bool) -> float:
        _sync(bb.device)
        start = time.perf_counter()
        mc.denoise_step(bb, x, t, prev, cond, uncond, cfg, reference if guided else None, weight)
        _sync(bb.device)
        return time.perf_counter() - start

    run(False), run(True)  # warm-up (allocator, lazy init)
    unguided, guided = [], []
    for _ in range(repeats):
        unguided.append(run(False))
        guided.append(run(True))
    u, g = statistics.median(unguided), statistics.median(guided)
    return {"unguided_ms": 1e3 * u, "guided_ms": 1e3 * g, "ratio": g / u, "maps": len(reference),
            "latent": "x".join(map(str, bb.latent_shape()))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny_animatediff(Path(tmp) / "tiny-animatediff")
        rows.append(("tiny AnimateDiff (random)", time_steps(load_backbone(f"animatediff:{path}", device), args.repeats)))
    toy_file = toy_checkpoint_file()
    if toy_file.is_file():
        rows.append(("toy", time_steps(load_backbone("toy", device), args.repeats)))
    else:
        print(f"(toy model skipped: {toy_file} not found)")

    print(f"\nguided vs unguided DDIM step, median of {args.repeats}, device {device}, "
          f"{torch.get_num_threads()} threads, blocks up_blocks.1, primary k=1")
    print(f"{'model':28} {'latent':>14} {'maps':>4} {'unguided ms':>12} {'guided ms':>10} {'ratio':>6}")
    for name, r in rows:
        flag = "" if r["ratio"] <= TARGET else f"  > target {TARGET}"
        print(f"{name:28} {r['latent']:>14} {r['maps']:>4} {r['unguided_ms']:>12.1f} {r['guided_ms']:>10.1f} "
              f"{r['ratio']:>6.2f}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak-memory estimates (shape-only, random weights at real size) of each method variant of a
config as the frame count grows, as a table and a plot. No GPU needed:

    python benchmarks/profile_frames.py configs/profile-paper.toml --frames 8 16 24 --size 512x512 \
        --out docs/img/profile_frames.png --json docs/profile_frames.json

With ``--device cuda`` the same rows are measured instead (max_memory_allocated / reserved).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("--frames", type=int, nargs="+", default=[8, 16, 24])
    p.add_argument("--size", default="512x512")
    p.add_argument("--dtype", default="fp16")
    p.add_argument("--device", choices=("cuda",), help="measure on CUDA instead of estimating")
    p.add_argument("--out", help="plot (PNG)")
    p.add_argument("--json", help="rows as JSON")
    args = p.parse_args()

    from motiongrid.bench.config import load_config
    from motiongrid.bench.profile import LABEL, parse_size, profile_grid

    config, source = load_config(args.config)
    rows = []
    for frames in args.frames:
        rows += [r.as_dict() for r in profile_grid(config, source, frames, parse_size(args.size), args.dtype,
                                                   args.device or "cpu", args.device is None)]
    print(f"{'variant':40s} {'frames':>6s} {'peak GiB':>9s}  peak in")
    for r in rows:
        peak = "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**30:9.2f}"
        print(f"{r['label']:40s} {r['frames']:6d} {peak}  {r['peak_stage'] or r['error'] or r['note']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"label": LABEL, "size": args.size, "dtype": args.dtype, "rows": rows},
                                              indent=1))
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6))
        for label in dict.fromkeys(r["label"] for r in rows):
            pts = [(r["frames"], r["peak_bytes"] / 2**30) for r in rows if r["label"] == label and r["peak_bytes"]]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_xlabel("frames")
        ax.set_ylabel("peak GiB (estimate)" if args.device is None else "peak GiB (measured)")
        ax.set_title(f"{args.size} {args.dtype} — {LABEL}", fontsize=8)
        ax.set_xticks(args.frames)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()

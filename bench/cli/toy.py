"""``motiongrid toy``: train, export and sample the toy world's video diffusion model."""
from __future__ import annotations

import argparse

from motiongrid.bench.cli.common import ExitCode, positive_int


def _cmd_train(args) -> int:
    import torch

    from motiongrid.methods.toy.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    summary = train(args.out, steps=args.steps, seed=args.seed, resume=args.resume, max_minutes=args.max_minutes,
                    export=args.export, progress=not args.quiet)
    print(f"trained to step {summary['step']}/{summary['steps']} ({summary['stopped']}), "
          f"{summary['minutes']:.1f} min; exported to {', '.join(summary.get('exported', []))}")
    return ExitCode.OK


def _cmd_export(args) -> int:
    from motiongrid.methods.toy.train import export_run

    path = export_run(args.run, args.to)
    print(f"exported {path} (+ toy.json, train_log.csv, loss.png)")
    return ExitCode.OK


def _cmd_sample(args) -> int:
    from motiongrid.methods.toy.model import load_toy_backbone
    from motiongrid.methods.toy.sample import sample_strip

    backbone = load_toy_backbone("toy", "cpu", path=args.checkpoint)
    path = sample_strip(backbone, args.out, clips=args.clips, seed=args.seed)
    print(f"wrote {path}")
    return ExitCode.OK


def register(subparsers) -> None:
    p = subparsers.add_parser("toy", help="train or sample the toy world's video diffusion model")
    sub = p.add_subparsers(dest="toy_command", required=True, metavar="{train,export,sample}")
    t = sub.add_parser("train", help="train the toy model (resumes from DIR/checkpoint.pt)")
    t.add_argument("--out", required=True, help="run folder (checkpoint.pt, train_log.csv, export/)")
    t.add_argument("--steps", type=positive_int, default=4000, help="total steps; sets the LR schedule (default 4000, as shipped)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-minutes", type=float, help="stop (and export) after this many minutes of this invocation")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from DIR/checkpoint.pt if present (default; --no-resume starts over)")
    t.add_argument("--export", help="also export the final EMA weights into this folder (e.g. methods/toy/checkpoint)")
    t.add_argument("--threads", type=positive_int, help="torch intra-op threads")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)
    e = sub.add_parser("export", help="export a run's EMA weights (toy.safetensors, toy.json, log, loss.png)")
    e.add_argument("run", help="a `toy train` output folder")
    e.add_argument("--to", required=True, help="destination folder, e.g. methods/toy/checkpoint")
    e.set_defaults(func=_cmd_export)
    s = sub.add_parser("sample", help="write a PNG strip: reference and generated rows per clip")
    s.add_argument("--out", required=True, help="PNG file")
    s.add_argument("--clips", type=positive_int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--checkpoint", help="toy.safetensors to use (default: the shipped one)")
    s.set_defaults(func=_cmd_sample)

"""``motiongrid toy``: train, export and sample the toy world's video diffusion model.

A plugin command group: declared in ``motiongrid.methods`` (``registry.commands``), so the core
CLI finds it by name; ``methods/motionfollower/cli.py`` adds the toy MotionFollower's
subcommands to this group.
"""
from __future__ import annotations

import argparse

from motiongrid.bench.cli.common import ExitCode, positive_int


def run_training(args, train) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    summary = train(args.out, steps=args.steps, seed=args.seed, resume=args.resume, max_minutes=args.max_minutes,
                    export=args.export, progress=not args.quiet)
    print(f"trained to step {summary['step']}/{summary['steps']} ({summary['stopped']}), "
          f"{summary['minutes']:.1f} min; exported to {', '.join(summary.get('exported', []))}")
    return ExitCode.OK


def _cmd_train(args) -> int:
    from motiongrid.methods.toy.train import train

    return run_training(args, train)


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


def training_args(t, steps: int, what: str, export_to: str) -> None:
    t.add_argument("--out", required=True, help="run folder (checkpoint.pt, train_log.csv, export/)")
    t.add_argument("--steps", type=positive_int, default=steps, help=f"total steps; sets the LR schedule (default {steps}, as shipped)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-minutes", type=float, help="stop (and export) after this many minutes of this invocation")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from DIR/checkpoint.pt if present (default; --no-resume starts over)")
    t.add_argument("--export", help=f"also export the final EMA {what} into this folder (e.g. {export_to})")
    t.add_argument("--threads", type=positive_int, help="torch intra-op threads")
    t.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers):
    """Add ``toy train|export|sample``; returns the group's subparsers (children add theirs)."""
    p = subparsers.add_parser("toy", help="train or sample the toy world's video diffusion model")
    sub = p.add_subparsers(dest="toy_command", required=True)
    t = sub.add_parser("train", help="train the toy model (resumes from DIR/checkpoint.pt)")
    training_args(t, 4000, "weights", "methods/toy/checkpoint")
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
    return sub

"""``motiongrid toy``: train, export and sample the toy world's video diffusion model, and
train / check / sample the toy MotionFollower fine-tuned from it."""
from __future__ import annotations

import argparse

from motiongrid.bench.cli.common import ExitCode, positive_int


def _run_training(args, train) -> int:
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

    return _run_training(args, train)


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


def _cmd_train_edit(args) -> int:
    from motiongrid.methods.motionfollower.toy_train import train_edit

    return _run_training(args, train_edit)


def _edit_backbone(args):
    from motiongrid.methods.motionfollower.model import load_toy_edit_backbone

    return load_toy_edit_backbone(path=args.checkpoint)


def _cmd_check_edit(args) -> int:
    from motiongrid.methods.motionfollower.toy_eval import write_acceptance

    summary = write_acceptance(_edit_backbone(args), args.out, count=args.clips, seeds=tuple(range(args.seeds)))
    print(" ".join(f"{k}={v}" for k, v in summary.items()) + f"\nwrote {args.out}")
    return ExitCode.OK if summary["passes"] else ExitCode.FAILED


def _cmd_sample_edit(args) -> int:
    from motiongrid.methods.motionfollower.toy_eval import edit_strip

    print(f"wrote {edit_strip(_edit_backbone(args), args.out, clips=args.clips, seed=args.seed)}")
    return ExitCode.OK


def _training_args(t, steps: int, what: str, export_to: str) -> None:
    t.add_argument("--out", required=True, help="run folder (checkpoint.pt, train_log.csv, export/)")
    t.add_argument("--steps", type=positive_int, default=steps, help=f"total steps; sets the LR schedule (default {steps}, as shipped)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-minutes", type=float, help="stop (and export) after this many minutes of this invocation")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from DIR/checkpoint.pt if present (default; --no-resume starts over)")
    t.add_argument("--export", help=f"also export the final EMA {what} into this folder (e.g. {export_to})")
    t.add_argument("--threads", type=positive_int, help="torch intra-op threads")
    t.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser("toy", help="train or sample the toy world's video diffusion model")
    sub = p.add_subparsers(dest="toy_command", required=True,
                           metavar="{train,export,sample,train-edit,check-edit,sample-edit}")
    t = sub.add_parser("train", help="train the toy model (resumes from DIR/checkpoint.pt)")
    _training_args(t, 4000, "weights", "methods/toy/checkpoint")
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
    te = sub.add_parser("train-edit", help="fine-tune the toy MotionFollower (UNet + toy PoCtr/ReCtr) from the toy model")
    _training_args(te, 2000, "toy-motionfollower weights", "methods/motionfollower/checkpoint")
    te.set_defaults(func=_cmd_train_edit)
    for name, func, helptext in (("check-edit", _cmd_check_edit, "acceptance of the toy MotionFollower on held-apart "
                                  "editing cases, guidance off (JSON; exit 1 when it fails)"),
                                 ("sample-edit", _cmd_sample_edit, "write a PNG strip of toy edits (no guidance, guidance, "
                                  "reconstruction)")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--out", required=True, help="JSON file" if name == "check-edit" else "PNG file")
        c.add_argument("--clips", type=positive_int, default=16 if name == "check-edit" else 3)
        c.add_argument("--checkpoint", help="toy-motionfollower.safetensors to use (default: the shipped one)")
        if name == "check-edit":
            c.add_argument("--seeds", type=positive_int, default=2, help="seeds 0..N-1 per case")
        else:
            c.add_argument("--seed", type=int, default=0)
        c.set_defaults(func=func)

"""``motiongrid toy train-edit|check-edit|sample-edit``: train, check and sample the toy
MotionFollower. Declared in ``motiongrid.methods`` as a child of the ``toy`` command group."""
from __future__ import annotations

from motiongrid.bench.cli.common import ExitCode, positive_int
from motiongrid.methods.toy.cli import run_training, training_args


def _cmd_train_edit(args) -> int:
    from motiongrid.methods.motionfollower.toy_train import train_edit

    return run_training(args, train_edit)


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


def register(sub) -> None:
    """Add the toy MotionFollower's subcommands to the ``toy`` group's subparsers ``sub``."""
    te = sub.add_parser("train-edit", help="fine-tune the toy MotionFollower (UNet + toy PoCtr/ReCtr) from the toy model")
    training_args(te, 2000, "toy-motionfollower weights", "methods/motionfollower/checkpoint")
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

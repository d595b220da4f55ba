"""``motiongrid profile``: peak memory and time of each method variant of a grid at real size
with random weights (shape-only), before anyone owns the weights. See bench/profile.py."""
from __future__ import annotations

import json
from pathlib import Path

from motiongrid.bench.cli.common import ExitCode, positive_int


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024 ** 3:.2f}"


def _print(rows: list, label: str, cannot_know: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    table = Table(title=f"motiongrid profile — {label}")
    for name in ("variant", "frames×H×W dtype", "params M", "peak GiB", "weights / held / working GiB", "peak in",
                 "reserved GiB", "steps", "s/step", "s/cell"):
        table.add_column(name, justify="left" if name in ("variant", "peak in") else "right")
    fmt_s = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        shape = f"{r.frames}×{r.height}×{r.width} {r.dtype}"
        if r.error or r.note:
            table.add_row(r.label, shape, "-", f"[red]{r.error}[/red]" if r.error else r.note, *["-"] * 6)
            continue
        split = f"{_gib(r.weights_bytes)} / {_gib(r.held_bytes)} / {_gib(r.working_bytes)}"
        steps = f"{r.sampled_steps} of {r.steps}" if r.sampled_steps else str(r.steps or "-")
        table.add_row(r.label, shape, f"{r.parameters / 1e6:.1f}", _gib(r.peak_bytes),
                      split if r.mode == "estimate" else "-", r.peak_stage or "-", _gib(r.reserved_bytes), steps,
                      fmt_s(r.seconds_per_step), fmt_s(r.seconds_per_cell))
    console.print(table)
    console.print(f"mode: {rows[0].mode if rows else '-'}. held: tensors made in an earlier stage still alive at the "
                  "peak (caches, latents); working: made in the peak's own stage (activations, temporaries).")
    if any(r.mode == "estimate" for r in rows):
        console.print("The estimate does not include: " + "; ".join(cannot_know) + ".")


def _cmd_profile(args) -> int:
    from motiongrid.bench.config import load_config
    from motiongrid.bench.errors import UserError
    from motiongrid.bench.profile import LABEL, parse_size, profile_grid, report

    config, source = load_config(args.config)
    size = parse_size(args.size) if args.size else None
    estimate = args.estimate or args.device is None
    device = args.device or "cpu"
    if args.sample_steps < 0:
        raise UserError(f"--sample-steps {args.sample_steps}: expected 0 (all steps) or a positive number")
    rows = profile_grid(config, source, args.frames, size, args.dtype, device, estimate, args.sample_steps or None)
    result = report(rows)
    _print(rows, LABEL, result["cannot_know"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return ExitCode.FAILED if any(r.error for r in rows) else ExitCode.OK


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "profile", help="peak memory / time of each method variant at real size (shape-only, random weights)",
        description="Build each method variant's real-size architecture with random weights and run one cell's "
                    "work as the method does: an estimate of peak memory on any machine (--estimate, the default "
                    "without --device), or measured peak memory and time on --device cuda (or time on --device cpu). "
                    "Shape-only: no quality numbers; nothing is stored as a result.")
    p.add_argument("config", help="grid config (TOML); its method variants are profiled")
    p.add_argument("--frames", type=positive_int, help="frames per clip (default: the config's clip options, else 16)")
    p.add_argument("--size", metavar="HxW", help="clip size in pixels, e.g. 512x512 (default: the config's, else 512x512)")
    p.add_argument("--dtype", default="fp16", choices=("fp16", "bf16", "fp32"), help="weights' dtype (default fp16)")
    p.add_argument("--device", choices=("cuda", "cpu"),
                   help="measure on this device (cpu: time only, slow at real size); without it: --estimate")
    p.add_argument("--estimate", action="store_true", help="estimate peak memory from shapes (meta tensors)")
    p.add_argument("--sample-steps", type=int, default=2, metavar="N",
                   help="run N denoising steps (one of each kind: guided, unguided) and extrapolate time to the "
                        "cell's steps; the peak does not depend on it for methods whose caches do not grow "
                        "(they say so); 0: run every step (default 2)")
    p.add_argument("--json", metavar="OUT", help="write the rows as JSON (labelled shape-only)")
    p.set_defaults(func=_cmd_profile)

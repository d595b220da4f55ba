"""``motiongrid score``: score videos made elsewhere against their references (no run needed).
What it reads and writes is described in :mod:`motiongrid.bench.score_files`."""
from __future__ import annotations

import json
from pathlib import Path

from motiongrid.bench.cli.common import ExitCode, error, parse_value
from motiongrid.bench.score_files import RESAMPLE_MODES


def _print(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    keys = list(result["mean"])
    table = Table(title="motiongrid score")
    table.add_column("clip")
    for k in keys:
        table.add_column(k, justify="right")
    fmt = lambda v: "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    for row in result["per_clip"]:
        table.add_row(row["clip"], *[fmt(row.get(k)) for k in keys])
    table.add_row("[bold]mean[/bold]", *[fmt(result["mean"].get(k)) for k in keys])
    console.print(table)
    for name, value in result["set"].items():
        console.print(f"set-level {name}: {value}")
    for row in result["per_clip"]:
        for name, err in row.get("errors", {}).items():
            console.print(f"[yellow]{row['clip']}: {name} failed: {err}[/yellow]")
    for name, reason in result["unavailable"].items():
        console.print(f"[red]unavailable[/red] {name}: {reason}")


def metric_options(items: list[str]) -> dict[str, dict]:
    """``["motion_fidelity.points=moving", ...]`` -> {"motion_fidelity": {"points": "moving"}}, the
    shape of a config's ``[metric_options]``; values are read as TOML (numbers, booleans, lists)."""
    from motiongrid.bench.score_files import ScoreError

    out: dict[str, dict] = {}
    for item in items:
        key, eq, value = item.partition("=")
        metric, dot, option = key.strip().partition(".")
        if not (eq and dot and metric and option):
            raise ScoreError(f"--option {item!r}: expected METRIC.KEY=VALUE, e.g. motion_fidelity.points=moving")
        out.setdefault(metric, {})[option.strip()] = parse_value(value.strip())
    return out


def _cmd_score(args) -> int:
    from motiongrid.bench.score_files import ScoreError, run_score
    from motiongrid.bench.scoring import json_value

    names = [n.strip() for n in args.metrics.split(",") if n.strip()] if args.metrics else None
    try:
        options = metric_options(args.option)
        result = run_score(Path(args.reference), Path(args.generated), names, args.prompts, args.tracker,
                           args.resample, args.device, args.cache_dir, not args.no_cache, options)
    except ScoreError as exc:
        return error("score", exc)
    _print(result)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(json_value(result), indent=2, allow_nan=False))
        print(f"wrote {out}")
    return ExitCode.OK


def register(subparsers) -> None:
    from motiongrid.bench import score_files
    from motiongrid.bench.params import choices
    from motiongrid.bench.registry import metrics

    p = subparsers.add_parser("score", help="score generated videos against references (no run needed)",
                              description=score_files.__doc__.split("\n\n")[1])
    p.add_argument("--reference", required=True, help="reference video, frame folder, or folder of them")
    p.add_argument("--generated", required=True, help="generated video, frame folder, or folder of them")
    p.add_argument("--prompts", help="JSON/YAML mapping stem -> prompt, a manifest (CSV/YAML), or a .txt")
    p.add_argument("--metrics", help="comma-separated (default: all registered)")
    motion_options = metrics.info("motion_fidelity")["Options"]   # torch-free: a declared "module:Class"
    tracker = motion_options.model_fields["tracker"]
    p.add_argument("--tracker", default=tracker.default, choices=choices(motion_options, "tracker"),
                   help=f"motion_fidelity's tracker (shorthand for --option motion_fidelity.tracker=...): {tracker.description}")
    p.add_argument("--option", "-o", action="append", default=[], metavar="METRIC.KEY=VALUE",
                   help="a metric option as a config's [metric_options] sets it, e.g. motion_fidelity.points=moving "
                        "(repeatable; `motiongrid metrics` lists every option)")
    p.add_argument("--resample", default="none", choices=RESAMPLE_MODES,
                   help="how to align frame counts/sizes that differ (default: error)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--cache-dir", help="reference feature cache (default $MOTIONGRID_CACHE/features)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.set_defaults(func=_cmd_score)

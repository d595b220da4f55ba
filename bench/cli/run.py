"""``motiongrid run``, ``clips``, ``methods`` and ``metrics``."""
from __future__ import annotations

import sys
from pathlib import Path

from motiongrid.bench.cli.common import ExitCode, error, parse_value, positive_int


def _cmd_run(args) -> int:
    from motiongrid.bench.config import ConfigError, load_config
    from motiongrid.bench.errors import Interrupted
    from motiongrid.bench.runner import Runner
    from motiongrid.bench.video import VideoError

    try:
        config, source = load_config(args.config)
        out = Path(args.out or config.out or Path("runs") / config.name)
        runner = Runner(config, source, out, limit=args.limit, device=args.device, progress=not args.quiet,
                        executor=args.executor, ray_address=args.ray_address, workers=args.workers)
    except (ConfigError, VideoError) as exc:
        return error("run", exc)
    where = "" if runner.executor.name == "local" else f" on {runner.executor.name}"
    print(f"motiongrid run: {runner.total_cells} cells ({len(runner.variants)} method variants × "
          f"{len(runner.clips)} clips × {len(config.seeds)} seeds){where} -> {out}")
    runner.prepare()
    for name, reason in runner.unavailable.items():
        print(f"  metric {name}: {reason}")
    try:
        summary = runner.run()
    except Interrupted as exc:
        print(f"motiongrid run: {exc}\n  resume with: {_resume_command(args, out)}", file=sys.stderr)
        return exc.exit_code
    print(f"done: {summary.ok} ok, {summary.failed} failed, {summary.skipped} already finished "
          f"(results in {out / 'results.sqlite'})")
    if not args.no_report:
        _write_report(out)
    if summary.failed:
        print(f"{summary.failed} cells failed; their reasons are stored (motiongrid report {out})", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK


def _write_report(out: Path) -> None:
    """End a run as `motiongrid report OUT` would: the command is reached by name, so the core
    imports no report code; a report that cannot be written warns and leaves the run's exit code."""
    from motiongrid.bench.cli import build_parser

    args = build_parser().parse_args(["report", str(out)])
    if args.func(args) != ExitCode.OK:
        print(f"  the run's results are stored; retry with: motiongrid report {out}", file=sys.stderr)


def _resume_command(args, out: Path) -> str:
    import shlex

    parts = ["motiongrid", "run"] + ([args.config] if args.config else []) + ["--out", str(out)]
    parts += [f"--limit={args.limit}"] if args.limit else []
    parts += [f"--device={args.device}"] if args.device else []
    parts += [f"--executor={args.executor}"] if args.executor else []
    parts += [f"--ray-address={args.ray_address}"] if args.ray_address else []
    parts += [f"--workers={args.workers}"] if args.workers else []
    return shlex.join(parts)


def _cmd_clips_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from motiongrid.bench.registry import datasets

    table = Table("clip set", "description")
    for name in datasets.names():
        table.add_row(name, datasets.info(name)["description"])
    Console().print(table)
    return ExitCode.OK


def _cmd_clips_make(args) -> int:
    from motiongrid.bench.registry import UnknownName, datasets
    from motiongrid.datasets.folder import export_clips

    try:
        options = dict(kv.split("=", 1) for kv in args.option)
    except ValueError:
        return error("clips make", "--option takes KEY=VALUE")
    options = {k: parse_value(v) for k, v in options.items()}
    try:
        clips = datasets.get(args.name)(**options).load()
    except (UnknownName, ValueError) as exc:
        return error("clips make", exc)
    manifest = export_clips(clips, Path(args.out))
    print(f"wrote {len(clips)} clips and {manifest}")
    return ExitCode.OK


def _cmd_list(kind: str):
    def handler(args) -> int:
        from rich.console import Console
        from rich.table import Table

        from motiongrid.bench import registry
        from motiongrid.bench.params import describe_fields

        # from the declarations: listing imports no method or metric module (and no torch)
        reg = getattr(registry, f"{kind}s")
        table = Table(kind, "details", "description")
        infos = {name: reg.info(name) for name in reg.names()}
        shared = _shared_options(infos) if kind == "metric" else {}
        for name, info in infos.items():
            if kind == "metric":
                details = ("higher" if info["higher_is_better"] else "lower") + " is better; needs " + \
                    (", ".join(sorted(info["needs"])) or "nothing")
                details += "".join(_option_line(row) for row in describe_fields(info["Options"])
                                   if row[0] not in shared)
            else:
                fields = info["Params"].model_fields
                details = f"task {info['task']}; " + (", ".join(f"{n}={f.default!r}" for n, f in fields.items()) or "no params")
            table.add_row(name, details, info["description"])
        Console().print(table)
        if shared:
            print("options every metric above takes (config: [metric_options.NAME]; score: --option NAME.KEY=VALUE):")
            for row in shared.values():
                print(" " + _option_line(row).strip())
        return ExitCode.OK
    return handler


def _option_line(row) -> str:
    name, type_, default, description = row
    return f"\n  {name}: {type_} = {default!r}" + (f" — {description}" if description else "")


def _shared_options(infos: dict) -> dict:
    """Options (name -> listing row) that every metric takes, listed once instead of per metric."""
    from motiongrid.bench.params import describe_fields

    rows = [{r[0]: r for r in describe_fields(info["Options"])} for info in infos.values()]
    return {k: v for k, v in rows[0].items() if all(r.get(k) == v for r in rows)} if rows else {}


def register(sub) -> None:
    p = sub.add_parser("run", help="run a grid (the embedded default when no CONFIG is given)",
                       description="Run every (method variant, clip, seed) cell of a grid config; "
                                   "finished cells in --out are skipped, so re-running resumes.")
    p.add_argument("config", nargs="?", help="TOML grid config (default: the embedded default grid)")
    p.add_argument("--out", help="run directory (default: config's `out`, else runs/<name>)")
    p.add_argument("--limit", type=positive_int, help="keep only the first N clips (N >= 1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the config's device")
    p.add_argument("--executor", choices=["local", "ray"],
                   help="where cells run: this process (default) or a Ray cluster (overrides the config's `executor`)")
    p.add_argument("--ray-address", metavar="auto|HOST:PORT",
                   help="the Ray cluster to use (default: $RAY_ADDRESS, else a new local Ray instance)")
    p.add_argument("--workers", type=positive_int, help="with --executor ray: at most N workers per pool "
                   "(default: as many as the cluster fits)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true",
                   help="do not write RUN_DIR/report/ at the end (default: write it, as `motiongrid report` does)")
    p.set_defaults(func=_cmd_run)

    c = sub.add_parser("clips", help="list clip sets or write one to disk")
    csub = c.add_subparsers(dest="clips_command", required=True, metavar="{list,make}")
    csub.add_parser("list", help="registered clip sets").set_defaults(func=_cmd_clips_list)
    mk = csub.add_parser("make", help="write a clip set as mp4 files + manifest.yaml (+ tracks .npz)")
    mk.add_argument("name", help="clip set name, e.g. shapes")
    mk.add_argument("--out", required=True, help="output folder")
    mk.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                    help="clip set option, e.g. -o count=4 -o size=32 (TOML values)")
    mk.set_defaults(func=_cmd_clips_make)

    sub.add_parser("methods", help="registered method adapters and their parameters").set_defaults(
        func=_cmd_list("method"))
    sub.add_parser("metrics", help="registered metrics").set_defaults(func=_cmd_list("metric"))

"""``motiongrid report``, ``compare`` and ``export``: read a run directory (results.sqlite and
run.json), never the methods or metrics."""
from __future__ import annotations

from pathlib import Path

from motiongrid.bench.cli.common import ExitCode, error, non_negative_int
from motiongrid.reports.data import RunDirError
from motiongrid.reports.defaults import BASELINE_METHOD, DEFAULT_EMBED_MB, DEFAULT_PREVIEWS, DEFAULT_TOLERANCE, FORMATS, TARGETS


def _register_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="write report.md and a self-contained report.html for a run",
        description="Summarise a run directory: per-label means with 95%% bootstrap CIs, paired "
                    "differences against a baseline label, parameter "
                    "sweeps, the motion-fidelity/text-alignment trade-off, a per-clip heatmap, animated "
                    "previews, failures and provenance. Reads only results.sqlite and run.json.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (holds results.sqlite and run.json)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/report)")
    p.add_argument("--metric", metavar="NAME",
                   help="headline metric for the heatmap and scatter (default: symmetric motion fidelity "
                        "if present, else motion fidelity, else psnr, else the first metric)")
    p.add_argument("--previews", type=non_negative_int, default=DEFAULT_PREVIEWS, metavar="N",
                   help=f"animated previews for the first N clips (default {DEFAULT_PREVIEWS}; 0: none)")
    p.add_argument("--baseline", metavar="LABEL",
                   help=f"label to subtract in the paired-difference table (label − LABEL per clip and seed, "
                        f"with a bootstrap CI; default: the first label whose method is {BASELINE_METHOD!r}, "
                        f"if any, else no table)")
    p.add_argument("--embed-mb", type=float, default=DEFAULT_EMBED_MB, metavar="MB",
                   help=f"the cell browser's videos are embedded in report.html up to MB megabytes "
                        f"(default {DEFAULT_EMBED_MB:g}); the rest are written to OUT/videos/ and linked")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from motiongrid.reports.report import write_report

    try:
        md, html = write_report(args.run_dir, args.out, headline=args.metric, previews=args.previews,
                                baseline=args.baseline, embed_mb=args.embed_mb)
    except (RunDirError, ValueError) as exc:
        return error("report", exc)
    print(f"wrote {md}\nwrote {html}")
    return ExitCode.OK


def _register_compare(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare two runs; exit 1 on a regression (for CI)",
        description="Direction-aware per-label deltas of every metric between two runs, cells matched "
                    "by label+clip+seed. Exit code 1 when a metric regresses beyond its tolerance, a cell "
                    "that passed in BASE fails in NEW, or (without --allow-missing) a BASE cell or value "
                    f"is missing from NEW; 2 on bad input. Default tolerance: {DEFAULT_TOLERANCE} of |base "
                    "mean| per metric. Timings and memory are shown but gate only when --tolerance names them.")
    p.add_argument("base", metavar="BASE_RUN", help="baseline run directory")
    p.add_argument("new", metavar="NEW_RUN", help="run directory to check against the baseline")
    p.add_argument("--tolerance", action="extend", nargs="+", default=[], metavar="METRIC=VALUE",
                   help="allowed worsening: absolute (psnr=0.5) or percent of |base mean| (fid=5%%); "
                        "'default=VALUE' changes the default; a dict metric's name covers its keys "
                        "(motion_fidelity=0.02); naming time.<stage>, time.total or peak_memory_mb makes "
                        "them gate")
    p.add_argument("--allow-missing", action="store_true",
                   help="do not fail when NEW lacks cells or metric values BASE had (NEW ran a subset)")
    p.add_argument("--ignore-settings", action="store_true",
                   help="compare metrics whose recorded preprocessing/settings differ, and cells whose clip "
                        "content differs (by default they are 'not comparable' and fail the comparison)")
    p.add_argument("--markdown", metavar="OUT",
                   help="also append the Markdown to OUT, created if missing (e.g. \"$GITHUB_STEP_SUMMARY\")")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args) -> int:
    from motiongrid.reports.compare import compare_runs, parse_tolerances, render_markdown
    from motiongrid.reports.data import load_run

    try:
        tolerances = parse_tolerances(args.tolerance)
        base, new = load_run(args.base), load_run(args.new)
        comp = compare_runs(base, new, tolerances, allow_missing=args.allow_missing,
                            ignore_settings=args.ignore_settings)
    except (RunDirError, ValueError) as exc:
        return error("compare", exc)
    text = render_markdown(comp)
    print(text)
    if args.markdown:
        with Path(args.markdown).open("a", encoding="utf-8") as f:
            f.write(text + "\n")
    return ExitCode.FAILED if comp.failing else ExitCode.OK


def _register_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a run's cells as CSV, Parquet or JSON, a Hugging Face dataset folder, "
                       "or push them to MLflow or TensorBoard",
        description="One row per cell: key, method, label, params (JSON and param.<name> columns), clip, "
                    "seed, status, reason, every metric, time.<stage>, peak memory, artifact path. "
                    "--to mlflow|tensorboard log one run per label (docs/exports.md).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (holds results.sqlite)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--format", choices=FORMATS, help="a flat table file")
    what.add_argument("--to", choices=TARGETS, help="a target (json: one self-describing file; hf-dataset, "
                      "tensorboard: a folder; mlflow: a tracking server or store)")
    p.add_argument("--out", metavar="PATH", help="output file or folder (default: RUN_DIR/results.<format>, "
                   "RUN_DIR/results.json, RUN_DIR/hf-dataset, RUN_DIR/tensorboard)")
    p.add_argument("--tracking-uri", metavar="URI", help="with --to mlflow: any URI MLflow accepts "
                   "(http://host:port, sqlite:///mlflow.db, a folder); default: $MLFLOW_TRACKING_URI, else ./mlruns")
    p.add_argument("--experiment", metavar="NAME", help="with --to mlflow: experiment name "
                   "(default: motiongrid/<run dir name>)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from motiongrid.reports import export, trackers

    if args.format is None and args.to != "mlflow" and (args.tracking_uri or args.experiment):
        return error("export", "--tracking-uri and --experiment go with --to mlflow")
    run_dir = Path(args.run_dir)
    try:
        if args.format:
            print(f"wrote {export.export(run_dir, args.format, args.out)}")
        elif args.to == "json":
            print(f"wrote {export.write_json(run_dir, args.out)}")
        elif args.to == "hf-dataset":
            print(f"wrote {export.write_hf_dataset(run_dir, args.out)}")
        else:
            summary = (trackers.to_mlflow(run_dir, args.tracking_uri, args.experiment) if args.to == "mlflow"
                       else trackers.to_tensorboard(run_dir, args.out or run_dir / "tensorboard"))
            print("\n".join(summary.lines()))
    except (RunDirError, ValueError) as exc:
        return error("export", exc)
    return ExitCode.OK


def register(subparsers) -> None:
    _register_report(subparsers)
    _register_compare(subparsers)
    _register_export(subparsers)

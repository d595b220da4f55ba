"""The ``motiongrid`` command line: one module per command group, assembled here.

Each module in ``COMMAND_MODULES`` defines ``register(subparsers)``; handlers return an
:class:`ExitCode`. Library modules never parse arguments or print results.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from motiongrid.bench.cli.common import ExitCode, error

COMMAND_MODULES = [
    "motiongrid.bench.cli.run",       # run, clips, methods, metrics
    "motiongrid.bench.cli.score",     # score
    "motiongrid.bench.cli.reports",   # report, compare, export
    "motiongrid.bench.cli.weights",   # weights list|fetch|verify|import
    "motiongrid.bench.cli.profile",   # profile (shape-only memory / time)
    "motiongrid.bench.cli.toy",       # toy train|export|sample
]


def build_parser() -> argparse.ArgumentParser:
    from motiongrid.bench import __version__

    parser = argparse.ArgumentParser(
        prog="motiongrid",
        description="Benchmark motion-cloning and motion-editing video diffusion: run method grids "
                    "over clip sets, score them, report and compare runs.")
    parser.add_argument("--version", action="version", version=f"motiongrid {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of any error (also: MOTIONGRID_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return ExitCode.BAD_INPUT
    return run_command(args)


def run_command(args) -> int:
    """Run the handler; what escapes it becomes one line and an exit code, never a raw traceback
    (unless --debug): the user's error -> 2; an interrupted run -> 128 + signal; a bug -> 3 with
    the traceback written to a log file (in the run directory when there is one)."""
    from motiongrid.bench.errors import Interrupted, debug_enabled, describe, is_user_error, write_traceback

    command = args.command + (f" {sub}" if (sub := _subcommand(args)) else "")
    try:
        return int(args.func(args) or ExitCode.OK)
    except Interrupted as exc:
        print(f"motiongrid {command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"motiongrid {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug_enabled(args.debug):
            raise
        if is_user_error(exc):
            return error(command, describe(exc))
        log = write_traceback(exc, getattr(args, "out", None) or getattr(args, "run_dir", None))
        print(f"motiongrid {command}: internal error: {type(exc).__name__}: {describe(exc)}\n"
              f"  the traceback is in {log}; please report it (or re-run with --debug)", file=sys.stderr)
        return ExitCode.INTERNAL


def _subcommand(args) -> str | None:
    return next((getattr(args, k) for k in vars(args) if k.endswith("_command") and getattr(args, k)), None)


if __name__ == "__main__":
    sys.exit(main())

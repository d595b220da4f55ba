"""The ``motiongrid`` command line: one module per command group, assembled here.

Each module in ``COMMAND_MODULES`` defines ``register(subparsers)``; handlers return an
:class:`ExitCode`. Library modules never parse arguments or print results.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from motiongrid.bench.cli.common import ExitCode

COMMAND_MODULES = [
    "motiongrid.bench.cli.run",       # run, clips, methods, metrics
    "motiongrid.bench.cli.score",     # score
    "motiongrid.bench.cli.reports",   # report, compare, export
    "motiongrid.bench.cli.weights",   # weights list|fetch|verify|import
    "motiongrid.bench.cli.toy",       # toy train|export|sample
]


def build_parser() -> argparse.ArgumentParser:
    from motiongrid.bench import __version__

    parser = argparse.ArgumentParser(
        prog="motiongrid",
        description="Benchmark motion-cloning and motion-editing video diffusion: run method grids "
                    "over clip sets, score them, report and compare runs.")
    parser.add_argument("--version", action="version", version=f"motiongrid {__version__}")
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
    return int(args.func(args) or ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())

"""``motiongrid`` command line. Each command family registers its own subparser through a
``register_cli(subparsers)`` function in its module; this file only assembles them."""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands (each defines register_cli(subparsers)).
COMMAND_MODULES = [
    "motiongrid.runner",
    "motiongrid.score",
    "motiongrid.methods.toy",
    "motiongrid.weights",
    "motiongrid.reports.report",
    "motiongrid.reports.compare",
    "motiongrid.reports.export",
]


def build_parser() -> argparse.ArgumentParser:
    from motiongrid import __version__

    parser = argparse.ArgumentParser(
        prog="motiongrid",
        description="Benchmark motion-cloning and motion-editing video diffusion: run method grids "
                    "over clip sets, score them, report and compare runs.")
    parser.add_argument("--version", action="version", version=f"motiongrid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

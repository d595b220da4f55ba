"""reports package: report, compare and export read a run directory (results.sqlite, run.json).

Its commands are declared here, so the core CLI (``motiongrid.bench.cli``) finds them by name
and imports ``reports.cli`` only when it builds the parser.
"""
from motiongrid.bench.registry import commands

commands.declare("reports", "motiongrid.reports.cli:register", help="report, compare and export a run directory",
                 parent=None)

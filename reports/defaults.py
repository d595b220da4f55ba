"""Defaults of report, compare and export that the CLI shows in its help: kept apart from
those modules so building the parser imports no pandas or matplotlib."""
from __future__ import annotations

DEFAULT_PREVIEWS = 4
BASELINE_METHOD = "unguided"  # the default baseline: what guidance is meant to improve on
DEFAULT_TOLERANCE = "1%"
FORMATS = ("csv", "parquet")
TARGETS = ("json", "hf-dataset", "mlflow", "tensorboard")  # export --to
DEFAULT_EMBED_MB = 20.0  # report.html embeds the cell browser's videos up to this size

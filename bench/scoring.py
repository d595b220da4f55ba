"""Building and applying metrics: shared by ``motiongrid score`` and the runner.

``build_metrics(names, options)`` -> (ready metrics, {name: reason unavailable}).
``score_video(metrics, video, clip)`` -> ({"psnr": v, "motion_fidelity.symmetric": v, ...},
{metric: error}). Dict results are flattened as ``<metric>.<key>``. Values stay floats
(PSNR may be +inf); ``json_value`` makes them strict-JSON safe.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from motiongrid.api import Metric
from motiongrid.datasets.clip import Clip
from motiongrid.datasets.video import Video
from motiongrid.registry import metrics as metric_registry


def build_metrics(names: Iterable[str], options: dict[str, dict] | None = None,
                  common: dict[str, Any] | None = None) -> tuple[list[Metric], dict[str, str]]:
    """Instantiate metrics by registry name. ``options[name]`` are that metric's options;
    ``common`` (e.g. {"resample": ..., "cache_dir": ...}) go to every metric that declares
    them. Raises UnknownName (a KeyError) for an unknown name and TypeError/ValueError for bad
    options; a metric that cannot run here is returned in ``unavailable`` with its reason."""
    options = options or {}
    ready, unavailable = [], {}
    for name in names:
        cls = metric_registry.get(name)
        declared = set(getattr(cls, "common", {})) | set(getattr(cls, "defaults", {}))
        opts = {k: v for k, v in (common or {}).items() if k in declared and v is not None}
        opts.update(options.get(name, {}))
        metric = cls(**opts)
        reason = metric.available()
        if reason:
            unavailable[name] = reason
        else:
            ready.append(metric)
    return ready, unavailable


def flatten(name: str, result) -> dict[str, float | None]:
    if isinstance(result, dict):
        return {f"{name}.{k}": (None if v is None else float(v)) for k, v in result.items()}
    return {name: None if result is None else float(result)}


def score_video(metrics: Iterable[Metric], video: Video, clip: Clip,
                reraise: tuple[type[BaseException], ...] = ()) -> tuple[dict, dict]:
    """All metrics on one video; a metric that raises records its error and a null value
    (exceptions of the ``reraise`` types propagate)."""
    values, errors = {}, {}
    for metric in metrics:
        try:
            scored = flatten(metric.name, metric.score(video, clip))  # a non-number fails here too
        except reraise:
            raise
        except Exception as exc:  # one metric's failure must not lose the others' numbers
            values[metric.name] = None
            errors[metric.name] = f"{type(exc).__name__}: {exc}"
            continue
        values.update(scored)
    return values, errors


def mean_values(rows: list[dict[str, float | None]]) -> dict[str, float]:
    """Per key, the mean over rows that have a number (inf propagates: one identical pair
    makes the mean PSNR inf, which is the truth)."""
    keys = sorted({k for r in rows for k in r})
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if r.get(k) is not None]
        if vals:
            out[k] = float(torch.tensor(vals, dtype=torch.float64).mean())
    return out


def json_value(v):
    """Strict JSON has no inf/nan: they are written as the strings "inf", "-inf", "nan"."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    return v

"""Building, preparing and applying metrics: the one path ``motiongrid run`` and
``motiongrid score`` share.

``resolve_device(name)`` -> torch.device ("auto" picks CUDA when torch sees it).
``build_metrics(names, options)`` -> (metrics that can run here, {name: reason unavailable}).
``prepare_metrics(metrics, device, unavailable)`` loads their weights; a metric whose
``prepare()`` raises (a corrupt weight file, say) joins ``unavailable`` with the reason.
``score_video(metrics, video, clip)`` -> ({"psnr": v, "motion_fidelity.symmetric": v, ...},
{metric: error}). Dict results are flattened as ``<metric>.<key>``. Values stay floats
(PSNR may be +inf); ``json_value`` makes them strict-JSON safe.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import torch

from motiongrid.bench.api import Metric, OptionsError
from motiongrid.bench.clip import Clip
from motiongrid.bench.errors import UserError, did_you_mean
from motiongrid.bench.registry import metrics as metric_registry
from motiongrid.bench.video import Video

log = logging.getLogger(__name__)


class DeviceError(UserError, ValueError):
    """A device that this machine does not have."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' requested but torch sees no CUDA device (use --device cpu or auto)")
    return torch.device(name)


def build_metrics(names: Iterable[str], options: dict[str, dict] | None = None,
                  common: dict[str, Any] | None = None) -> tuple[list[Metric], dict[str, str]]:
    """Instantiate metrics by registry name. ``options[name]`` are that metric's options;
    ``common`` (e.g. {"resample": ..., "cache_dir": ...}) go to every metric that declares
    them. Raises UnknownName (a KeyError) for an unknown name and OptionsError (a ValueError)
    for bad options, checked against each metric's typed ``Options``; a metric that cannot run
    here is returned in ``unavailable`` with its reason."""
    options = options or {}
    names = list(names)
    for name in options:   # options for a metric that is not scored are a typo until proven otherwise
        if name not in names:
            raise OptionsError(f"options given for {name!r}, which is not among the metrics scored "
                               f"({', '.join(names)}){did_you_mean(name, names)}")
    ready, unavailable = [], {}
    for name in names:
        cls = metric_registry.get(name)
        declared = set(cls.Options.model_fields)
        opts = {k: v for k, v in (common or {}).items() if k in declared and v is not None}
        opts.update(options.get(name, {}))
        metric = cls(**opts)
        reason = metric.available()
        if reason:
            unavailable[name] = reason
        else:
            ready.append(metric)
    return ready, unavailable


def prepare_metrics(metrics: list[Metric], device: torch.device, unavailable: dict[str, str]) -> list[Metric]:
    """Prepare each metric on ``device``; returns those that loaded. One that raises is added
    to ``unavailable`` with its reason (and logged), so a bad weight file never stops a run."""
    ready = []
    for metric in metrics:
        try:
            metric.prepare(device)
        except Exception as exc:
            unavailable[metric.name] = f"{metric.name}: failed to load: {type(exc).__name__}: {exc}"
            log.warning("metric %s", unavailable[metric.name])
            continue
        ready.append(metric)
    return ready


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

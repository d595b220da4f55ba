"""motiongrid.bench: the core of motiongrid and the plugin API.

Plugins import what they implement or speak from here::

    from motiongrid.bench import Clip, Method, Params, Video, methods

Names resolve on first use (PEP 562), so importing the package (and the CLI inside it) does
not import torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> module (inside motiongrid.bench) that defines it
_EXPORTS = {
    "Method": "api", "Metric": "api", "ClipSet": "api", "Params": "params", "NoParams": "params",
    "MetricUnavailable": "api",
    "Video": "video", "VideoError": "video",
    "Clip": "clip",
    "methods": "registry", "metrics": "registry", "datasets": "registry", "UnknownName": "registry",
    "WeightFile": "weights",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'motiongrid.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

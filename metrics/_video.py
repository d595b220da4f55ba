"""Glue the video metrics share: typed options on today's ``BaseMetric``.

Each video metric declares its own options as a nested pydantic ``Options`` model (the
project's typed-options contract). Until ``bench.api.MetricOptions`` lands, ``BaseMetric``
still takes a ``defaults`` dict: ``defaults_of`` derives it from the model and
``validate_options`` checks the values into ``self.opts``, so a bad value is one ValueError
naming the metric, the option and what was expected.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class VideoMetricOptions(BaseModel):
    """Base of the video metrics' ``Options`` (becomes ``bench.api.MetricOptions``)."""
    model_config = ConfigDict(extra="forbid")


def defaults_of(options: type[BaseModel]) -> dict[str, Any]:
    return {name: field.default for name, field in options.model_fields.items()}


def validate_options(metric) -> BaseModel:
    own = {k: metric.options[k] for k in type(metric).Options.model_fields}
    try:
        return type(metric).Options(**own)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                             for e in exc.errors())
        raise ValueError(f"metric {metric.name!r}: {problems}") from None

"""Expand a validated config into cells, validating every parameter before anything runs.

Grid rule: a list value expands into one cell per element (cartesian product over keys) —
unless the parameter itself is declared as a list, in which case a list of lists expands and
a flat list is one value.
"""
from __future__ import annotations

import itertools
import typing
from dataclasses import dataclass

from pydantic import ValidationError

from motiongrid.bench import __version__
from motiongrid.bench.api import Method, Params
from motiongrid.bench.clip import Clip
from motiongrid.bench.config import ConfigError, RunConfig
from motiongrid.bench.hashing import sha256_json
from motiongrid.bench.registry import UnknownName, methods


@dataclass(frozen=True)
class MethodVariant:
    """One method with one concrete parameter set."""
    method: str
    label: str
    params: Params
    method_cls: type[Method]


@dataclass(frozen=True)
class Cell:
    variant: MethodVariant
    clip: Clip
    seed: int
    key: str


def _is_list_param(params_cls: type[Params], name: str) -> bool:
    field = params_cls.model_fields.get(name)
    if field is None:
        return False
    origin = typing.get_origin(field.annotation)
    return field.annotation in (list, tuple) or origin in (list, tuple)


def _expand(params_cls: type[Params], raw: dict) -> list[dict]:
    axes = []
    for name, value in raw.items():
        expands = isinstance(value, list) and (
            not _is_list_param(params_cls, name) or (value and all(isinstance(v, list) for v in value)))
        axes.append([(name, v) for v in value] if expands else [(name, value)])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def make_label(method: str, params: Params, custom: str | None = None) -> str:
    """``name(k=v,...)`` listing only parameters that differ from their defaults."""
    defaults = type(params)()  # every Params field has a default
    changed = {k: v for k, v in params.model_dump().items() if v != getattr(defaults, k)}
    inner = ",".join(f"{k}={_short(v)}" for k, v in sorted(changed.items()))
    base = custom or method
    return f"{base}({inner})" if inner else base


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def expand_methods(config: RunConfig, source: str) -> list[MethodVariant]:
    variants: list[MethodVariant] = []
    for i, mc in enumerate(config.methods):
        where = f"{source}: methods[{i}]"
        try:
            cls = methods.get(mc.name)
        except UnknownName as exc:
            raise ConfigError(f"{where}.name: {exc}") from None
        for combo in _expand(cls.Params, mc.params):
            try:
                params = cls.Params(**combo)
            except ValidationError as exc:
                allowed = ", ".join(f"{n}: {_type_name(f.annotation)} = {f.default!r}"
                                    for n, f in cls.Params.model_fields.items()) or "none"
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or '?'}: "
                    f"{'unknown parameter' if e['type'] == 'extra_forbidden' else e['msg']}"
                    f" (got {e.get('input')!r})" for e in exc.errors())
                raise ConfigError(f"{where} ({mc.name}).params: {problems}\n  allowed params: {allowed}") from None
            variants.append(MethodVariant(mc.name, make_label(mc.name, params, mc.label), params, cls))
    labels = [v.label for v in variants]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"{source}: methods: the same method and parameters appear twice: {dupes}")
    return variants


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def cell_key(variant: MethodVariant, clip: Clip, seed: int, metric_spec: dict, weights: dict) -> str:
    """Hash of everything that determines a cell's result, including the identity of the
    method's loaded weights (so a retrained or swapped model never reuses stale cells)."""
    payload = {
        "method": variant.method,
        "params": variant.params.model_dump(mode="json"),
        "weights": weights,
        "clip": clip.content_hash,
        "seed": seed,
        "metrics": metric_spec,
        "code": __version__,
    }
    # default=str: a method's fingerprint may hold paths or dtypes; they must not crash the run
    return sha256_json(payload, 20)


def expand_cells(variants: list[MethodVariant], clips: list[Clip], seeds: list[int],
                 metric_spec: dict, fingerprints: dict[str, dict]) -> list[Cell]:
    """Cells ordered method-major; ``fingerprints`` maps each label to its weights identity."""
    return [Cell(v, clip, seed, cell_key(v, clip, seed, metric_spec, fingerprints.get(v.label, {})))
            for v in variants for clip in clips for seed in seeds]

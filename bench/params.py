"""Typed method parameters and metric / clip set options (pydantic only, so listings and the
CLI's parsers import no torch). ``motiongrid.bench.api`` re-exports them."""
from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer, model_validator

from motiongrid.bench.errors import UserError, did_you_mean


class Params(BaseModel):
    """Base for a method's typed parameters; unknown keys and wrong types are errors."""
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


class OptionsError(UserError, ValueError):
    """Options a metric or clip set cannot take; the message names the owner, the key and what
    is allowed (with "did you mean" for a misspelt key)."""


class Options(BaseModel):
    """Typed options: unknown keys are errors and no number may be NaN or ±inf, nested ones
    included (a NaN threshold silently compares False everywhere). A field where a non-finite
    value means something lists itself in ``non_finite_ok``."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    non_finite_ok: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _finite(self):
        def walk(v):
            if isinstance(v, float):
                return math.isfinite(v)
            if isinstance(v, (list, tuple, set, frozenset)):
                return all(walk(x) for x in v)
            if isinstance(v, dict):
                return all(walk(x) for x in v.values())
            return True
        for name in type(self).model_fields:
            if name not in self.non_finite_ok and not walk(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r}: NaN and ±inf are not allowed")
        return self

    @classmethod
    def parse(cls, owner: str, values: dict[str, Any]) -> Options:
        """Validate ``values``; one ``OptionsError`` naming ``owner``, every bad key and the fix."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise OptionsError(describe_options_error(owner, cls, exc)) from None


def describe_options_error(owner: str, cls: type[BaseModel], exc: ValidationError) -> str:
    allowed = list(cls.model_fields)
    problems, unknown = [], False
    seen = set()
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else ""   # the option, not a union member's type
        if key in seen:
            continue
        seen.add(key)
        if err["type"] == "extra_forbidden":
            hint = did_you_mean(str(err["loc"][0]), allowed)
            problems.append(f"unknown option {key!r}{hint}")
            unknown = True
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {msg} (got {err.get('input')!r})" if key else msg)
    listing = f"; allowed options: {', '.join(allowed) or 'none'}" if unknown else ""
    return f"{owner}: {'; '.join(problems)}{listing}"


class MetricOptions(Options):
    """Base of a metric's typed options (``Metric.Options``): declare fields with defaults and
    ``Field(description=...)``; ``motiongrid metrics`` lists them."""


class ClipSetOptions(Options):
    """Base of a clip set's typed options (``ClipSet.Options``)."""


def type_name(annotation: Any) -> str:
    """A field's type as a listing shows it: ``int``, ``'lk' | 'gt'``, ``str | None``."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def describe_fields(model: type[BaseModel]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, description) of each field, for listings."""
    return [(name, type_name(f.annotation), f.default, f.description or "")
            for name, f in model.model_fields.items()]


def choices(model: type[BaseModel], field: str) -> tuple:
    """The values a ``Literal`` field allows (for a CLI's ``choices``)."""
    import typing

    return typing.get_args(model.model_fields[field].annotation)


class LateParams(Params):
    """Params whose fields named in ``added_later`` are left out of ``model_dump`` (and so of
    cell keys and labels) while None: a parameter added after cells were keyed keeps the old
    cells' keys at its default, and enters the key as soon as it is set."""
    added_later: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_unset_late_fields(self, handler):
        data = handler(self)
        return {k: v for k, v in data.items() if not (k in self.added_later and v is None)}

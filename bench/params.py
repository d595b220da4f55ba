"""Typed method parameters (pydantic only, so parameter listings import no torch)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Base for a method's typed parameters; unknown keys and wrong types are errors."""
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass

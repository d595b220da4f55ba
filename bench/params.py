"""Typed method parameters (pydantic only, so parameter listings import no torch)."""
from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, model_serializer


class Params(BaseModel):
    """Base for a method's typed parameters; unknown keys and wrong types are errors."""
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


class LateParams(Params):
    """Params whose fields named in ``added_later`` are left out of ``model_dump`` (and so of
    cell keys and labels) while None: a parameter added after cells were keyed keeps the old
    cells' keys at its default, and enters the key as soon as it is set."""
    added_later: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_unset_late_fields(self, handler):
        data = handler(self)
        return {k: v for k, v in data.items() if not (k in self.added_later and v is None)}

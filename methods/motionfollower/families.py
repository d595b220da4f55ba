"""The two MotionFollower backbones, entries of ``registry.backbones`` (declared in
``motiongrid.methods`` with task "edit"): their weights' identity from the files alone, and
their loaders, imported when they load. Only the registry imports this module (by name)."""
from __future__ import annotations

import importlib
from typing import ClassVar

from motiongrid.bench.registry import backbones
from motiongrid.methods.backbone import BackboneFamily
from motiongrid.methods.motionfollower.params import released_fingerprint, toy_fingerprint


class _EditFamily(BackboneFamily):
    loader: ClassVar[str]      # "module:function(device=...)", imported when a model loads (torch)

    @classmethod
    def load(cls, model_id, device, **kwargs):
        module, _, name = cls.loader.partition(":")
        return getattr(importlib.import_module(module), name)(device=device)


@backbones.register("motionfollower")
class ReleasedFamily(_EditFamily):
    loader = "motiongrid.methods.motionfollower.real:load_motionfollower_backbone"
    fingerprint = staticmethod(lambda model_id: released_fingerprint())


@backbones.register("toy-motionfollower")
class ToyEditFamily(_EditFamily):
    loader = "motiongrid.methods.motionfollower.model:load_toy_edit_backbone"
    fingerprint = staticmethod(lambda model_id: toy_fingerprint())

"""The two MotionFollower backbones, entries of ``registry.backbones`` (declared in
``motiongrid.methods`` with task "edit"): their weights' identity from the files alone, and
their loaders, imported when they load. Only the registry imports this module (by name)."""
from __future__ import annotations

from motiongrid.bench.registry import backbones
from motiongrid.methods.backbone import BackboneFamily
from motiongrid.methods.motionfollower.params import released_fingerprint, toy_fingerprint


@backbones.register("motionfollower")
class ReleasedFamily(BackboneFamily):
    fingerprint = staticmethod(lambda model_id: released_fingerprint())

    @staticmethod
    def load(model_id, device, **kwargs):
        from motiongrid.methods.motionfollower.real import load_motionfollower_backbone

        return load_motionfollower_backbone(device=device)


@backbones.register("toy-motionfollower")
class ToyEditFamily(BackboneFamily):
    fingerprint = staticmethod(lambda model_id: toy_fingerprint())

    @staticmethod
    def load(model_id, device, **kwargs):
        from motiongrid.methods.motionfollower.model import load_toy_edit_backbone

        return load_toy_edit_backbone(device=device)
